"""Baseline action encoders available from day one: `backbone_mean`, `backbone_spatial`, `flow_mean`, `random`.

They need no training; they bound what a learned action encoder should beat on the retrieval
benchmark (frozen appearance features, raw motion statistics, chance).
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from encoders.backbones import build_backbone
from encoders.base import ActionEncoder, register_encoder
from encoders.flow import FLOW_METHODS, compute_flow, compute_flow_batch


@dataclasses.dataclass
class BackboneMeanConfig:
    """Mean over frames of a frozen backbone's pooled frame features."""

    backbone: str = "efficientnet_lite0"
    image_size: int = 0  # 0: the backbone's default input size
    frame_batch: int = 64  # frames per backbone forward pass

    def validate(self) -> None:
        if self.image_size < 0 or self.frame_batch < 1:
            raise ValueError(f"backbone_mean: image_size must be >= 0 and frame_batch >= 1, got {self}")


@register_encoder("backbone_mean")
class BackboneMeanEncoder(ActionEncoder):
    """`(B, T, C, H, W) uint8` -> backbone pooled features `(B, T, C')` -> mean over T -> `(B, C')`."""

    config_cls = BackboneMeanConfig

    def __init__(self, cfg: BackboneMeanConfig):
        super().__init__(cfg)
        self.dim = self.backbone().dim

    def backbone(self):
        # frozen, outside the state dict (ActionEncoder.frozen): a saved backbone_mean holds no weights
        return self.frozen("backbone", lambda: build_backbone(self.cfg.backbone, image_size=self.cfg.image_size or None))

    def _encode(self, video: torch.Tensor) -> torch.Tensor:
        _, pooled = self.backbone().extract(video, batch_size=self.cfg.frame_batch, tokens=False)
        return pooled.mean(1)

    # streaming hooks (encoders/base.py): every frame's pooled features, averaged per window
    def stream_positions(self, window: int) -> np.ndarray:
        return np.arange(window)

    def frame_work(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """`frames (M, 3, H, W) uint8` -> `pooled (M, C)`."""
        _, pooled = self.backbone().extract(frames[None], batch_size=self.cfg.frame_batch, tokens=False)
        return {"pooled": pooled[0]}

    def encode_from_work(self, frames: dict[str, torch.Tensor], pairs: dict[str, torch.Tensor] | None) -> torch.Tensor:
        return frames["pooled"].mean(1)

    def embed_dataset(self, root, split=None, views=None, batch_size=8, cache_root=None):
        # reuse the frozen-feature cache: the backbone runs once per dataset, not once per evaluation
        from encoders.features import backbone_features

        res = backbone_features(self.backbone(), root, split, views, cache_root=cache_root, batch_size=batch_size,
                                frame_batch=self.cfg.frame_batch)
        return res.index, np.asarray(res.arrays["pooled"], dtype=np.float32).mean(1)


def spatial_softmax(tokens: torch.Tensor) -> torch.Tensor:
    """`tokens (M, N, C)` on a square grid (N = g * g, row-major) -> `(M, 2C)` expected (x, y) in [-1, 1]
    of each channel's softmax over the grid (Levine et al. 2016's spatial softmax, parameter-free)."""
    m, n, c = tokens.shape
    g = int(round(n**0.5))
    if g * g != n:
        raise ValueError(f"spatial softmax: {n} tokens are no square grid")
    lin = torch.linspace(-1.0, 1.0, g, dtype=tokens.dtype, device=tokens.device)
    ys, xs = torch.meshgrid(lin, lin, indexing="ij")
    att = tokens.float().softmax(dim=1)  # (M, N, C) over positions
    x = (att * xs.reshape(1, n, 1)).sum(1)
    y = (att * ys.reshape(1, n, 1)).sum(1)
    return torch.cat([x, y], dim=1)


@register_encoder("backbone_spatial")
class BackboneSpatialEncoder(BackboneMeanEncoder):
    """`backbone_mean` plus where each channel fires: per frame [pooled `(C,)`, spatial-softmax keypoints
    `(2C,)`] over the backbone's token grid, averaged over T -> `(B, 3C)`. The pooled embedding says what
    is in view; the keypoints say where (the spatial features of issue 22's ablation)."""

    def __init__(self, cfg: BackboneMeanConfig):
        super().__init__(cfg)
        self.dim = 3 * self.backbone().dim

    def _frames(self, video: torch.Tensor) -> torch.Tensor:
        """`(B, T, C, H, W) uint8` -> `(B, T, 3C')` per-frame [pooled, keypoints]."""
        tokens, pooled = self.backbone().extract(video, batch_size=self.cfg.frame_batch, tokens=True)
        b, t, n, c = tokens.shape
        keys = spatial_softmax(tokens.reshape(b * t, n, c)).reshape(b, t, 2 * c)
        return torch.cat([pooled, keys], dim=-1)

    def _encode(self, video: torch.Tensor) -> torch.Tensor:
        return self._frames(video).mean(1)

    def frame_work(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """`frames (M, 3, H, W) uint8` -> `pooled (M, 3C)` (pooled + keypoints)."""
        return {"pooled": self._frames(frames[None])[0]}

    def embed_dataset(self, root, split=None, views=None, batch_size=8, cache_root=None):
        return ActionEncoder.embed_dataset(self, root, split, views, batch_size, cache_root)


@dataclasses.dataclass
class FlowMeanConfig:
    """Time statistics of grid-pooled optical flow."""

    method: str = "dis"
    size: int = 64  # frames are resized to size x size before flow
    grid: int = 4  # flow maps are average-pooled to grid x grid cells

    def validate(self) -> None:
        if self.method not in FLOW_METHODS:
            raise ValueError(f"flow_mean: method must be one of {FLOW_METHODS}, got {self.method!r}")
        if self.size < 8 or self.grid < 1 or self.grid > self.size:
            raise ValueError(f"flow_mean: need size >= 8 and 1 <= grid <= size, got size={self.size} grid={self.grid}")


@register_encoder("flow_mean")
class FlowMeanEncoder(ActionEncoder):
    """Flow `(B, T-1, S, S, 3)` -> pooled to `(B, T-1, 3*g*g)` -> [mean over time, std over time] -> `(B, 6*g*g)`.

    The std half keeps back-and-forth motions (whose mean displacement cancels) distinguishable.
    """

    config_cls = FlowMeanConfig

    def __init__(self, cfg: FlowMeanConfig):
        super().__init__(cfg)
        self.dim = 6 * cfg.grid * cfg.grid

    def _from_flow(self, flow: torch.Tensor) -> torch.Tensor:
        """`flow (B, T-1, S, S, 3)` -> `(B, 6*g*g)`."""
        b, t1 = flow.shape[:2]
        x = flow.float().permute(0, 1, 4, 2, 3).reshape(b * t1, 3, *flow.shape[2:4])
        cells = F.adaptive_avg_pool2d(x, self.cfg.grid).reshape(b, t1, -1)
        std = cells.std(1, unbiased=False)
        return torch.cat([cells.mean(1), std], dim=1)

    def _encode(self, video: torch.Tensor) -> torch.Tensor:
        if video.shape[1] < 2:
            raise ValueError(f"flow_mean: needs T >= 2 frames, got video shape {tuple(video.shape)}")
        flow = compute_flow_batch(video, self.cfg.method, self.cfg.size)
        return self._from_flow(torch.from_numpy(flow))

    # streaming hooks (encoders/base.py): frames resized once (as compute_flow does), flow once per pair
    stream_pairs = True

    def stream_positions(self, window: int) -> np.ndarray:
        if window < 2:
            raise ValueError(f"flow_mean: needs windows of >= 2 frames, got {window}")
        return np.arange(window)

    def frame_work(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """`frames (M, 3, H, W) uint8` -> `small (M, S, S, 3)` uint8, the flow input."""
        import cv2

        hwc, s = frames.permute(0, 2, 3, 1).contiguous().numpy(), self.cfg.size
        if hwc.shape[1:3] != (s, s):  # compute_flow resizes only frames that are not S x S already
            hwc = np.stack([cv2.resize(f, (s, s), interpolation=cv2.INTER_AREA) for f in hwc])
        return {"small": torch.from_numpy(np.ascontiguousarray(hwc))}

    def pair_work(self, first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """`flow (M, S, S, 3)` float32 from each `first` frame to its `second` frame."""
        a, b = first["small"].numpy(), second["small"].numpy()
        flows = [compute_flow(np.stack([x, y]), self.cfg.method, self.cfg.size)[0] for x, y in zip(a, b)]
        return {"flow": torch.from_numpy(np.stack(flows))}

    def encode_from_work(self, frames: dict[str, torch.Tensor], pairs: dict[str, torch.Tensor] | None) -> torch.Tensor:
        return self._from_flow(pairs["flow"])

    def embed_dataset(self, root, split=None, views=None, batch_size=8, cache_root=None):
        from encoders.features import flow_maps

        res = flow_maps(root, split, views, method=self.cfg.method, size=self.cfg.size, cache_root=cache_root)
        flow = res.arrays["flow"]
        out = [self._from_flow(torch.from_numpy(np.array(flow[i : i + 64], dtype=np.float32))) for i in range(0, len(flow), 64)]
        return res.index, torch.cat(out).numpy() if out else np.zeros((0, self.dim), np.float32)


@dataclasses.dataclass
class RandomConfig:
    """`hash`: content-independent random vectors (chance level, like the paper's Random row);
    `projection`: a fixed random linear map of downsampled pixels (a random-init network)."""

    dim: int = 128
    seed: int = 0
    mode: Literal["hash", "projection"] = "hash"
    image_size: int = 16  # projection mode: frames are resized to this before projecting

    def validate(self) -> None:
        if self.dim < 1 or self.image_size < 1:
            raise ValueError(f"random: dim and image_size must be >= 1, got dim={self.dim} image_size={self.image_size}")


@register_encoder("random")
class RandomEncoder(ActionEncoder):
    config_cls = RandomConfig

    def __init__(self, cfg: RandomConfig):
        super().__init__(cfg)
        self.dim = cfg.dim
        g = torch.Generator().manual_seed(cfg.seed)
        n_in = 3 * cfg.image_size * cfg.image_size
        # a buffer, not a parameter: it is saved with the encoder but never trained
        self.register_buffer("proj", torch.randn(n_in, cfg.dim, generator=g) / n_in**0.5)

    def _encode(self, video: torch.Tensor) -> torch.Tensor:
        if self.cfg.mode == "hash":
            # seeded by the clip's bytes: identical clips get identical vectors, anything else is unrelated
            rows = []
            for v in video:
                h = hashlib.sha1(v.contiguous().numpy().tobytes()).digest()
                seed = int.from_bytes(h[:8], "little") ^ self.cfg.seed
                rows.append(torch.randn(self.dim, generator=torch.Generator().manual_seed(seed % 2**63)))
            return torch.stack(rows)
        b, t = video.shape[:2]
        s = self.cfg.image_size
        x = F.interpolate(video.reshape(b * t, *video.shape[2:]).float() / 255.0, size=(s, s), mode="area")
        return x.reshape(b, t, -1).mean(1) @ self.proj
