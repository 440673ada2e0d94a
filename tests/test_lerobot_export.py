"""Demo files -> LeRobot v3.0 (envs/lerobot_writer.py, `make_libero_demos.py --format lerobot`) and back:
through ingestion (actions and states exact, frames within codec tolerance, skill labels kept), through the
policy heads' demo reader (suite / task selection as for hdf5 files), and a head trained on the export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from envs.demos import Demo, DemoReader, DemoWriter
from envs.protocol import PROPRIO_KEYS

SIZE = 32
TASKS = {0: "open the middle drawer of the cabinet", 5: "push the plate to the front of the stove"}


def _frames(T: int, seed: int, cam: int) -> np.ndarray:
    """(T, SIZE, SIZE, 3) smooth uint8 frames that differ per demo, step and camera."""
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    out = [np.clip(np.array([30 + 9 * seed + 5 * t, 80 + 70 * cam, 210 - 6 * t], float)[None, None]
                   + 2.0 * (x + y)[..., None], 0, 255) for t in range(T)]
    return np.stack(out).astype(np.uint8)


def write_libero_like_demos(root: Path, demos: int = 2, T: int = 9) -> dict[tuple[int, int], Demo]:
    """Demo files as make_libero_task writes them (env_args suite / task_id / proprio_keys), two tasks."""
    rng = np.random.default_rng(0)
    truth = {}
    for tid, instr in TASKS.items():
        w = DemoWriter(root / "libero_goal" / f"task{tid}_demo.hdf5",
                       env_args={"type": 1, "suite": "libero_goal", "task_id": tid, "proprio_keys": list(PROPRIO_KEYS)},
                       problem_info={"language_instruction": instr})
        for i in range(demos):
            d = Demo(actions=rng.uniform(-1, 1, (T, 7)),
                     obs={"agentview_rgb": _frames(T, 10 * tid + i, 0), "eye_in_hand_rgb": _frames(T, 10 * tid + i, 1),
                          "ee_pos": rng.normal(size=(T, 3)), "ee_ori": rng.normal(size=(T, 3)),
                          "gripper_states": rng.normal(size=(T, 2)), "joint_states": rng.normal(size=(T, 7))},
                     states=rng.normal(size=(T, 5)), rewards=np.zeros(T), dones=np.r_[np.zeros(T - 1), 1],
                     instruction=instr, skills=["reach"] * 4 + ["open"] * (T - 4),
                     skill_objects=[""] * 2 + [f"obj_{tid}_{i}"] * (T - 2))
            w.add(d)
            truth[(tid, i)] = d
        w.flush()
    return truth


def test_libero_demos_round_trip_through_lerobot_and_ingestion(tmp_path: Path) -> None:
    from envs.lerobot_writer import export_demos
    from real_robot.ingest import ingest

    truth = write_libero_like_demos(tmp_path / "demos")
    rep = export_demos(tmp_path / "demos", tmp_path / "lr", fps=20)
    assert rep["episodes"] == 4 and rep["frames"] == 36 and rep["cameras"] == ["front", "wrist"]
    info = json.loads((tmp_path / "lr/meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 20 and info["total_tasks"] == 2
    assert info["features"]["observation.state"]["names"] == ["x", "y", "z", "ax", "ay", "az", "left_gripper",
                                                              "right_gripper"]
    assert info["features"]["action"]["shape"] == [7] and info["features"]["skill_index"]["dtype"] == "int64"
    assert info["features"]["skill_object_index"]["names"] == sorted({"", *(f"obj_{t}_{i}" for t, i in truth)})
    assert (tmp_path / "lr/videos/observation.images.wrist/chunk-000/file-000.mp4").is_file()

    got = ingest(tmp_path / "lr", "lerobot", tmp_path / "back")
    assert got["status"] == "written", got["problems"]
    with DemoReader(tmp_path / "back/demos.hdf5") as r:
        back = [r[i] for i in range(len(r))]
    assert len(back) == 4
    for b, key in zip(back, sorted(truth)):  # export order: files sorted (task 0, task 5), demos in order
        d = truth[key]
        assert b.instruction == d.instruction and b.skills == d.skills and b.skill_objects == d.skill_objects
        f32 = lambda a: np.asarray(a, np.float32).astype(np.float64)  # noqa: E731 - LeRobot stores float32
        np.testing.assert_array_equal(b.actions, f32(d.actions))
        np.testing.assert_array_equal(b.obs["joint_states"], f32(np.concatenate([d.obs["ee_pos"], d.obs["ee_ori"]], 1)))
        np.testing.assert_array_equal(b.obs["gripper_states"], f32(d.obs["gripper_states"]))
        for k in ("agentview_rgb", "eye_in_hand_rgb"):  # h264 crf 18, yuv420p: a few grey levels
            err = np.abs(b.obs[k].astype(int) - d.obs[k].astype(int))
            assert b.obs[k].shape == d.obs[k].shape and err.mean() < 2.0 and err.max() <= 24, (k, err.mean(), err.max())


def test_export_refuses_a_demo_without_skill_objects_beside_ones_with_them(tmp_path: Path) -> None:
    from envs.lerobot_writer import export_demos

    write_libero_like_demos(tmp_path / "demos", demos=1)
    w = DemoWriter(tmp_path / "demos/libero_goal/task9_demo.hdf5",
                   env_args={"type": 1, "suite": "libero_goal", "task_id": 9, "proprio_keys": list(PROPRIO_KEYS)},
                   problem_info={"language_instruction": "open the top drawer"})
    with DemoReader(tmp_path / "demos/libero_goal/task0_demo.hdf5") as r:
        d = r[0]
    d.skill_objects = None
    w.add(d)
    w.flush()
    with pytest.raises(ValueError, match=r"task9_demo.hdf5: demo 0 has no skill_objects where others have them"):
        export_demos(tmp_path / "demos", tmp_path / "lr")


def test_head_demo_reader_selects_tasks_of_the_export_and_a_head_trains_on_it(tmp_path: Path) -> None:
    from envs.episodes import read_episodes
    from envs.lerobot_writer import export_demos
    from policies.train import TrainHeadConfig, train

    truth = write_libero_like_demos(tmp_path / "demos", demos=3)
    export_demos(tmp_path / "demos", tmp_path / "lr")
    eps = read_episodes(tmp_path / "lr", keys=("agentview_rgb", "proprio", "action"), suite="libero_goal",
                        task_ids=[5], max_demos=2)
    assert [(e.suite, e.task_id) for e in eps] == [("libero_goal", 5)] * 2
    d = truth[(5, 0)]
    want = np.concatenate([d.obs[k] for k in PROPRIO_KEYS], 1).astype(np.float32)
    np.testing.assert_array_equal(eps[0].data["proprio"], want)
    with pytest.raises(FileNotFoundError, match=r"task\(s\) \[7\]"):
        read_episodes(tmp_path / "lr", keys=("proprio", "action"), suite="libero_goal", task_ids=[7])

    s = train(TrainHeadConfig(env="libero", suite="libero_goal", task="0,5", encoder="random", demos=str(tmp_path / "lr"),
                              max_demos=3, out=str(tmp_path / "head"), steps=3, batch_size=8, frames=1, stride=1,
                              instruction="", eval_episodes=0, log_every=1, progress=False, threads=1,
                              cache_root=str(tmp_path / "cache")))
    assert s["train_rows"] == 6 * 9
    meta = json.loads((tmp_path / "head/policy/policy.json").read_text())
    assert meta["trained_on"]["tasks"] == [0, 5] and meta["trained_on"]["demos"] == str(tmp_path / "lr")


def test_demo_config_suite_all_and_format_are_checked() -> None:
    from envs.demo_tasks import ALL_SUITES, LiberoDemoConfig, libero_demo_tasks

    with pytest.raises(ValueError, match=r"format must be one of \('hdf5', 'lerobot'\)"):
        LiberoDemoConfig(format="parquet").validate()
    with pytest.raises(ValueError, match="with suite=all every task with a program is written"):
        LiberoDemoConfig(suite="all", tasks="0").validate()
    cfg = LiberoDemoConfig(suite="all", format="lerobot")
    cfg.validate()
    jobs = libero_demo_tasks(cfg)
    assert {s for s, _ in jobs} == set(ALL_SUITES) and ("libero_goal", 0) in jobs and ("libero_10", 7) in jobs
    assert jobs == sorted(jobs, key=lambda j: (ALL_SUITES.index(j[0]), j[1]))  # suite by suite, tasks in order
