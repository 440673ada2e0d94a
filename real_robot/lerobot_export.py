"""A raw teleop recording (real_robot/ingest.py RAW LAYOUT, what scripts/teleop.py writes) -> a LeRobot
v3.0 dataset on disk, in the layout `envs/lerobot.py` reads (and `LeRobotDataset.finalize` writes):

    python scripts/teleop.py --export-lerobot runs/real_robot/teleop --out runs/real_robot/teleop_lerobot
    python scripts/ingest_teleop.py --src runs/real_robot/teleop_lerobot --format lerobot --out ... --rate 20

    OUT/meta/info.json                       codebase_version v3.0, fps, features, path templates
    OUT/meta/tasks.parquet                   index: task string, column task_index
    OUT/meta/episodes/chunk-000/file-000.parquet   per episode: tasks, length, data/video locations
    OUT/meta/stats.json                      min / max / mean / std / count of the numeric features
    OUT/data/chunk-000/file-000.parquet      one row per frame: observation.state (J + 1: j0..j{J-1},
                                             gripper), observation.force (6: fx..tz), action (the
                                             recording's A: j0..j{J-1} targets, gripper, grip_force on
                                             the twin, J = 7), timestamp (float32, as LeRobot writes it),
                                             frame_index, episode_index, index, task_index
    OUT/videos/observation.images.<cam>/chunk-000/file-000.mp4   every episode back to back (h264, yuv420p)

Step labels. LeRobot v3.0 has no operator markers. A frame's `task_index` may change inside an episode,
but `envs/lerobot.py` (and so `ingest --format lerobot`) reads one task per episode (its first frame's),
and a multi-step episode without markers is only labelled through a segmenter. So every atomic step of
a recorded episode (from one marker to the next) becomes its own LeRobot episode whose task is the
step's one-step instruction ("pick up the tape"); ingestion labels such an episode by its instruction.
Frames before the first marker (none in a scripted recording) are left out. Frames are the recorder's,
one per control period (their timestamps must be regular at `fps`, checked); images are h264-encoded
(lossy: within a few grey levels of the raw frames).

Read it back with `scripts/ingest_teleop.py --format lerobot --mapping twin` (configs/ingest/lerobot_twin.yaml);
every exported frame comes back (tests/test_lerobot_mapping.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from real_robot.ingest import read_raw

FT_NAMES = ["fx", "fy", "fz", "tx", "ty", "tz"]


def state_names(joints: int) -> list[str]:
    """observation.state names: j0..j{J-1}, gripper."""
    return [*(f"j{i}" for i in range(joints)), "gripper"]


def action_names(joints: int, dims: int) -> list[str]:
    """action names of a (dims,) command: J joint targets, gripper, grip_force (the twin's 9 for J = 7)."""
    names = [*(f"j{i}" for i in range(joints)), "gripper", "grip_force"]
    return names[:dims] if dims <= len(names) else [*names, *(f"a{i}" for i in range(len(names), dims))]
CHUNK = {"chunk_index": 0, "file_index": 0}


def _split_steps(times: np.ndarray, markers: list[tuple[float, str]]) -> list[tuple[int, int, str]]:
    """Frame times (N,) + markers -> [(first frame, end frame, step instruction)] per marked step."""
    if not markers:
        raise ValueError("a multi-step LeRobot export needs the recording's step markers (none found)")
    starts = np.searchsorted(times, np.array([t for t, _ in markers]) - 1e-4, side="left")
    ends = [*starts[1:], len(times)]
    return [(int(a), int(b), label) for (_, label), a, b in zip(markers, starts, ends) if b > a]


def _write_video(path: Path, frames: list[np.ndarray], fps: int) -> None:
    """(H, W, 3) uint8 frames -> one h264 mp4 with pts = frame number (time base 1 / fps)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"crf": "18"}
        for i, img in enumerate(frames):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def export_lerobot(src: str | Path, out: str | Path, fps: int = 20, robot_type: str = "mujoco_twin") -> dict[str, Any]:
    """Write the raw recording `src` as a LeRobot v3.0 dataset in `out` (see the module docstring);
    returns {"episodes": LeRobot episodes written, "frames", "recordings", "cameras"}. A recording
    with reading problems, no markers, irregular frame times or differing cameras: one error naming it."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    src, out = Path(src), Path(out)
    episodes, problems = read_raw(src)
    if problems:
        raise ValueError(f"{src}: {problems[0]}" + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""))
    if not episodes:
        raise ValueError(f"{src}: no recorded episodes")
    cams = sorted(k[4:] for k in episodes[0].streams if k.startswith("cam_"))
    joints = int(np.prod(episodes[0].streams["joint_states"][1].shape[1:]))  # J, the recording's own
    act_dims = int(np.prod(episodes[0].streams["action"][1].shape[1:]))
    rows: dict[str, list[Any]] = {k: [] for k in ("observation.state", "observation.force", "action", "timestamp",
                                                  "frame_index", "episode_index", "index", "task_index")}
    video: dict[str, list[np.ndarray]] = {c: [] for c in cams}
    tasks: list[str] = []
    ep_rows: list[dict[str, Any]] = []
    for rec in episodes:
        if sorted(k[4:] for k in rec.streams if k.startswith("cam_")) != cams:
            raise ValueError(f"{src / rec.name}: cameras differ from the first episode's {cams}")
        t, q = rec.streams["joint_states"]
        dt = np.diff(t)
        if len(dt) and np.abs(dt - 1.0 / fps).max() > 1e-3:
            raise ValueError(f"{src / rec.name}: frame times are not regular at {fps} Hz (steps {dt.min():.4f}.."
                             f"{dt.max():.4f} s); resample with scripts/ingest_teleop.py first")
        for name in ("action", "gripper_state", "force_torque", *(f"cam_{c}" for c in cams)):
            if name in rec.streams and not np.array_equal(rec.streams[name][0], t):
                raise ValueError(f"{src / rec.name}: stream {name} is not sampled at the joint states' times")
        grip = rec.streams.get("gripper_state", (t, np.zeros(len(t))))[1].reshape(len(t), 1)
        ft = rec.streams.get("force_torque", (t, np.zeros((len(t), 6))))[1].reshape(len(t), 6)
        act = rec.streams["action"][1]
        if q.reshape(len(t), -1).shape[1] != joints or act.reshape(len(t), -1).shape[1] != act_dims:
            raise ValueError(f"{src / rec.name}: joint_states / action dims differ from the first episode's "
                             f"{joints} / {act_dims}")
        state = np.concatenate([q.reshape(len(t), joints), grip], 1)
        for a, b, label in _split_steps(t, rec.markers):
            e = len(ep_rows)
            if label not in tasks:
                tasks.append(label)
            first = len(rows["index"])
            n = b - a
            rows["observation.state"] += list(state[a:b].astype(np.float32))
            rows["observation.force"] += list(ft[a:b].astype(np.float32))
            rows["action"] += list(act[a:b].astype(np.float32))
            rows["timestamp"] += list((np.arange(n) / fps).astype(np.float32))
            rows["frame_index"] += list(range(n))
            rows["episode_index"] += [e] * n
            rows["index"] += list(range(first, first + n))
            rows["task_index"] += [tasks.index(label)] * n
            meta: dict[str, Any] = {"episode_index": e, "tasks": [label], "length": n,
                                    "data/chunk_index": 0, "data/file_index": 0,
                                    "dataset_from_index": first, "dataset_to_index": first + n}
            for c in cams:
                t0 = len(video[c]) / fps
                video[c] += list(rec.streams[f"cam_{c}"][1][a:b])
                meta.update({f"videos/observation.images.{c}/chunk_index": 0,
                             f"videos/observation.images.{c}/file_index": 0,
                             f"videos/observation.images.{c}/from_timestamp": t0,
                             f"videos/observation.images.{c}/to_timestamp": t0 + n / fps})
            ep_rows.append(meta)
    out.mkdir(parents=True, exist_ok=True)
    (out / "meta/info.json").unlink(missing_ok=True)  # an interrupted rewrite is not a dataset
    (out / "data/chunk-000").mkdir(parents=True, exist_ok=True)
    (out / "meta/episodes/chunk-000").mkdir(parents=True, exist_ok=True)
    vec = lambda k: pa.array([np.asarray(v).tolist() for v in rows[k]], pa.list_(pa.float32()))  # noqa: E731
    table = pa.table({**{k: vec(k) for k in ("observation.state", "observation.force", "action")},
                      "timestamp": pa.array(rows["timestamp"], pa.float32()),
                      **{k: pa.array(rows[k], pa.int64()) for k in ("frame_index", "episode_index", "index",
                                                                     "task_index")}})
    pq.write_table(table, out / "data/chunk-000/file-000.parquet")
    pq.write_table(pa.Table.from_pylist(ep_rows), out / "meta/episodes/chunk-000/file-000.parquet")
    pd.DataFrame({"task_index": range(len(tasks))}, index=pd.Index(tasks, name="task")).to_parquet(
        out / "meta/tasks.parquet")
    h, w = (int(v) for v in video[cams[0]][0].shape[:2]) if cams else (0, 0)
    features: dict[str, Any] = {}
    for c in cams:
        ch, cw = video[c][0].shape[:2]
        features[f"observation.images.{c}"] = {
            "dtype": "video", "shape": [int(ch), int(cw), 3], "names": ["height", "width", "channels"],
            "info": {"video.height": int(ch), "video.width": int(cw), "video.codec": "h264",
                     "video.pix_fmt": "yuv420p", "video.is_depth_map": False, "video.fps": fps,
                     "video.channels": 3, "has_audio": False}}
        _write_video(out / f"videos/observation.images.{c}/chunk-000/file-000.mp4", video[c], fps)
    for k, names in (("observation.state", state_names(joints)), ("observation.force", FT_NAMES),
                     ("action", action_names(joints, act_dims))):
        features[k] = {"dtype": "float32", "shape": [len(names)], "names": names}
    for k in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        features[k] = {"dtype": "float32" if k == "timestamp" else "int64", "shape": [1], "names": None}
    info = {"codebase_version": "v3.0", "robot_type": robot_type, "total_episodes": len(ep_rows),
            "total_frames": len(rows["index"]), "total_tasks": len(tasks), "chunks_size": 1000,
            "data_files_size_in_mb": 100, "video_files_size_in_mb": 500, "fps": fps,
            "splits": {"train": f"0:{len(ep_rows)}"},
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
            "features": features}
    stats = {}
    for k in ("observation.state", "observation.force", "action"):
        v = np.stack(rows[k]).astype(np.float64)
        stats[k] = {"min": v.min(0).tolist(), "max": v.max(0).tolist(), "mean": v.mean(0).tolist(),
                    "std": v.std(0).tolist(), "count": [len(v)]}
    (out / "meta/stats.json").write_text(json.dumps(stats, indent=1))
    (out / "meta/info.json").write_text(json.dumps(info, indent=4))  # last: a dataset with info.json is complete
    return {"episodes": len(ep_rows), "frames": len(rows["index"]), "recordings": len(episodes), "cameras": cams,
            "image_size": [h, w]}
