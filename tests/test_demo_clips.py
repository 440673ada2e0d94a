"""Robot-domain atomic clips (envs/datasets/demo_clips.py) and mixed datasets (envs/datasets/mix.py).

Tiny demo files are written with the project's own DemoWriter; every frame encodes its step number
in its pixels, so a clip's frames prove which demo steps it was cut from. No simulator runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from configs.loader import from_dict
from envs.datasets.demo_clips import DemoClipsConfig, demo_clips, segments
from envs.demos import Demo, DemoWriter

SKILLS = {  # task id -> (instruction, skill runs): the expert's logged labels
    0: ("open the middle drawer of the cabinet", [("reach", 5), ("open", 7)]),
    1: ("put the cream cheese in the bowl", [("reach", 4), ("grasp", 3), ("lift", 3), ("place", 6)]),
    2: ("turn on the stove", [("reach", 6), ("turn", 5)]),
}


def _demo(instruction: str, runs: list[tuple[str, int]], size: int = 20) -> Demo:
    skills = [s for s, n in runs for _ in range(n)]
    T = len(skills)
    step = np.arange(T, dtype=np.uint8)[:, None, None, None]
    ramp = np.broadcast_to(step * 10, (T, size, size, 3)).astype(np.uint8)  # frame t is filled with 10 t
    return Demo(actions=np.zeros((T, 7)), obs={"agentview_rgb": ramp, "eye_in_hand_rgb": ramp.copy()},
                states=np.zeros((T, 3)), rewards=np.r_[np.zeros(T - 1), 1].astype(np.uint8),
                dones=np.r_[np.zeros(T - 1), 1].astype(np.uint8), instruction=instruction, skills=skills)  # fmt: skip


def _write_demos(root: Path, skills: dict = SKILLS, demos: int = 3) -> Path:
    for task, (instr, runs) in skills.items():
        w = DemoWriter(root / "libero_goal" / f"task{task}_demo.hdf5",
                       env_args={"suite": "libero_goal", "task_id": task}, problem_info={"language_instruction": instr})
        for _ in range(demos):
            w.add(_demo(instr, runs))
        w.flush()
    return root


def _cfg(demos: Path, out: Path, **kw) -> DemoClipsConfig:
    return from_dict(DemoClipsConfig, {"demos": str(demos), "out": str(out), "frames": 4, "size": 16,
                                       "progress": False, **kw})  # fmt: skip


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory) -> Path:
    return _write_demos(tmp_path_factory.mktemp("demos"))


@pytest.fixture(scope="module")
def clips(demo_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clips") / "libero_atomic"
    demo_clips(_cfg(demo_root, out, split_by="demo", val_every=3))
    return out


def test_index_is_read_by_the_atomic_world_reader_with_the_expert_boundaries(clips):
    from envs.atomic_world.dataset import AtomicClipDataset, read_meta

    ds = AtomicClipDataset(clips)
    verb = {"reach": "reach", "open": "open", "grasp": "grasp", "lift": "pick up", "place": "put down", "turn": "turn on"}
    expected = set()
    for task, (_, runs) in SKILLS.items():
        bounds, t = [], 0
        for s, n in runs:
            bounds.append((verb[s], t, t + n))
            t += n
        expected |= {(f"libero_goal_t{task}", *b) for b in bounds}
    got = set(zip(ds.index["scene"], ds.index["action"], ds.index["start_frame"], ds.index["end_frame"]))
    assert got == expected
    assert set(ds.index["view"]) == {"ego", "exo_agentview"} and set(ds.index["subject"]) == {"robot"}
    assert len(ds) == 2 * 3 * sum(len(r) for _, r in SKILLS.values())  # 2 views x 3 demos x segments
    for i in range(0, len(ds), 7):
        item = ds[i]
        assert item["video"].shape == (4, 3, 16, 16)
        steps = item["video"].float().mean((1, 2, 3)).numpy() / 10  # the step each frame was cut from
        assert np.all(steps >= item["start_frame"] - 1e-3) and np.all(steps < item["end_frame"])
        assert np.all(np.diff(steps) >= 0)
    meta = read_meta(clips)
    assert meta["new_verbs"] == ["grasp", "reach"] and meta["verb_map"]["lift"] == "pick up"
    objects = dict(zip(ds.index["scene"], ds.index["object"]))
    assert objects == {"libero_goal_t0": "drawer", "libero_goal_t1": "cream cheese", "libero_goal_t2": "knob"}
    assert set(ds.index[ds.index["take_id"] % 3 == 0]["split"]) == {"val"}  # demo 0 of each task


def test_split_by_task_holds_out_the_last_task(demo_root, tmp_path):
    from envs.atomic_world.dataset import read_index

    demo_clips(_cfg(demo_root, tmp_path / "o"))
    idx = read_index(tmp_path / "o")
    assert set(idx[idx["split"] == "val"]["scene"]) == {"libero_goal_t2"}
    assert set(idx[idx["split"] == "train"]["scene"]) == {"libero_goal_t0", "libero_goal_t1"}


def test_retried_segment_is_derived_failed_and_dropped(tmp_path):
    """A task's demos run one nominal sequence (their mode); the runs a demo adds to it (a re-grasp)
    are failed attempts, the earlier of the two. A sequence repeated by design is kept whole."""
    import pandas as pd

    once = [("reach", 3), ("grasp", 2), ("open", 3)]
    again = once + [("reach", 3), ("grasp", 2), ("open", 4)]
    root = tmp_path / "d"
    w = DemoWriter(root / "libero_goal" / "task1_demo.hdf5", env_args={"suite": "libero_goal", "task_id": 1},
                   problem_info={"language_instruction": "open the hinge cabinet door"})
    for runs in (once, again, once):
        w.add(_demo("open the hinge cabinet door", runs))
    w.flush()
    s = demo_clips(_cfg(root, tmp_path / "o"))
    seg = pd.read_parquet(tmp_path / "o" / "segments.parquet")
    assert seg["success"].tolist() == [True] * 3 + [False] * 3 + [True] * 3 + [True] * 3
    assert seg["kept"].tolist() == seg["success"].tolist()
    assert s["clips"] == 9 and s["dropped"] == {"failed (retried)": 3}
    # two objects into the basket: every demo repeats the pick-and-place, and nothing is dropped
    two = [("reach", 3), ("grasp", 2), ("lift", 2), ("place", 3)] * 2
    root2 = _write_demos(tmp_path / "d2", {3: ("put both the soup and the sauce in the basket", two)}, demos=2)
    s2 = demo_clips(_cfg(root2, tmp_path / "o2"))
    assert s2["clips"] == 16 and s2["dropped"] == {}
    assert segments(["a", "a", "b", "a"]) == [("a", 0, 2), ("b", 2, 3), ("a", 3, 4)]


def test_each_segment_is_labelled_with_the_object_its_skill_acted_on(tmp_path):
    """The writer logs each step's sim object (data/demo_i/skill_objects): the second pick-and-place of
    a two-object task is the second object, a drawer skill the drawer. A file without them (written
    before the writer logged objects) gives every segment the instruction's first noun phrase."""
    from envs.atomic_world.dataset import read_index
    from envs.datasets.demo_clips import sim_noun

    instr = "put both the alphabet soup and the tomato sauce in the basket"
    pick = [("reach", 3), ("grasp", 2), ("lift", 2), ("place", 3)]
    names = ["alphabet_soup_1"] * 10 + ["tomato_sauce_1"] * 10
    drawer = [("reach", 4), ("open", 4), ("reach", 3), ("grasp", 2), ("lift", 2), ("place", 3)]
    bowl = ["top_drawer"] * 8 + ["akita_black_bowl_1"] * 10
    for logged in (True, False):
        root = tmp_path / f"d{logged}"
        for task, (text, runs, objs) in {0: (instr, pick * 2, names),
                                         1: ("open the top drawer and put the bowl inside", drawer, bowl)}.items():
            w = DemoWriter(root / "libero_10" / f"task{task}_demo.hdf5", env_args={"suite": "libero_10", "task_id": task},
                           problem_info={"language_instruction": text})
            d = _demo(text, runs)
            d.skill_objects = objs if logged else None
            w.add(d)
            w.flush()
        demo_clips(_cfg(root, tmp_path / f"o{logged}", split_by="demo"))
        idx = read_index(tmp_path / f"o{logged}").drop_duplicates("clip_id").sort_values("clip_id")
        got = {sc: list(zip(g["action"], g["object"])) for sc, g in idx.groupby("scene")}
        if logged:
            assert [o for _, o in got["libero_10_t0"]] == ["alphabet soup"] * 4 + ["tomato sauce"] * 4
            assert got["libero_10_t1"] == [("reach", "drawer"), ("open", "drawer"), ("reach", "black bowl"),
                                           ("grasp", "black bowl"), ("pick up", "black bowl"), ("put down", "black bowl")]
            assert set(idx["caption"]) >= {"the robot picks up the tomato sauce"}
        else:
            assert [o for _, o in got["libero_10_t0"]] == ["alphabet soup"] * 8
            assert [o for _, o in got["libero_10_t1"]] == ["drawer"] * 6
    assert [sim_noun(n) for n in ("moka_pot_2", "microwave_1_microjoint", "porcelain_mug_1", "bottom_drawer")] == [
        "moka pot", "microwave", "white mug", "bottom drawer"]


def test_nominal_runs_and_the_runs_left_over():
    from envs.datasets.demo_clips import nominal_runs, retried_runs

    r, g, o, lift, p = "reach", "grasp", "open", "lift", "place"
    assert nominal_runs([[r, g, o, r, g, o], [r, g, o], [r, g, o]]) == (r, g, o)
    assert nominal_runs([[r, g, o, r, g, o], [r, g, o]]) == (r, g, o)  # a tie: the fewest runs
    assert retried_runs([r, g, o, r, g, o], [r, g, o]) == {0, 1, 2}
    assert retried_runs([r, g, r, g, lift, p], [r, g, lift, p]) == {0, 1}  # a slipped grasp, grasped again
    assert retried_runs([r, g, lift, p] * 2, [r, g, lift, p] * 2) == set()
    assert retried_runs([r, g, lift, p, r, g, r, g, lift, p], [r, g, lift, p] * 2) == {4, 5}
    assert retried_runs([r, g], [r, g, lift, p]) == set()  # runs missing from the demo are not extra
    assert retried_runs([], [r]) == set() and nominal_runs([]) == ()


ROOT = Path(__file__).resolve().parents[1]


def _script_error(argv: list[str]) -> str:
    """stderr of `python scripts/demo_clips.py ARGV`, which must fail with one line and status 2."""
    r = subprocess.run([sys.executable, str(ROOT / "scripts/demo_clips.py"), *argv], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    err = r.stderr.strip()
    assert r.returncode == 2 and len(err.splitlines()) == 1, (r.returncode, err)
    return err


def test_file_without_skill_labels_is_one_line_naming_it(tmp_path):
    d = _demo("turn on the stove", [("reach", 3), ("turn", 3)])
    d.skills = None
    f = tmp_path / "d" / "nolabels_demo.hdf5"
    w = DemoWriter(f, env_args={"suite": "libero_goal", "task_id": 7})
    w.add(d)
    w.flush()
    err = _script_error(["--demos", str(tmp_path / "d"), "--out", str(tmp_path / "o")])
    assert str(f) in err and "encoders/instraction/segment.py" in err and "skill labels" in err
    assert not (tmp_path / "o").exists()  # checked before anything is written


def test_skill_label_without_verb_mapping_is_one_line(tmp_path):
    root = _write_demos(tmp_path / "d", {2: SKILLS[2]}, demos=1)
    f = next(root.rglob("*.hdf5"))
    with h5py.File(f, "a") as h:  # a file whose vocabulary names a skill the adapter does not know
        vocab = json.loads(h["data"].attrs["skill_vocab"])
        vocab[vocab.index("turn")] = "wave"
        h["data"].attrs["skill_vocab"] = json.dumps(vocab)
    err = _script_error(["--demos", str(root), "--out", str(tmp_path / "o")])
    assert str(f) in err and "'wave'" in err and "VERBS" in err


# ---------------------------------------------------------------------------------------- mixing
@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    from envs.atomic_world.toy import make_toy_dataset

    return make_toy_dataset(tmp_path_factory.mktemp("toy") / "aw", scenes=4, frames=4, size=16, split="train")


def test_mixed_sampling_follows_the_weights(toy, clips, tmp_path):
    from encoders.invact.data import QuadrupletSampler
    from envs.atomic_world.dataset import AtomicClipDataset, read_index, read_meta
    from envs.datasets.mix import draw_rows, mix_datasets, mix_weights

    mix = mix_datasets([str(toy), str(clips)], [0.7, 0.3], tmp_path)
    assert mix_weights(mix) == pytest.approx([0.7, 0.3])
    ds = AtomicClipDataset(mix, split="train")  # the reader accepts the mix folder
    assert ds[len(ds) - 1]["video"].shape == (4, 3, 16, 16)
    meta = read_meta(mix)
    assert meta["vocab"]["action"][:5] == read_meta(toy)["vocab"]["action"]  # data[0]'s ids unchanged
    idx = read_index(mix, "train")
    assert idx[["clip_id", "view"]].duplicated().sum() == 0 and idx.groupby("dataset")["take_id"].max()[0] < idx.groupby("dataset")["take_id"].min()[1]
    s = QuadrupletSampler(idx, meta["vocab"]["action"], quads=8, seed=0, weights=mix_weights(mix))
    n, from_demos = 0, 0
    for step in range(60):
        b = s.batch(step)
        src = idx["dataset"].to_numpy()[b.ego]
        for q in range(8):  # each quadruplet comes from one source
            assert len(set(src[4 * q : 4 * q + 4])) == 1
        from_demos += int((src[::4] == 1).sum())
        n += 8
    sd = np.sqrt(n * 0.3 * 0.7)
    assert abs(from_demos - 0.3 * n) < 4 * sd, (from_demos, n)
    rows = draw_rows(np.random.default_rng(0), idx["dataset"].to_numpy(), [0.2, 0.8], 2000)
    share = float((idx["dataset"].to_numpy()[rows] == 1).mean())
    assert abs(share - 0.8) < 4 * np.sqrt(0.2 * 0.8 / 2000)


def test_bad_weights_are_one_line(capsys):
    from configs.cli import run_cli
    from encoders.train import main

    for w in ("[0,0]", "[1,-1]", "[0.5]"):
        with pytest.raises(SystemExit) as e:  # the shared parser: `prog: error: <one line>`, status 2
            run_cli(main, ["data=[runs/a,runs/b]", f"data_weights={w}", "steps=1"])
        err = capsys.readouterr().err.strip()
        assert e.value.code == 2 and len(err.splitlines()) == 1 and "data_weights" in err, err


def test_verb_outside_the_vocabulary_without_mapping_is_one_line(toy, clips, tmp_path):
    from envs.datasets.mix import mix_datasets

    with pytest.raises(ValueError, match=r"data\[1\] .*verbs \['lift', 'lower', 'wave'\].*new_verbs") as e:
        mix_datasets([str(clips), str(toy)], [], tmp_path)
    assert "\n" not in str(e.value)


def test_roboact_clip_trains_on_a_mix_with_the_robot_verbs_and_objects(toy, clips, tmp_path):
    """RoboAct-CLIP reads the mix folder like one dataset: its classifiers cover the joined
    vocabularies (the robot clips add reach / grasp, subject robot and the demo objects), and its
    batches draw each source by its weight."""
    from encoders.base import build_encoder
    from encoders.roboact.method import RoboActMethod
    from encoders.train import TrainConfig, resolve_data, train

    cfg = from_dict(TrainConfig, {
        "method": "roboact_clip", "data": [str(toy), str(clips)], "data_weights": [0.5, 0.5], "steps": 3,
        "out": str(tmp_path / "run"), "batch_quads": 2, "threads": 1, "cache_dir": str(tmp_path / "cache"),
        "model": {"dim": 32, "heads": 2, "attn_tokens": 2, "branch_dim": 16, "depth": 1, "frames": 4,
                  "backbone": "pixels", "backbone_size": 16}}, source="test")  # fmt: skip
    out = train(cfg, progress=False)
    enc = build_encoder(str(out / "encoder"))
    assert {"reach", "grasp", "push"} <= set(enc.cfg.actions) and "robot" in enc.cfg.subjects
    assert {"drawer", "knob", "cream cheese"} <= set(enc.cfg.objects)
    m = RoboActMethod(resolve_data(cfg))  # data: the mix folder train() made
    src = m.index["dataset"].to_numpy()
    share = np.mean([src[m.batch(step)] == 1 for step in range(200)])
    natural = float(np.mean(src == 1))  # what uniform row sampling would give
    assert abs(share - 0.5) < 0.05 and abs(natural - 0.5) > 0.15, (share, natural)


# ------------------------------------------------------------------------------------- retrieval
def test_retrieval_benchmark_runs_on_demo_segments_and_on_a_mix(toy, clips, tmp_path):
    from encoders.evaluate import main

    enc = str(ROOT / "configs/encoder/pixels_mean.yaml")  # raw pixels: no weights, fast
    res = main(["--encoder", enc, "--data", str(clips), "--split", "all", "--out",
                str(tmp_path / "r.json"), "plots=false", f"cache_dir={tmp_path / 'c'}"])
    assert res["n_queries"] == 2 * 3 * 8 and (tmp_path / "r.json").is_file()
    # "reach" occurs in every task (scene): its ego queries find reach clips of other tasks
    assert res["atomic"]["cross_scene"]["g2g"]["n_queries"] == 3 * 8
    mix = main(["--encoder", enc, "--split", "all", "--out", str(tmp_path / "m.json"), f"data=[{toy},{clips}]",
                "plots=false", f"cache_dir={tmp_path / 'c'}"])
    assert mix["n_queries"] == res["n_queries"] + 4 * 2 * 5 * 2  # + toy: 4 scenes x 2 takes x 5 verbs x 2 views
