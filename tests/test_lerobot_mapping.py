"""LeRobot v3.0 datasets of any robot through the declared mapping (envs/lerobot_mapping.py,
configs/ingest/): 6-, 7- and 14-dim state, one and two cameras, H.264 and AV1 video ingest losslessly
(actions and states exact, frames within codec tolerance); a mapping that does not fit is one line
naming the feature; bad input (a missing parquet chunk, a short video, a mapped feature absent from
info.json) names the file and --skip-bad writes the clean episodes; the twin's own export keeps every
frame (float32 timestamps); the twin head takes its sizes from the demos. The fixtures are written here,
with pyarrow + PyAV, in the layout LeRobotDataset.finalize writes (one data file per episode)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from envs.demos import DemoReader
from real_robot.ingest import ingest

ROOT = Path(__file__).resolve().parents[1]
FPS = 10
SIZE = 32  # frame side (SVT-AV1 and x264 both take 32 x 32)
LENGTHS = (7, 6, 8)  # frames per episode
TASK = "pick up the tape"  # one-step: ingestion labels every frame "grasp"
SO100 = [*(f"{m}.pos" for m in ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll")),
         "gripper.pos"]
ALOHA = [f"{side}_{j}" for side in ("left", "right") for j in ("waist", "shoulder", "elbow", "forearm_roll",
                                                                  "wrist_angle", "wrist_rotate", "gripper")]
NAMES = {6: SO100, 7: [f"joint_{i}" for i in range(7)], 14: ALOHA}
CODECS = {"h264": "libx264", "av1": "libsvtav1"}


def _encoder_available(codec: str) -> bool:
    import av

    try:
        av.codec.Codec(CODECS[codec], "w")
        return True
    except Exception:  # noqa: BLE001 - PyAV raises UnknownCodecError / FFmpegError variants
        return False


def _frame(e: int, i: int, cam: int) -> np.ndarray:
    """A smooth (SIZE, SIZE, 3) uint8 image that differs per episode, frame and camera."""
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    base = np.array([40 + 20 * e + 8 * i, 90 + 60 * cam, 200 - 10 * i], float)
    img = base[None, None, :] + (x[..., None] + y[..., None]) * 1.5
    return np.clip(img, 0, 255).astype(np.uint8)


def _write_video(path: Path, frames: list[np.ndarray], codec: str) -> None:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream(CODECS[codec], rate=FPS)
        s.width, s.height, s.pix_fmt = SIZE, SIZE, "yuv420p"
        for i, img in enumerate(frames):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def write_lerobot(out: Path, dim: int, cams: int = 1, codec: str = "h264", short_video: int = 0) -> dict:
    """A LeRobot v3.0 dataset with `dim`-dim float32 state and action, `cams` video cameras (front,
    wrist) and one data file per episode; `short_video` frames are left off the end of every mp4.
    Returns the written arrays: {"state": [(T, dim)], "action": [(T, dim)], "frames": {cam: [(T, H, W, 3)]}}."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(dim)
    cam_names = ["front", "wrist"][:cams]
    truth: dict = {"state": [], "action": [], "frames": {c: [] for c in cam_names}}
    ep_rows, first = [], 0
    video: dict[str, list[np.ndarray]] = {c: [] for c in cam_names}
    for e, n in enumerate(LENGTHS):
        state = rng.normal(size=(n, dim)).astype(np.float32)
        action = rng.normal(size=(n, dim)).astype(np.float32)
        truth["state"].append(state)
        truth["action"].append(action)
        table = pa.table({"observation.state": pa.array(state.tolist(), pa.list_(pa.float32())),
                          "action": pa.array(action.tolist(), pa.list_(pa.float32())),
                          "timestamp": pa.array((np.arange(n) / FPS).astype(np.float32)),
                          "frame_index": pa.array(np.arange(n), pa.int64()),
                          "episode_index": pa.array([e] * n, pa.int64()),
                          "index": pa.array(np.arange(first, first + n), pa.int64()),
                          "task_index": pa.array([0] * n, pa.int64())})
        (out / "data/chunk-000").mkdir(parents=True, exist_ok=True)
        pq.write_table(table, out / f"data/chunk-000/file-{e:03d}.parquet")
        meta = {"episode_index": e, "tasks": [TASK], "length": n, "data/chunk_index": 0, "data/file_index": e,
                "dataset_from_index": first, "dataset_to_index": first + n}
        for k, c in enumerate(cam_names):
            frames = [_frame(e, i, k) for i in range(n)]
            truth["frames"][c].append(np.stack(frames))
            t0 = len(video[c]) / FPS
            video[c] += frames
            meta.update({f"videos/observation.images.{c}/chunk_index": 0,
                         f"videos/observation.images.{c}/file_index": 0,
                         f"videos/observation.images.{c}/from_timestamp": t0,
                         f"videos/observation.images.{c}/to_timestamp": t0 + n / FPS})
        ep_rows.append(meta)
        first += n
    (out / "meta/episodes/chunk-000").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(ep_rows), out / "meta/episodes/chunk-000/file-000.parquet")
    pd.DataFrame({"task_index": [0]}, index=pd.Index([TASK], name="task")).to_parquet(out / "meta/tasks.parquet")
    features: dict = {k: {"dtype": "float32", "shape": [dim], "names": NAMES[dim]} for k in ("observation.state",
                                                                                           "action")}
    for c in cam_names:
        _write_video(out / f"videos/observation.images.{c}/chunk-000/file-000.mp4",
                     video[c][:len(video[c]) - short_video], codec)
        features[f"observation.images.{c}"] = {
            "dtype": "video", "shape": [SIZE, SIZE, 3], "names": ["height", "width", "channels"],
            "info": {"video.codec": codec, "video.pix_fmt": "yuv420p", "video.fps": FPS}}
    for k in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        features[k] = {"dtype": "float32" if k == "timestamp" else "int64", "shape": [1], "names": None}
    info = {"codebase_version": "v3.0", "robot_type": {6: "so100", 7: "franka", 14: "aloha"}[dim],
            "total_episodes": len(LENGTHS), "total_frames": first, "total_tasks": 1, "fps": FPS,
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
            "features": features}
    (out / "meta/info.json").write_text(json.dumps(info, indent=1))
    return truth


GRIPPER = {6: [5], 7: [], 14: [6, 13]}  # state dims the robot's mapping splits off as the gripper
MAPPING = {6: "so100", 7: "franka", 14: "aloha"}


@pytest.mark.parametrize("dim, cams, codec", [
    (6, 1, "h264"), (7, 2, "h264"), (14, 2, "h264"), (6, 2, "av1"), (14, 1, "av1"),
])  # fmt: skip
def test_lerobot_ingests_losslessly(tmp_path, dim, cams, codec):
    if not _encoder_available(codec):
        pytest.skip(f"PyAV here cannot encode {codec}: encoder {CODECS[codec]} missing from av.codecs_available")
    truth = write_lerobot(tmp_path / "src", dim, cams, codec)
    rep = ingest(tmp_path / "src", "lerobot", tmp_path / "out", mapping=MAPPING[dim])
    assert rep["status"] == "written", rep["problems"]
    with DemoReader(tmp_path / "out/demos.hdf5") as r:
        demos = list(r)
        pkeys = r.env_args["proprio_keys"]
    assert [len(d) for d in demos] == list(LENGTHS)  # no frame dropped or added
    joints = [i for i in range(dim) if i not in GRIPPER[dim]]
    assert pkeys == (["joint_states", "gripper_states"] if GRIPPER[dim] else ["joint_states"])
    for e, d in enumerate(demos):
        assert np.array_equal(d.actions, truth["action"][e].astype(np.float64))
        assert np.array_equal(d.obs["joint_states"], truth["state"][e][:, joints].astype(np.float64))
        if GRIPPER[dim]:
            assert np.array_equal(d.obs["gripper_states"], truth["state"][e][:, GRIPPER[dim]].astype(np.float64))
        assert d.skills == ["grasp"] * LENGTHS[e] and d.instruction == TASK
        for c, key in (("front", "agentview_rgb"), ("wrist", "eye_in_hand_rgb"))[:cams]:
            got, want = d.obs[key].astype(float), truth["frames"][c][e].astype(float)
            assert got.shape == want.shape
            assert np.abs(got - want).mean() < 3.0 and np.abs(got - want).max() <= 40, (c, e)


def test_av1_decodes_where_an_av1_decoder_exists():
    """AV1 decoding is what a published LeRobot dataset needs (they ship AV1 mp4s): name the decoder."""
    import av

    decoders = [n for n in ("libdav1d", "libaom-av1", "av1") if n in av.codecs_available]
    assert decoders, f"no AV1 decoder in PyAV's codecs ({sorted(c for c in av.codecs_available if 'av1' in c)})"


def test_a_mapping_that_does_not_fit_is_one_line_naming_the_feature(tmp_path):
    write_lerobot(tmp_path / "src", 7)
    rep = ingest(tmp_path / "src", "lerobot", tmp_path / "out", mapping="so100")
    assert rep["status"].startswith("failed") and not (tmp_path / "out/demos.hdf5").exists()
    assert [(p["field"], p["kind"], p["detail"]) for p in rep["problems"]] == [
        ("meta/info.json", "mapping", "feature 'observation.state' has shape [7]; mapping so100 expects [6]")]
    # the command line: one line per problem, rc 1; an unknown mapping name is one error line, rc 2
    cmd = [sys.executable, str(ROOT / "scripts/ingest_teleop.py"), "--src", str(tmp_path / "src"), "--format",
           "lerobot", "--out", str(tmp_path / "cli")]
    r = subprocess.run([*cmd, "--mapping", "aloha"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        "*: meta/info.json: mapping: feature 'observation.state' has shape [7]; mapping aloha expects [14]"], r.stderr
    r = subprocess.run([*cmd, "--mapping", "nosuch"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "known: auto, aloha" in r.stderr, r.stderr


def test_a_mapped_feature_absent_from_info_json_is_named(tmp_path):
    write_lerobot(tmp_path / "src", 6, cams=1)
    m = tmp_path / "mine.yaml"
    m.write_text("name: mine\ncameras: {observation.images.front: front, observation.images.top: top}\n")
    rep = ingest(tmp_path / "src", "lerobot", tmp_path / "out", mapping=str(m))
    (p,) = rep["problems"]
    assert p["field"] == "meta/info.json" and p["kind"] == "mapping"
    assert p["detail"].startswith("feature 'observation.images.top' (camera top in mapping mine) not found; "
                                  "features: action, episode_index, frame_index"), p
    m.write_text("name: aloha_on_so100\ngripper: [left_gripper]\n")
    (p,) = ingest(tmp_path / "src", "lerobot", tmp_path / "out", mapping=str(m))["problems"]
    assert "feature 'observation.state' shape [6] names" in p["detail"] and "'left_gripper'" in p["detail"]


def test_explicit_cameras_and_frame_index_time(tmp_path):
    """A mapping that names its cameras reads only those, under its names; timestamps "" = frame_index / fps."""
    truth = write_lerobot(tmp_path / "src", 7, cams=2)
    m = tmp_path / "one_cam.yaml"
    m.write_text("name: one_cam\ncameras: {observation.images.wrist: top}\ntimestamps: ''\ngripper: []\n")
    rep = ingest(tmp_path / "src", "lerobot", tmp_path / "out", mapping=str(m))
    assert rep["status"] == "written", rep["problems"]
    with DemoReader(tmp_path / "out/demos.hdf5") as r:
        d = r[2]
    assert sorted(k for k in d.obs if k.endswith("_rgb")) == ["top_rgb"] and len(d) == LENGTHS[2]
    assert np.abs(d.obs["top_rgb"].astype(float) - truth["frames"]["wrist"][2]).mean() < 3.0
    assert np.array_equal(d.obs["joint_states"], truth["state"][2].astype(np.float64))


def test_missing_parquet_chunk_names_the_file_and_skip_bad_writes_the_rest(tmp_path):
    write_lerobot(tmp_path / "src", 6)
    (tmp_path / "src/data/chunk-000/file-001.parquet").unlink()
    rep = ingest(tmp_path / "src", "lerobot", tmp_path / "out")
    assert not (tmp_path / "out/demos.hdf5").exists()
    assert [(p["episode"], p["field"], p["kind"], p["detail"]) for p in rep["problems"]] == [
        ("episode_000001", "data", "missing",
         "data/chunk-000/file-001.parquet not found (meta/episodes places episode 1 there)")]
    rep = ingest(tmp_path / "src", "lerobot", tmp_path / "out", skip_bad=True)
    assert rep["status"] == "written" and rep["skipped"] == ["episode_000001"]
    assert [e["name"] for e in rep["episodes"]] == ["episode_000000", "episode_000002"]
    r = subprocess.run([sys.executable, str(ROOT / "scripts/ingest_teleop.py"), "--src", str(tmp_path / "src"),
                        "--format", "lerobot", "--out", str(tmp_path / "cli"), "--skip-bad"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and "skipped 1: episode_000001" in r.stdout, (r.stdout, r.stderr)
    assert r.stderr.strip() == ("episode_000001: data: missing: data/chunk-000/file-001.parquet not found "
                                "(meta/episodes places episode 1 there)")


def test_video_shorter_than_its_parquet_frames_names_the_file(tmp_path):
    write_lerobot(tmp_path / "src", 14, cams=2, short_video=3)  # the last episode loses 3 of its 8 frames
    rep = ingest(tmp_path / "src", "lerobot", tmp_path / "out", mapping="aloha")
    assert not (tmp_path / "out/demos.hdf5").exists()
    got = [(p["episode"], p["field"], p["kind"], p["detail"]) for p in rep["problems"]]
    assert got == [("episode_000002", f"observation.images.{c}", "short",
                    f"videos/observation.images.{c}/chunk-000/file-000.mp4 has 5 frames in [1.3, 2.1) s, "
                    f"the parquet has 8 for this episode") for c in ("front", "wrist")]
    rep = ingest(tmp_path / "src", "lerobot", tmp_path / "out", mapping="aloha", skip_bad=True)
    assert rep["status"] == "written" and rep["skipped"] == ["episode_000002"] and len(rep["episodes"]) == 2


def test_declared_shape_is_checked_per_sample(tmp_path):
    write_lerobot(tmp_path / "src", 6)
    info = json.loads((tmp_path / "src/meta/info.json").read_text())
    info["features"]["action"]["shape"] = [5]  # info.json says 5, the parquet holds 6
    (tmp_path / "src/meta/info.json").write_text(json.dumps(info))
    probs = ingest(tmp_path / "src", "lerobot", tmp_path / "out")["problems"]
    assert {(p["episode"], p["field"], p["kind"]) for p in probs} == {(f"episode_{e:06d}", "action", "shape")
                                                                      for e in range(3)}
    assert "data/chunk-000/file-000.parquet: action samples have shape [6], meta/info.json declares [5]" in \
        probs[0]["detail"]


def _twin_recording(root: Path, steps: tuple[int, ...] = (100, 130, 100, 110), hz: int = 20, joints: int = 7) -> None:
    """A raw recording (real_robot/ingest.py layout) of four marked steps of a `joints`-joint arm, frames
    regular at `hz`."""
    d = root / "ep0"
    d.mkdir(parents=True)
    n = sum(steps)
    t = np.arange(n) / hz + 3.0
    js = np.stack([np.sin(t + k) for k in range(joints)], 1)
    streams = {"joint_states": js, "action": np.concatenate([js, np.zeros((n, 1)), np.full((n, 1), 25.0)], 1),
               "gripper_state": np.zeros(n), "cam_front": np.full((n, 8, 8, 3), 90, np.uint8)}
    for k, v in streams.items():
        np.savez(d / f"{k}.npz", t=t, v=v)
    labels = ["open the middle drawer", "pick up the tape", "put down the tape", "close the middle drawer"]
    starts = np.concatenate([[0], np.cumsum(steps)[:-1]])
    (d / "meta.json").write_text(json.dumps({"instruction": ", ".join(labels), "markers": [
        {"t": float(t[i]), "label": lab} for i, lab in zip(starts, labels)]}))


def test_twin_export_keeps_every_frame_through_ingestion(tmp_path):
    """Regression: float32 timestamps (k / 20 rounded down) made ingestion drop each long episode's last
    frame (the grid ended one step early); now every exported frame comes back, exactly."""
    from real_robot.lerobot_export import export_lerobot

    _twin_recording(tmp_path / "raw")
    assert export_lerobot(tmp_path / "raw", tmp_path / "lr", fps=20)["episodes"] == 4
    rep = ingest(tmp_path / "lr", "lerobot", tmp_path / "out", mapping="twin")
    assert rep["status"] == "written", rep["problems"]
    assert [e["frames"] for e in rep["episodes"]] == [100, 130, 100, 110]
    with DemoReader(tmp_path / "out/demos.hdf5") as r:
        d = r[1]
    raw_js = np.load(tmp_path / "raw/ep0/joint_states.npz")["v"][100:230].astype(np.float32)
    assert np.array_equal(d.obs["joint_states"], raw_js.astype(np.float64))
    assert d.obs["force_torque"].shape == (130, 6) and d.actions.shape == (130, 9)


def test_twin_head_takes_its_sizes_from_the_demos(tmp_path):
    """A 6-dim SO-100 dataset (5 joints + gripper; actions 5 targets + gripper) trains the twin head with
    proprio 6 and outputs 7 (5 targets, gripper, done); the twin's 7-joint head is unchanged."""
    from envs.policy_api import build_policy
    from policies.heads.twin import TWIN_OBS_KEYS, TwinTrainConfig, train

    write_lerobot(tmp_path / "src", 6)
    assert ingest(tmp_path / "src", "lerobot", tmp_path / "demos", mapping="so100")["status"] == "written"
    s = train(TwinTrainConfig(demos=str(tmp_path / "demos"), out=str(tmp_path / "twin"), steps=3, batch_size=16,
                              log_every=1, progress=False, threads=1))
    assert s["frames"] == sum(LENGTHS)
    pol = build_policy(str(tmp_path / "twin/policy"))
    assert pol.head.cfg.proprio_dim == 6 and pol.head.cfg.action_dim == 7 and len(TWIN_OBS_KEYS) == 8
    assert pol.obs_keys == (*(f"j{i}.pos" for i in range(5)), "gripper.pos")
    pol.reset()
    a = pol.act({k: 0.1 for k in pol.obs_keys}, TASK)
    assert a.shape == (7,) and np.all(np.isfinite(a))  # 5 joint targets, gripper, grip force


def test_raw_recording_of_a_6_joint_arm_exports_and_ingests(tmp_path):
    """Nothing fixes the joint count: a 6-joint recording ingests raw, exports to LeRobot with 6 + 1 state
    dims and 8 action dims, and ingests back through the generic mapping."""
    from real_robot.lerobot_export import export_lerobot

    _twin_recording(tmp_path / "raw", steps=(5, 6, 5, 4), joints=6)
    rep = ingest(tmp_path / "raw", "raw", tmp_path / "raw_out", rate=20.0)
    assert rep["status"] == "written", rep["problems"]
    export_lerobot(tmp_path / "raw", tmp_path / "lr", fps=20)
    info = json.loads((tmp_path / "lr/meta/info.json").read_text())
    assert info["features"]["observation.state"]["names"] == [*(f"j{i}" for i in range(6)), "gripper"]
    assert info["features"]["action"]["shape"] == [8]
    rep = ingest(tmp_path / "lr", "lerobot", tmp_path / "out")
    assert rep["status"] == "written", rep["problems"]
    with DemoReader(tmp_path / "out/demos.hdf5") as r:
        d = r[0]
    assert d.obs["joint_states"].shape == (5, 6) and d.obs["gripper_states"].shape == (5, 1) and d.actions.shape == (5, 8)
