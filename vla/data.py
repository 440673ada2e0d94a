"""Datasets of the VLA stages: stage-1 latents for stage 2, robot-demo windows for stage 3.

Stage 2 (`LatentSet`): one row per labelled clip = (first frame (H, W, 3) uint8, caption, latent
(D,) float32 normalised with the stage-1 mean/std, optional discrete codes (G,) int64). It reads the
folder written by vla/latents.py.

Stage 3 (`DemoSet`): robomimic/LIBERO hdf5 demos (envs/demos.py). A sample is the agentview frame at
step t (passed through the evaluator's protocol transform, envs.protocol.vla_image, so training and
evaluation see the same pixels), the instruction, the proprio vector at t (ee_pos 3 + ee axis-angle 3
+ gripper qpos 2 = the LIBERO env's `proprio`) and the action chunk a[t : t+K] (past the end the last
action repeats, as OpenVLA-OFT pads). Actions are normalised to [-1, 1] with per-dimension q01/q99
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

LATENTS_MANIFEST = "latents.json"
LATENTS_ARRAYS = "latents.npz"
PROPRIO_KEYS = ("ee_pos", "ee_ori", "gripper_states")  # 3 + 3 + 2 = envs.libero_env `proprio` (8,)


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
def find_demo_files(spec: str | Path | list) -> list[Path]:
    """A folder (every *.hdf5 below it), a file, or a comma-separated list of either -> sorted files."""
    parts = spec if isinstance(spec, list) else [p for p in str(spec).split(",") if p.strip()]
    files: list[Path] = []
    for p in map(Path, (str(s).strip() for s in parts)):
        if p.is_dir():
            found = sorted(p.rglob("*.hdf5"))
            if not found:
                raise FileNotFoundError(f"{p}: no *.hdf5 demo files in this folder")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"demo file not found: {p}")
    if not files:
        raise FileNotFoundError(f"no demo files in {spec!r}")
    return files


@dataclass
class Episode:
    """One demo, preprocessed. images (T, S, S, 3) uint8 (protocol transform applied); proprio (T, P)
    float32; actions (T, A) float64 raw env actions; instruction; source 'file:demo_i'."""

    images: np.ndarray
    proprio: np.ndarray
    actions: np.ndarray
    instruction: str
    source: str


def read_episodes(files: list[Path], image_size: int, center_crop: bool, max_demos: int = 0) -> list[Episode]:
    """Load every demo of `files` (at most `max_demos` per file, 0 = all), checking it on the way:
    a missing/unreadable file, missing keys or non-finite actions raise one error naming the file."""
    from envs.demos import DemoReader

    out: list[Episode] = []
    for f in files:
        try:
            reader = DemoReader(f)
        except FileNotFoundError:
            raise
        except (OSError, ValueError, KeyError) as e:
            raise ValueError(f"{f}: not a readable demo file ({type(e).__name__}: {e})") from None
        with reader:
            if len(reader) == 0:
                raise ValueError(f"{f}: holds no demos (data/demo_*)")
            n = len(reader) if max_demos <= 0 else min(max_demos, len(reader))
            for i in range(n):
                where = f"{f}:{reader.keys[i]}"
                try:
                    demo = reader[i]
                except (OSError, KeyError, ValueError) as e:
                    raise ValueError(f"{where}: unreadable demo ({type(e).__name__}: {e})") from None
                acts = np.asarray(demo.actions, dtype=np.float64)
                if acts.ndim != 2 or acts.shape[1] != protocol.ACTION_DIM or len(acts) == 0:
                    raise ValueError(f"{where}/actions: expected (T, {protocol.ACTION_DIM}), got {acts.shape}")
                if not np.all(np.isfinite(acts)):
                    bad = int(np.argwhere(~np.isfinite(acts))[0, 0])
                    raise ValueError(f"{where}/actions: non-finite action at step {bad}")
                missing = [k for k in ("agentview_rgb", *PROPRIO_KEYS) if k not in demo.obs]
                if missing:
                    raise ValueError(f"{where}/obs: missing {missing}")
                imgs = np.stack([protocol.vla_image(im, size=image_size, crop=center_crop)
                                 for im in demo.obs["agentview_rgb"]])
                prop = np.concatenate([np.asarray(demo.obs[k], np.float32).reshape(len(acts), -1)
                                       for k in PROPRIO_KEYS], axis=1)
                if not np.all(np.isfinite(prop)):
                    raise ValueError(f"{where}/obs: non-finite proprio values")
                out.append(Episode(imgs, prop, acts, demo.instruction or reader.instruction, where))
    return out


class DemoSet:
    """Windows (t, a[t:t+K]) over episodes; train/held-out split by demo (the last `val_demos` of
    every file are held out, so the held-out L1 measures generalisation to unseen demos)."""

    def __init__(self, episodes: list[Episode], chunk: int, stats: ActionStats | None = None,
                 proprio_stats: dict[str, list[float]] | None = None) -> None:
        if not episodes:
            raise ValueError("DemoSet: no episodes")
        self.episodes = episodes
        self.chunk = chunk
        acts = np.concatenate([e.actions for e in episodes])
        self.stats = stats or ActionStats.fit(acts)
        if proprio_stats is None:
            prop = np.concatenate([e.proprio for e in episodes])
            proprio_stats = {"mean": prop.mean(0).tolist(), "std": (prop.std(0) + 1e-6).tolist()}
        self.proprio_stats = proprio_stats
        # (episode, t) for every step: each is the start of one training window
        self.index = np.array([(i, t) for i, e in enumerate(episodes) for t in range(len(e.actions))], np.int64)

    def __len__(self) -> int:
        return len(self.index)

    def normalize_proprio(self, p: np.ndarray) -> np.ndarray:
        return ((p - np.asarray(self.proprio_stats["mean"])) / np.asarray(self.proprio_stats["std"])).astype(np.float32)

    def items(self, idx: np.ndarray) -> dict[str, Any]:
        """Windows `idx` (into self.index) -> {"images": (b, S, S, 3) uint8, "texts": b str,
        "proprio": (b, P) float32 normalised, "actions": (b, K, A) float32 normalised}."""
        imgs, texts, prop, acts = [], [], [], []
        for e_i, t in self.index[idx]:
            e = self.episodes[e_i]
            steps = np.minimum(np.arange(t, t + self.chunk), len(e.actions) - 1)  # pad with the last action
            imgs.append(e.images[t])
            texts.append(e.instruction)
            prop.append(e.proprio[t])
            acts.append(e.actions[steps])
        return {"images": np.stack(imgs), "texts": texts, "proprio": self.normalize_proprio(np.stack(prop)),
                "actions": self.stats.normalize(np.stack(acts))}

    def batch(self, batch: int, seed: int, step: int, rank: int = 0, world: int = 1) -> dict[str, Any]:
        return self.items(batch_indices(len(self), batch, seed, step, rank, world))


def split_episodes(episodes: list[Episode], val_demos: int) -> tuple[list[Episode], list[Episode]]:
    """Hold out the last `val_demos` demos of each file (grouped by the file part of `source`)."""
    by_file: dict[str, list[Episode]] = {}
    for e in episodes:
        by_file.setdefault(e.source.rsplit(":", 1)[0], []).append(e)
    train, val = [], []
    for eps in by_file.values():
        k = min(val_demos, len(eps) - 1) if val_demos > 0 else 0
        train += eps[: len(eps) - k]
        val += eps[len(eps) - k:]
    return train, val
