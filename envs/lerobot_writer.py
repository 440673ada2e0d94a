"""Write a LeRobot dataset (codebase v3.0) to disk -- no lerobot install needed -- in the layout
`envs/lerobot.py` reads and `LeRobotDataset.finalize` writes; and the project's demo files as one.

    w = LeRobotWriter("out", fps=20, robot_type="franka", names={"observation.state": [...], "action": [...]})
    w.add(LeRobotEpisode("open the drawer", {"observation.state": (T, 8), "action": (T, 7)}, {"front": (T, H, W, 3)}))
    w.close()                                   # -> {"episodes", "frames", "cameras", "image_size"}

    export_demos("runs/demos/libero", "runs/demos/libero/lerobot", fps=20)   # hdf5 demo files -> one dataset

    OUT/meta/info.json        codebase_version v3.0, fps, features (dtype, shape, names), path templates;
                              written last: a folder with info.json is a complete dataset
    OUT/meta/tasks.parquet    index: task string, column task_index
    OUT/meta/episodes/chunk-000/file-000.parquet   per episode: tasks, length, data / video locations
                              (+ the episode's own `meta` columns, e.g. env/suite, env/task_id)
    OUT/meta/stats.json       min / max / mean / std / count of every float feature
    OUT/data/chunk-000/file-000.parquet   one row per frame: the float features (float32 lists), the
                              int features (int64, e.g. skill_index), timestamp (float32, k / fps from the
                              episode start, as LeRobot writes it), frame_index, episode_index, index, task_index
    OUT/videos/observation.images.<cam>/chunk-000/file-000.mp4   every episode back to back (h264,
                              yuv420p, crf 18: lossy within a few grey levels), pts = frame number

Frames are encoded as episodes arrive (one open encoder per camera), so a dataset of 200 LIBERO demos
never holds its frames in memory at once.

Demo files as a LeRobot dataset (`export_demos`): every *.hdf5 demo file below a folder (envs/demos.py
layout), in sorted order, one LeRobot episode per demo. observation.state = the file's proprio keys
concatenated (LIBERO: ee_pos 3, ee_ori 3 axis-angle, gripper_states 2 -- the 8-d state of the published
LIBERO LeRobot sets; Kitchen: its own keys), action = the env action (float32 of the stored float64),
cameras agentview_rgb -> observation.images.front, eye_in_hand_rgb -> observation.images.wrist (what
`envs/lerobot.py` reads back as agentview_rgb / eye_in_hand_rgb), skill_index (int64, names = the
skill vocabulary) when the demo has labels, skill_object_index (int64, names = the sorted union of the
files' sim object names) when every demo logged what each skill acted on, task = the demo's
instruction; meta/episodes names the source file's env/suite and env/task_id, so a head trained on the
dataset selects tasks as it does on the hdf5 files. The gripper dims of the state are named left_gripper / right_gripper, so the auto
mapping splits them off as gripper_state and ingestion returns the same (T, 6) + (T, 2).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

INDEX_FEATURES = ("timestamp", "frame_index", "episode_index", "index", "task_index")
DEMO_CAMERAS = {"agentview_rgb": "front", "eye_in_hand_rgb": "wrist"}  # demo obs key -> LeRobot camera


@dataclass
class LeRobotEpisode:
    """One episode: floats {feature: (T, D)} (observation.state, action, ...), cameras {name: (T, H, W, 3)
    uint8}, ints {feature: (T,)} (e.g. skill_index), meta {column: value} for meta/episodes."""

    task: str
    floats: dict[str, np.ndarray]
    cameras: dict[str, np.ndarray] = field(default_factory=dict)
    ints: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(len(next(iter(self.floats.values()))))


class _Video:
    """One camera's mp4, encoded frame by frame (pts = frame number, time base 1 / fps)."""

    def __init__(self, path: Path, fps: int, h: int, w: int) -> None:
        import av

        path.parent.mkdir(parents=True, exist_ok=True)
        self.c = av.open(str(path), "w")
        self.s = self.c.add_stream("libx264", rate=fps)
        self.s.width, self.s.height, self.s.pix_fmt = w, h, "yuv420p"
        self.s.options = {"crf": "18"}
        self.n, self.shape = 0, (h, w)

    def add(self, img: np.ndarray) -> None:
        import av

        f = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
        f.pts = self.n
        self.n += 1
        for p in self.s.encode(f):
            self.c.mux(p)

    def close(self) -> None:
        for p in self.s.encode():
            self.c.mux(p)
        self.c.close()


class LeRobotWriter:
    """Append episodes, then `close()` writes the parquet files, stats and (last) meta/info.json.

    names {feature: its dim names} for every float and int feature (int features: the label of each
    value, e.g. the skill vocabulary). Every episode must carry the same features and cameras; one that
    does not is a ValueError naming the episode and the difference."""

    def __init__(self, out: str | Path, fps: int, robot_type: str, names: dict[str, Sequence[str]]) -> None:
        self.out, self.fps, self.robot_type = Path(out), int(fps), robot_type
        self.names = {k: [str(n) for n in v] for k, v in names.items()}
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "meta/info.json").unlink(missing_ok=True)  # an interrupted rewrite is not a dataset
        self.rows: dict[str, list[Any]] = {k: [] for k in INDEX_FEATURES}
        self.videos: dict[str, _Video] = {}
        self.tasks: list[str] = []
        self.episodes: list[dict[str, Any]] = []
        self.layout: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]] | None = None

    def add(self, ep: LeRobotEpisode) -> None:
        e, n = len(self.episodes), len(ep)
        layout = (tuple(sorted(ep.floats)), tuple(sorted(ep.ints)), tuple(sorted(ep.cameras)))
        if self.layout is None:
            self.layout = layout
            for k in (*ep.floats, *ep.ints):
                if k not in self.names:
                    raise ValueError(f"feature {k!r} has no names (give names[{k!r}])")
                self.rows[k] = []
        elif layout != self.layout:
            raise ValueError(f"episode {e} ({ep.task!r}): features/cameras {layout} differ from the first "
                             f"episode's {self.layout}")
        for k, v in {**ep.floats, **ep.ints}.items():
            want = (n, len(self.names[k])) if k in ep.floats else (n,)
            if np.shape(v) != want:
                raise ValueError(f"episode {e} ({ep.task!r}): {k} has shape {list(np.shape(v))}, expected {list(want)}")
        if ep.task not in self.tasks:
            self.tasks.append(ep.task)
        first = len(self.rows["index"])
        for k, v in ep.floats.items():
            self.rows[k].append(np.asarray(v, np.float32))
        for k, v in ep.ints.items():
            self.rows[k].append(np.asarray(v, np.int64))
        self.rows["timestamp"].append((np.arange(n) / self.fps).astype(np.float32))
        self.rows["frame_index"].append(np.arange(n))
        self.rows["episode_index"].append(np.full(n, e))
        self.rows["index"].append(np.arange(first, first + n))
        self.rows["task_index"].append(np.full(n, self.tasks.index(ep.task)))
        meta: dict[str, Any] = {"episode_index": e, "tasks": [ep.task], "length": n, "data/chunk_index": 0,
                                "data/file_index": 0, "dataset_from_index": first, "dataset_to_index": first + n}
        for cam, frames in sorted(ep.cameras.items()):
            frames = np.asarray(frames)
            if frames.shape[0] != n or frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
                raise ValueError(f"episode {e} ({ep.task!r}): camera {cam} frames {list(frames.shape)} "
                                 f"{frames.dtype}, expected [{n}, H, W, 3] uint8")
            key = f"observation.images.{cam}"
            if key not in self.videos:
                self.videos[key] = _Video(self.out / f"videos/{key}/chunk-000/file-000.mp4", self.fps,
                                          *frames.shape[1:3])
            v = self.videos[key]
            if tuple(frames.shape[1:3]) != v.shape:
                raise ValueError(f"episode {e} ({ep.task!r}): camera {cam} frames are {list(frames.shape[1:3])}, "
                                 f"the first episode's {list(v.shape)}")
            t0 = v.n / self.fps
            for img in frames:
                v.add(img)
            meta.update({f"videos/{key}/chunk_index": 0, f"videos/{key}/file_index": 0,
                         f"videos/{key}/from_timestamp": t0, f"videos/{key}/to_timestamp": t0 + n / self.fps})
        self.episodes.append({**meta, **ep.meta})

    def close(self) -> dict[str, Any]:
        import pandas as pd
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.episodes:
            raise ValueError(f"{self.out}: no episodes to write")
        for v in self.videos.values():
            v.close()
        floats, ints, _ = self.layout or ((), (), ())
        cols = {k: np.concatenate(self.rows[k]) for k in (*floats, *ints, *INDEX_FEATURES)}
        table = pa.table({**{k: pa.array(cols[k].tolist(), pa.list_(pa.float32())) for k in floats},
                          **{k: pa.array(cols[k], pa.int64()) for k in ints},
                          "timestamp": pa.array(cols["timestamp"], pa.float32()),
                          **{k: pa.array(cols[k], pa.int64()) for k in INDEX_FEATURES[1:]}})
        (self.out / "data/chunk-000").mkdir(parents=True, exist_ok=True)
        (self.out / "meta/episodes/chunk-000").mkdir(parents=True, exist_ok=True)
        pq.write_table(table, self.out / "data/chunk-000/file-000.parquet")
        pq.write_table(pa.Table.from_pylist(self.episodes), self.out / "meta/episodes/chunk-000/file-000.parquet")
        pd.DataFrame({"task_index": range(len(self.tasks))}, index=pd.Index(self.tasks, name="task")).to_parquet(
            self.out / "meta/tasks.parquet")
        features: dict[str, Any] = {}
        for key, v in sorted(self.videos.items()):
            h, w = v.shape
            features[key] = {
                "dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"],
                "info": {"video.height": h, "video.width": w, "video.codec": "h264", "video.pix_fmt": "yuv420p",
                         "video.is_depth_map": False, "video.fps": self.fps, "video.channels": 3,
                         "has_audio": False}}
        for k in floats:
            features[k] = {"dtype": "float32", "shape": [len(self.names[k])], "names": self.names[k]}
        for k in ints:
            features[k] = {"dtype": "int64", "shape": [1], "names": self.names[k]}
        for k in INDEX_FEATURES:
            features[k] = {"dtype": "float32" if k == "timestamp" else "int64", "shape": [1], "names": None}
        stats = {}
        for k in floats:
            x = cols[k].astype(np.float64)
            stats[k] = {"min": x.min(0).tolist(), "max": x.max(0).tolist(), "mean": x.mean(0).tolist(),
                        "std": x.std(0).tolist(), "count": [len(x)]}
        n_ep, n_fr = len(self.episodes), len(cols["index"])
        info = {"codebase_version": "v3.0", "robot_type": self.robot_type, "total_episodes": n_ep,
                "total_frames": n_fr, "total_tasks": len(self.tasks), "chunks_size": 1000,
                "data_files_size_in_mb": 100, "video_files_size_in_mb": 500, "fps": self.fps,
                "splits": {"train": f"0:{n_ep}"},
                "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
                "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
                "features": features}
        (self.out / "meta/stats.json").write_text(json.dumps(stats, indent=1))
        (self.out / "meta/info.json").write_text(json.dumps(info, indent=4))  # last: the dataset is complete
        first_cam = next(iter(self.videos.values()), None)
        return {"episodes": n_ep, "frames": n_fr, "cameras": [k.rsplit(".", 1)[1] for k in sorted(self.videos)],
                "image_size": list(first_cam.shape) if first_cam else [0, 0]}


def state_names(proprio_keys: Sequence[str], dims: Sequence[int]) -> list[str]:
    """Names of the concatenated proprio vector: LIBERO's ee_pos / ee_ori / gripper_states become
    x y z ax ay az left_gripper right_gripper; other keys <key>_<i>."""
    known = {"ee_pos": ["x", "y", "z"], "ee_ori": ["ax", "ay", "az"], "gripper_states": ["left_gripper",
                                                                                         "right_gripper"]}
    out: list[str] = []
    for k, d in zip(proprio_keys, dims):
        out += known[k] if k in known and len(known[k]) == d else [f"{k}_{i}" for i in range(d)]
    return out


def action_names(dims: int) -> list[str]:
    """A (dims,) env action's names: LIBERO's 7 (OSC_POSE deltas + gripper) as the LeRobot LIBERO sets
    name them, else a0..a{dims-1}."""
    return ["x", "y", "z", "roll", "pitch", "yaw", "gripper"] if dims == 7 else [f"a{j}" for j in range(dims)]


def export_demos(src: str | Path, out: str | Path, fps: int = 20, robot_type: str = "panda",
                 files: Iterable[Path] | None = None) -> dict[str, Any]:
    """Every demo file below `src` (or `files`) -> one LeRobot v3.0 dataset in `out` (module docstring).
    Returns the writer's summary plus {"files": the demo files read}. Files with different proprio keys
    or cameras: one ValueError naming the file."""
    from envs.demos import SKILL_VOCAB, DemoReader
    from envs.episodes import episode_files, proprio_keys

    paths = list(files) if files is not None else [p for p in episode_files(src) if p.suffix in (".hdf5", ".h5")]
    objects: set[str] = set()  # the int feature's names are fixed when the writer opens: collect them first
    for path in paths:
        with DemoReader(path) as r:
            objects.update(r.skill_object_names())
    object_names = sorted(objects)
    writer: LeRobotWriter | None = None
    pkeys_first: tuple[str, ...] = ()
    for path in paths:
        with DemoReader(path) as r:
            pkeys = proprio_keys(r.env_args)
            if writer is not None and pkeys != pkeys_first:
                raise ValueError(f"{path}: proprio keys {list(pkeys)} differ from the first file's {list(pkeys_first)}")
            for i in range(len(r)):
                d = r.read(i)
                missing = [k for k in pkeys if k not in d.obs]
                if missing:
                    raise ValueError(f"{path}: demo {i} has no obs {missing} (its proprio keys are {list(pkeys)})")
                parts = [d.obs[k].reshape(len(d), -1) for k in pkeys]
                ints = {"skill_index": np.array([SKILL_VOCAB.index(s) for s in d.skills])} if d.skills else {}
                if ints and object_names:
                    if d.skill_objects is None:
                        raise ValueError(f"{path}: demo {i} has no skill_objects where others have them")
                    ints["skill_object_index"] = np.array([object_names.index(o) for o in d.skill_objects])
                ep = LeRobotEpisode(
                    d.instruction or r.instruction,
                    {"observation.state": np.concatenate(parts, 1), "action": d.actions.reshape(len(d), -1)},
                    {cam: d.obs[k] for k, cam in DEMO_CAMERAS.items() if k in d.obs},
                    ints,
                    {"env/suite": str(r.env_args.get("suite", "")), "env/task_id": int(r.env_args.get("task_id", -1)),
                     "env/source": f"{path.name}:{r.keys[i]}"})
                if writer is None:
                    pkeys_first = pkeys
                    writer = LeRobotWriter(out, fps, robot_type, {
                        "observation.state": state_names(pkeys, [p.shape[1] for p in parts]),
                        "action": action_names(ep.floats["action"].shape[1]),
                        "skill_index": list(SKILL_VOCAB), "skill_object_index": object_names})
                writer.add(ep)
    if writer is None:
        raise ValueError(f"{src}: no demos to export")
    return {**writer.close(), "files": [str(p) for p in paths]}
