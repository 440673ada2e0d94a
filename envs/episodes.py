"""One demo dataset: every demonstration the project writes or ingests as one `Episode`, read through
windows declared per key as step offsets (LeRobot's `delta_timestamps`, counted in steps).

    eps = read_episodes("runs/demos/libero", keys=("agentview_rgb", "proprio", "action"))
    ds = EpisodeDataset(eps, {"agentview_rgb": range(-14, 1, 2), "proprio": [0], "action": range(0, 8)})
    item = ds[i]      # {"agentview_rgb": (8, H, W, 3) uint8, "agentview_rgb_is_pad": (8,) bool,
                      #  "proprio": (1, P) float32, "action": (8, A) float32, ..., "instruction": str,
                      #  "episode": int, "t": int}

Sources (`read_episodes` picks by what it finds):
- robomimic / LIBERO hdf5 (`envs/demos.py` layout: the project's scripted demos, official LIBERO
  files, Kitchen demos, and twin teleop ingested by real_robot/ingest.py);
- a LeRobot v3.0 folder (`meta/info.json`), read by `envs/lerobot.py` and put on its fps grid.

Keys of `Episode.data` (all (T, ...), T = number of steps):
- cameras under their obs names, `*_rgb` (T, H, W, 3) uint8, upright;
- "proprio" (T, P) float32: the concatenation of the environment's proprio keys, defined once per
  environment (`envs.protocol.PROPRIO_KEYS` for LIBERO, `envs.kitchen.PROPRIO_KEYS`, the twin's in
  real_robot/robot.py, which ingestion writes into the file's env_args["proprio_keys"]); a LeRobot
  dataset's proprio is its `observation.state`;
- "action" (T, A) float32 env actions;
- every other obs key under its own name (e.g. "joint_states").

Padding at the episode edges: offset o at step t reads step clip(t + o, 0, T - 1), so a window
reaching before the start repeats the first step and one reaching past the end repeats the last
(a frame history starts on the first frame; an action chunk ends on the last action, as
OpenVLA-OFT pads). `<key>_is_pad` marks the repeated entries, as LeRobot does.

Bad input is one line naming the file, key and sizes: a key the windows ask for that an episode lacks,
or a window spanning more steps than an episode has (`EpisodeDataset`), a requested task without a
file (`read_episodes`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from envs import kitchen, protocol


@dataclass
class Episode:
    """One demonstration. data[key] (T, ...) as listed in the module docstring; source
    "<file>:<demo key>"; suite "libero_goal" | "kitchen" | "lerobot" | "" ...; task_id when the file
    names one; skills: T atomic-skill labels or None."""

    data: dict[str, np.ndarray]
    instruction: str
    source: str
    suite: str = ""
    task_id: int | None = None
    skills: list[str] | None = None

    def __len__(self) -> int:
        return int(len(self.data["action"]))

    @property
    def file(self) -> str:
        return self.source.rsplit(":", 1)[0]


# -- windows ------------------------------------------------------------------------------------------
def frame_offsets(frames: int, stride: int) -> np.ndarray:
    """The offsets of a frame history: `frames` steps `stride` apart ending at 0, e.g. (8, 2) ->
    [-14, -12, ..., 0]."""
    return -stride * np.arange(frames - 1, -1, -1)


def window_steps(t: int, offsets: Sequence[int] | np.ndarray, length: int | None = None) -> np.ndarray:
    """The steps a window reads at step t: t + offsets clipped to [0, length - 1] (no upper clip when
    `length` is None: a live rollout has no known end). The one window sampler of the project."""
    s = t + np.asarray(offsets, dtype=np.int64)
    return np.clip(s, 0, None if length is None else length - 1)


class EpisodeDataset:
    """Windows over episodes: item i = the windows of every key at step t of episode e, (e, t) = index[i].

    windows: {key: offsets}; offsets any iterable of ints (a range, a list), e.g.
    {"agentview_rgb": range(-14, 1, 2), "action": range(0, 8)}."""

    def __init__(self, episodes: Sequence[Episode], windows: Mapping[str, Iterable[int]]) -> None:
        if not episodes:
            raise ValueError("EpisodeDataset: no episodes")
        self.episodes = list(episodes)
        self.windows = {k: np.asarray(list(v), dtype=np.int64) for k, v in windows.items()}
        for k, offs in self.windows.items():
            if offs.ndim != 1 or len(offs) == 0:
                raise ValueError(f"window for {k!r}: give at least one offset, got {list(offs)}")
        for e in self.episodes:
            check_episode(e, self.windows)
        self.index = np.array([(i, t) for i, e in enumerate(self.episodes) for t in range(len(e))], np.int64)

    def __len__(self) -> int:
        return len(self.index)

    def window(self, episode: int, t: int, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(n, ...) values of `key` at steps t + offsets (edge-padded) and the (n,) pad mask."""
        e = self.episodes[episode]
        offs = self.windows[key]
        raw = t + offs
        return e.data[key][window_steps(t, offs, len(e))], (raw < 0) | (raw >= len(e))

    def __getitem__(self, i: int) -> dict[str, Any]:
        ep, t = (int(v) for v in self.index[i])
        out: dict[str, Any] = {"instruction": self.episodes[ep].instruction, "episode": ep, "t": t}
        for k in self.windows:
            out[k], out[f"{k}_is_pad"] = self.window(ep, t, k)
        return out

    def batch(self, rows: Sequence[int] | np.ndarray) -> dict[str, Any]:
        """Items `rows` stacked: arrays (B, n, ...), "instruction" a list of B strings, episode/t (B,)."""
        items = [self[int(i)] for i in rows]
        out: dict[str, Any] = {"instruction": [it["instruction"] for it in items]}
        for k in items[0]:
            if k != "instruction":
                out[k] = np.stack([np.asarray(it[k]) for it in items])
        return out


def check_episode(e: Episode, windows: Mapping[str, np.ndarray]) -> None:
    """One ValueError naming the file, key and sizes when `e` cannot serve `windows`."""
    for k, offs in windows.items():
        if k not in e.data:
            raise ValueError(f"{e.source}: no key {k!r}, which the window asks for (the episode has "
                             f"{sorted(e.data)})")
        span = int(offs.max() - offs.min() + 1)
        if span > len(e):
            raise ValueError(f"{e.source}: the window for {k!r} spans {span} steps (offsets {int(offs.min())}.."
                             f"{int(offs.max())}), longer than the episode's {len(e)} steps")
        if len(e.data[k]) != len(e):
            raise ValueError(f"{e.source}: key {k!r} has {len(e.data[k])} steps, 'action' has {len(e)}")


# -- readers ------------------------------------------------------------------------------------------
def proprio_keys(env_args: Mapping[str, Any]) -> tuple[str, ...]:
    """The obs keys whose concatenation is the proprio vector of a demo file: the file's own
    env_args["proprio_keys"] (written by the project's writers), else by suite (official LIBERO files)."""
    if env_args.get("proprio_keys"):
        return tuple(env_args["proprio_keys"])
    return kitchen.PROPRIO_KEYS if env_args.get("suite") == "kitchen" else protocol.PROPRIO_KEYS


def _wanted(key: str, keys: Iterable[str] | None) -> bool:
    return keys is None or key in keys


def read_hdf5(path: str | Path, keys: Iterable[str] | None = None, max_demos: int = 0) -> list[Episode]:
    """Every demo of one robomimic/LIBERO hdf5 file (at most `max_demos`, 0 = all); `keys` limits the
    obs loaded (None = all). Non-finite actions or proprio -> one error naming the file and demo."""
    from envs.demos import DemoReader

    keys = None if keys is None else set(keys)
    out: list[Episode] = []
    with DemoReader(path) as r:
        if len(r) == 0:
            raise ValueError(f"{path}: holds no demos (data/demo_*)")
        pkeys = proprio_keys(r.env_args)
        obs_keys = None if keys is None else (keys - {"proprio", "action"}) | (set(pkeys) if "proprio" in keys else set())
        tid = r.env_args.get("task_id")
        suite = str(r.env_args.get("suite", ""))
        for i in range(min(len(r), max_demos) if max_demos else len(r)):
            where = f"{path}:{r.keys[i]}"
            d = r.read(i, obs_keys)
            acts = np.asarray(d.actions, np.float32)
            if acts.ndim != 2 or len(acts) == 0:
                raise ValueError(f"{where}: actions have shape {acts.shape}, expected (T, A) with T > 0")
            if not np.all(np.isfinite(acts)):
                raise ValueError(f"{where}: non-finite action at step {int(np.argwhere(~np.isfinite(acts))[0, 0])}")
            data: dict[str, np.ndarray] = {"action": acts}
            for k, v in d.obs.items():
                if _wanted(k, keys):
                    data[k] = v
            missing = [k for k in pkeys if k not in d.obs]
            if keys is not None and "proprio" in keys and missing:
                raise ValueError(f"{where}: no obs key(s) {missing}, which 'proprio' ({'+'.join(pkeys)}) needs")
            if _wanted("proprio", keys) and not missing:
                prop = np.concatenate([np.asarray(d.obs[k], np.float32).reshape(len(acts), -1) for k in pkeys], 1)
                if not np.all(np.isfinite(prop)):
                    raise ValueError(f"{where}: non-finite proprio ({'+'.join(pkeys)})")
                data["proprio"] = prop
            out.append(Episode(data, d.instruction or r.instruction, where, suite,
                               None if tid is None else int(tid), d.skills))
    return out


def read_lerobot_dir(path: str | Path, keys: Iterable[str] | None = None) -> list[Episode]:
    """A LeRobot v3.0 dataset folder -> episodes on its fps grid (envs/lerobot.py reads it). Cameras
    observation.images.front/wrist become agentview_rgb/eye_in_hand_rgb, others <name>_rgb;
    proprio = observation.state in its stored order."""
    from envs.lerobot import read_lerobot
    from envs.streams import on_grid

    eps, problems = read_lerobot(path)
    if problems:
        raise ValueError(f"{path}: {problems[0]}" + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""))
    out = []
    for ep in eps:
        _, obs, acts = on_grid(ep, float(ep.attrs["fps"]))
        where = f"{path}:{ep.name}"
        data: dict[str, np.ndarray] = {"action": acts.astype(np.float32)}
        for k, v in obs.items():
            if _wanted(k, keys):
                data[k] = v
        # observation.state was split into joint_states (+ gripper_states) by the reader: put it back
        state = [obs[k].reshape(len(acts), -1) for k in ("joint_states", "gripper_states") if k in obs]
        if _wanted("proprio", keys) and state:
            data["proprio"] = np.concatenate(state, 1).astype(np.float32)
        tid = ep.attrs.get("env/task_id", -1)  # a project export names its source task (envs/lerobot_writer.py)
        skills = ep.skills if ep.skills is not None and len(ep.skills) == len(acts) else None
        out.append(Episode(data, ep.instruction, where, str(ep.attrs.get("env/suite") or "lerobot"),
                           int(tid) if int(tid) >= 0 else None, skills))
    return out


def _first_per_task(eps: list[Episode], max_demos: int) -> list[Episode]:
    """The first `max_demos` episodes of each (suite, task) (0 = all): a LeRobot dataset holds every
    task in one folder, where hdf5 files hold one task each."""
    if not max_demos:
        return eps
    seen: dict[tuple[str, int | None], int] = {}
    out = []
    for e in eps:
        k = (e.suite, e.task_id)
        seen[k] = seen.get(k, 0) + 1
        if seen[k] <= max_demos:
            out.append(e)
    return out


def episode_files(spec: str | Path | Sequence[str | Path]) -> list[Path]:
    """A file, a folder (every *.hdf5 below it, or itself when it is a LeRobot dataset) or a
    comma-separated list of them -> sources in sorted order; a missing one is an error naming it."""
    parts = spec if isinstance(spec, (list, tuple)) else [p for p in str(spec).split(",") if p.strip()]
    out: list[Path] = []
    for p in map(Path, (str(s).strip() for s in parts)):
        if (p / "meta" / "info.json").is_file() or p.is_file():
            out.append(p)
        elif p.is_dir():
            # hidden files are writers' temporaries (DemoWriter's .<name>.tmp.hdf5), never demos
            found = sorted(f for f in p.rglob("*.hdf5") if not f.name.startswith("."))
            if not found:
                raise FileNotFoundError(f"{p}: no *.hdf5 demo files in this folder (nor a LeRobot meta/info.json)")
            out += found
        else:
            raise FileNotFoundError(f"demo file not found: {p}")
    if not out:
        raise FileNotFoundError(f"no demo files in {spec!r}")
    return out


def _file_env_args(path: Path) -> dict[str, Any]:
    import h5py

    try:
        with h5py.File(path, "r") as h:
            return json.loads(h["data"].attrs.get("env_args", "{}"))
    except (OSError, KeyError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable demo file ({type(e).__name__}: {e})") from None


def read_episodes(spec: str | Path | Sequence[str | Path], keys: Iterable[str] | None = None, max_demos: int = 0,
                  suite: str | None = None, task_ids: Sequence[int] | None = None) -> list[Episode]:
    """Episodes of every source in `spec` (see `episode_files`), `max_demos` per file (0 = all).

    suite / task_ids select hdf5 files by their env_args ("kitchen" or a LIBERO suite name); a
    requested task with no file is an error naming the folder and the tasks found."""
    out: list[Episode] = []
    found: set[int] = set()
    for f in episode_files(spec):
        if (f / "meta" / "info.json").is_file():
            eps = read_lerobot_dir(f, keys)
            if (suite is not None or task_ids is not None) and any(e.task_id is not None for e in eps):
                # a project export: its episodes name their suite and task, select as for hdf5 files
                eps = [e for e in eps if (suite is None or e.suite == suite)
                       and (task_ids is None or e.task_id in task_ids)]
                found.update(e.task_id for e in eps if e.task_id is not None)
            out += _first_per_task(eps, max_demos)
            continue
        if suite is not None or task_ids is not None:
            args = _file_env_args(f)
            if suite is not None and args.get("suite", "") != suite:
                continue
            if task_ids is not None and (args.get("task_id") is None or int(args["task_id"]) not in task_ids):
                continue
            if args.get("task_id") is not None:
                found.add(int(args["task_id"]))
        out += read_hdf5(f, keys, max_demos)
    missing = sorted(set(task_ids or ()) - found)
    if missing or not out:
        raise FileNotFoundError(f"{spec}: no {suite or ''} demo file for task(s) {missing or list(task_ids or [])}; "
                                f"found tasks {sorted(found)}")
    return out


def split_episodes(episodes: Sequence[Episode], val_demos: int) -> tuple[list[Episode], list[Episode]]:
    """Hold out the last `val_demos` episodes of each file (at least one stays for training)."""
    by_file: dict[str, list[Episode]] = {}
    for e in episodes:
        by_file.setdefault(e.file, []).append(e)
    train: list[Episode] = []
    val: list[Episode] = []
    for eps in by_file.values():
        k = min(val_demos, len(eps) - 1) if val_demos > 0 else 0
        train += eps[: len(eps) - k]
        val += eps[len(eps) - k:]
    return train, val
