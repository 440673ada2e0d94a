"""The one demo dataset (envs/episodes.py): offset windows at both episode edges, every reader yields
the same Episode fields for the same demo, proprio from the env's keys, and bad input is one line
naming the file, key and sizes."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from envs import kitchen, protocol
from envs.demos import Demo, DemoWriter
from envs.episodes import (
    EpisodeDataset,
    frame_offsets,
    read_episodes,
    read_hdf5,
    read_lerobot_dir,
    split_episodes,
    window_steps,
)
from real_robot.ingest import ingest

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "fixtures" / "lerobot_tiny_a"


def _demo(T: int, seed: int, keys: tuple[str, ...] = ("ee_pos", "ee_ori", "gripper_states")) -> Demo:
    rng = np.random.default_rng(seed)
    dims = {"ee_pos": 3, "ee_ori": 3, "gripper_states": 2, "joint_states": 7}
    obs = {k: rng.normal(size=(T, dims[k])).astype(np.float32) for k in keys}
    obs["agentview_rgb"] = rng.integers(0, 255, (T, 8, 8, 3), dtype=np.uint8)
    obs["eye_in_hand_rgb"] = rng.integers(0, 255, (T, 8, 8, 3), dtype=np.uint8)
    return Demo(actions=rng.uniform(-1, 1, (T, 7)), obs=obs, states=np.zeros((T, 3)), rewards=np.zeros(T),
                dones=np.r_[np.zeros(T - 1), 1], instruction="turn on the stove")


def _write(path: Path, demos: list[Demo], **env_args) -> Path:
    w = DemoWriter(path, env_args=env_args, problem_info={"language_instruction": "turn on the stove"})
    for d in demos:
        w.add(d)
    w.flush()
    return path


def test_window_offsets_at_both_episode_edges(tmp_path: Path):
    T = 16
    ep = read_hdf5(_write(tmp_path / "a_demo.hdf5", [_demo(T, 0)], suite="libero_goal", task_id=0))[0]
    ds = EpisodeDataset([ep], {"agentview_rgb": range(-14, 1, 2), "action": range(0, 8)})
    # start: every frame offset before step 0 reads step 0 and is marked padding
    first = ds[0]
    assert first["t"] == 0 and first["agentview_rgb"].shape == (8, 8, 8, 3)
    assert np.array_equal(first["agentview_rgb"], np.repeat(ep.data["agentview_rgb"][:1], 8, axis=0))
    assert first["agentview_rgb_is_pad"].tolist() == [True] * 7 + [False]
    # step 5: offsets -14..-6 clip to 0, -4 -> 1, -2 -> 3, 0 -> 5
    item = ds[5]
    assert window_steps(5, range(-14, 1, 2), T).tolist() == [0, 0, 0, 0, 0, 1, 3, 5]
    assert np.array_equal(item["agentview_rgb"], ep.data["agentview_rgb"][[0, 0, 0, 0, 0, 1, 3, 5]])
    assert item["agentview_rgb_is_pad"].tolist() == [True] * 5 + [False] * 3
    # end: an action chunk past the last step repeats the last action
    last = ds[T - 1]
    assert np.array_equal(last["action"], np.repeat(ep.data["action"][-1:], 8, axis=0))
    assert last["action_is_pad"].tolist() == [False] + [True] * 7
    mid = ds[T - 8]
    assert np.array_equal(mid["action"], ep.data["action"][T - 8:])
    assert not mid["action_is_pad"].any()
    assert frame_offsets(8, 2).tolist() == list(range(-14, 1, 2))
    b = ds.batch([0, 5, T - 1])
    assert b["agentview_rgb"].shape == (3, 8, 8, 8, 3) and b["action"].shape == (3, 8, 7)
    assert b["t"].tolist() == [0, 5, T - 1] and b["instruction"] == ["turn on the stove"] * 3


def test_proprio_is_built_from_each_envs_keys(tmp_path: Path):
    lib = read_hdf5(_write(tmp_path / "l.hdf5", [_demo(6, 1)], suite="libero_goal"))[0]
    d = _demo(6, 1)
    assert np.allclose(lib.data["proprio"], np.concatenate([d.obs[k] for k in protocol.PROPRIO_KEYS], 1))
    kd = _demo(6, 2, keys=("joint_states", "gripper_states", "ee_pos"))
    kit = read_hdf5(_write(tmp_path / "k.hdf5", [kd], suite="kitchen"))[0]
    assert kit.data["proprio"].shape == (6, kitchen.PROPRIO_DIM)
    assert np.allclose(kit.data["proprio"], np.concatenate([kd.obs[k] for k in kitchen.PROPRIO_KEYS], 1))
    # a file naming its own keys (what ingestion writes) wins over the suite default
    own = read_hdf5(_write(tmp_path / "o.hdf5", [kd], suite="kitchen", proprio_keys=["ee_pos"]))[0]
    assert np.allclose(own.data["proprio"], kd.obs["ee_pos"])
    assert lib.task_id is None and lib.suite == "libero_goal"


def test_every_reader_yields_the_same_episode_fields(tmp_path: Path):
    """LeRobot v3 read directly == the same dataset ingested to hdf5 (the twin teleop path) and read back."""
    direct = read_lerobot_dir(FIXTURE)
    ingest(FIXTURE, "lerobot", tmp_path / "ing")
    via_hdf5 = read_episodes(tmp_path / "ing" / "demos.hdf5")
    assert [len(e) for e in direct] == [len(e) for e in via_hdf5] == [12, 15, 9]
    for a, b in zip(direct, via_hdf5):
        assert {"agentview_rgb", "eye_in_hand_rgb", "proprio", "action"} <= set(a.data) & set(b.data)
        assert a.instruction == b.instruction
        for k in ("proprio", "action", "agentview_rgb", "eye_in_hand_rgb"):
            assert a.data[k].shape == b.data[k].shape, k
            assert np.allclose(a.data[k], b.data[k], atol=1e-5), k
    assert direct[0].data["proprio"].shape == (12, 8)  # observation.state, gripper included
    # and a project hdf5 read whole == read with a key subset (the same arrays, fewer loaded)
    f = _write(tmp_path / "x_demo.hdf5", [_demo(7, 3)], suite="libero_goal", task_id=4)
    whole, part = read_hdf5(f)[0], read_hdf5(f, keys=("agentview_rgb", "proprio"))[0]
    assert set(part.data) == {"agentview_rgb", "proprio", "action"}
    for k in part.data:
        assert np.array_equal(whole.data[k], part.data[k])
    assert whole.task_id == 4 and whole.source.endswith("x_demo.hdf5:demo_0")


def test_missing_key_and_too_long_window_are_one_line(tmp_path: Path):
    f = _write(tmp_path / "short_demo.hdf5", [_demo(5, 0)], suite="libero_goal")
    eps = read_episodes(f)
    with pytest.raises(ValueError) as e:
        EpisodeDataset(eps, {"wrist_depth": [0]})
    msg = str(e.value)
    assert "short_demo.hdf5:demo_0" in msg and "'wrist_depth'" in msg and "\n" not in msg
    with pytest.raises(ValueError) as e:
        EpisodeDataset(eps, {"agentview_rgb": range(-14, 1, 2)})
    msg = str(e.value)
    assert "short_demo.hdf5:demo_0" in msg and "'agentview_rgb'" in msg and "15 steps" in msg and "5 steps" in msg


def test_task_selection_and_split(tmp_path: Path):
    for tid in (0, 5):
        _write(tmp_path / f"t{tid}_demo.hdf5", [_demo(4, tid), _demo(4, tid + 10), _demo(4, tid + 20)],
               suite="libero_goal", task_id=tid)
    eps = read_episodes(tmp_path, task_ids=[5], suite="libero_goal", max_demos=2)
    assert [e.task_id for e in eps] == [5, 5]
    with pytest.raises(FileNotFoundError, match=r"task\(s\) \[7\]"):
        read_episodes(tmp_path, task_ids=[5, 7], suite="libero_goal")
    train, val = split_episodes(read_episodes(tmp_path), 1)
    assert len(train) == 4 and len(val) == 2 and {e.source.rsplit(":", 1)[1] for e in val} == {"demo_2"}


def test_damaged_file_is_named(tmp_path: Path):
    bad = tmp_path / "bad_demo.hdf5"
    with h5py.File(bad, "w") as h:
        h.create_group("data").attrs["env_args"] = json.dumps({"suite": "kitchen"})
    with pytest.raises(ValueError, match="bad_demo.hdf5"):
        read_episodes(bad)
    (tmp_path / "trunc_demo.hdf5").write_bytes(b"\x89HDF\r\n\x1a\nnot really")
    with pytest.raises(Exception, match="trunc_demo.hdf5"):
        read_episodes(tmp_path / "trunc_demo.hdf5")
