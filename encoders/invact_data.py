"""InvAct training data: the prepared-input cache and the quadruplet batch sampler (invact.txt App. B.1)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from encoders.features import cached_arrays, dataset_key, default_cache_root, iter_clip_batches
from envs.atomic_world.dataset import is_ego, read_index


def _inputs_key(cfg) -> str:
    fields = {"frames": cfg.frames, "flow_size": cfg.flow_size, "flow_method": cfg.flow_method,
              "flow": cfg.uses_flow, "rgb": cfg.uses_rgb}  # fmt: skip
    if cfg.uses_backbone:
        fields.update(backbone=cfg.backbone, backbone_size=cfg.backbone_size)
    return hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


def prepared_inputs(
    model, root: str | Path, split: str | None, views=None, cache_root: str | Path | None = None, batch_size: int = 16
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """(index, arrays aligned with its rows) of `prepare_inputs` over a split, computed once and memory-mapped.

    Keyed by the dataset's index hash and every config field that changes the inputs.
    """
    from encoders.invact import prepare_inputs

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


@dataclass
class Batch:
    """One minibatch of N ego-exo pairs, N = 4 * quads, in quadruplet layout order."""

    ego: np.ndarray  # (N,) row indices into the split's index
    exo: np.ndarray  # (N,)
    action: np.ndarray  # (N,) verb ids
    scene: np.ndarray  # (N,) scene ids
    caption: list[str]


class QuadrupletSampler:
    """Minibatches of quadruplets [S1A1, S2A1, S3A1, S3A2] (App. B.1), each cell an ego-exo pair.

    A and S are re-drawn for every quadruplet; the draw for step s depends only on (seed, s), so a
    resumed run sees exactly the batches an uninterrupted run would. The exo view of each pair is
    drawn at random among the exo cameras.
    """

    def __init__(self, index: pd.DataFrame, action_vocab: list[str], quads: int, seed: int):
        self.index = index.reset_index(drop=True)
        self.quads, self.seed = quads, seed
        self.action_id = {a: i for i, a in enumerate(action_vocab)}
        scenes = sorted(set(self.index["scene"]))
        self.scene_id = {s: i for i, s in enumerate(scenes)}
        ego_mask = self.index["view"].map(is_ego).to_numpy()
        self.ego_row: dict[str, int] = {}
        self.exo_rows: dict[str, list[int]] = {}
        for i, (cid, ego) in enumerate(zip(self.index["clip_id"], ego_mask)):
            if ego:
                self.ego_row[cid] = i
            else:
                self.exo_rows.setdefault(cid, []).append(i)
        clips = self.index[ego_mask & self.index["clip_id"].isin(self.exo_rows).to_numpy()]
        self.cells: dict[tuple[str, str], list[str]] = {}
        for cid, s, a in zip(clips["clip_id"], clips["scene"], clips["action"]):
            self.cells.setdefault((s, a), []).append(cid)
        self.scenes_of: dict[str, list[str]] = {}
        for s, a in sorted(self.cells):
            self.scenes_of.setdefault(a, []).append(s)
        self.anchor_actions = sorted(a for a, ss in self.scenes_of.items() if len(ss) >= 3)
        if not self.anchor_actions:
            raise ValueError("quadruplet sampling needs an action seen in >= 3 scenes of the training split; "
                             f"this split has scenes per action {{{', '.join(f'{a}: {len(s)}' for a, s in self.scenes_of.items())}}}")
        self.captions = dict(zip(self.index["clip_id"], self.index["caption"]))
        self.actions = dict(zip(self.index["clip_id"], self.index["action"]))

    def _quad(self, rng: np.random.Generator) -> list[str]:
        for _ in range(100):
            a1 = self.anchor_actions[rng.integers(len(self.anchor_actions))]
            s1, s2, s3 = rng.choice(self.scenes_of[a1], 3, replace=False)
            others = sorted(a for (s, a) in self.cells if s == s3 and a != a1)
            if not others:
                continue
            a2 = others[rng.integers(len(others))]
            cells = [(s1, a1), (s2, a1), (s3, a1), (s3, a2)]
            return [self.cells[c][rng.integers(len(self.cells[c]))] for c in cells]
        raise ValueError("could not draw a quadruplet: no scene holds two different actions")

    def batch(self, step: int) -> Batch:
        rng = np.random.default_rng([self.seed, 4242, step])
        cids = [cid for _ in range(self.quads) for cid in self._quad(rng)]
        exo = [self.exo_rows[c][rng.integers(len(self.exo_rows[c]))] for c in cids]
        return Batch(
            ego=np.array([self.ego_row[c] for c in cids]),
            exo=np.array(exo),
            action=np.array([self.action_id[self.actions[c]] for c in cids]),
            scene=np.array([self.scene_id[self.index.at[self.ego_row[c], "scene"]] for c in cids]),
            caption=[self.captions[c] for c in cids],
        )


def gather(arrays: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, torch.Tensor]:
    """Rows of memory-mapped prepared inputs as tensors (sorted reads, original order restored)."""
    order = np.argsort(rows)
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    return {n: torch.from_numpy(np.asarray(a[rows[order]])[inv]) for n, a in arrays.items()}
