"""LIBERO protocol, env wrapper and evaluator, through the real simulator at tiny horizons."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from envs import protocol
from envs.eval_libero import EvalConfig, episode_path, evaluate, parse_tasks


def test_protocol_constants_table():
    assert protocol.MAX_STEPS == {
        "libero_spatial": 220, "libero_object": 280, "libero_goal": 300, "libero_10": 520, "libero_90": 400,
    }
    assert protocol.NUM_WAIT_STEPS == 10
    assert protocol.WAIT_ACTION == (0, 0, 0, 0, 0, 0, -1)
    assert protocol.RENDER_RESOLUTION == 256 and protocol.VLA_RESOLUTION == 224
    assert protocol.ENV_SEED == 0 and protocol.DEFAULT_TRIALS == 20 and protocol.FULL_PROTOCOL_TRIALS == 50
    for alias, name in [("libero10", "libero_10"), ("LIBERO-10", "libero_10"), ("goal", "libero_goal"),
                        ("libero_spatial", "libero_spatial"), ("libero90", "libero_90")]:
        assert protocol.canonical_suite(alias) == name
    with pytest.raises(ValueError, match="unknown LIBERO suite"):
        protocol.canonical_suite("libero_11")
    assert "| libero_10 | 520 |" in protocol.protocol_table()


def test_roboact_tasks_match_the_benchmark():
    from envs.libero import get_task

    for tid, (suite, idx, instruction) in protocol.ROBOACT_TASKS.items():
        assert get_task(suite, idx).instruction == instruction, tid


def test_gripper_conversion():
    # OpenVLA convention: 1 = open -> env -1 (open); 0 = close -> env +1
    assert protocol.policy_gripper_to_env(1.0, "openvla") == -1.0
    assert protocol.policy_gripper_to_env(0.0, "openvla") == 1.0
    assert protocol.policy_gripper_to_env(0.8, "openvla") == -1.0
    assert protocol.policy_gripper_to_env(0.2, "openvla") == 1.0
    np.testing.assert_array_equal(protocol.policy_gripper_to_env(np.array([0.9, 0.1]), "openvla"), [-1.0, 1.0])
    assert protocol.policy_gripper_to_env(0.3, "env") == 1.0
    assert protocol.policy_gripper_to_env(-0.3, "env") == -1.0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        protocol.policy_gripper_to_env(-0.5, "openvla")
    with pytest.raises(ValueError, match="convention"):
        protocol.policy_gripper_to_env(0.5, "bogus")
    a = protocol.to_env_action(np.array([2.0, -3.0, 0.1, 0, 0, 0, 1.0]), "openvla")
    np.testing.assert_allclose(a, [1.0, -1.0, 0.1, 0, 0, 0, -1.0])
    with pytest.raises(ValueError, match="7 dims"):
        protocol.to_env_action(np.zeros(6))
    with pytest.raises(ValueError, match="non-finite"):
        protocol.to_env_action(np.array([np.nan, 0, 0, 0, 0, 0, 0]))


def test_image_transforms_on_synthetic_image():
    img = np.zeros((256, 256, 3), np.uint8)
    img[:4, :4] = (255, 0, 0)  # top-left red, inside the 5-pixel margin a 90%-area crop removes
    img[120:136, 120:136] = (0, 255, 0)  # centre green
    flipped = protocol.flip_image(img)
    assert (flipped[-4:, -4:] == (255, 0, 0)).all() and (flipped[:4, :4] == 0).all()
    np.testing.assert_array_equal(protocol.flip_image(flipped), img)
    small = protocol.resize_image(img, 224)
    assert small.shape == (224, 224, 3) and small.dtype == np.uint8
    crop = protocol.center_crop(small, 0.9)
    assert crop.shape == (224, 224, 3)
    # the corner is cut away by the 90%-area crop, the centre stays in the centre and grows
    assert small[:3, :3, 0].min() > 150 and crop[:3, :3, 0].max() < 50
    green = np.argwhere(crop[..., 1] > 200)
    assert abs(green.mean(0) - 111.5).max() < 3 and len(green) > (16 * 224 / 256) ** 2
    np.testing.assert_array_equal(protocol.center_crop(img, 1.0), img)
    with pytest.raises(ValueError):
        protocol.center_crop(img, 0.0)
    assert protocol.vla_image(img, crop=False).shape == (224, 224, 3)


def test_wilson_interval_and_task_parsing():
    lo, hi = protocol.wilson_interval(10, 20)
    assert lo < 0.5 < hi and abs((lo + hi) / 2 - 0.5) < 1e-9 and 0.28 < lo < 0.3
    assert protocol.wilson_interval(0, 0) == (0.0, 1.0)
    assert protocol.wilson_interval(20, 20)[1] == 1.0
    assert parse_tasks("all", 3) == [0, 1, 2]
    assert parse_tasks("2,0,2", 10) == [0, 2]
    assert parse_tasks("1-3", 10) == [1, 2, 3]
    with pytest.raises(ValueError, match="out of range"):
        parse_tasks("10", 10)
    with pytest.raises(ValueError, match="not a task id"):
        parse_tasks("a", 10)


def test_env_observations_are_flipped_and_shaped():
    from envs.libero import LiberoEnv

    with LiberoEnv("libero_goal", 7, resolution=64) as env:
        obs = env.reset(trial=0, wait_steps=2)
        assert obs["agentview_rgb"].shape == (64, 64, 3) and obs["agentview_rgb"].dtype == np.uint8
        assert obs["eye_in_hand_rgb"].shape == (64, 64, 3)
        assert obs["proprio"].shape == (8,) and obs["proprio"].dtype == np.float32
        # the observation is the flipped raw camera frame (same as an on-demand render); the two
        # renders may differ in a few pixels, a wrong orientation differs everywhere
        raw = env.raw.sim.render(camera_name="agentview", width=64, height=64)
        ob = obs["agentview_rgb"].astype(int)
        assert np.abs(protocol.flip_image(raw).astype(int) - ob).mean() < 1.5
        assert np.abs(raw.astype(int) - ob).mean() > 10
        assert np.abs(env.render_frame().astype(int) - ob).mean() < 1.5
        env.set_render(False)
        obs2, _, _, info = env.step(np.array(protocol.WAIT_ACTION))
        assert "agentview_rgb" not in obs2 and info["success"] is False
        with pytest.raises(ValueError, match="shape"):
            env.step(np.zeros(6))
        with pytest.raises(ValueError, match="init state"):
            env.reset(trial=10_000)


class _Crashy:
    needs_images = False

    def reset(self) -> None:
        pass

    def act(self, obs: dict, instruction: str) -> np.ndarray:
        raise RuntimeError("boom")


def test_evaluator_short_horizon_resume_and_errors(tmp_path: Path):
    from policies.base import register_policy

    register_policy("test_crashy")(lambda spec, **kw: _Crashy())
    out = tmp_path / "ev"
    cfg = EvalConfig(suite="libero10", policy="random", trials=1, tasks="0", max_steps=4, resolution=64,
                     out=str(out), progress=False)
    cfg.validate()
    res = evaluate(cfg)
    assert res["suite"] == "libero_10" and res["overall"]["n"] == 1 and res["overall"]["errors"] == 0
    ep = episode_path(out, "libero_10", 0, 0)
    rec = json.loads(ep.read_text())
    assert rec["status"] == "ok" and rec["steps"] == 4 and rec["success"] is False
    assert (out / rec["video"]).stat().st_size > 0
    md = (out / "results.md").read_text()
    assert "| 0 | LIVING_ROOM_SCENE2_put_both_the_alphabet_soup" in md and (out / "config.yaml").is_file()

    # resume: the finished episode is skipped (file untouched), only the new trial runs
    mtime = ep.stat().st_mtime_ns
    cfg2 = EvalConfig(**{**cfg.__dict__, "trials": 2})
    res2 = evaluate(cfg2)
    assert ep.stat().st_mtime_ns == mtime
    assert res2["overall"]["n"] == 2 and episode_path(out, "libero_10", 0, 1).is_file()

    # a crashing policy is recorded with its traceback and counted as a failure
    out3 = tmp_path / "crash"
    cfg3 = EvalConfig(**{**cfg.__dict__, "policy": "test_crashy", "out": str(out3), "video": False})
    res3 = evaluate(cfg3)
    rec3 = json.loads(episode_path(out3, "libero_10", 0, 0).read_text())
    assert rec3["status"] == "error" and "boom" in rec3["traceback"] and rec3["success"] is False
    assert res3["overall"]["errors"] == 1 and res3["overall"]["success_rate"] == 0.0


def test_bad_config_values_are_named():
    from configs.loader import ConfigError, from_dict

    with pytest.raises(ConfigError, match="trials"):
        from_dict(EvalConfig, {"trials": 0})
    with pytest.raises(ConfigError, match="unknown LIBERO suite"):
        from_dict(EvalConfig, {"suite": "nope"})


def test_eval_config_files_and_policy_registry(tmp_path: Path):
    from configs.loader import load_config
    from policies import RandomPolicy, build_policy

    files = sorted((Path(__file__).resolve().parents[1] / "configs" / "eval").glob("libero*.yaml"))
    assert files
    for f in files:
        load_config(EvalConfig, f)
    p = build_policy("random", seed=3)
    assert isinstance(p, RandomPolicy) and p.needs_images is False
    assert build_policy("random:images").needs_images is True
    a = p.act({}, "x")
    assert a.shape == (7,) and a[6] in (-1.0, 1.0) and np.all(np.abs(a) <= 1)
    with pytest.raises(ValueError, match="unknown policy"):
        build_policy("no_such_policy")
    (tmp_path / "config.json").write_text(json.dumps({"policy_class": "nomodule"}))
    with pytest.raises(ValueError, match="module:Class"):
        build_policy(str(tmp_path))
