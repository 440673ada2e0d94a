"""LAQ's training method for encoders/train.py: frame pairs from the clip index, MSE, NSVQ upkeep.

    python encoders/train.py --config configs/encoder/laq.yaml data=runs/demo/atomic_world

Data: every clip-view of the train split (all views unless `loss.views`), resized once to
`model.image_size` and cached memory-mapped (`<cache>/frames/<dataset>/<S>px/train.frames.npy`).
A training example is a frame pair (t, t+H) of one clip: H = `loss.offset` frames at a random t, or
the clip's first and last frame when `offset` is 0 (the default: an atomic-world clip is one atomic
action; LAPA uses a fixed 30-frame offset on raw video). Batch `step` (rows and t) is drawn from
(seed, step) only, and every rank takes `rank_slice` of it, so resume is exact and data parallel
splits the global batch.

Loss: MSE between the predicted and the real frame t+H (LAPA's only loss: NSVQ needs no codebook or
commitment term). Logged terms (metrics.jsonl): `recon`, `perplexity` of the global batch's code
assignments (1 = collapse, codebook_size = uniform), `codes_used` in the global batch, `dead_codes`
(codes under `discard_threshold` since the last replacement), `replaced` (codes re-initialised
at this step) and `replaced_total` (so far).

Dead-code replacement (NSVQ's trick, on LAPA's schedule shape: every `replace_every` steps during
the first `replace_stop` of training, never near the end so new codes have time to settle): usage
counts are summed over ranks every step, so all ranks see the same counts; at a replacement step
every rank encodes the same *global* batch without gradient and re-initialises the dead codes from
those encoder outputs with a generator seeded by (seed, step) -- identical on every rank, and a
pure function of the checkpointed state, so resume stays exact. NSVQ's noise vectors come from a
generator seeded by (seed, step, rank).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from configs.loader import from_dict
from configs.training import rank_slice
from encoders.laq.model import LAQConfig, LAQEncoder, resize_frames
from encoders.laq.nsvq import perplexity
from encoders.methods import register_method
from envs.datasets.mix import draw_rows, mix_weights

if TYPE_CHECKING:
    from encoders.train import TrainConfig


@dataclasses.dataclass
class LAQLossConfig:
    batch_size: int = 0  # frame pairs per global batch; 0: 8 * batch_quads (32 at the default 4)
    offset: int = 0  # H: frames between the pair; 0 (or >= the clip length): first and last frame
    views: list[str] = dataclasses.field(default_factory=list)  # train on these views; empty: all
    replace_every: int = 50  # dead-code replacement period in steps (LAPA 100, then 500); 0: never
    replace_stop: float = 0.5  # no replacement after this fraction of the steps (LAPA: none after step 5000 of 100k)
    discard_threshold: float = 0.01  # a code is dead below this share of the assignments (NSVQ's default)

    def validate(self) -> None:
        if self.batch_size < 0 or self.offset < 0 or self.replace_every < 0:
            raise ValueError("laq loss: batch_size, offset and replace_every must be >= 0")
        if not 0 <= self.replace_stop <= 1:
            raise ValueError(f"laq loss: replace_stop must be in [0, 1], got {self.replace_stop}")
        if not 0 <= self.discard_threshold < 1:
            raise ValueError(f"laq loss: discard_threshold must be in [0, 1), got {self.discard_threshold}")


def frame_cache(root, size: int, split: str = "train", cache_root=None):
    """`(index, frames (M, T, 3, size, size) uint8 memmap)` of every clip-view of `split`, cached."""
    from encoders.features import cached_arrays, dataset_key, default_cache_root, iter_clip_batches
    from envs.atomic_world.dataset import read_index

    root = Path(root)
    index = read_index(root, split)
    cache_dir = Path(cache_root or default_cache_root()) / "frames" / dataset_key(root) / f"{size}px"

    def compute() -> dict[str, np.ndarray]:
        out = None
        part = cache_dir / f".{split}.frames.partial.npy"
        try:
            for start, video in iter_clip_batches(root, index, 16, desc="laq frames"):
                small = resize_frames(video, size).numpy()
                if out is None:
                    out = np.lib.format.open_memmap(part, mode="w+", dtype=np.uint8, shape=(len(index), *small.shape[1:]))
                out[start : start + len(small)] = small
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        return {"frames": out}

    res = cached_arrays(cache_dir, split, index, ("frames",), compute, {"dataset": str(root.resolve()), "size": size})
    return res.index, res.arrays["frames"]


@register_method("laq", model=LAQConfig, loss=LAQLossConfig)
class LAQMethod:
    """Builds LAQ and computes the reconstruction loss on frame pairs, with codebook upkeep."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.model_cfg = from_dict(LAQConfig, dict(cfg.model), source="model")
        self.loss_cfg = from_dict(LAQLossConfig, dict(cfg.loss), source="loss")
        self.batch_size = self.loss_cfg.batch_size or 8 * cfg.batch_quads
        torch.manual_seed(cfg.seed)
        self.model = LAQEncoder(self.model_cfg)
        index, self.frames = frame_cache(cfg.data, self.model_cfg.image_size, cache_root=cfg.cache_dir or None)
        rows = np.arange(len(index))
        if self.loss_cfg.views:
            rows = rows[index["view"].isin(self.loss_cfg.views).to_numpy()]
        if len(rows) == 0:
            raise ValueError(f"{cfg.data}: no train clips" + (f" with views {self.loss_cfg.views}" if self.loss_cfg.views else ""))
        self.rows = rows  # indices into the memory-mapped frames (no copy)
        self.index = index.iloc[rows].reset_index(drop=True)
        self.mix = mix_weights(cfg.data)  # source weights of a mix folder (envs/datasets/mix.py), else None

    # -- data -----------------------------------------------------------------------------------
    def batch(self, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The global batch of `step`: (frames rows, t, t+H), from (seed, step) only."""
        rng = np.random.default_rng([self.cfg.seed, step])
        n, t = len(self.rows), self.frames.shape[1]
        if self.mix is not None:  # mixed datasets: each slot's source drawn by its weight
            rows = self.rows[draw_rows(rng, self.index["dataset"].to_numpy(), self.mix, self.batch_size)]
        else:
            rows = self.rows[rng.choice(n, size=self.batch_size, replace=n < self.batch_size)]
        h = self.loss_cfg.offset
        if h <= 0 or h >= t:
            return rows, np.zeros(len(rows), np.int64), np.full(len(rows), t - 1, np.int64)
        t0 = rng.integers(0, t - h, size=len(rows))
        return rows, t0, t0 + h

    def pairs(self, rows: np.ndarray, t0: np.ndarray, t1: np.ndarray) -> torch.Tensor:
        """`(B, 2, 3, S, S) uint8` frame pairs."""
        return torch.from_numpy(np.stack([self.frames[r, [a, b]] for r, a, b in zip(rows, t0, t1)]))

    # -- codebook upkeep ------------------------------------------------------------------------
    def replaces_at(self, step: int) -> bool:
        lc = self.loss_cfg
        return bool(lc.replace_every) and step > 0 and step % lc.replace_every == 0 and step < lc.replace_stop * self.cfg.steps

    @torch.no_grad()
    def replace_codes(self, model: LAQEncoder, step: int, device) -> int:
        """Re-initialise dead codes from the encoder outputs of the global batch of `step` (same on every rank)."""
        pairs = self.pairs(*self.batch(step)).to(device)
        delta = model.vq.delta(*model.encode_pair(pairs)).float()
        gen = torch.Generator().manual_seed(int(self.cfg.seed) * 1_000_003 + step)
        return model.vq.replace_dead(delta, self.loss_cfg.discard_threshold, gen)

    # -- the loss -------------------------------------------------------------------------------
    def loss(self, model, step: int, device, rank: int = 0, world: int = 1) -> tuple[torch.Tensor, dict[str, float]]:
        replaced = self.replace_codes(model, step, device) if self.replaces_at(step) else 0
        rows, t0, t1 = self.batch(step)
        sl = rank_slice(len(rows), rank, world)
        pairs = self.pairs(rows[sl], t0[sl], t1[sl]).to(device)
        dev = torch.device(device)
        gen = torch.Generator(device=dev).manual_seed(int(self.cfg.seed) * 1_000_003 + step * 1_009 + rank)
        out = model.forward_pairs(pairs, noise=True, generator=gen)
        recon = F.mse_loss(out["recon"].float(), out["target"])
        counts = model.vq.counts(out["indices"].detach())
        if world > 1:
            import torch.distributed as dist

            dist.all_reduce(counts)  # every rank accumulates the global batch's usage
        model.vq.usage += counts
        terms = {"recon": float(recon.detach()), "perplexity": perplexity(counts),
                 "codes_used": int((counts > 0).sum()),
                 "dead_codes": int(model.vq.dead_codes(self.loss_cfg.discard_threshold).numel()),
                 "replaced": replaced, "replaced_total": int(model.vq.replaced_total)}  # fmt: skip
        return recon, terms

    def export(self, model, out) -> None:
        model.save_pretrained(out / "encoder")
