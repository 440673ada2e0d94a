"""Demos -> (frozen features, proprio, action) training rows for a policy head, with a feature cache.

Every demo step t gets one *window* per camera view: `frames` frames ending at t, `stride` steps
apart (indices before the demo start repeat frame 0), exactly what `EncoderHeadPolicy.act` builds online.
The frozen encoder embeds each window (`encode(video (B, T, C, H, W) uint8) -> (B, D)`), and the
views' embeddings are concatenated. Features are cached with the project's feature cache
(`encoders.features.cached_arrays`: atomic arrays, a json marker written last, memory-mapped on
reuse) under

    <cache root>/features/policy_head/<encoder key>/<demo set key>/<frames>f<stride>s-<views>/all.features.npy

so training heads for several seeds, budgets or head kinds embeds a demo set once per encoder.
The encoder key hashes its config and weights, the demo set key the demo files' bytes.

Proprio is rebuilt from the demo's obs keys in the env's own order (`PROPRIO_KEYS`), so the head
sees the same vector in training and in `EncoderHeadPolicy.act` (obs["proprio"]).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

# obs keys whose concatenation equals the env's obs["proprio"]
PROPRIO_KEYS = {
    "kitchen": ("joint_states", "gripper_states", "ee_pos"),  # envs/kitchen.py: q (9) + ee pos (3)
    "libero": ("ee_pos", "ee_ori", "gripper_states"),  # envs/libero_env.py: eef pos + axis-angle + gripper
}
VIEW_KEYS = {"agentview": "agentview_rgb", "second": "eye_in_hand_rgb"}


@dataclasses.dataclass
class WindowConfig:
    frames: int = 8  # frames per window fed to the encoder
    stride: int = 2  # env steps between window frames
    views: tuple[str, ...] = ("agentview_rgb", "eye_in_hand_rgb")

    def validate(self) -> None:
        if self.frames < 1 or self.stride < 1:
            raise ValueError(f"window frames and stride must be >= 1, got {self.frames}, {self.stride}")
        if not self.views:
            raise ValueError("at least one camera view is needed")
        for v in self.views:
            if v not in VIEW_KEYS.values():
                raise ValueError(f"unknown view {v!r}; use {tuple(VIEW_KEYS.values())}")


def window_indices(t: int, frames: int, stride: int) -> np.ndarray:
    """Indices of the window ending at step t (clipped at 0)."""
    return np.maximum(t - stride * np.arange(frames - 1, -1, -1), 0)


@dataclasses.dataclass
class DemoSteps:
    """One demo's arrays: views[key] (T, H, W, 3) uint8, proprio (T, P), actions (T, A)."""

    file: str
    key: str
    task_id: int
    views: dict[str, np.ndarray]
    proprio: np.ndarray
    actions: np.ndarray


def demo_files(demos: str | Path, env: str, task_ids: list[int] | None, suite: str | None = None) -> dict[int, Path]:
    """Demo files under `demos` (recursively) for the requested tasks, by task id. A requested task
    without a file is an error naming it."""
    import h5py

    root = Path(demos)
    if not root.exists():
        raise FileNotFoundError(f"demo folder not found: {root}")
    files = [root] if root.is_file() else sorted(root.rglob("*.hdf5"))
    found: dict[int, Path] = {}
    for f in files:
        try:
            with h5py.File(f, "r") as h:
                args = json.loads(h["data"].attrs.get("env_args", "{}"))
        except (OSError, KeyError, json.JSONDecodeError) as e:
            raise ValueError(f"{f}: not a readable demo file ({type(e).__name__}: {e})") from None
        f_suite = args.get("suite", "")
        if env == "kitchen" and f_suite != "kitchen":
            continue
        if env == "libero" and (f_suite == "kitchen" or (suite and f_suite != suite)):
            continue
        tid = args.get("task_id")
        if tid is None:
            continue
        if task_ids is None or int(tid) in task_ids:
            found[int(tid)] = f
    missing = [t for t in (task_ids or []) if t not in found]
    if missing or not found:
        raise FileNotFoundError(f"{root}: no {env}{' ' + suite if suite else ''} demo file for task(s) "
                                f"{missing or task_ids}; found tasks {sorted(found)}")
    return found


def load_demos(files: dict[int, Path], env: str, views: tuple[str, ...], max_demos: int = 0) -> list[DemoSteps]:
    """Read and validate demos (missing keys, NaNs, length mismatches -> an error naming file and demo)."""
    from envs.demos import DemoReader

    out = []
    need = (*views, *PROPRIO_KEYS[env])
    for tid, f in sorted(files.items()):
        with DemoReader(f) as r:
            if len(r) == 0:
                raise ValueError(f"{f}: holds no demos")
            for i in range(min(len(r), max_demos) if max_demos else len(r)):
                d = r[i]
                where = f"{f} {r.keys[i]}"
                missing = [k for k in need if k not in d.obs]
                if missing:
                    raise ValueError(f"{where}: missing obs key(s) {missing} (need {list(need)})")
                proprio = np.concatenate([np.asarray(d.obs[k], np.float32).reshape(len(d), -1)
                                          for k in PROPRIO_KEYS[env]], axis=1)
                acts = np.asarray(d.actions, np.float32)
                for name, arr in (("actions", acts), ("proprio", proprio)):
                    if not np.all(np.isfinite(arr)):
                        raise ValueError(f"{where}: {name} contain NaN/inf")
                if acts.ndim != 2 or len(acts) == 0:
                    raise ValueError(f"{where}: actions have shape {acts.shape}, expected (T, A) with T > 0")
                for v in views:
                    if d.obs[v].ndim != 4 or d.obs[v].shape[-1] != 3 or d.obs[v].dtype != np.uint8:
                        raise ValueError(f"{where}: obs/{v} has shape {d.obs[v].shape} {d.obs[v].dtype}, "
                                         "expected (T, H, W, 3) uint8")
                out.append(DemoSteps(str(f), r.keys[i], tid, {v: d.obs[v] for v in views}, proprio, acts))
    return out


def encoder_key(encoder: Any) -> str:
    """`<registered name>-<sha1 of config + weights>`: a changed encoder never reuses stale features."""
    h = hashlib.sha1(json.dumps(encoder.config_dict(), sort_keys=True, default=str).encode())
    for k, v in sorted(encoder.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return f"{encoder.registry_name or type(encoder).__name__}-{h.hexdigest()[:10]}"


def demo_set_key(files: dict[int, Path], max_demos: int) -> str:
    h = hashlib.sha1(f"max{max_demos}".encode())
    for tid, f in sorted(files.items()):
        h.update(f"{tid}:{Path(f).name}".encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:12]


def embed_windows(encoder: Any, frames: np.ndarray, idx: np.ndarray, batch: int = 32) -> np.ndarray:
    """frames (T, H, W, 3) uint8, idx (N, n) window indices -> (N, D) float32 embeddings."""
    out = []
    with torch.no_grad():
        for s in range(0, len(idx), batch):
            w = frames[idx[s : s + batch]]  # (B, n, H, W, 3)
            video = torch.from_numpy(np.ascontiguousarray(w)).permute(0, 1, 4, 2, 3).contiguous()
            out.append(encoder.encode(video).float().cpu().numpy())
    return np.concatenate(out).astype(np.float32)


@dataclasses.dataclass
class HeadDataset:
    features: np.ndarray  # (N, F)
    proprio: np.ndarray  # (N, P)
    actions: np.ndarray  # (N, A)
    demo: np.ndarray  # (N,) demo index
    step: np.ndarray  # (N,) step within the demo
    task: np.ndarray  # (N,) task id
    from_cache: bool
    cache_dir: Path

    def __len__(self) -> int:
        return len(self.actions)

    def history_rows(self, rows: np.ndarray, history: int) -> np.ndarray:
        """(B,) rows -> (B, history) rows of the same demo's earlier steps (clipped at its start)."""
        offs = np.arange(history - 1, -1, -1)
        back = np.minimum(offs[None, :], self.step[rows][:, None])
        return rows[:, None] - back


def build_dataset(encoder: Any, demos: list[DemoSteps], window: WindowConfig, files: dict[int, Path],
                  max_demos: int = 0, cache_root: str | Path | None = None, batch: int = 32) -> HeadDataset:
    """Cached features + proprio + actions of every demo step."""
    from encoders.features import cached_arrays, default_cache_root

    window.validate()
    rows = [f"{Path(d.file).name}#{d.key}#{t}" for d in demos for t in range(len(d.actions))]
    index = pd.DataFrame({"path": rows})
    views = "+".join(v.split("_")[0] for v in window.views)
    cache_dir = (Path(cache_root or default_cache_root()) / "features" / "policy_head" / encoder_key(encoder)
                 / demo_set_key(files, max_demos) / f"{window.frames}f{window.stride}s-{views}")

    def compute() -> dict[str, np.ndarray]:
        from tqdm import tqdm

        feats = []
        for d in tqdm(demos, desc=f"features {encoder.registry_name}", unit="demo", leave=False):
            T = len(d.actions)
            idx = np.stack([window_indices(t, window.frames, window.stride) for t in range(T)])
            feats.append(np.concatenate([embed_windows(encoder, d.views[v], idx, batch) for v in window.views], 1))
        return {"features": np.concatenate(feats)}

    info = {"encoder": encoder_key(encoder), "window": dataclasses.asdict(window), "max_demos": max_demos,
            "files": {str(k): str(v) for k, v in files.items()}}
    res = cached_arrays(cache_dir, None, index, ("features",), compute, info)
    feats = np.asarray(res.arrays["features"], dtype=np.float32)
    if not np.all(np.isfinite(feats)):
        raise ValueError(f"encoder {encoder.registry_name!r} produced NaN/inf features for the demos ({cache_dir})")
    demo_idx = np.concatenate([np.full(len(d.actions), i) for i, d in enumerate(demos)])
    step = np.concatenate([np.arange(len(d.actions)) for d in demos])
    task = np.concatenate([np.full(len(d.actions), d.task_id) for d in demos])
    return HeadDataset(feats, np.concatenate([d.proprio for d in demos]), np.concatenate([d.actions for d in demos]),
                       demo_idx, step, task, res.from_cache, cache_dir)
