"""Teleop ingestion: the LeRobot fixture round-trips against expected.json; raw and robomimic inputs;
broken copies (NaN, gaps, clock jumps, missing streams, shape mismatches) are reported by episode and
field with nothing written; reruns are idempotent; resampling is exact on grid and linear between."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from envs.demos import Demo, DemoReader, DemoWriter
from real_robot.ingest import ingest, resample

HERE = Path(__file__).resolve().parent


def _fixture() -> Path:
    # the copy in tests/fixtures (preferred), else the shared one beside the clone
    for root in (HERE / "fixtures", HERE.parents[1] / "shared" / "fixtures", Path("/work/shared/fixtures")):
        d = root / "lerobot_tiny_a"
        if (d / "data").is_dir() and (d / "expected.json").is_file():
            return d
    pytest.skip("lerobot_tiny_a fixture not found (tests/fixtures or ../shared/fixtures)")


@pytest.fixture(scope="module")
def lerobot_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("lr")
    rep = ingest(_fixture(), "lerobot", out)
    return out, rep


def test_lerobot_fixture_round_trips_against_expected_json(lerobot_out):
    out, rep = lerobot_out
    assert rep["status"] == "written", rep
    exp = json.loads((_fixture() / "expected.json").read_text())
    with DemoReader(out / "demos.hdf5") as r:
        demos = list(r)
    assert [len(d) for d in demos] == exp["episode_lengths"]
    assert [d.instruction for d in demos] == [e["task"] for e in exp["episodes"]]
    assert [d.skills[0] for d in demos] == ["open", "grasp", "close"]
    frames = exp["frames"]
    assert sum(len(d) for d in demos) == exp["total_frames"] == len(frames)
    for f in frames:
        d, i = demos[f["episode_index"]], f["frame_index"]
        state = np.concatenate([d.obs["joint_states"][i], d.obs["gripper_states"][i]]).astype(np.float32)
        assert np.array_equal(state, np.float32(f["observation.state"]))
        assert np.array_equal(d.obs["force_torque"][i].astype(np.float32), np.float32(f["observation.force"]))
        assert np.array_equal(d.actions[i].astype(np.float32), np.float32(f["action"]))
        for cam, key in (("observation.images.front", "agentview_rgb"), ("observation.images.wrist", "eye_in_hand_rgb")):
            img, e = d.obs[key][i].astype(float), f["images"][cam]
            H, W = img.shape[:2]
            assert np.abs(img.reshape(-1, 3).mean(0) - e["mean_rgb"]).max() <= 4
            assert np.abs(img[2: H // 4 - 2, 2: W // 4 - 2].reshape(-1, 3).mean(0) - 255).max() <= 16
            assert np.abs(img[H // 2:, W // 2:].reshape(-1, 3).mean(0) - e["background_rgb"]).max() <= 6


def test_rerun_is_idempotent(lerobot_out):
    out, _ = lerobot_out
    before = (out / "demos.hdf5").stat().st_mtime_ns
    rep = ingest(_fixture(), "lerobot", out)
    assert rep["status"] == "up to date" and (out / "demos.hdf5").stat().st_mtime_ns == before


def _broken_lerobot(tmp_path: Path, how: str) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = tmp_path / f"broken_{how}"
    shutil.copytree(_fixture(), d)
    if how == "no_video":
        (d / "videos/observation.images.wrist/chunk-000/file-000.mp4").unlink()
        return d
    f = d / "data/chunk-000/file-000.parquet"
    t = pq.read_table(f)
    if how == "nan":
        col = t.column("observation.state").to_pylist()
        col[14][3] = float("nan")  # episode 1, frame 2
        t = t.set_column(t.schema.get_field_index("observation.state"), "observation.state",
                         pa.array(col, type=t.schema.field("observation.state").type))
    elif how == "clock":
        ts = t.column("timestamp").to_pylist()
        ts[30] = ts[28]  # episode 2 goes back in time
        t = t.set_column(t.schema.get_field_index("timestamp"), "timestamp", pa.array(ts, type=pa.float32()))
    pq.write_table(t, f)
    return d


@pytest.mark.parametrize("how, episode, field, kind", [
    ("nan", "episode_000001", "joint_states", "nan"),
    ("clock", "episode_000002", "joint_states", "clock_jump"),
    ("no_video", "episode_000000", "observation.images.wrist", "missing"),
])  # fmt: skip
def test_broken_lerobot_copies_are_reported_and_nothing_written(tmp_path, how, episode, field, kind):
    out = tmp_path / "out"
    rep = ingest(_broken_lerobot(tmp_path, how), "lerobot", out)
    assert rep["status"].startswith("failed")
    assert any(p["episode"] == episode and p["field"] == field and p["kind"] == kind for p in rep["problems"]), \
        rep["problems"]
    assert not (out / "demos.hdf5").exists() and (out / "report.json").is_file()


# -- raw layout ------------------------------------------------------------------------------------------
def _raw_episode(root: Path, name: str, n: int = 30, hz: float = 30.0, break_: str = "") -> None:
    d = root / name
    d.mkdir(parents=True)
    t = np.arange(n) / hz + 5.0  # a wall-clock offset, as a real recorder has
    js = np.stack([np.sin(t + k) for k in range(7)], axis=1)
    act = np.concatenate([js + 0.01, (t > t[n // 2])[:, None].astype(float), np.full((n, 1), 20.0)], axis=1)
    streams = {"joint_states": (t, js), "action": (t, act), "gripper_state": (t + 0.004, act[:, 7] * 0.8),
               "force_torque": (t, np.ones((n, 6))),
               "cam_front": (t[::2] + 0.01, np.full((len(t[::2]), 8, 8, 3), 7, np.uint8))}  # fmt: skip
    if break_ == "gap":
        keep = np.r_[0:10, 20:n]
        streams["joint_states"] = (t[keep], js[keep])
    elif break_ == "jump":
        t2 = t.copy()
        t2[15:] += 5.0
        streams["force_torque"] = (t2, np.ones((n, 6)))
    elif break_ == "missing":
        del streams["action"]
    elif break_ == "shape":
        streams["force_torque"] = (t, np.ones((n, 5)))
    elif break_ == "nan":
        streams["gripper_state"][1][4] = np.nan
    for k, (tt, v) in streams.items():
        np.savez(d / f"{k}.npz", t=tt, v=v)
    markers = [{"t": float(t[3]), "label": "open the middle drawer"}, {"t": float(t[n // 2]), "label": "pick up the tape"}]
    (d / "meta.json").write_text(json.dumps({"instruction": "open the middle drawer, pick up the tape",
                                             "robot": "mujoco_twin", "markers": markers}))


def test_raw_ingest_aligns_resamples_and_labels(tmp_path):
    src = tmp_path / "raw"
    _raw_episode(src, "ep0")
    _raw_episode(src, "ep1", n=40)
    rep = ingest(src, "raw", tmp_path / "out", rate=10.0)
    assert rep["status"] == "written", rep["problems"]
    with DemoReader(tmp_path / "out/demos.hdf5") as r:
        d = r[0]
    # common window starts at the latest stream start (camera at +0.01 s), 10 Hz grid
    assert d.obs["agentview_rgb"].shape[1:] == (8, 8, 3) and d.actions.shape[1] == 9
    assert len(d) == int(np.floor((5 + 29 / 30 - 5.01) * 10)) + 1
    assert d.skills[0] == "idle" and "open" in d.skills and d.skills[-1] == "grasp"
    t0 = 5.01
    assert np.allclose(d.obs["joint_states"][:, 0], np.sin(t0 + np.arange(len(d)) / 10), atol=2e-3)


@pytest.mark.parametrize("break_, field, kind", [
    ("gap", "joint_states", "gap"), ("jump", "force_torque", "clock_jump"), ("missing", "action", "missing"),
    ("shape", "force_torque", "shape"), ("nan", "gripper_state", "nan"),
])  # fmt: skip
def test_raw_problems_name_episode_and_field(tmp_path, break_, field, kind):
    src = tmp_path / "raw"
    _raw_episode(src, "ep_ok")
    _raw_episode(src, "ep_bad", break_=break_)
    out = tmp_path / "out"
    rep = ingest(src, "raw", out, rate=10.0)
    assert not (out / "demos.hdf5").exists()
    assert [(p["episode"], p["field"], p["kind"]) for p in rep["problems"]] == [("ep_bad", field, kind)]
    rep = ingest(src, "raw", out, rate=10.0, skip_bad=True)
    assert rep["status"] == "written" and rep["skipped"] == ["ep_bad"] and len(rep["episodes"]) == 1


def test_robomimic_round_trip(tmp_path):
    T = 12
    demo = Demo(actions=np.random.default_rng(0).normal(size=(T, 7)),
                obs={"agentview_rgb": np.zeros((T, 8, 8, 3), np.uint8), "joint_states": np.ones((T, 7)),
                     "gripper_states": np.zeros((T, 2))},
                states=np.zeros((T, 3)), rewards=np.zeros(T), dones=np.zeros(T), instruction="open the drawer",
                skills=["reach"] * 4 + ["open"] * 8, skill_objects=[""] * 2 + ["top_drawer"] * 10)  # fmt: skip
    w = DemoWriter(tmp_path / "src.hdf5")
    w.add(demo)
    w.flush()
    rep = ingest(tmp_path / "src.hdf5", "robomimic", tmp_path / "out", rate=20.0)
    assert rep["status"] == "written", rep
    with DemoReader(tmp_path / "out/demos.hdf5") as r:
        d = r[0]
    assert np.array_equal(d.actions, demo.actions) and d.skills == demo.skills and d.instruction == "open the drawer"
    assert d.skill_objects == demo.skill_objects  # what each skill acted on survives ingestion


def test_resample_exact_on_grid_linear_between_and_held_for_commands():
    t = np.array([0.0, 0.1000000015, 0.2, 0.3])
    v = np.array([[0.0], [1.0], [2.0], [3.0]])
    assert np.array_equal(resample(t, v, np.array([0.0, 0.1, 0.2]), hold=False)[:, 0], [0.0, 1.0, 2.0])
    assert resample(t, v, np.array([0.15]), hold=False)[0, 0] == pytest.approx(1.5, abs=1e-6)
    assert resample(t, v, np.array([0.15]), hold=True)[0, 0] == 1.0


def test_lerobot_image_features_stored_in_parquet(tmp_path):
    """LeRobot datasets may keep frames as encoded images in the parquet (dtype "image")."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    d = tmp_path / "img"
    shutil.copytree(_fixture(), d)
    f = d / "data/chunk-000/file-000.parquet"
    t = pq.read_table(f)
    cells = []
    for fi in t.column("frame_index").to_pylist():
        buf = io.BytesIO()
        Image.fromarray(np.full((6, 5, 3), fi, np.uint8)).save(buf, format="PNG")
        cells.append({"bytes": buf.getvalue(), "path": None})
    pq.write_table(t.append_column("observation.images.top", pa.array(cells)), f)
    info = json.loads((d / "meta/info.json").read_text())
    info["features"]["observation.images.top"] = {"dtype": "image", "shape": [6, 5, 3], "names": None}
    (d / "meta/info.json").write_text(json.dumps(info))
    rep = ingest(d, "lerobot", tmp_path / "out")
    assert rep["status"] == "written", rep["problems"]
    with DemoReader(tmp_path / "out/demos.hdf5") as r:
        top = r[1].obs["top_rgb"]
    assert top.shape == (15, 6, 5, 3) and list(top[:, 0, 0, 0]) == list(range(15))


def test_unmarked_multistep_episodes_use_a_segmenter(tmp_path):
    src = tmp_path / "raw"
    _raw_episode(src, "ep0")
    meta = json.loads((src / "ep0/meta.json").read_text())
    meta["markers"] = []
    (src / "ep0/meta.json").write_text(json.dumps(meta))
    seen = {}

    def segmenter(frames, phrases):
        seen.update(shape=frames.shape, phrases=phrases)
        return [3]

    rep = ingest(src, "raw", tmp_path / "out", rate=10.0, segmenter=segmenter)
    assert rep["status"] == "written", rep
    with DemoReader(tmp_path / "out/demos.hdf5") as r:
        d = r[0]
    assert seen["phrases"] == ["open the middle drawer", "pick up the tape"] and seen["shape"][0] == len(d)
    assert d.skills == ["open"] * 3 + ["grasp"] * (len(d) - 3)
