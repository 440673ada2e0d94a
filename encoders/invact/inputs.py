"""InvAct's inputs: what the trainable part consumes, computed from raw video with frozen tools,
and the on-disk cache of those tensors (flow and backbone run once per dataset).

`encode()` and training read exactly these tensors, so both see identical inputs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from encoders.base import sample_frames
from encoders.features import cached_arrays, dataset_key, default_cache_root, iter_clip_batches
from envs.atomic_world.dataset import read_index

if TYPE_CHECKING:
    from encoders.invact.config import InvActConfig


@torch.no_grad()
def prepare_inputs(cfg: InvActConfig, video: torch.Tensor, backbone=None) -> dict[str, torch.Tensor]:
    """Everything the trainable part consumes, computed from raw video with frozen tools.

    Returns `flow (B, T-1, 3, S, S)` float16 (dx, dy, |d| in pixels of the S x S frames),
    `rgb (B, T, 3, S, S)` uint8, and `ctx (B, N, C)` float16 frame-averaged backbone patch tokens.
    Training caches exactly these tensors, so `encode()` and training see identical inputs.
    """
    import cv2

    from encoders.flow import compute_flow

    v = sample_frames(video, cfg.frames)
    out: dict[str, torch.Tensor] = {}
    if cfg.uses_flow:
        frames = v.permute(0, 1, 3, 4, 2).contiguous().numpy()
        flows = np.stack([compute_flow(f, cfg.flow_method, cfg.flow_size) for f in frames])  # (B, T-1, S, S, 3)
        out["flow"] = torch.from_numpy(flows).permute(0, 1, 4, 2, 3).to(torch.float16)
    if cfg.uses_rgb:
        frames = v.permute(0, 1, 3, 4, 2).contiguous().numpy()
        small = np.stack([[cv2.resize(f, (cfg.flow_size, cfg.flow_size), interpolation=cv2.INTER_AREA)
                           for f in clip] for clip in frames])  # fmt: skip
        out["rgb"] = torch.from_numpy(small).permute(0, 1, 4, 2, 3).contiguous()
    if cfg.uses_backbone:
        if backbone is None:
            raise ValueError("prepare_inputs: modality 'backbone+flow' needs the frozen backbone")
        tokens, _ = backbone.extract(v, tokens=True)  # (B, T, N, C)
        out["ctx"] = tokens.mean(1).to(torch.float16)  # frame-averaged, as in the paper
    return out


def _inputs_key(cfg) -> str:
    fields = {"frames": cfg.frames, "flow_size": cfg.flow_size, "flow_method": cfg.flow_method,
              "flow": cfg.uses_flow, "rgb": cfg.uses_rgb}  # fmt: skip
    if cfg.uses_backbone:
        fields.update(backbone=cfg.backbone, backbone_size=cfg.backbone_size)
    return hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


def prepared_inputs(
    model: Any, root: str | Path, split: str | None, views=None, cache_root: str | Path | None = None, batch_size: int = 16
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """(index, arrays aligned with its rows) of `prepare_inputs` over a split, computed once and memory-mapped.

    Keyed by the dataset's index hash and every config field that changes the inputs.
    """
    cfg = model.cfg
    root = Path(root)
    full = read_index(root, split)
    names = tuple(n for n, on in (("flow", cfg.uses_flow), ("rgb", cfg.uses_rgb), ("ctx", cfg.uses_backbone)) if on)
    cache_dir = Path(cache_root or default_cache_root()) / "invact_inputs" / dataset_key(root) / _inputs_key(cfg)
    backbone = model.backbone() if cfg.uses_backbone else None

    def compute() -> dict[str, np.ndarray]:
        parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
        for _, video in iter_clip_batches(root, full, batch_size, desc=f"invact inputs ({split or 'all'})"):
            for n, t in prepare_inputs(cfg, video, backbone).items():
                parts[n].append(t.numpy())
        return {n: np.concatenate(v) for n, v in parts.items()}

    res = cached_arrays(cache_dir, split, full, names, compute, {"dataset": str(root.resolve()), "key": _inputs_key(cfg)})
    index, arrays = res.index, res.arrays
    if views is not None:
        keep = np.flatnonzero(index["view"].isin(views).to_numpy())
        index, arrays = index.iloc[keep].reset_index(drop=True), {n: a[keep] for n, a in arrays.items()}
    return index, arrays
