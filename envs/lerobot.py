"""Read a LeRobot dataset (codebase v3.0) straight from disk -- no lerobot install needed.

    episodes, problems = read_lerobot("path/to/dataset", mapping="auto")   # -> envs.streams.StreamEpisode list

Layout read (what LeRobotDataset.finalize writes): `meta/info.json` (fps, features with their shapes
and names, data_path / video_path templates), `meta/tasks.parquet` (task strings in the index,
`task_index` column), `meta/episodes/chunk-*/file-*.parquet` (per episode: length, data chunk / file,
and for each video key its chunk / file and `from_timestamp` inside the shared mp4),
`data/chunk-*/file-*.parquet` (one row per frame: features, timestamp, frame_index, episode_index,
index, task_index), and `videos/<key>/chunk-*/file-*.mp4` holding every episode of one camera back
to back (any codec PyAV decodes: H.264, AV1, ...); features of dtype "image" (encoded frames inside the
parquet) are decoded with Pillow.

Which feature becomes which stream is the mapping's (envs/lerobot_mapping.py, configs/ingest/):
proprio -> joint_states (N, D - G) + gripper_state (N,) or (N, G), action -> action (N, A), cameras
-> cam_<name> (N, H, W, 3) uint8, extra / other numeric features -> their stream names (a
force/torque feature -> force_torque). Shapes come from meta/info.json: every frame of a feature must
have the shape it declares. Timestamps (seconds from the episode start, stored as float32) are snapped
to the episode's k / fps grid when within envs.streams.SNAP_S of it, so float32 rounding never moves a
frame off the grid (it used to drop an episode's last frame).

Problems, each one line naming the file: a data file that meta/episodes names but is missing or
unreadable, an episode with fewer rows than meta/episodes says, a video with fewer (or more) frames in
the episode's span than its parquet rows, a missing video file, a mapping that does not fit
meta/info.json (episode "*", kind "mapping").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from envs.lerobot_mapping import LeRobotMapping, MappingError, Plan, load_mapping, resolve
from envs.streams import SNAP_S, Problem, StreamEpisode


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


def snap_to_grid(t: np.ndarray, fps: float) -> np.ndarray:
    """(N,) seconds -> the same, with every time within SNAP_S of a k / fps grid point set to it exactly."""
    g = np.round(t * fps) / fps
    return np.where(np.abs(t - g) <= SNAP_S, g, t)


def _decode_image(cell: Any) -> np.ndarray:
    """A parquet image cell ({"bytes": png/jpeg, "path": ...}) -> (H, W, 3) uint8."""
    import io

    from PIL import Image

    raw = cell["bytes"] if isinstance(cell, dict) else cell
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))


def _rel(path: Path, src: Path) -> str:
    return str(path.relative_to(src)) if path.is_relative_to(src) else str(path)


def _data_files(src: Path, info: dict, ep_meta: Any) -> dict[Path, list[int]]:
    """{data parquet: the episodes meta/episodes places in it}; without those columns every data file
    (episodes then come from the rows themselves, listed as [])."""
    cols = ("data/chunk_index", "data/file_index")
    if ep_meta is None or any(c not in ep_meta for c in cols) or "data_path" not in info:
        return {p: [] for p in sorted((src / "data").rglob("*.parquet"))}
    out: dict[Path, list[int]] = {}
    for e, c, f in zip(ep_meta["episode_index"], ep_meta[cols[0]], ep_meta[cols[1]]):
        out.setdefault(src / info["data_path"].format(chunk_index=int(c), file_index=int(f)), []).append(int(e))
    return out


def read_lerobot(src: str | Path, mapping: str | Path | LeRobotMapping = "auto"
                 ) -> tuple[list[StreamEpisode], list[Problem]]:
    """The dataset folder `src` -> (episodes, problems) through `mapping` ("auto", a configs/ingest name
    or YAML path, or a LeRobotMapping); see the module docstring."""
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
    m = load_mapping(mapping)  # an unknown name or a bad YAML raises: no dataset is read through it
    try:
        plan = resolve(m, info)
    except MappingError as e:
        return [], [Problem("*", "meta/info.json", "mapping", str(e))]
    fps = float(info["fps"])
    tasks_t = pq.read_table(src / "meta" / "tasks.parquet").to_pandas()
    tasks = {int(i): str(name) for name, i in zip(tasks_t.index, tasks_t["task_index"])}
    ep_dir = src / "meta" / "episodes"
    ep_meta = pq.read_table(sorted(ep_dir.rglob("*.parquet"))).to_pandas() if ep_dir.is_dir() else None
    video_cache: dict[Path, tuple[np.ndarray, np.ndarray]] = {}
    episodes = []
    for path, listed in _data_files(src, info, ep_meta).items():
        rel = _rel(path, src)
        if not path.is_file():
            problems += [Problem(f"episode_{e:06d}", "data", "missing", f"{rel} not found (meta/episodes places "
                                 f"episode {e} there)") for e in listed]
            continue
        try:
            data = pq.read_table(path)
        except (OSError, ValueError) as err:
            problems += [Problem(f"episode_{e:06d}", "data", "shape", f"{rel} unreadable ({err})") for e in listed]
            continue
        ep_col = data.column("episode_index").to_numpy()
        for e in listed or sorted(set(ep_col.tolist())):
            name = f"episode_{e:06d}"
            rows = data.filter(ep_col == e)
            want = _meta_length(ep_meta, e)
            if rows.num_rows == 0 or (want is not None and rows.num_rows != want):
                problems.append(Problem(name, "data", "missing", f"{rel} holds {rows.num_rows} rows of episode {e}"
                                        + (f", meta/episodes says {want}" if want is not None else "")))
                continue
            streams = _episode_streams(src, info, plan, rows, e, ep_meta, video_cache, problems, name, rel)
            task_idx = int(rows.column("task_index")[0].as_py())
            episodes.append(StreamEpisode(name, tasks.get(task_idx, ""), streams, skills=_skills(info, streams),
                                          skill_objects=_skills(info, streams, "skill_object_index", ""),
                                          attrs={"fps": fps, "robot": str(info.get("robot_type", "")),
                                                 "lerobot_episode": int(e), "mapping": plan.mapping.name,
                                                 **_env_columns(ep_meta, e)}))
    return episodes, problems


def _skills(info: dict, streams: dict[str, tuple[np.ndarray, np.ndarray]], key: str = "skill_index",
            missing: str = "idle") -> list[str] | None:
    """An int feature whose names are its labels (envs/lerobot_writer.py writes `skill_index` over the
    skill vocabulary and `skill_object_index` over sim object names) -> per-frame labels (`missing` for
    an index outside the names); the stream itself is dropped (the labels carry it)."""
    names = info["features"].get(key, {}).get("names")
    if key not in streams or not names:
        return None
    idx = streams.pop(key)[1].reshape(-1).astype(int)
    return [str(names[i]) if 0 <= i < len(names) else missing for i in idx]


def _env_columns(ep_meta: Any, e: int) -> dict[str, Any]:
    """The episode's env/* columns of meta/episodes (env/suite, env/task_id, env/source: what a project
    export names), as plain str / int."""
    if ep_meta is None:
        return {}
    row = ep_meta[ep_meta["episode_index"] == e]
    if row.empty:
        return {}
    out: dict[str, Any] = {}
    for c in (c for c in ep_meta.columns if str(c).startswith("env/")):
        v = row[c].iloc[0]
        out[str(c)] = int(v) if isinstance(v, (int, np.integer)) else str(v)
    return out


def _meta_length(ep_meta: Any, e: int) -> int | None:
    if ep_meta is None or "length" not in ep_meta:
        return None
    row = ep_meta[ep_meta["episode_index"] == e]
    return None if row.empty else int(row["length"].iloc[0])


def _episode_streams(src: Path, info: dict, plan: Plan, rows: Any, e: int, ep_meta: Any, cache: dict,
                     problems: list[Problem], name: str, rel: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """One episode's parquet rows (+ its video slices) -> {stream: (t (N,) s, v (N, ...))}."""
    fps = float(info["fps"])
    if plan.timestamps:
        t = np.asarray(rows.column(plan.timestamps).to_pylist(), np.float64).reshape(-1)
    else:
        t = np.asarray(rows.column("frame_index").to_pylist(), np.float64) / fps
    t = snap_to_grid(t, fps)
    streams: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for key, stream in plan.cameras.items():
        f = info["features"][key]
        if f.get("dtype") == "video":
            frames_t = _episode_video(src, info, key, e, ep_meta, cache, problems, name, len(t))
        else:  # dtype "image": frames stored in the parquet as encoded images
            try:
                frames_t = (t, np.stack([_decode_image(x) for x in rows.column(key).to_pylist()]))
            except (OSError, ValueError, KeyError, TypeError) as err:
                problems.append(Problem(name, key, "shape", f"{rel}: undecodable image ({err})"))
                frames_t = None
        if frames_t is not None:
            if sorted(frames_t[1].shape[1:]) != sorted(plan.shapes[key]):
                problems.append(Problem(name, key, "shape", f"frames have shape {list(frames_t[1].shape[1:])}, "
                                        f"meta/info.json declares {list(plan.shapes[key])}"))
            streams[stream] = frames_t
    for key, stream in plan.numeric.items():
        if key not in rows.column_names:
            problems.append(Problem(name, key, "missing", f"feature in meta/info.json but not in {rel}"))
            continue
        try:
            v = np.stack([np.asarray(x, dtype=np.float64) for x in rows.column(key).to_pylist()])
        except (ValueError, TypeError) as err:
            problems.append(Problem(name, key, "shape", f"{rel}: ragged or non-numeric values ({err})"))
            continue
        declared = plan.shapes[key]
        if v.shape[1:] != declared and not (declared == (1,) and v.ndim == 1):
            problems.append(Problem(name, stream, "shape", f"{rel}: {key} samples have shape {list(v.shape[1:])}, "
                                    f"meta/info.json declares {list(declared)}"))
            streams[stream] = (t, v)  # kept as read (the episode is bad already): no "missing" on top
            continue
        if key == plan.mapping.proprio and plan.gripper_dims:
            g = v[:, plan.gripper_dims]
            streams["gripper_state"] = (t, g[:, 0] if g.shape[1] == 1 else g)
            v = np.delete(v, plan.gripper_dims, axis=1)
        streams[stream] = (t, v)
    return streams


def _episode_video(src: Path, info: dict, key: str, e: int, ep_meta: Any, cache: dict, problems: list[Problem],
                   name: str, n_rows: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Frames of episode `e` of camera `key`: its slice [from_timestamp, to_timestamp) of the shared mp4,
    with times relative to the episode start (snapped to the fps grid); exactly one per parquet row."""
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
        problems.append(Problem(name, key, "missing", f"video file {_rel(path, src)} not found"))
        return None
    if path not in cache:
        try:
            cache[path] = decode_video(path)
        except Exception as err:  # noqa: BLE001 - PyAV raises many error types; named with the file
            problems.append(Problem(name, key, "shape", f"{_rel(path, src)} undecodable ({type(err).__name__}: {err})"))
            return None
    frames, times = cache[path]
    fps = float(info["fps"])
    half = 0.5 / fps
    sel = (times >= float(t_from) - half) & (times < float(t_to) - half)
    if int(sel.sum()) != n_rows:
        kind = "short" if int(sel.sum()) < n_rows else "shape"
        problems.append(Problem(name, key, kind, f"{_rel(path, src)} has {int(sel.sum())} frames in "
                                f"[{float(t_from):g}, {float(t_to):g}) s, the parquet has {n_rows} for this episode"))
        return None
    return snap_to_grid(times[sel] - float(t_from), fps), frames[sel]
