"""The twin's learned step policy on frozen encoder features of its cameras (`twin_head` with `encoder`,
policies/heads/twin.py): teleop recording -> raw and LeRobot v3.0 forms -> ingestion -> training ->
acting; bad input (a missing camera, an encoder of another size) is one error line before training."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from envs.episodes import read_episodes
from envs.policy_api import build_policy
from policies.heads.twin import TwinHeadPolicy, TwinTrainConfig, train
from real_robot import teleop
from real_robot.ingest import ingest
from real_robot.lerobot_export import export_lerobot
from real_robot.robot import make_robot

TWO_STEPS = "open the middle drawer, pick up the tape"
SIZE = 24


def _tiny(cfg_root: Path, demos: Path, **kw: object) -> TwinTrainConfig:
    """A seconds-long encoder head: `random` 128-d features of both cameras, 2-frame windows."""
    base = dict(demos=str(demos), out=str(cfg_root / "twin"), encoder="random", frames=2, stride=1,
                steps=30, batch_size=64, hidden=(32, 32), feature_proj=8, threads=1, progress=False,
                cache_root=str(cfg_root / "cache"), ckpt_every=30)
    base.update(kw)
    return TwinTrainConfig(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One scripted-teleop episode of TWO_STEPS (seed 0) with front + wrist cameras at 24 px, raw."""
    root = tmp_path_factory.mktemp("twin_vision")
    n = teleop.record_episodes(TWO_STEPS, root / "raw", episodes=1, seed=0, cameras=("front", "wrist"),
                               image_size=SIZE)
    assert n == 1
    assert ingest(root / "raw", "raw", root / "demos", rate=20.0)["status"] == "written"
    return root


def test_lerobot_export_of_the_recording_ingests_with_step_labels(recorded: Path) -> None:
    r = export_lerobot(recorded / "raw", recorded / "lerobot", fps=20)
    assert r["episodes"] == 2 and r["cameras"] == ["front", "wrist"]  # one LeRobot episode per atomic step
    rep = ingest(recorded / "lerobot", "lerobot", recorded / "lr_demos", rate=20.0)
    assert rep["status"] == "written", rep.get("problems")
    keys = ("agentview_rgb", "eye_in_hand_rgb", "proprio", "action")
    raw = read_episodes(str(recorded / "demos"), keys=keys)[0]
    lr = read_episodes(str(recorded / "lr_demos"), keys=keys)
    assert [e.instruction for e in lr] == ["open the middle drawer", "pick up the tape"]
    assert [set(e.skills) for e in lr] == [{"open"}, {"grasp"}]  # labelled by their one-step instruction
    n = len(lr[0])  # the first step lines up with the raw episode's first frames
    assert raw.skills[n - 1] == "open"
    np.testing.assert_array_equal(lr[0].data["proprio"], raw.data["proprio"][:n])
    np.testing.assert_array_equal(lr[0].data["action"], raw.data["action"][:n])
    diff = np.abs(lr[0].data["eye_in_hand_rgb"].astype(int) - raw.data["eye_in_hand_rgb"][:n].astype(int))
    assert diff.mean() < 6  # h264, lossy
    # the camera head trains on the LeRobot form too (its step episodes' decoded frames)
    s = train(_tiny(recorded / "lr_train", recorded / "lr_demos"))
    assert s["episodes"] == 2 and s["feature_dim"] == 256
    # a recording without markers cannot be split into steps: one error naming it
    shutil.copytree(recorded / "raw", recorded / "nomark")
    meta = next((recorded / "nomark").glob("*/meta.json"))
    meta.write_text(meta.read_text().replace('"markers"', '"no_markers"'))
    with pytest.raises(ValueError, match="markers"):
        export_lerobot(recorded / "nomark", recorded / "lr2")


def test_camera_features_enter_the_twin_head(recorded: Path, tmp_path: Path) -> None:
    s = train(_tiny(tmp_path, recorded / "demos"))
    assert s["feature_dim"] == 256 and s["views"] == ["front", "wrist"]
    pol = build_policy(s["policy"])
    assert isinstance(pol, TwinHeadPolicy) and pol.inputs.cameras == ("front", "wrist")
    robot = make_robot("mujoco_twin", cameras=("front", "wrist"), image_size=(SIZE, SIZE), seed=0)
    robot.connect()
    try:
        obs = robot.get_observation()
    finally:
        robot.disconnect()

    def first_action(o: dict) -> np.ndarray:
        pol.seed_episode(0)
        pol.reset()
        return pol.act(o, "pick up the tape")

    a = first_action(obs)
    np.testing.assert_array_equal(a, first_action(obs))  # the stream restarts per run: same input, same action
    dark = {**obs, "wrist": np.zeros_like(obs["wrist"])}
    assert np.abs(first_action(dark)[:7] - a[:7]).max() > 1e-4  # the wrist frame changes the joint targets
    assert np.abs(first_action({**obs, "front": 255 - obs["front"]})[:7] - a[:7]).max() > 1e-4
    with pytest.raises(KeyError, match="wrist"):
        first_action({k: v for k, v in obs.items() if k != "wrist"})
    # an encoder of another size than the head was trained on: one line naming the folder
    from encoders import build_encoder

    shutil.rmtree(Path(s["policy"]) / "encoder")
    build_encoder("random", dim=8).save_pretrained(Path(s["policy"]) / "encoder")
    with pytest.raises(ValueError, match="2 x 8 = 16 feature dims.*trained on 256"):
        build_policy(s["policy"])


def test_missing_camera_or_bad_window_fails_before_training(tmp_path: Path) -> None:
    robot_root = tmp_path / "front_only"
    teleop.record_episodes("open the middle drawer", robot_root / "raw", episodes=1, seed=0, cameras=("front",),
                           image_size=SIZE)
    ingest(robot_root / "raw", "raw", robot_root / "demos", rate=20.0)
    cfg = _tiny(tmp_path, robot_root / "demos")
    with pytest.raises(ValueError, match="no 'wrist' camera") as e:
        train(cfg)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "twin" / "metrics.jsonl").exists() and not (tmp_path / "cache").exists()
    with pytest.raises(ValueError, match="views must be"):
        train(_tiny(tmp_path, robot_root / "demos", views=("side",)))
    # the blind head (encoder none) still trains on the same front-only demos
    s = train(_tiny(tmp_path, robot_root / "demos", encoder="none"))
    assert s["feature_dim"] == 0 and build_policy(s["policy"]).inputs.cameras == ()


def test_tape_jitter_option_keeps_the_default_and_widens_on_request() -> None:
    def tape(seed: int, **kw: object) -> np.ndarray:
        r = make_robot("mujoco_twin", cameras=(), seed=seed, **kw)
        return r.tape_pos

    ys = []
    for seed in range(6):
        default = tape(seed)
        np.testing.assert_array_equal(default, tape(seed, tape_jitter=(0.015, 0.015)))  # same draw as before
        ys.append(abs(tape(seed, tape_jitter=(0.015, 0.08))[1]))
        assert abs(default[1]) <= 0.0151
    assert max(ys) > 0.03  # outside the 3 cm grasp radius for some seed
    with pytest.raises(ValueError, match="tape_jitter"):
        make_robot("mujoco_twin", cameras=(), tape_jitter=(0.015, 0.2))
