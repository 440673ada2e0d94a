"""Image-to-video probes on frozen per-frame patch tokens (step_probing.txt, Sec. 3 and Supp. D).

Every probe maps tokens `(B, T, N, C)` (T frames, N patch tokens per frame, C channels) to class
logits `(B, K)`. A 3-D input `(B, N, D)` (an ActionEncoder's `tokens(video)`) is read as N time
steps of one token each, i.e. `(B, N, 1, D)`, so the same probes diagnose action encoders.

- `linear`          mean of the per-frame pooled features over frames, then one linear layer.
- `attentive`       one learnable query cross-attends to all T*N tokens (CoCa / V-JEPA style:
                    cross-attention + MLP with LayerNorms and residual), then linear.
- `self_attentive`  all T*N patch tokens plus one per-frame CLS-like token (the frame's mean
                    token, our backbones have no CLS) go through a standard transformer block
                    (LN, MHSA, residual, FF), mean pooling, linear.
- `step`            STEP (Sec. 3.2): a learnable frame-wise temporal embedding t_i is added to every
                    patch token of frame i *before* attention, one learnable frame-global CLS token
                    replaces per-frame CLS tokens (Eq. 2), a bare multi-head self-attention layer (no
                    LayerNorm, no residual, no FF), average pooling over all output tokens, linear.

All probes share an optional learnable per-token input projection `C -> proj_dim` (0 = keep C).
It is a CPU concession (the paper probes ViT-B at C = 768); a per-token linear map commutes
with any frame permutation, so it changes no invariance property.
"""

from __future__ import annotations

import torch
from torch import nn

from configs.registry import Registry

PROBES: Registry[type[nn.Module]] = Registry("probe", modules=("encoders.probes.models",))


def as_frame_tokens(x: torch.Tensor) -> torch.Tensor:
    """`(B, T, N, C)` unchanged; `(B, N, D)` -> `(B, N, 1, D)`; anything else is an error."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"probe input: expected a tensor (B, T, N, C) or (B, N, D), got {type(x).__name__}")
    if x.ndim == 3:
        return x.unsqueeze(2)
    if x.ndim != 4:
        raise ValueError(f"probe input: expected (B, T, N, C) or (B, N, D), got shape {tuple(x.shape)}")
    return x


class Probe(nn.Module):
    """Base: `forward(tokens (B, T, N, C) | (B, N, D)) -> logits (B, n_classes)`."""

    def __init__(self, in_dim: int, n_classes: int, frames: int, proj_dim: int = 0, heads: int = 8):
        super().__init__()
        if in_dim < 1 or n_classes < 2 or frames < 1:
            raise ValueError(f"probe: need in_dim >= 1, n_classes >= 2, frames >= 1; got {in_dim}, {n_classes}, {frames}")
        self.in_dim, self.n_classes, self.frames = in_dim, n_classes, frames
        self.dim = proj_dim or in_dim
        if self.dim % heads:
            raise ValueError(f"probe: width {self.dim} is not divisible by heads={heads}; set proj_dim or heads")
        self.heads = heads
        self.proj = nn.Linear(in_dim, self.dim) if proj_dim else nn.Identity()

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        x = as_frame_tokens(x).float()
        if x.shape[-1] != self.in_dim:
            raise ValueError(f"probe input: channel dim {x.shape[-1]} != the probe's in_dim {self.in_dim}")
        return self.proj(x)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


@PROBES.register("linear")
class LinearProbe(Probe):
    """Mean over frames of the pooled frame feature (mean of its tokens), then `Linear(C, K)`."""

    def __init__(self, in_dim: int, n_classes: int, frames: int, proj_dim: int = 0, heads: int = 8):
        super().__init__(in_dim, n_classes, frames, proj_dim, heads=1)
        self.head = nn.Linear(self.dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x).mean(dim=(1, 2)))


@PROBES.register("attentive")
class AttentiveProbe(Probe):
    """A learnable query `(1, C)` cross-attends to the T*N tokens; block = LN, cross-attn, residual, LN, MLP."""

    def __init__(self, in_dim: int, n_classes: int, frames: int, proj_dim: int = 0, heads: int = 8, mlp: int = 2):
        super().__init__(in_dim, n_classes, frames, proj_dim, heads)
        d = self.dim
        self.query = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.norm_kv = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.norm_ff = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, mlp * d), nn.GELU(), nn.Linear(mlp * d, d))
        self.head = nn.Linear(d, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.embed(x)
        kv = self.norm_kv(e.flatten(1, 2))  # (B, T*N, C)
        q = self.query.expand(kv.shape[0], -1, -1)
        z = q + self.attn(q, kv, kv, need_weights=False)[0]
        z = z + self.ff(self.norm_ff(z))
        return self.head(z[:, 0])


@PROBES.register("self_attentive")
class SelfAttentiveProbe(Probe):
    """Patch tokens + per-frame CLS tokens -> standard transformer block (no positions) -> mean pool -> linear."""

    def __init__(self, in_dim: int, n_classes: int, frames: int, proj_dim: int = 0, heads: int = 8, mlp: int = 2):
        super().__init__(in_dim, n_classes, frames, proj_dim, heads)
        d = self.dim
        self.norm1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, mlp * d), nn.GELU(), nn.Linear(mlp * d, d))
        self.norm_out = nn.LayerNorm(d)
        self.head = nn.Linear(d, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.embed(x)  # (B, T, N, C)
        cls = e.mean(2, keepdim=True)  # per-frame CLS analogue (B, T, 1, C)
        z = torch.cat([cls, e], dim=2).flatten(1, 2)  # (B, T*(N+1), C)
        h = self.norm1(z)
        z = z + self.attn(h, h, h, need_weights=False)[0]
        z = z + self.ff(self.norm2(z))
        return self.head(self.norm_out(z.mean(1)))


@PROBES.register("step")
class STEPProbe(Probe):
    """STEP (Sec. 3.2). `pe="after"` is the Supp. Table 18 ablation (Eq. 5: PE added to the pooled output).

    Learnable parameters: temporal embedding `(frames, C)`, global CLS `(1, C)`, MHSA `4C^2 + 4C`,
    classifier `C*K + K` (plus the optional input projection).
    `pe_init` is the std of the temporal embedding's normal init. The paper does not give it; we use 1.0
    (on z-scored inputs): with a ViT-style 0.02 the embedding stays too small against the tokens to
    shape attention in short probe runs, and STEP then behaves like an order-blind probe
    (docs/results/probes.md shows both).
    """

    def __init__(self, in_dim: int, n_classes: int, frames: int, proj_dim: int = 0, heads: int = 8,
                 pe: str = "before", pe_init: float = 1.0):
        super().__init__(in_dim, n_classes, frames, proj_dim, heads)
        if pe not in ("before", "after"):
            raise ValueError(f"step probe: pe must be 'before' or 'after', got {pe!r}")
        d = self.dim
        self.pe = pe
        self.temporal = nn.Parameter(torch.randn(frames, d) * pe_init)  # t_i, one per frame
        self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02)  # e_global^CLS
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)  # bare MHSA: no LN/residual/FF
        self.head = nn.Linear(d, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.embed(x)  # (B, T, N, C)
        b, t = e.shape[:2]
        if t != self.frames:
            raise ValueError(f"step probe: input has {t} frames but the probe was built for frames={self.frames}")
        if self.pe == "before":
            e = e + self.temporal[None, :, None, :]  # ~e_i^patch = e_i^patch + t_i (each patch of frame i)
        z = torch.cat([self.cls.expand(b, -1, -1), e.flatten(1, 2)], dim=1)  # Eq. 2: {CLS, e_1..e_T}
        p = self.attn(z, z, z, need_weights=False)[0].mean(1)  # p = mean of MHSA(~e)  (Supp. Eq. 4)
        if self.pe == "after":
            p = p + self.temporal.mean(0)  # Supp. Eq. 5: PE added after pooling -> order-invariant
        return self.head(p)


def build_probe(name: str, in_dim: int, n_classes: int, frames: int, proj_dim: int = 0, heads: int = 8,
                **kwargs) -> Probe:
    """Probe `name` (linear, attentive, self_attentive, step) for inputs of width `in_dim`."""
    cls = PROBES.get(name)
    return cls(in_dim, n_classes, frames, proj_dim=proj_dim, heads=heads, **kwargs)
