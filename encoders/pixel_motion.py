"""Trainable motion from pixels: small frames, frame differences and the conv stem that reads them.

Issue 23's diagnosis (`encoders/probes/motion.py`, docs/results/roboact_diagnosis.md) found that a
small CNN trained on frame differences carries the action across unseen scenes (69-80 % held out)
where frozen ImageNet features do not (35-45 %). Two users share the parts here:

- the motion probe (`encoders/probes/motion.py`): one CNN over all differences of a clip;
- RoboAct-CLIP's `motion: diff` option (`encoders/roboact/model.py`): one token per frame step,
  fed to the Eq. 7 diff-transformer in place of the frozen-feature differences of Eq. 6;
- RoboAct-CLIP's `object_input: pixels` option: `ObjectStem` reads the first, middle and last small
  frame and the whole displacement, so the object is seen in colour where it moves.

Small frames are uint8 `(..., 3, s, s)`, area-resized from the clip, so the cached training frames
and the frames of a live stream are the same numbers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def shrink(frames: torch.Tensor, size: int) -> torch.Tensor:
    """`frames (..., 3, H, W) uint8` -> `(..., 3, size, size) uint8`, area-averaged (no resize at H = W = size)."""
    lead, (c, h, w) = frames.shape[:-3], frames.shape[-3:]
    if (h, w) == (size, size):
        return frames
    x = F.interpolate(frames.reshape(-1, c, h, w).float(), size=(size, size), mode="area")
    return x.round().clamp(0, 255).to(torch.uint8).reshape(*lead, c, size, size)


def conv_stem(in_ch: int, width: int) -> nn.Sequential:
    """`(B, in_ch, H, W)` -> `(B, 4 width, H/16, W/16)`: four stride-2 convs with GELUs."""
    w = width
    return nn.Sequential(nn.Conv2d(in_ch, w, 5, 2, 2), nn.GELU(), nn.Conv2d(w, 2 * w, 3, 2, 1), nn.GELU(),
                         nn.Conv2d(2 * w, 2 * w, 3, 2, 1), nn.GELU(), nn.Conv2d(2 * w, 4 * w, 3, 2, 1), nn.GELU())


def mean_max_pool(h: torch.Tensor) -> torch.Tensor:
    """`(B, C, h, w)` -> `(B, 2C)`: the mean (how much moved) and the max (the strongest local motion)."""
    return torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1)


POOLS = {"mean_max": 2, "moments": 4}  # pooling name -> output channels per feature channel


def moments_pool(h: torch.Tensor) -> torch.Tensor:
    """`(B, C, h, w)` -> `(B, 4C)`: mean, max, and each channel's first moments along x and y
    (coordinates in [-1, 1] from the grid centre).

    Mean and max forget where a response was: a response map and its mirror image pool alike, the
    moments differ in sign. Tried for the rotations' direction (clockwise and counterclockwise fields
    hold the same local motions at mirrored places); on the 8x world it lifted slide left / right
    instead and left the rotations wrong (docs/results/roboact_diagnosis.md).
    """
    _, _, hh, ww = h.shape
    y = torch.linspace(-1.0, 1.0, hh, dtype=h.dtype, device=h.device)[:, None] if hh > 1 else h.new_zeros(1, 1)
    x = torch.linspace(-1.0, 1.0, ww, dtype=h.dtype, device=h.device)[None, :] if ww > 1 else h.new_zeros(1, 1)
    return torch.cat([mean_max_pool(h), (h * x).mean((2, 3)), (h * y).mean((2, 3))], 1)


def pool_features(h: torch.Tensor, pool: str) -> torch.Tensor:
    """`(B, C, h, w)` -> `(B, POOLS[pool] * C)`."""
    return moments_pool(h) if pool == "moments" else mean_max_pool(h)


class MotionStem(nn.Module):
    """Per-step motion tokens: `frames (B, n, 3, s, s)` in [0, 1] -> `(B, n-1, d)`.

    Step i (i = 1..n-1) sees [f_i - f_(i-1), f_i - f_0]: the step's own motion (Eq. 6 in pixel
    space) and the motion so far, so the last token already holds the whole displacement. One CNN
    is shared by every step; a static background cancels in both differences. `pool` "moments" also
    keeps where each response was (`moments_pool`). `frame` True adds f_i itself (9 channels): a
    difference alone is the temporal derivative I_t, and the brightness-constancy equation
    I_x u + I_y v + I_t = 0 needs the image's own gradient to give the motion its sign, since a light
    object turning one way and a dark one turning the other leave the same differences.
    Measured on the 8x world (roboact_diagnosis.md): the rotation senses stayed as wrong; they are lost
    in the exo views, where the motion is a few pixels.
    """

    def __init__(self, dim: int, width: int = 16, pool: str = "mean_max", frame: bool = False) -> None:
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"motion pool {pool!r} is not one of {sorted(POOLS)}")
        self.pool, self.frame = pool, frame
        self.stem = conv_stem(9 if frame else 6, width)
        self.proj = nn.Linear(POOLS[pool] * 4 * width, dim)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        b, n, c, h, w = frames.shape
        parts = [frames[:, 1:] - frames[:, :-1], frames[:, 1:] - frames[:, :1]] + ([frames[:, 1:]] if self.frame else [])
        x = torch.cat(parts, 2)  # (B, n-1, 6 or 9, s, s)
        z = pool_features(self.stem(x.reshape(b * (n - 1), len(parts) * c, h, w)), self.pool)
        return self.proj(z).reshape(b, n - 1, -1)


OBJECT_POOLS = ("mean_max", "attn")
OBJECT_ATTN_HEADS = 2  # 2 heads x 4 width channels: the same 8 width features as mean_max, so the proj matches


def attention_pool(h: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
    """`h (B, C, h, w)`, `score (B, K, h, w)` -> `(B, K C)`: per head k, the mean of h weighted by
    softmax(score_k) over the grid cells."""
    a = score.flatten(2).softmax(-1)  # (B, K, hw)
    return torch.einsum("bkn,bcn->bkc", a, h.flatten(2)).flatten(1)


class ObjectStem(nn.Module):
    """The manipulated object from pixels: `frames (B, n, 3, s, s)` in [0, 1] -> `(B, d)`.

    Reads [f_0, f_(n//2), f_(n-1), f_(n-1) - f_0] (12 channels): the object's colour and shape in the
    frames and where the scene changed. `pool` "mean_max": the max keeps a small object's response,
    which a global mean dilutes (the frozen pooled features: 45-53 % held-out object,
    roboact_diagnosis.md), but it keeps a static distractor's as strongly. "attn": a 1x1 conv scores
    each grid cell and `attention_pool` averages the cells by those weights, so the stem can read the
    cell where the scene changed and leave out the distractors (random-coloured shapes, 1-3 a scene) and
    the textured table. Measured on the 8x world (roboact_diagnosis.md): it fits the objects more slowly
    than mean_max (a softmax starts as a plain mean), 64.8 against 77.3 % held out at 2000 steps.
    """

    def __init__(self, dim: int, width: int = 24, pool: str = "mean_max") -> None:
        super().__init__()
        if pool not in OBJECT_POOLS:
            raise ValueError(f"object pool {pool!r} is not one of {list(OBJECT_POOLS)}")
        self.stem = conv_stem(12, width)
        self.score = nn.Conv2d(4 * width, OBJECT_ATTN_HEADS, 1) if pool == "attn" else None
        self.proj = nn.Sequential(nn.Linear(8 * width, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        h = self.stem(ends_input(frames))
        return self.proj(mean_max_pool(h) if self.score is None else attention_pool(h, self.score(h)))


def ends_input(frames: torch.Tensor) -> torch.Tensor:
    """`frames (B, n, 3, s, s)` -> `(B, 12, s, s)`: [f_0, f_(n//2), f_(n-1), f_(n-1) - f_0]."""
    f0, fm, f1 = frames[:, 0], frames[:, frames.shape[1] // 2], frames[:, -1]
    return torch.cat([f0, fm, f1, f1 - f0], 1)
