"""The generated atomic-action world: real MuJoCo simulation and rendering at tiny sizes."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from configs.loader import ConfigError, from_dict, load_config
from envs.atomic_world.dataset import INDEX_COLUMNS, AtomicClipDataset, load_clip, read_index, read_meta
from envs.atomic_world.generate import (
    LabelError,
    MakeVideosConfig,
    WorldConfig,
    _scenes,
    _simulate,
    generate_take,
    make_dataset,
    plan_take,
)
from envs.atomic_world.scenes import split_scenes
from envs.atomic_world.vocab import ACTIONS, KEYSTEPS, OBJECTS, SYMMETRIC_PAIRS, VIEWS

TINY = {"n_scenes": 4, "frames": 4, "size": 32, "objects": ["red cube", "blue cylinder"]}


def tiny_world(**kw) -> WorldConfig:
    return from_dict(WorldConfig, {**TINY, **kw})


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("aw") / "data"
    cfg = from_dict(
        MakeVideosConfig,
        {"out": str(out), "takes": 10, "seed": 0, "workers": 1,
         "world": {**TINY, "keystep_prob": 0.5, "keysteps": ["push the object back and forth", "cycle the stove knob"]}},
    )  # fmt: skip
    make_dataset(cfg, progress=False)
    return out, cfg


def test_vocabulary_meets_the_spec():
    assert len(ACTIONS) >= 12 and len(SYMMETRIC_PAIRS) >= 5
    assert all(a in ACTIONS and b in ACTIONS for a, b in SYMMETRIC_PAIRS)
    assert len(OBJECTS) >= 6 and len({o.name for o in OBJECTS}) == len(OBJECTS)
    assert len(WorldConfig().subjects) >= 2 and WorldConfig().n_scenes >= 10
    assert "ego" in VIEWS and len([v for v in VIEWS if v != "ego"]) >= 2
    assert len(KEYSTEPS) >= 4 and all(2 <= len(v) <= 4 for v in KEYSTEPS.values())
    assert all(a in ACTIONS for v in KEYSTEPS.values() for a in v)


def test_index_meta_and_files(tiny_dataset):
    out, cfg = tiny_dataset
    df = read_index(out)
    meta = read_meta(out)
    assert list(df.columns) == list(INDEX_COLUMNS)
    assert meta["seed"] == 0 and meta["n_takes"] == 10 and meta["symmetric_pairs"]
    assert set(df["view"]) == set(VIEWS)
    # every clip has exactly one row per view, and every file is a (T, H, W, 3) uint8 clip
    assert (df.groupby("clip_id")["view"].nunique() == len(VIEWS)).all()
    for p in df["path"]:
        clip = load_clip(out / p)
        assert clip.shape == (4, 32, 32, 3) and clip.dtype == np.uint8
    # rendered views of one instant are different images (different cameras), frames change over time
    c = df[df["clip_id"] == df["clip_id"].iloc[0]]
    ego, exo = (load_clip(out / c[c["view"] == v]["path"].iloc[0]) for v in ("ego", "exo_left"))
    assert not np.array_equal(ego, exo) and not np.array_equal(ego[0], ego[-1])
    # captions/labels agree, keystep segments tile the take's timeline
    assert all(r.caption.startswith(("the robot", "the person")) for r in df.itertuples())
    for _, g in df[df["keystep_id"] >= 0].drop_duplicates("clip_id").groupby("take_id"):
        g = g.sort_values("segment_index")
        assert tuple(g["action"]) == KEYSTEPS[g["keystep"].iloc[0]]
        assert list(g["start_frame"]) == [k * 4 for k in range(len(g))]
        assert list(g["end_frame"]) == [(k + 1) * 4 for k in range(len(g))]
    assert (out / "config.yaml").is_file()


def test_splits_hold_out_whole_scenes(tiny_dataset):
    out, _ = tiny_dataset
    df = read_index(out)
    train, val = set(df[df.split == "train"].scene), set(df[df.split == "val"].scene)
    assert train and val and not (train & val)
    assert split_scenes(0, 12, 0.25) == split_scenes(0, 12, 0.25)
    assert split_scenes(0, 12, 0.25) != split_scenes(1, 12, 0.25)
    assert sum(v == "val" for v in split_scenes(0, 12, 0.25).values()) == 3


def test_torch_dataset_items(tiny_dataset):
    out, _ = tiny_dataset
    ds = AtomicClipDataset(out, split="val")
    item = ds[0]
    assert tuple(item["video"].shape) == (4, 3, 32, 32) and str(item["video"].dtype) == "torch.uint8"
    assert ds.meta["vocab"]["action"][item["action_id"]] == item["action"]
    assert all(s == "val" for s in ds.index["split"])


def test_same_seed_same_bytes_other_seed_differs():
    w = tiny_world(actions=["push"], keystep_prob=0.0)
    scenes = _scenes(w, 0)
    a = generate_take(w, 0, 1, scenes)[2][0][2]
    b = generate_take(w, 0, 1, scenes)[2][0][2]
    assert all(np.array_equal(a[v], b[v]) for v in a)
    c = generate_take(w, 5, 1, _scenes(w, 5))[2][0][2]
    assert not np.array_equal(a["exo_left"], c["exo_left"])


@pytest.mark.parametrize("action", list(ACTIONS))
def test_every_verb_really_happens(action):
    """Re-measure the simulator state independently of the skill's own check."""
    w = from_dict(WorldConfig, {"n_scenes": 3, "frames": 4, "size": 32, "actions": [action], "keystep_prob": 0.0})
    plan = plan_take(w, 0, 0)
    for attempt in range(4):
        rng = np.random.default_rng([0, 202, 0, attempt])
        sim, ranges, checks = _simulate(plan, _scenes(w, 0)[plan.scene], w, rng)
        if checks[0].ok:
            break
    assert checks[0].ok, checks[0].reason
    first = sim.log[ranges[0][0]]
    sim.restore(first)
    p0, yaw0, d0, k0 = sim.obj_pos, sim.obj_yaw, sim.drawer_q, sim.knob_q
    sim.restore(sim.log[-1])
    p1, yaw1, d1, k1 = sim.obj_pos, sim.obj_yaw, sim.drawer_q, sim.knob_q
    dyaw = (yaw1 - yaw0 + np.pi) % (2 * np.pi) - np.pi
    expect = {
        "pick up": p1[2] - p0[2] > 0.04, "put down": p0[2] - p1[2] > 0.04,
        "push": p1[1] - p0[1] > 0.025, "pull": p0[1] - p1[1] > 0.025,
        "slide left": p0[0] - p1[0] > 0.025, "slide right": p1[0] - p0[0] > 0.025,
        "rotate clockwise": dyaw < -0.4, "rotate counterclockwise": dyaw > 0.4,
        "open": d1 - d0 > 0.04, "close": d0 - d1 > 0.04, "turn on": k1 - k0 > 0.9, "turn off": k0 - k1 > 0.9,
    }  # fmt: skip
    assert expect[action], (action, p0, p1, dyaw, d0, d1, k0, k1)


def test_a_failed_action_is_never_labelled(monkeypatch):
    """With the pusher disabled nothing moves: the check fails and the take is refused, not mislabelled."""
    from envs.atomic_world.sim import AtomicSim

    monkeypatch.setattr(AtomicSim, "set_pusher", lambda self, on: None)
    w = tiny_world(actions=["push"], keystep_prob=0.0, max_attempts=2)
    with pytest.raises(LabelError, match="take 0 .*push.* failed its truth checks 2 times"):
        generate_take(w, 0, 0, _scenes(w, 0))


def test_store_in_drawer_keystep_ends_with_the_object_inside():
    from envs.atomic_world import mjcf

    w = from_dict(WorldConfig, {**TINY, "keysteps": ["store the object in the drawer"], "keystep_prob": 1.0})
    plan = plan_take(w, 0, 2)
    assert plan.actions == ("open", "pick up", "put down", "close")
    scene = _scenes(w, 0)[plan.scene]
    sim, ranges, checks = _simulate(plan, scene, w, np.random.default_rng([0, 202, 2, 0]))
    assert len(checks) == 4 and all(c.ok for c in checks), [c.reason for c in checks]
    cx, cy = mjcf.cabinet_xy(scene)
    x, y, z = sim.obj_pos
    # closed drawer, object inside the cabinet's footprint and resting on the tray
    assert sim.drawer_q < 0.01 and abs(x - cx) < 0.08 and abs(y - cy) < 0.1 and z < 0.1


def test_resume_regenerates_only_missing_takes(tmp_path):
    out = tmp_path / "d"
    base = {"out": str(out), "takes": 3, "seed": 1, "workers": 1, "world": {**TINY, "actions": ["open", "turn on"]}}
    make_dataset(from_dict(MakeVideosConfig, base), progress=False)
    before = {p: load_clip(out / p) for p in read_index(out)["path"]}
    with pytest.raises(FileExistsError, match="--resume"):
        make_dataset(from_dict(MakeVideosConfig, base), progress=False)
    # simulate a crash mid-take 1: sidecar gone, a clip gone, a stray temp file left behind
    (out / "takes" / "t00001.json").unlink()
    shutil.rmtree(out / "clips" / "t00001")
    (out / "clips" / "t00000" / ".c0_ego.abc.tmp.npz").write_bytes(b"torn")
    mtime0 = (out / "takes" / "t00000.json").stat().st_mtime_ns
    make_dataset(from_dict(MakeVideosConfig, {**base, "resume": True}), progress=False)
    assert (out / "takes" / "t00000.json").stat().st_mtime_ns == mtime0  # finished take untouched
    after = {p: load_clip(out / p) for p in read_index(out)["path"]}
    assert before.keys() == after.keys() and all(np.array_equal(before[k], after[k]) for k in before)
    assert not list(out.glob("**/.*.tmp*"))
    with pytest.raises(ValueError, match="different 'seed'"):
        make_dataset(from_dict(MakeVideosConfig, {**base, "seed": 2, "resume": True}), progress=False)


def test_world_config_errors_name_the_field():
    with pytest.raises(ConfigError, match=r"world.actions: unknown \['fly'\]"):
        from_dict(MakeVideosConfig, {"world": {"actions": ["fly"]}})
    with pytest.raises(ConfigError, match="world.views"):
        from_dict(MakeVideosConfig, {"world": {"views": ["exo_left", "exo_right"]}})
    with pytest.raises(ConfigError, match="no object in world.objects can take 'rotate clockwise'"):
        from_dict(MakeVideosConfig, {"world": {"actions": ["rotate clockwise"], "objects": ["green ball"]}})
    with pytest.raises(ConfigError, match="unknown config key 'world.frame'"):
        load_config(MakeVideosConfig, None, ["world.frame=3"])


def test_clip_reader_rejects_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_clip(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, frames=np.zeros((2, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"bad.npz: damaged clip file \(.npz\): expected \(T, H, W, 3\) uint8"):
        load_clip(bad)
    with pytest.raises(FileNotFoundError, match="no index.parquet"):
        read_index(tmp_path)


@pytest.mark.slow
def test_cli_and_preview_sheet(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "cli"
    r = subprocess.run(
        [sys.executable, str(root / "scripts/make_atomic_videos.py"), "--out", str(out), "--takes", "2",
         "--seed", "3", "--frames", "3", "--size", "32", "--workers", "1", "world.n_scenes=2", "world.actions=[push]"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout and json.loads((out / "meta.json").read_text())["seed"] == 3
    sheet = tmp_path / "sheet.png"
    r = subprocess.run([sys.executable, str(root / "scripts/preview_dataset.py"), str(out), "--out", str(sheet)],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    from PIL import Image

    img = Image.open(sheet)
    # 2 take rows, 3 views x 3 frames of 32 px (+ gaps)
    assert img.width >= 3 * 3 * 32 and img.height >= 2 * 32
    # --where keeps the takes with a matching clip: one take per split here (2 scenes, one held out)
    split = read_index(out).groupby("take_id")["split"].first()
    one = tmp_path / "one.png"
    r = subprocess.run([sys.executable, str(root / "scripts/preview_dataset.py"), str(out), "--out", str(one),
                        "--where", f"split={split.iloc[0]}"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert Image.open(one).height < img.height and Image.open(one).width == img.width
    r = subprocess.run([sys.executable, str(root / "scripts/preview_dataset.py"), str(out), "--where", "colour=red"],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode != 0 and "no column 'colour'" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run([sys.executable, str(root / "scripts/make_atomic_videos.py"), "--out", str(out), "world.size=9"],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode != 0 and "world.size" in r.stderr


def _distractor_boxes(scene) -> list[tuple[float, float, float, float]]:
    """(x, y, hx, hy) of each distractor body, measured on the compiled model (geoms in the table plane)."""
    import mujoco

    from envs.atomic_world import mjcf

    model = mujoco.MjModel.from_xml_string(mjcf.build_mjcf(scene, "robot", OBJECTS[0], (0, 0, 0.03), ("ego",), 32))
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    out = []
    for i in range(len(scene.distractors)):
        body = model.body(f"distractor{i}").id
        lo, hi = np.full(2, np.inf), np.full(2, -np.inf)
        for g in np.flatnonzero(model.geom_bodyid == body):
            c, rot, size = data.geom_xpos[g, :2], data.geom_xmat[g].reshape(3, 3)[:2, :2], model.geom_size[g]
            if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_BOX:
                half = np.abs(rot) @ size[:2]
            else:  # sphere, upright cylinder or capsule: its radius
                half = np.full(2, size[0])
            lo, hi = np.minimum(lo, c - half), np.maximum(hi, c + half)
        out.append((*(lo + hi) / 2, *(hi - lo) / 2))
    return out


def test_distractor_footprints_match_their_geoms():
    from envs.atomic_world.scenes import DISTRACTOR_SHAPES, Distractor, distractor_footprint, sample_scene

    base = sample_scene(0, 0, 2)
    ds = tuple(Distractor(shape, (-0.4 + 0.2 * i, 0.5), (0.5, 0.5, 0.5, 1.0), 1.3) for i, shape in enumerate(DISTRACTOR_SHAPES))
    scene = dataclasses.replace(base, distractors=ds)
    for d, (x, y, hx, hy) in zip(ds, _distractor_boxes(scene)):
        assert np.allclose((x, y), d.pos, atol=1e-6), d.shape
        assert np.allclose((hx, hy), distractor_footprint(d), atol=1e-6), d.shape


def test_distractors_stay_clear_of_the_cabinet_and_the_stove():
    from envs.atomic_world.scenes import FIXTURE_HALF, cabinet_xy, sample_scene, stove_xy

    for seed in range(30):
        for i in range(12):
            scene = sample_scene(seed, i, 2)
            for x, y, hx, hy in _distractor_boxes(scene) if seed < 3 else []:  # the geoms, on a few worlds
                for (fx, fy), (fhx, fhy) in ((cabinet_xy(scene), FIXTURE_HALF["cabinet"]), (stove_xy(scene), FIXTURE_HALF["stove"])):
                    assert abs(x - fx) >= fhx + hx or abs(y - fy) >= fhy + hy, (seed, i)
            for d in scene.distractors:
                assert d.pos[1] <= 0.56, (seed, i, d)  # still on the table (its back edge)
    # the rule at work: world seed 4 drew scene_02's book at y = 0.451, 4 cm into the cabinet
    book = sample_scene(4, 2, 2).distractors[0]
    assert book.shape == "book" and book.pos[1] > 0.49


def test_world_seed_4_opens_the_drawer_in_scene_2():
    """World seed 4 drew a book 4 cm into scene_02's cabinet: the drawer was pinned, take 44's "open"
    failed its truth check 12 times and generation stopped."""
    w = load_config(MakeVideosConfig, "configs/world/default.yaml").world
    plan, failures, clips = generate_take(w, 4, 44, _scenes(w, 4))
    assert plan.scene == "scene_02" and plan.actions[0] == "open"
    assert [a for a, _, _ in clips] == list(plan.actions)
