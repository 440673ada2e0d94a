"""Segmentation into atomic steps: change points recover known boundaries, the metric, teleop ingestion."""

from __future__ import annotations

import json

import numpy as np
import pytest

from encoders.instraction.changepoint import (
    Segmenter,
    SegmenterConfig,
    changepoint_boundaries,
    label_runs,
    uniform_split,
)
from encoders.instraction.segment import boundary_metrics
from real_robot.ingest import ingest


def _steps(lengths: list[int], dim: int = 4, noise: float = 0.15, seed: int = 0) -> np.ndarray:
    """Piecewise-constant `(sum lengths, dim)` features with Gaussian noise, one random level per step."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([np.repeat(rng.normal(0, 1, (1, dim)), n, 0) for n in lengths])
    return x + noise * rng.standard_normal(x.shape)


@pytest.mark.parametrize("lengths", [[6, 20, 9], [30, 5], [8, 8, 25, 4]])
def test_changepoint_recovers_known_boundaries_where_uniform_does_not(lengths):
    truth = list(np.cumsum(lengths)[:-1])
    x = _steps(lengths, seed=len(lengths))
    assert changepoint_boundaries(x, len(lengths), duration_weight=0.0) == truth
    assert changepoint_boundaries(x, len(lengths), duration_weight=0.03) == truth
    assert uniform_split(len(x), len(lengths)) != truth
    # a strong duration prior pulls towards equal parts (ties of a non-integer T / M: within one step)
    strong = changepoint_boundaries(x, len(lengths), duration_weight=1e3)
    assert np.abs(np.subtract(strong, uniform_split(len(x), len(lengths)))).max() <= 1


def test_robot_segmenter_finds_motion_and_gripper_changes():
    # reach (move +x, open) 12 steps, grasp (still, closing) 7, lift (move +z, closed) 21
    v = np.concatenate([np.tile([0.01, 0, 0], (12, 1)), np.zeros((7, 3)), np.tile([0, 0, 0.01], (21, 1))])
    grip = np.concatenate([np.full(12, 0.08), np.linspace(0.08, 0.02, 7), np.full(21, 0.02)])
    obs = {"ee_pos": np.cumsum(v, 0), "gripper_states": np.stack([grip / 2, -grip / 2], 1)}
    pred = Segmenter(SegmenterConfig(pos_weight=0.0, duration_weight=0.0))(None, ["reach", "grasp", "lift"], obs=obs)
    m = boundary_metrics(pred, [12, 19], 40, tol=1)
    assert m["mae"] <= 1.0 and m["f1"] == 1.0, pred


def test_boundary_metrics_hand_made():
    m = boundary_metrics([10, 30], [12, 25], n_frames=50, tol=2)
    assert m["mae"] == pytest.approx(3.5) and m["mae_frac"] == pytest.approx(0.07)
    assert m["f1"] == pytest.approx(0.5)  # 10~12 within 2 frames, 30 vs 25 is not
    assert boundary_metrics([], [], 5)["f1"] == 1.0
    assert label_runs(["a", "a", "b", "b", "b", "a"]) == (["a", "b", "a"], [2, 5])


def test_bad_input_is_one_error():
    with pytest.raises(ValueError, match="n_segments"):
        changepoint_boundaries(np.zeros((3, 2)), 4)
    with pytest.raises(ValueError, match="features"):
        changepoint_boundaries(np.full((5, 2), np.nan), 2)
    with pytest.raises(ValueError, match="method"):
        Segmenter(SegmenterConfig(method="dtw"))
    with pytest.raises(ValueError, match="n_frames"):
        boundary_metrics([1], [1], 0)


def _episode(root, name: str, markers: bool, n: int = 40, hz: float = 10.0, cut: int = 15) -> None:
    """A raw teleop episode: joints move one way then another, the gripper closes at step `cut`."""
    d = root / name
    d.mkdir(parents=True)
    t = np.arange(n) / hz + 3.0
    vel = np.where(np.arange(n)[:, None] < cut, 0.05, -0.05) * np.array([1.0, 0.5, 0, 0, 0, 0, -1.0])
    js = np.cumsum(vel, 0)
    grip = (np.arange(n) >= cut).astype(float)
    for k, v in {"joint_states": js, "action": np.concatenate([js, grip[:, None]], 1), "gripper_state": grip}.items():
        np.savez(d / f"{k}.npz", t=t, v=v)
    mk = [{"t": float(t[0]), "label": "open the middle drawer"}, {"t": float(t[cut]), "label": "pick up the tape"}]
    (d / "meta.json").write_text(json.dumps({"instruction": "open the middle drawer, pick up the tape",
                                             "robot": "mujoco_twin", "markers": mk if markers else []}))


def test_ingest_labels_unmarked_episodes_and_scores_marked_ones(tmp_path):
    src = tmp_path / "raw"
    _episode(src, "marked", markers=True)
    _episode(src, "unmarked", markers=False, cut=22)
    # motion + gripper only: the LIBERO-tuned position term (pos_weight 3) splits a V-shaped joint path
    seg = Segmenter(SegmenterConfig(pos_weight=0.0, duration_weight=0.0))
    rep = ingest(src, "raw", tmp_path / "out", rate=10.0, segmenter=seg)
    assert rep["status"] == "written", rep
    assert rep["options"]["segmenter"] == "Segmenter[changepoint]"
    err = rep["segmenter_boundary_error"]
    assert err["episodes"] == 1 and err["mae_steps"] <= 1.0, err  # only the marked one has ground truth
    from envs.demos import DemoReader

    with DemoReader(tmp_path / "out/demos.hdf5") as r:
        skills = r[1].skills
    names, bounds = label_runs(skills)
    assert names == ["open", "grasp"] and abs(bounds[0] - 22) <= 1, bounds


def test_world_scores_and_the_no_jump_ablation():
    """world_scores: uniform and every picked config on the same sequences, each with its paired
    difference; no_jump_choice picks the best grid row whose jump_weight is 0."""
    from encoders.instraction.segment_eval import Seq, no_jump_choice, world_scores

    rng = np.random.default_rng(0)
    seqs = []
    for lengths in ([4, 12, 8], [10, 3, 9], [6, 6, 12], [13, 4, 5]):  # unequal steps: uniform misses them
        x = np.concatenate([np.full((n, 3), float(k)) for k, n in enumerate(lengths)]) + 0.05 * rng.normal(size=(sum(lengths), 3))
        seqs.append(Seq(x, list(np.cumsum(lengths)[:-1]), ["a", "b", "c"], "toy"))
    grid = [{"config": {**SegmenterConfig(duration_weight=w, jump_weight=j).__dict__}, "mae_frac": f}
            for w, j, f in ((0.0, 0.3, 0.01), (0.3, 0.0, 0.05), (0.0, 0.0, 0.02))]
    nj = no_jump_choice(grid)
    assert nj.jump_weight == 0.0 and nj.duration_weight == 0.0
    res = world_scores(seqs, {"changepoint": nj}, 0.05, 0)
    assert res["changepoint"]["mae"] == 0.0 < res["uniform"]["mae"]
    d = res["changepoint_minus_uniform"]
    assert d["mean_diff"] == -res["uniform"]["mae"] and d["better"] == 1.0 and d["ci95"][1] < 0


def test_transfer_scores_every_demo_of_a_folder_with_a_fixed_config(tmp_path):
    """transfer_scores: all demos of a folder never tuned on, the config file applied as it is,
    overall and per task; an end effector that changes direction at each step is cut there."""
    from encoders.instraction.segment_eval import EvalConfig, transfer_scores
    from envs.demos import Demo, DemoWriter

    rng = np.random.default_rng(0)
    for task in (0, 1):
        w = DemoWriter(tmp_path / "demos" / "libero_10" / f"task{task}_demo.hdf5",
                       env_args={"suite": "libero_10", "task_id": task}, problem_info={"language_instruction": "x"})
        for _ in range(3):
            lengths = rng.integers(8, 30, size=3)
            skills = [s for s, n in zip(("reach", "grasp", "lift"), lengths) for _ in range(n)]
            vel = np.concatenate([np.tile(d, (n, 1)) for d, n in zip(np.eye(3) * 0.01, lengths)])
            T = len(skills)
            w.add(Demo(actions=np.zeros((T, 7)), obs={"ee_pos": np.cumsum(vel, 0), "gripper_states": np.zeros((T, 2))},
                       states=np.zeros((T, 3)), rewards=np.r_[np.zeros(T - 1), 1], dones=np.r_[np.zeros(T - 1), 1],
                       instruction="x", skills=skills))
        w.flush()
    conf = tmp_path / "cp.yaml"
    conf.write_text("method: changepoint\nduration_weight: 0.0\npos_weight: 0.0\n")
    res = transfer_scores(EvalConfig(transfer=[str(tmp_path / "demos")], transfer_config=str(conf)))
    r = res[str(tmp_path / "demos")]
    assert res["picked"]["duration_weight"] == 0.0 and r["changepoint"]["n"] == 6
    assert sorted(r["per_task"]) == ["libero_10/0", "libero_10/1"]
    assert r["changepoint"]["mae"] < 0.5 < r["uniform"]["mae"]  # cut where the motion turns; uniform is not
