"""Read a LeRobot dataset (codebase v3.0) straight from disk -- no lerobot install needed.

    episodes, problems = read_lerobot("path/to/dataset")   # -> envs.streams.StreamEpisode list

Layout read (what LeRobotDataset.finalize writes): `meta/info.json` (fps, features, data_path /
video_path templates), `meta/tasks.parquet` (task strings in the index, `task_index` column),
`meta/episodes/chunk-*/file-*.parquet` (per episode: length, data file, and for each video key its
chunk / file and `from_timestamp` inside the shared mp4), `data/chunk-*/file-*.parquet` (one row per
frame: features, timestamp, frame_index, episode_index, index, task_index), and
`videos/<key>/chunk-*/file-*.mp4` holding every episode of one camera back to back (decoded with PyAV);
features of dtype "image" (encoded frames inside the parquet) are decoded with Pillow.

Streams produced per episode: `observation.state` -> joint_states (+ gripper_state when a feature name
is "gripper"), `action` -> action, a force/torque feature (`observation.force`, names fx..tz) ->
force_torque, `observation.images.<cam>` -> cam_<cam>, any other numeric feature -> its name with dots
as underscores. Timestamps are the stored per-frame `timestamp` (seconds from the episode start).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from envs.streams import Problem, StreamEpisode

INDEX_COLUMNS = {"timestamp", "frame_index", "episode_index", "index", "task_index"}
FT_NAMES = ("fx", "fy", "fz", "tx", "ty", "tz")


def decode_video(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """An mp4 -> frames (N, H, W, 3) uint8 RGB and their presentation times (N,) seconds (PyAV)."""
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames, times = [], []
        for f in c.decode(s):
            frames.append(f.to_ndarray(format="rgb24"))
            times.append(float(f.pts * s.time_base) if f.pts is not None else float(f.time or 0.0))
    if not frames:
        return np.zeros((0, 0, 0, 3), np.uint8), np.zeros(0)
    return np.stack(frames), np.asarray(times)


def _decode_image(cell: Any) -> np.ndarray:
    """A parquet image cell ({"bytes": png/jpeg, "path": ...}) -> (H, W, 3) uint8."""
    import io

    from PIL import Image

    raw = cell["bytes"] if isinstance(cell, dict) else cell
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))


def _stream_name(key: str, names: list[str] | None) -> str:
    if key == "action":
        return "action"
    if key == "observation.state":
        return "joint_states"
    if "force" in key or "wrench" in key or (names and tuple(names) == FT_NAMES):
        return "force_torque"
    if key.startswith("observation.images."):
        return "cam_" + key.rsplit(".", 1)[1]
    return key.replace("observation.", "").replace(".", "_")


def _column(table: Any, key: str) -> np.ndarray:
    col = table.column(key).to_pylist()
    return np.asarray(col, dtype=np.float64 if not isinstance(col[0], (list, tuple)) else None)


def read_lerobot(src: str | Path) -> tuple[list[StreamEpisode], list[Problem]]:
    import pyarrow.parquet as pq

    src = Path(src)
    problems: list[Problem] = []
    info_f = src / "meta" / "info.json"
    try:
        info = json.loads(info_f.read_text())
    except (OSError, json.JSONDecodeError) as e:
        return [], [Problem("*", "meta/info.json", "missing", f"unreadable ({e})")]
    if not str(info.get("codebase_version", "")).startswith("v3"):
        problems.append(Problem("*", "meta/info.json", "shape",
                                f"codebase_version {info.get('codebase_version')!r}; this reader reads v3.x"))
        return [], problems
    fps = float(info["fps"])
    feats: dict[str, dict] = info["features"]
    tasks_t = pq.read_table(src / "meta" / "tasks.parquet").to_pandas()
    tasks = {int(i): str(name) for name, i in zip(tasks_t.index, tasks_t["task_index"])}
    ep_meta = pq.read_table(sorted((src / "meta" / "episodes").rglob("*.parquet"))).to_pandas() \
        if (src / "meta" / "episodes").is_dir() else None
    data = pq.read_table(sorted((src / "data").rglob("*.parquet")))
    ep_col = np.asarray(data.column("episode_index").to_pylist())
    video_cache: dict[Path, tuple[np.ndarray, np.ndarray]] = {}
    episodes = []
    for e in sorted(set(ep_col.tolist())):
        name = f"episode_{e:06d}"
        rows = data.filter(data.column("episode_index").to_numpy() == e)
        t = _column(rows, "timestamp").reshape(-1)
        task_idx = int(rows.column("task_index")[0].as_py())
        streams: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for key, f in feats.items():
            if key in INDEX_COLUMNS:
                continue
            stream = _stream_name(key, f.get("names") if isinstance(f.get("names"), list) else None)
            if f.get("dtype") == "video":
                frames_t = _episode_video(src, info, key, e, ep_meta, video_cache, problems, name)
                if frames_t is not None:
                    streams[stream] = frames_t
                continue
            if f.get("dtype") == "image":  # frames stored in the parquet as encoded images
                try:
                    streams[stream] = (t, np.stack([_decode_image(x) for x in rows.column(key).to_pylist()]))
                except (OSError, ValueError, KeyError, TypeError) as err:
                    problems.append(Problem(name, key, "shape", f"undecodable image ({err})"))
                continue
            if key not in rows.column_names:
                problems.append(Problem(name, key, "missing", "feature in meta/info.json but not in the data"))
                continue
            try:
                v = np.stack([np.asarray(x, dtype=np.float64) for x in rows.column(key).to_pylist()])
            except (ValueError, TypeError) as err:
                problems.append(Problem(name, key, "shape", f"ragged or non-numeric values ({err})"))
                continue
            names = f.get("names") if isinstance(f.get("names"), list) else None
            if key == "observation.state" and names and "gripper" in names and v.ndim == 2:
                gi = names.index("gripper")
                streams["gripper_state"] = (t, v[:, gi])
                v = np.delete(v, gi, axis=1)
            streams[stream] = (t, v)
        episodes.append(StreamEpisode(name, tasks.get(task_idx, ""), streams,
                                attrs={"fps": fps, "robot": str(info.get("robot_type", "")),
                                       "lerobot_episode": int(e)}))  # fmt: skip
    return episodes, problems


def _episode_video(src: Path, info: dict, key: str, e: int, ep_meta: Any, cache: dict, problems: list[Problem],
                   name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Frames of episode `e` of camera `key`: its slice [from_timestamp, to_timestamp) of the shared mp4,
    with times relative to the episode start."""
    if ep_meta is None:
        problems.append(Problem(name, key, "missing", "meta/episodes not found (needed to locate video frames)"))
        return None
    row = ep_meta[ep_meta["episode_index"] == e]
    cols = [f"videos/{key}/{c}" for c in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")]
    if row.empty or any(c not in row for c in cols):
        problems.append(Problem(name, key, "missing", "no video entry in meta/episodes"))
        return None
    chunk, file_i, t_from, t_to = (row[c].iloc[0] for c in cols)
    path = src / info["video_path"].format(video_key=key, chunk_index=int(chunk), file_index=int(file_i))
    if not path.is_file():
        problems.append(Problem(name, key, "missing", f"video file {path.relative_to(src)} not found"))
        return None
    if path not in cache:
        cache[path] = decode_video(path)
    frames, times = cache[path]
    half = 0.5 / float(info["fps"])
    sel = (times >= float(t_from) - half) & (times < float(t_to) - half)
    if not sel.any():
        problems.append(Problem(name, key, "missing", f"no frames in [{t_from}, {t_to}) of {path.name}"))
        return None
    return times[sel] - float(t_from), frames[sel]
