"""RoboAct-CLIP's feature banks and recombination (roboact_clip.txt Eq. 15-20), a mixin of
`RoboActEncoder` (encoders/roboact/model.py): one vector per class and factor, the EMA update of
Eq. 15-17, the live-batch lookup that training's Eq. 18-20 uses, and `recombine` for callers."""

from __future__ import annotations

from typing import Any

import torch

FACTORS = ("subject", "action", "object")


class FeatureBanks:
    """Needs `cfg` (subjects/actions/objects, branch_dim, disentangle), the buffers `bank_<f>` /
    `bank_<f>_filled`, the Eq. 18 MLP `recomb` and `in_proj` (for the device)."""

    def class_ids(self, factor: str, values: Any) -> torch.Tensor:
        """Names (str or list of str) or ids -> LongTensor `(B,)` of class ids for `factor`."""
        names = getattr(self.cfg, factor + "s")
        if isinstance(values, torch.Tensor):
            ids = values.long().reshape(-1)
        else:
            vals = [values] if isinstance(values, (str, int)) else list(values)
            ids_l = []
            for v in vals:
                if isinstance(v, str):
                    if v not in names:
                        raise KeyError(f"roboact_clip.recombine: unknown {factor} {v!r}; known: {names}")
                    ids_l.append(names.index(v))
                else:
                    ids_l.append(int(v))
            ids = torch.tensor(ids_l, dtype=torch.long)
        if ids.numel() and (ids.min() < 0 or ids.max() >= len(names)):
            raise IndexError(f"roboact_clip.recombine: {factor} id out of range 0..{len(names) - 1}: {ids.tolist()}")
        return ids.to(self.in_proj.weight.device)

    def recombine(self, subject: Any, action: Any, object: Any) -> torch.Tensor:  # noqa: A002 - the paper's name
        """Eq. 18 -> `(B, 3b)` in the space of `encode` / `text_embed`.

        Each argument is either branch features `(B, b)` float, or class names / ids (str, int, list,
        LongTensor (B,)) looked up in the feature banks. Gradients flow through float inputs."""
        if not self.cfg.disentangle:
            raise RuntimeError("roboact_clip.recombine: this model was trained without disentanglement (A2)")
        parts = []
        for f, v in (("subject", subject), ("action", action), ("object", object)):
            if isinstance(v, torch.Tensor) and v.is_floating_point():
                if v.ndim != 2 or v.shape[1] != self.cfg.branch_dim:
                    raise ValueError(f"roboact_clip.recombine: {f} features must be (B, {self.cfg.branch_dim}), "
                                     f"got {tuple(v.shape)}")
                parts.append(v)
            else:
                ids = self.class_ids(f, v)
                filled = getattr(self, f"bank_{f}_filled")[ids]
                if not bool(filled.all()):
                    names = getattr(self.cfg, f + "s")
                    raise ValueError(f"roboact_clip.recombine: the {f} bank has no entry for "
                                     f"{[names[i] for i in ids[~filled].tolist()]} (class never seen in training)")
                parts.append(getattr(self, f"bank_{f}")[ids])
        n = {p.shape[0] for p in parts}
        if len(n) > 1:
            if 1 not in n or len(n) > 2:
                raise ValueError(f"roboact_clip.recombine: batch sizes differ: {[p.shape[0] for p in parts]}")
            m = max(n)
            parts = [p.expand(m, -1) if p.shape[0] == 1 else p for p in parts]
        return self.recomb(torch.cat(parts, dim=-1))

    # -- banks ----------------------------------------------------------------------------------
    @torch.no_grad()
    def update_banks(self, feats: dict[str, torch.Tensor], labels: dict[str, torch.Tensor], momentum: float) -> None:
        """Bank update rule (Eq. 15-17): for every class c present in the batch, with m_c the mean of its
        branch features, B[c] <- m_c if B[c] was never filled, else momentum * B[c] + (1 - momentum) * m_c.
        Classes absent from the batch keep their entry. `feats[f] (N, b)`, `labels[f] (N,)`."""
        for f in FACTORS:
            bank, filled = getattr(self, f"bank_{f}"), getattr(self, f"bank_{f}_filled")
            x, y = feats[f].detach().float(), labels[f]
            sums = torch.zeros_like(bank).index_add_(0, y, x)
            counts = torch.zeros(bank.shape[0], device=bank.device).index_add_(0, y, torch.ones_like(y, dtype=torch.float))
            present = counts > 0
            mean = sums[present] / counts[present, None]
            old = bank[present]
            was = filled[present]
            bank[present] = torch.where(was[:, None], momentum * old + (1 - momentum) * mean, mean)
            filled |= present

    def bank_or_batch(self, f: str, feats: torch.Tensor, labels: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Class vectors for `ids (M,)`: the live batch class mean where the class is in the batch
        (gradient reaches the branches), the stored bank entry otherwise (no gradient). `(M, b)`."""
        bank = getattr(self, f"bank_{f}")
        k = bank.shape[0]
        sums = torch.zeros(k, feats.shape[1], device=feats.device, dtype=feats.dtype).index_add(0, labels, feats)
        counts = torch.zeros(k, device=feats.device, dtype=feats.dtype).index_add(0, labels, torch.ones_like(labels, dtype=feats.dtype))
        live = sums / counts.clamp(min=1)[:, None]
        table = torch.where((counts > 0)[:, None], live, bank.to(feats.dtype))
        return table[ids]
