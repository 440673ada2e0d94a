"""Video input checks and the one frame sampler every encoder uses.

A leaf module (torch and numpy only): `encoders.base`, `encoders.backbones` and `encoders.flow` all
read it, so none of them has to import another for these helpers. `encoders.base` re-exports the
three names.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def frame_indices(t0: int, n: int) -> np.ndarray:
    """Indices of `n` uniformly spaced frames (first and last included) out of a clip of `t0`.

    The one frame sampler of every encoder. A clip shorter than `n` repeats frames (nearest
    neighbour in time) rather than failing: real datasets hold short clips, and a repeated frame
    is a zero-motion step, which flow and difference features read correctly."""
    if t0 < 1 or n < 1:
        raise ValueError(f"frame_indices: need t0 >= 1 and n >= 1, got t0={t0}, n={n}")
    return np.round(np.linspace(0, t0 - 1, n)).astype(np.int64)


def sample_frames(video: torch.Tensor, n: int) -> torch.Tensor:
    """`(B, T0, ...)` -> `(B, n, ...)` with `frame_indices(T0, n)`."""
    return video[:, torch.from_numpy(frame_indices(video.shape[1], n))]


def check_video(video: Any, name: str = "video") -> None:
    """Raise a ValueError/TypeError naming the problem unless `video` is `(B, T, 3, H, W)` uint8."""
    if not isinstance(video, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor (B, T, C, H, W) uint8, got {type(video).__name__}")
    if video.dtype != torch.uint8:
        raise TypeError(f"{name}: expected dtype uint8 (raw pixels 0..255), got {video.dtype}")
    if video.ndim != 5:
        raise ValueError(f"{name}: expected 5 dims (B, T, C, H, W), got shape {tuple(video.shape)}")
    if video.shape[2] != 3:
        raise ValueError(f"{name}: expected C=3 at dim 2 of (B, T, C, H, W), got shape {tuple(video.shape)}"
                         + (" (channels-last? permute to (B, T, C, H, W))" if video.shape[-1] == 3 else ""))
    if min(video.shape) == 0:
        raise ValueError(f"{name}: empty dimension in shape {tuple(video.shape)}")
