"""Action Perceiver with verb-guided distillation (instraction.txt Sec. 4.1, Eq. 1-4).

Student (Eq. 1): K learnable latent queries L `(K, C)` cross-attend to the flattened visual tokens
V `(T*N, C)`. Temporal structure is kept by (a) adding a learnable per-frame temporal embedding to
every token of its frame, and to each query the embedding of its window centre, and (b) an
attention mask that lets query k see only the frames inside its local temporal window.

Teacher (Eq. 2): the verb-phrase embeddings P `(M, C)` are the queries of the *same* cross-attention
layers, without the window mask (a phrase may sit anywhere in the clip). Sharing the weights is
our choice: the paper only states that phrases attend to the visual features.

Distillation (Eq. 3-4): student similarities s and teacher targets s' (video-text logits of the
mean-pooled student / teacher tokens against the caption embeddings in the batch) give
`L_single = -(1-a) sum y log softmax(s) - a sum softmax(s') log softmax(s)` per row, summed over
the v2t and t2v directions; the teacher side is detached.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def window_mask(n_latents: int, frames: int, tokens_per_frame: int, window: float) -> torch.Tensor:
    """Boolean `(K, T*N)` mask, True = blocked: query k sees frames within `window / 2` of its centre.

    Centres are evenly spread, c_k = (k + 0.5) T / K - 0.5; the frame nearest to c_k is always
    visible, so no query row is fully masked.
    """
    if n_latents < 1 or frames < 1 or tokens_per_frame < 1:
        raise ValueError(f"window_mask: need K, T, N >= 1, got {n_latents}, {frames}, {tokens_per_frame}")
    centres = (torch.arange(n_latents, dtype=torch.float32) + 0.5) * frames / n_latents - 0.5
    t = torch.arange(frames, dtype=torch.float32)
    dist = (t[None, :] - centres[:, None]).abs()  # (K, T)
    visible = dist <= window / 2
    visible[torch.arange(n_latents), dist.argmin(1)] = True
    return ~visible.repeat_interleave(tokens_per_frame, dim=1)


def latent_centres(n_latents: int, frames: int) -> torch.Tensor:
    """Nearest frame index of every query's window centre `(K,)`."""
    c = (torch.arange(n_latents, dtype=torch.float32) + 0.5) * frames / n_latents - 0.5
    return c.round().long().clamp(0, frames - 1)


class CrossBlock(nn.Module):
    """Pre-LN cross-attention + FF, residual on the queries."""

    def __init__(self, dim: int, heads: int, mlp: int = 2):
        super().__init__()
        self.nq, self.nkv, self.nff = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(dim, mlp * dim), nn.GELU(), nn.Linear(mlp * dim, dim))

    def forward(self, q: torch.Tensor, kv: torch.Tensor, mask: torch.Tensor | None = None,
                kv_pad: torch.Tensor | None = None) -> torch.Tensor:
        kvn = self.nkv(kv)
        q = q + self.attn(self.nq(q), kvn, kvn, attn_mask=mask, key_padding_mask=kv_pad, need_weights=False)[0]
        return q + self.ff(self.nff(q))


class ActionPerceiver(nn.Module):
    """Visual tokens `(B, T, N, C_in)` (or `(B, T, C_in)`) -> student action tokens `(B, K, C)` (Eq. 1)."""

    def __init__(self, in_dim: int, dim: int = 128, n_latents: int = 8, heads: int = 4, depth: int = 1,
                 window: float = 0.0, max_frames: int = 128):
        super().__init__()
        self.dim, self.n_latents, self.window, self.max_frames = dim, n_latents, window, max_frames
        self.proj = nn.Linear(in_dim, dim)
        self.latents = nn.Parameter(torch.randn(n_latents, dim) * 0.02)  # L
        self.temporal = nn.Parameter(torch.randn(max_frames, dim) * 0.02)  # per-frame temporal embedding
        self.blocks = nn.ModuleList([CrossBlock(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)

    def visual(self, v: torch.Tensor) -> torch.Tensor:
        """Project + add temporal embeddings: `(B, T, N, C_in)` -> `(B, T, N, C)`."""
        if v.ndim == 3:
            v = v.unsqueeze(2)
        if v.ndim != 4:
            raise ValueError(f"ActionPerceiver: visual tokens must be (B, T, N, C) or (B, T, C), got {tuple(v.shape)}")
        if v.shape[1] > self.max_frames:
            raise ValueError(f"ActionPerceiver: {v.shape[1]} frames > max_frames={self.max_frames}")
        return self.proj(v.float()) + self.temporal[: v.shape[1]][None, :, None, :]

    def window_frames(self, frames: int) -> float:
        """Window width in frames; 0 in the config means 2 T / K (each frame seen by ~2 queries)."""
        return self.window or 2.0 * frames / self.n_latents

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        x = self.visual(v)
        b, t, n, _ = x.shape
        kv = x.flatten(1, 2)
        q = (self.latents + self.temporal[latent_centres(self.n_latents, t)])[None].expand(b, -1, -1)
        mask = window_mask(self.n_latents, t, n, self.window_frames(t)).to(kv.device)
        for blk in self.blocks:
            q = blk(q, kv, mask)
        return self.norm(q)

    def teacher(self, v: torch.Tensor, phrases: torch.Tensor) -> torch.Tensor:
        """Eq. 2: phrase embeddings `(B, M, C)` as queries over the same visual tokens -> `(B, M, C)`."""
        x = self.visual(v)
        kv = x.flatten(1, 2)
        q = phrases
        for blk in self.blocks:
            q = blk(q, kv)
        return self.norm(q)


def single_distill(s: torch.Tensor, s_teacher: torch.Tensor, alpha: float) -> torch.Tensor:
    """Eq. 3 for logits `(B, B)` with the diagonal as positives; mean over rows."""
    logp = F.log_softmax(s, dim=-1)
    y = torch.eye(s.shape[0], device=s.device, dtype=s.dtype)
    target = F.softmax(s_teacher.detach(), dim=-1)
    return (-(1 - alpha) * (y * logp).sum(-1) - alpha * (target * logp).sum(-1)).mean()


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, text: torch.Tensor, tau: float = 0.07,
                 alpha: float = 0.4) -> torch.Tensor:
    """Eq. 4: `L_single(s_v2t, s'_v2t) + L_single(s_t2v, s'_t2v)`.

    student, teacher: video embeddings `(B, C)` (mean of the student / teacher tokens); text `(B, C)`.
    """
    st, te, tx = (F.normalize(z, dim=-1) for z in (student, teacher, text))
    s_v2t, s_v2t_teacher = st @ tx.T / tau, te @ tx.T / tau
    return single_distill(s_v2t, s_v2t_teacher, alpha) + single_distill(s_v2t.T, s_v2t_teacher.T, alpha)
