"""Probe inputs: frozen per-frame patch tokens of a clip index, frame subsampling, order corruptions.

Backbone tokens come from the shared feature cache (`encoders.features.backbone_features`), so a
dataset goes through a backbone once. An ActionEncoder with `tokens(video) -> (B, N, D)` is run on
the fly instead (its tokens depend on the frame order, so the corruption is applied to the video).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

ORDERS = ("correct", "shuffle", "reverse")


@dataclasses.dataclass
class ProbeData:
    """One split: `tokens (M, T, N, C)` float16/32 (or a callable per order for encoders), labels `(M,)`."""

    tokens: np.ndarray | torch.Tensor
    labels: np.ndarray
    classes: list[str]
    index: object  # the split's index rows (pandas DataFrame), aligned with tokens


def frame_indices(available: int, frames: int) -> np.ndarray:
    """`frames` uniformly spaced indices into `available` frames; too many frames is an error naming `frames`."""
    if not isinstance(frames, int) or frames < 1:
        raise ValueError(f"frames: must be a positive integer, got {frames!r}")
    if frames > available:
        raise ValueError(f"frames: asked for {frames} frames but the clips have only {available}; "
                         f"use frames <= {available}")
    return np.round(np.linspace(0, available - 1, frames)).astype(int)


def order_permutation(order: str, frames: int, rng: np.random.Generator) -> np.ndarray:
    """Frame permutation of Table 2: identity, a random shuffle (never the identity for T > 1), or reversed."""
    if order == "correct":
        return np.arange(frames)
    if order == "reverse":
        return np.arange(frames)[::-1].copy()
    if order == "shuffle":
        if frames == 1:
            return np.arange(1)
        while True:
            p = rng.permutation(frames)
            if (p != np.arange(frames)).any():
                return p
    raise ValueError(f"order: {order!r} is not one of {list(ORDERS)}")


def apply_order(tokens: torch.Tensor, order: str, seed: int = 0) -> torch.Tensor:
    """Reorder the frames (dim 1) of `tokens (M, T, ...)` per clip; shuffles are seeded and per clip."""
    if order == "correct":
        return tokens
    rng = np.random.default_rng(seed)
    perms = np.stack([order_permutation(order, tokens.shape[1], rng) for _ in range(tokens.shape[0])])
    idx = torch.from_numpy(perms).long()
    idx = idx.view(*idx.shape, *([1] * (tokens.ndim - 2))).expand_as(tokens)
    return torch.gather(tokens, 1, idx)


def label_ids(index, meta: dict, label: str = "action") -> tuple[np.ndarray, list[str]]:
    """Integer labels from the meta.json vocabulary (ids agree across splits)."""
    classes = list(meta["vocab"][label])
    lookup = {c: i for i, c in enumerate(classes)}
    return np.array([lookup[v] for v in index[label]], dtype=np.int64), classes


def backbone_tokens(backbone, root: str | Path, split: str, frames: int, views: tuple[str, ...] | None,
                    cache_root: str | None = None, token_grid: int = 0) -> tuple[np.ndarray, object]:
    """Cached patch tokens of a split, `frames` uniformly subsampled: `(M, frames, N, C)` float16.

    `token_grid` g > 0 average-pools each frame's square token grid to g x g (a CPU concession).
    A backbone whose tokens are missing or not `(M, T, N, C)` is an error naming `backbone`.
    """
    from encoders.features import backbone_features

    res = backbone_features(backbone, root, split=split, views=views, tokens=True, cache_root=cache_root)
    tok = res.arrays.get("tokens")
    if tok is None or tok.ndim != 4 or tok.shape[2] < 1:
        shape = None if tok is None else tuple(tok.shape)
        raise ValueError(f"backbone: {backbone.spec!r} gives no per-frame patch tokens (got {shape}); "
                         "probes need tokens (M, T, N, C)")
    idx = frame_indices(tok.shape[1], frames)
    out = np.asarray(tok[:, idx])
    if token_grid:
        out = pool_grid(out, token_grid)
    return out, res.index


def pool_grid(tok: np.ndarray, grid: int) -> np.ndarray:
    """`(M, T, N, C)` with N = s*s -> `(M, T, grid*grid, C)` by adaptive average pooling."""
    m, t, n, c = tok.shape
    s = int(round(n ** 0.5))
    if s * s != n:
        raise ValueError(f"token_grid: tokens per frame {n} are not a square grid")
    x = torch.from_numpy(np.ascontiguousarray(tok)).float().reshape(m * t, s, s, c).permute(0, 3, 1, 2)
    x = torch.nn.functional.adaptive_avg_pool2d(x, grid)
    return x.permute(0, 2, 3, 1).reshape(m, t, grid * grid, c).numpy().astype(tok.dtype)


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std `(C,)` of tokens `(..., C)` (the train split's, for `standardize`)."""
    flat = x.reshape(-1, x.shape[-1]).float()
    return flat.mean(0), flat.std(0).clamp_min(1e-3)


@torch.no_grad()
def encoder_tokens(encoder, root: str | Path, index, frames: int, order: str, seed: int = 0,
                   batch_size: int = 8) -> torch.Tensor:
    """`encoder.tokens(video)` for every row of `index` with frames subsampled and reordered: `(M, N, D)`."""
    from encoders.features import iter_clip_batches

    if not callable(getattr(encoder, "tokens", None)):
        raise ValueError(f"encoder: {type(encoder).__name__} has no tokens(video) -> (B, N, D) method; "
                         "probes need token outputs")
    out = []
    idx = None
    for start, video in iter_clip_batches(root, index, batch_size):
        if idx is None:
            idx = torch.from_numpy(frame_indices(video.shape[1], frames))
        v = apply_order(video[:, idx], order, seed + start)
        tk = encoder.tokens(v)
        if tk.ndim != 3:
            raise ValueError(f"encoder: tokens(video) must return (B, N, D), got {tuple(tk.shape)}")
        out.append(tk.float())
    return torch.cat(out)
