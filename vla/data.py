"""Datasets of the VLA stages: stage-1 latents for stage 2, robot-demo windows for stage 3.

Stage 2 (`LatentSet`): one row per labelled clip = (first frame (H, W, 3) uint8, caption, latent
(D,) float32 normalised with the stage-1 mean/std, optional discrete codes (G,) int64). It reads the
folder written by vla/latents.py.

Stage 3 (`DemoSet`): demos read as envs.episodes episodes (hdf5 or LeRobot, `read_demos`). A sample
is the frame at step t of each configured camera (`cameras`, default agentview only; vla/views.py),
each passed through the evaluator's protocol transform, envs.protocol.vla_image, so training and
evaluation see the same pixels, the instruction, the
proprio vector at t (envs.protocol.PROPRIO_KEYS: ee_pos 3 + ee axis-angle 3 + gripper qpos 2 = the
LIBERO env's `proprio`) and the action chunk a[t : t+K] (past the end the last action repeats, as
OpenVLA-OFT pads): windows {camera: [0] per camera, "proprio": [0], "action": range(K)} of an
envs.episodes.EpisodeDataset. Actions are normalised to [-1, 1] with per-dimension q01/q99
statistics (OpenVLA's BOUNDS_Q99), which are stored with the checkpoint and undone at inference.

Batches are a pure function of (seed, step, rank, world): every rank draws the same global batch and
takes its `rank_slice`, so data-parallel runs split the data and `--resume` sees identical batches.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from configs.training import rank_slice
from envs import protocol
from envs.episodes import Episode, EpisodeDataset, check_episode, episode_files, read_episodes
from vla.views import DEFAULT_CAMERAS, check_cameras

LATENTS_MANIFEST = "latents.json"
LATENTS_ARRAYS = "latents.npz"


def batch_indices(n: int, batch: int, seed: int, step: int, rank: int = 0, world: int = 1) -> np.ndarray:
    """The indices (into a set of `n` items) this rank uses at `step`: a global batch of `batch`
    items drawn from (seed, step) alone, then this rank's contiguous part of it."""
    rng = np.random.default_rng([seed, step])
    idx = rng.choice(n, size=batch, replace=n < batch)
    return idx[rank_slice(batch, rank, world)]


# -- action statistics (q01 / q99) --------------------------------------------------------------
@dataclass
class ActionStats:
    """Per-dimension 1st/99th percentiles; `normalize` maps [q01, q99] onto [-1, 1] (clipped), the
    OpenVLA "bounds_q99" scheme. Dimensions with q99 - q01 < eps (constant) pass through unchanged."""

    q01: np.ndarray  # (A,)
    q99: np.ndarray  # (A,)
    eps: float = 1e-6

    @classmethod
    def fit(cls, actions: np.ndarray) -> ActionStats:
        """actions (N, A) -> statistics."""
        a = np.asarray(actions, dtype=np.float64)
        return cls(q01=np.quantile(a, 0.01, axis=0), q99=np.quantile(a, 0.99, axis=0))

    @property
    def mask(self) -> np.ndarray:
        return (self.q99 - self.q01) > self.eps

    def normalize(self, a: np.ndarray) -> np.ndarray:
        """(..., A) raw -> (..., A) in [-1, 1]: 2 (a - q01) / (q99 - q01) - 1, clipped."""
        a = np.asarray(a, dtype=np.float64)
        span = np.where(self.mask, self.q99 - self.q01, 1.0)
        out = np.clip(2.0 * (a - self.q01) / span - 1.0, -1.0, 1.0)
        return np.where(self.mask, out, a).astype(np.float32)

    def unnormalize(self, x: np.ndarray) -> np.ndarray:
        """Inverse of `normalize` on [-1, 1]: (x + 1) / 2 (q99 - q01) + q01."""
        x = np.asarray(x, dtype=np.float64)
        out = 0.5 * (np.clip(x, -1.0, 1.0) + 1.0) * (self.q99 - self.q01) + self.q01
        return np.where(self.mask, out, x)

    def to_dict(self) -> dict[str, list[float]]:
        return {"q01": [float(v) for v in self.q01], "q99": [float(v) for v in self.q99]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ActionStats:
        return cls(q01=np.asarray(d["q01"], dtype=np.float64), q99=np.asarray(d["q99"], dtype=np.float64))


# -- stage 2: clips with latents ------------------------------------------------------------------
@dataclass
class LatentSet:
    """Everything stage 2 trains on. frames (N, H, W, 3) uint8; captions N str; latents (N, D) float32
    (raw encoder output); mean/std (D,); codes (N, G) int64 or None (discrete encoders)."""

    frames: np.ndarray
    captions: list[str]
    latents: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    meta: dict[str, Any]
    codes: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.captions)

    @property
    def dim(self) -> int:
        return int(self.latents.shape[1])

    @property
    def codebook_size(self) -> int:
        return int(self.meta.get("codebook_size", 0)) if self.codes is not None else 0

    def normalized(self, idx: np.ndarray) -> np.ndarray:
        """(b, D) latents standardised with the stage-1 statistics: (z - mean) / std."""
        return ((self.latents[idx] - self.mean) / self.std).astype(np.float32)

    def batch(self, batch: int, seed: int, step: int, rank: int = 0, world: int = 1) -> dict[str, Any]:
        """{"images": (b, H, W, 3) uint8, "texts": b str, "targets": (b, D) float32 normalised,
        "codes": (b, G) int64 or None} for this rank's part of global batch `step`."""
        idx = batch_indices(len(self), batch, seed, step, rank, world)
        return {"images": self.frames[idx], "texts": [self.captions[i] for i in idx],
                "targets": self.normalized(idx), "codes": None if self.codes is None else self.codes[idx]}


def load_latents(path: str | Path) -> LatentSet:
    """Read a stage-1 folder (latents.json + latents.npz); one error naming the file if damaged."""
    d = Path(path)
    man, arr = d / LATENTS_MANIFEST, d / LATENTS_ARRAYS
    if not man.is_file() or not arr.is_file():
        raise FileNotFoundError(f"{d}: no {LATENTS_MANIFEST}/{LATENTS_ARRAYS} (write them with "
                                "`python vla/latents.py --encoder ... --data ... --out DIR`)")
    try:
        meta = json.loads(man.read_text())
        with np.load(arr, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, json.JSONDecodeError) as e:
        raise ValueError(f"{d}: damaged latents file ({type(e).__name__}: {e})") from None
    for key in ("frames", "captions", "latents"):
        if key not in arrays:
            raise ValueError(f"{arr}: missing array {key!r}")
    lat = arrays["latents"].astype(np.float32)
    if not np.all(np.isfinite(lat)):
        raise ValueError(f"{arr}: 'latents' holds non-finite values")
    return LatentSet(frames=arrays["frames"], captions=[str(c) for c in arrays["captions"]], latents=lat,
                     mean=np.asarray(meta["mean"], np.float32), std=np.asarray(meta["std"], np.float32),
                     meta=meta, codes=arrays["codes"].astype(np.int64) if "codes" in arrays else None)


# -- stage 3: robot demos -------------------------------------------------------------------------
LOW_DIM_KEYS = ("proprio", "action")  # what stage 3 reads of a demo besides its cameras (envs.episodes keys)


def read_demos(spec: str | Path | list, image_size: int, center_crop: bool, max_demos: int = 0,
               cameras: tuple[str, ...] | list[str] = DEFAULT_CAMERAS) -> list[Episode]:
    """Episodes of every demo source in `spec` (envs.episodes.episode_files; `max_demos` per file, 0 =
    all) with data <camera> (T, S, S, 3) uint8 for each of `cameras`, already through the protocol
    transform (S = image_size), proprio (T, 8) float32, action (T, 7) float32.

    Read file by file and transformed right away, so only one file's full-resolution frames are held
    at a time; a demo without one of the cameras, or of another action/proprio size, is one error
    naming file:demo."""
    cams = check_cameras(cameras)
    keys = (*cams, *LOW_DIM_KEYS)
    zero = np.zeros(1, np.int64)
    out: list[Episode] = []
    for f in episode_files(spec):
        for e in read_episodes(f, keys=keys, max_demos=max_demos):
            check_episode(e, {k: zero for k in keys})  # a missing key: one error naming it
            for k, dim, what in (("action", protocol.ACTION_DIM, "LIBERO's OSC_POSE delta + gripper"),
                                 ("proprio", protocol.PROPRIO_DIM, "envs.protocol.PROPRIO_KEYS")):
                if e.data[k].shape[1:] != (dim,):
                    raise ValueError(f"{e.source}: {k} has shape {e.data[k].shape}, expected (T, {dim}) ({what})")
            # once per episode, so training sees exactly the pixels the evaluator feeds the policy
            for c in cams:
                e.data[c] = np.stack([protocol.vla_image(im, size=image_size, crop=center_crop) for im in e.data[c]])
            out.append(e)
    return out


class DemoSet:
    """Stage-3 samples over episodes (`read_demos`): one per step t of every episode, read through
    envs.episodes.EpisodeDataset with windows <camera>/proprio [0] and action [0, K): the chunk
    a[t : t+K] repeats the last action past the end (EpisodeDataset's edge padding, as OpenVLA-OFT).

    stats / proprio_stats default to those of these episodes (the training set); held-out sets pass
    the training set's. Train/held-out split: envs.episodes.split_episodes (last demos of each file)."""

    def __init__(self, episodes: list[Episode], chunk: int, stats: ActionStats | None = None,
                 proprio_stats: dict[str, list[float]] | None = None,
                 cameras: tuple[str, ...] | list[str] = DEFAULT_CAMERAS) -> None:
        self.cameras = check_cameras(cameras)
        self.dataset = EpisodeDataset(episodes, {**{c: [0] for c in self.cameras}, "proprio": [0],
                                                 "action": range(0, chunk)})
        self.episodes = self.dataset.episodes
        self.chunk = chunk
        self.stats = stats or ActionStats.fit(np.concatenate([e.data["action"] for e in self.episodes]))
        if proprio_stats is None:
            prop = np.concatenate([e.data["proprio"] for e in self.episodes])
            proprio_stats = {"mean": prop.mean(0).tolist(), "std": (prop.std(0) + 1e-6).tolist()}
        self.proprio_stats = proprio_stats
        self.index = self.dataset.index  # (N, 2): (episode, t) of every sample

    def __len__(self) -> int:
        return len(self.index)

    def normalize_proprio(self, p: np.ndarray) -> np.ndarray:
        """(..., P) raw -> (..., P) float32 standardised with proprio_stats."""
        return ((p - np.asarray(self.proprio_stats["mean"])) / np.asarray(self.proprio_stats["std"])).astype(np.float32)

    def items(self, idx: np.ndarray) -> dict[str, Any]:
        """Samples `idx` (into self.index) -> {"images": (b, V, S, S, 3) uint8 (V = len(cameras), in
        camera order), "texts": b str, "proprio": (b, P) float32 normalised, "actions": (b, K, A)
        float32 normalised}."""
        b = self.dataset.batch(idx)
        return {"images": np.stack([b[c][:, 0] for c in self.cameras], axis=1), "texts": b["instruction"],
                "proprio": self.normalize_proprio(b["proprio"][:, 0]), "actions": self.stats.normalize(b["action"])}

    def batch(self, batch: int, seed: int, step: int, rank: int = 0, world: int = 1) -> dict[str, Any]:
        """`items` of this rank's part of global batch `step` (a pure function of the arguments)."""
        return self.items(batch_indices(len(self), batch, seed, step, rank, world))
