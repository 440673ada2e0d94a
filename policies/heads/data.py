"""Demos -> (frozen features, proprio, action) training rows for a policy head, with a feature cache.

The demos are the project's one demo dataset (`envs.episodes`): `read_demos` reads the views,
"proprio" and "action" of every episode, and an `EpisodeDataset` declares what one training row
reads at step t, as step offsets (`head_windows`):

    camera view   frame_offsets(frames, stride)    e.g. (8, 2) -> [-14, -12, ..., 0]
    "proprio"     range(-(history - 1), 1)          the step head's feature history; the head reads offset 0
    "action"      range(0, chunk)                   the action chunk from t (chunk 1: the action at t)

with the dataset's edge padding (a window reaching before the episode start repeats step 0) and its
bad-input checks (a missing key, a window longer than an episode: one line naming file, key, sizes).

Features: per episode, `encoders.streaming.episode_features(encoder, views, frames, stride)`, the
same streaming path (and the same windows, `envs.episodes.window_steps`) as `EncoderStream` in
rollouts (`EncoderHeadPolicy.act`); row t is the views' embeddings of their windows ending at t,
concatenated. Features are cached with the project's feature cache (`encoders.features.cached_arrays`:
atomic arrays, a json marker written last, memory-mapped on reuse) under

    <cache root>/features/policy_head/<encoder key>/<demo set key>/<frames>f<stride>s-<views>/all.features.npy

so training heads for several seeds, budgets or head kinds embeds a demo set once per encoder.
The encoder key hashes its config and weights, the demo set key the demo files' bytes.

Proprio is the dataset's "proprio" (the env's proprio keys, defined once per env in envs/), so the
head sees the same vector in training and in `EncoderHeadPolicy.act` (obs["proprio"]).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from encoders.streaming import episode_features, window_span
from envs.episodes import Episode, EpisodeDataset, frame_offsets, read_episodes, window_steps

VIEW_KEYS = {"agentview": "agentview_rgb", "second": "eye_in_hand_rgb"}


@dataclasses.dataclass
class WindowConfig:
    frames: int = 8  # frames per window fed to the encoder
    stride: int = 2  # env steps between window frames
    views: tuple[str, ...] = ("agentview_rgb", "eye_in_hand_rgb")

    def validate(self) -> None:
        if self.frames < 1 or self.stride < 1:
            raise ValueError(f"window frames and stride must be >= 1, got {self.frames}, {self.stride}")
        for v in self.views:
            if v not in VIEW_KEYS.values():
                raise ValueError(f"unknown view {v!r}; use {tuple(VIEW_KEYS.values())}")

    def offsets(self) -> np.ndarray:
        """(frames,) step offsets of a camera window, ending at 0 (`envs.episodes.frame_offsets`)."""
        return frame_offsets(self.frames, self.stride)

    @property
    def span(self) -> int:
        """Env steps one window covers (the frames a rollout keeps per camera)."""
        return window_span(self.frames, self.stride)


def history_offsets(history: int) -> range:
    """Step offsets of the step head's feature history: the last `history` steps, ending at 0."""
    if history < 1:
        raise ValueError(f"history must be >= 1, got {history}")
    return range(-(history - 1), 1)


def head_windows(window: WindowConfig, history: int = 1, chunk: int = 1) -> dict[str, Iterable[int]]:
    """The `EpisodeDataset` windows of one training row (see the module docstring)."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    return {**{v: window.offsets() for v in window.views}, "proprio": history_offsets(history),
            "action": range(0, chunk)}


def demo_suite(env: str, suite: str | None) -> str | None:
    """The env_args suite of the demo files to train on: "kitchen", or the LIBERO suite."""
    return "kitchen" if env == "kitchen" else suite


def read_demos(demos: str | Path, env: str, views: Sequence[str], task_ids: Sequence[int] | None,
               suite: str | None = None, max_demos: int = 0) -> list[Episode]:
    """Episodes (views, "proprio", "action") of the demo files under `demos` for `task_ids` of `env`
    (`suite`: the LIBERO suite), `max_demos` per file (0 = all). A requested task without a file,
    an unreadable file or non-finite actions/proprio: one error naming it (`read_episodes`)."""
    return read_episodes(demos, keys=(*views, "proprio", "action"), max_demos=max_demos,
                         suite=demo_suite(env, suite), task_ids=None if task_ids is None else list(task_ids))


def demo_cameras(episodes: Sequence[Episode]) -> list[str]:
    """The cameras the demo files were filmed with (env_args.env_kwargs.views, e.g. ["default", "wrist"]
    for Kitchen: agentview_rgb, eye_in_hand_rgb); [] when the files do not say. Files that disagree:
    one error naming two of them (a head cannot be trained on two camera layouts at once)."""
    from envs.demos import DemoReader

    seen: dict[tuple[str, ...], str] = {}
    for f in sorted({e.file for e in episodes if e.file.endswith((".hdf5", ".h5"))}):
        views = tuple(str(v) for v in DemoReader(f).env_args.get("env_kwargs", {}).get("views", ()))
        seen.setdefault(views, f)
    if len(seen) > 1:
        (a, fa), (b, fb) = list(seen.items())[:2]
        raise ValueError(f"demos filmed with different cameras: {fa} has {list(a)}, {fb} has {list(b)}")
    return list(next(iter(seen), ()))


def encoder_key(encoder: Any) -> str:
    """`<registered name>-<sha1 of config + weights>`: a changed encoder never reuses stale features."""
    h = hashlib.sha1(json.dumps(encoder.config_dict(), sort_keys=True, default=str).encode())
    for k, v in sorted(encoder.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return f"{encoder.registry_name or type(encoder).__name__}-{h.hexdigest()[:10]}"


def _hash_path(h: Any, path: Path) -> None:
    """Feed a file's bytes (a folder's: every file below it, sorted) into hash `h`."""
    for f in sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]:
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)


def demo_set_key(episodes: Sequence[Episode], max_demos: int) -> str:
    """sha1 of `max_demos` and every source file's task id, name and bytes (in task order, as before
    the one dataset existed, so existing caches stay valid)."""
    files = {(-1 if e.task_id is None else e.task_id, e.file) for e in episodes}
    h = hashlib.sha1(f"max{max_demos}".encode())
    for tid, f in sorted(files):
        h.update(f"{tid}:{Path(f).name}".encode())
        _hash_path(h, Path(f))
    return h.hexdigest()[:12]


def _check_views(episodes: Sequence[Episode], views: Sequence[str]) -> None:
    """Camera arrays must be (T, H, W, 3) uint8: one error naming the demo and key otherwise (the
    dataset has checked that the keys exist and fit the windows)."""
    for e in episodes:
        for v in views:
            a = e.data[v]
            if a.ndim != 4 or a.shape[-1] != 3 or a.dtype != np.uint8:
                raise ValueError(f"{e.source}: {v!r} has shape {a.shape} {a.dtype}, expected (T, H, W, 3) uint8")


def _key_rows(ds: EpisodeDataset, key: str) -> np.ndarray:
    """(N, n, ...) windows of `key` at every row of `ds` (rows in `ds.index` order)."""
    return np.stack([ds.window(int(e), int(t), key)[0] for e, t in ds.index])


def random_shift(video: np.ndarray, pad: int, rng: np.random.Generator) -> np.ndarray:
    """(T, H, W, 3) uint8 -> the same size, shifted by up to `pad` px in each direction (DrQ's random
    shift: replicate-pad by `pad`, crop back at a random offset). One offset for the whole video, so
    a frame window keeps its motion (flow between its frames is unchanged)."""
    if pad <= 0:
        return video
    T, H, W, _ = video.shape
    dy, dx = (int(v) for v in rng.integers(0, 2 * pad + 1, size=2))
    padded = np.pad(video, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    return np.ascontiguousarray(padded[:, dy:dy + H, dx:dx + W])


@dataclasses.dataclass
class HeadDataset:
    episodes: EpisodeDataset  # row i = step index[i] = (episode, t); windows as `head_windows`
    features: np.ndarray  # (N, F) float32: the views' window embeddings at each row's step
    proprio: np.ndarray  # (N, P) float32 at each row's step
    actions: np.ndarray  # (N, A) float32 at each row's step, or (N, chunk, A) from it (edge-padded)
    demo: np.ndarray  # (N,) episode index
    step: np.ndarray  # (N,) step within the episode
    task: np.ndarray  # (N,) task id (-1: the file names none)
    from_cache: bool
    cache_dir: Path
    instructions: tuple[str, ...] = ()  # the distinct instructions, in first-seen order
    instruction: np.ndarray | None = None  # (N,) index into `instructions`
    augmented: tuple[np.ndarray, ...] = ()  # (N, F) features of each randomly shifted copy of the demos

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def history(self) -> int:
        """Steps in the feature history of a row (the "proprio" window)."""
        return len(self.episodes.windows["proprio"])

    @functools.cached_property
    def _first_row(self) -> np.ndarray:
        """(E,) row of each episode's step 0."""
        lens = [len(e) for e in self.episodes.episodes]
        return np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)

    def history_rows(self, rows: np.ndarray) -> np.ndarray:
        """(B,) rows -> (B, history) rows of the same episode's steps in the dataset's history window
        (earliest first, clipped at the episode start, as `EncoderHeadPolicy.act` online)."""
        offs = self.episodes.windows["proprio"]
        eps = self.episodes.episodes
        rows = np.asarray(rows, dtype=np.int64)
        return np.stack([self._first_row[self.demo[r]] + window_steps(int(self.step[r]), offs, len(eps[self.demo[r]]))
                         for r in rows]).reshape(len(rows), len(offs))


def window_key(window: WindowConfig) -> str:
    """'8f2s' (frames, stride) of the window; a single frame has no stride: '1f'."""
    return "1f" if window.frames == 1 else f"{window.frames}f{window.stride}s"


def build_dataset(encoder: Any, episodes: Sequence[Episode], window: WindowConfig, max_demos: int = 0,
                  history: int = 1, cache_root: str | Path | None = None, batch: int = 32,
                  chunk: int = 1, augment: int = 0, shift_pad: int = 4, augment_seed: int = 0) -> HeadDataset:
    """Cached features + proprio + actions of every step of `episodes` (from `read_demos`).

    `augment` > 0 adds that many randomly shifted copies of every camera video (`random_shift`,
    `shift_pad` px, copy k seeded by (augment_seed + k, episode, view)), embedded by the same
    streaming path *before* training and cached per (encoder, demos, window, pad, seed): the frozen
    encoder sees augmented pixels without a forward pass per training step.
    Bad episodes raise before anything is written to the cache."""
    from encoders.features import cached_arrays, default_cache_root

    window.validate()
    ds = EpisodeDataset(episodes, head_windows(window, history, chunk))
    _check_views(ds.episodes, window.views)
    rows = [f"{Path(ds.episodes[e].file).name}#{ds.episodes[e].source.rsplit(':', 1)[-1]}#{t}" for e, t in ds.index]
    index = pd.DataFrame({"path": rows})
    views = "+".join(v.split("_")[0] for v in window.views)
    enc_key = encoder_key(encoder) if window.views else "none"
    cache_dir = (Path(cache_root or default_cache_root()) / "features" / "policy_head" / enc_key
                 / demo_set_key(ds.episodes, max_demos) / f"{window_key(window)}-{views}")

    def compute(seed: int | None) -> dict[str, np.ndarray]:
        from tqdm import tqdm

        # the rollout's streaming path, over whole episodes: (T, V * D) per episode
        feats = []
        desc = f"features {encoder.registry_name}" + ("" if seed is None else f" shift{shift_pad} seed {seed}")
        for i, e in enumerate(tqdm(ds.episodes, desc=desc, unit="demo", leave=False)):
            videos = [e.data[v] if seed is None else random_shift(e.data[v], shift_pad, np.random.default_rng([seed, i, j]))
                      for j, v in enumerate(window.views)]
            feats.append(episode_features(encoder, videos, window.frames, window.stride, batch=batch))
        return {"features": np.concatenate(feats)}

    info = {"encoder": enc_key, "window": dataclasses.asdict(window), "max_demos": max_demos,
            "files": sorted({e.file for e in ds.episodes})}
    copies: list[np.ndarray] = []
    from_cache: list[bool] = []
    if not window.views:  # a blind head (encoder=none): proprio (+ instruction) only, nothing to embed
        augment, copies, from_cache = 0, [np.zeros((len(ds.index), 0), np.float32)], [True]
    for seed in [None, *range(augment_seed, augment_seed + augment)] if window.views else []:
        split = None if seed is None else f"shift{shift_pad}-seed{seed}"
        res_k = cached_arrays(cache_dir, split, index, ("features",), functools.partial(compute, seed),
                              {**info, "augment": None if seed is None else {"shift_pad": shift_pad, "seed": seed}})
        f_k = np.asarray(res_k.arrays["features"], dtype=np.float32)
        if not np.all(np.isfinite(f_k)):
            raise ValueError(f"encoder {encoder.registry_name!r} produced NaN/inf features for the demos ({cache_dir})")
        copies.append(f_k)
        from_cache.append(res_k.from_cache)
    feats = copies[0]
    proprio = _key_rows(ds, "proprio")[:, -1]  # offset 0: the current step's state
    actions = _key_rows(ds, "action")  # (N, chunk, A)
    if chunk == 1:
        actions = actions[:, 0]
    tasks = np.array([-1 if e.task_id is None else e.task_id for e in ds.episodes], np.int64)
    texts = list(dict.fromkeys(e.instruction for e in ds.episodes))
    per_episode = np.array([texts.index(e.instruction) for e in ds.episodes], np.int64)
    return HeadDataset(ds, feats, proprio.astype(np.float32), actions.astype(np.float32), ds.index[:, 0].copy(),
                       ds.index[:, 1].copy(), tasks[ds.index[:, 0]], all(from_cache), cache_dir,
                       tuple(texts), per_episode[ds.index[:, 0]], tuple(copies[1:]))
