"""Demo hdf5 writer/reader: round trip, resume, official-layout files, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from envs.demos import Demo, DemoReader, DemoWriter


def _demo(T: int, seed: int) -> Demo:
    rng = np.random.default_rng(seed)
    return Demo(
        actions=rng.uniform(-1, 1, (T, 7)),
        obs={
            "agentview_rgb": rng.integers(0, 255, (T, 8, 8, 3), dtype=np.uint8),
            "eye_in_hand_rgb": rng.integers(0, 255, (T, 8, 8, 3), dtype=np.uint8),
            "ee_pos": rng.normal(size=(T, 3)).astype(np.float32),
            "gripper_states": rng.normal(size=(T, 2)).astype(np.float32),
        },
        states=rng.normal(size=(T, 11)),
        rewards=np.r_[np.zeros(T - 1), 1].astype(np.uint8),
        dones=np.r_[np.zeros(T - 1), 1].astype(np.uint8),
        instruction="turn on the stove",
        skills=["reach"] * (T // 2) + ["turn"] * (T - T // 2),
        skill_objects=[""] + ["flat_stove_1"] * (T - 1),
        init_state=rng.normal(size=11),
    )


def test_hdf5_round_trip_and_resume(tmp_path: Path):
    path = tmp_path / "x_demo.hdf5"
    w = DemoWriter(path, env_args={"env_name": "x"}, problem_info={"language_instruction": "turn on the stove"})
    demos = [_demo(5, 0), _demo(7, 1)]
    for d in demos:
        w.add(d)
    assert w.flush() == 2
    # a second writer resumes the file (what a restarted generator does)
    w2 = DemoWriter(path, env_args={"env_name": "x"}, problem_info={"language_instruction": "turn on the stove"})
    assert w2.num_demos() == 2
    demos.append(_demo(4, 2))
    w2.add(demos[-1])
    assert w2.flush() == 3
    assert not list(tmp_path.glob(".*tmp*")), "temp files left behind"
    with DemoReader(path) as r:
        assert len(r) == 3 and r.instruction == "turn on the stove" and r.env_args["env_name"] == "x"
        for d, back in zip(demos, r):
            np.testing.assert_array_equal(back.actions, d.actions)
            np.testing.assert_array_equal(back.states, d.states)
            np.testing.assert_array_equal(back.obs["agentview_rgb"], d.obs["agentview_rgb"])
            np.testing.assert_array_equal(back.obs["ee_pos"], d.obs["ee_pos"])
            np.testing.assert_array_equal(back.dones, d.dones)
            np.testing.assert_array_equal(back.init_state, d.init_state)
            assert back.skills == d.skills and back.instruction == d.instruction
            assert back.skill_objects == d.skill_objects
    with h5py.File(path) as f:
        assert f["data"].attrs["num_demos"] == 3 and f["data"].attrs["total"] == 16
        assert f["data/demo_1/obs/agentview_rgb"].shape == (7, 8, 8, 3)


def test_reader_loads_official_layout_and_flips_images(tmp_path: Path):
    """Official LIBERO files: no skills, raw (upside-down) OpenGL images, instruction in problem_info."""
    path = tmp_path / "official_demo.hdf5"
    img = np.zeros((3, 4, 4, 3), np.uint8)
    img[:, 0, 0] = 255
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["problem_info"] = json.dumps({"language_instruction": "open the drawer"})
        data.attrs["env_args"] = json.dumps({"env_name": "y"})
        g = data.create_group("demo_0")
        g.attrs["num_samples"] = 3
        g.create_dataset("actions", data=np.zeros((3, 7)))
        g.create_dataset("states", data=np.zeros((3, 5)))
        g.create_dataset("rewards", data=np.zeros(3))
        g.create_dataset("dones", data=np.array([0, 0, 1]))
        g.create_dataset("obs/agentview_rgb", data=img)
        g.create_dataset("obs/joint_states", data=np.ones((3, 7)))
    with DemoReader(path) as r:
        d = r[0]
        assert d.skills is None and d.instruction == "open the drawer" and len(d) == 3
        assert d.obs["agentview_rgb"][0, -1, -1, 0] == 255 and d.obs["agentview_rgb"][0, 0, 0, 0] == 0


def test_bad_demos_are_rejected(tmp_path: Path):
    d = _demo(5, 0)
    d.skills = ["reach"] * 5
    d.skills[2] = "juggle"
    with pytest.raises(ValueError, match="juggle"):
        DemoWriter(tmp_path / "a.hdf5").add(d)
    d = _demo(5, 0)
    d.states = d.states[:4]
    with pytest.raises(ValueError, match="states"):
        DemoWriter(tmp_path / "a.hdf5").add(d)
    with pytest.raises(FileNotFoundError, match="nope.hdf5"):
        DemoReader(tmp_path / "nope.hdf5")
