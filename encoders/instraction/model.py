"""InstrAction on frozen features: Action Perceiver + text projection + MAM decoder, and its losses.

Total loss (instraction.txt Sec. 4): video-text InfoNCE with the action-centric hard negatives
appended to each video's text candidates, + w_distill * Eq. 4 + w_dtw * Eq. 7 + w_mam * Eq. 9.
Text comes from a frozen sentence encoder (MiniLM by default), projected by one learnable linear
layer into the action-token space; the video embedding is the mean of the K action tokens.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from encoders.instraction.action_perceiver import ActionPerceiver, distill_loss, latent_centres
from encoders.instraction.mam import MaskedActionDecoder, mam_loss, verb_accuracy
from encoders.instraction.soft_dtw import dtw_objective


@dataclasses.dataclass
class InstrActionConfig:
    dim: int = 128
    n_latents: int = 16  # K action tokens
    heads: int = 4
    depth: int = 1
    window: float = 0.0  # query window width in frames; 0 = 2 T / K
    tau: float = 0.07  # contrastive temperature
    hard_negatives: bool = True  # append verb-altered / order-swapped captions as negatives
    w_distill: float = 1.0
    alpha: float = 0.4  # Eq. 3 distillation intensity
    w_dtw: float = 1.0
    gamma: float = 0.1  # soft-DTW smoothing (Eq. 5)
    beta: float = 0.1  # order hinge margin (Eq. 6)
    order_weight: float = 1.0  # gamma of Eq. 7
    w_mam: float = 0.5
    mam_layers: int = 1


class InstrActionModel(nn.Module):
    """Visual features `(B, T, N, C)` / `(B, T, C)` and text embeddings `(.., D_text)` -> one space of width `dim`."""

    def __init__(self, cfg: InstrActionConfig, visual_dim: int, text_dim: int, vocab_size: int = 0,
                 max_frames: int = 128):
        super().__init__()
        self.cfg = cfg
        self.perceiver = ActionPerceiver(visual_dim, cfg.dim, cfg.n_latents, cfg.heads, cfg.depth, cfg.window,
                                         max_frames)
        self.text_proj = nn.Linear(text_dim, cfg.dim)
        self.decoder = MaskedActionDecoder(vocab_size, cfg.dim, cfg.heads, cfg.mam_layers) if vocab_size else None

    def tokens(self, v: torch.Tensor) -> torch.Tensor:
        """Student action tokens S `(B, K, dim)` (Eq. 1)."""
        return self.perceiver(v)

    def token_positions(self, frames: int) -> torch.Tensor:
        """Frame index of each action token's window centre `(K,)` (for segmentation)."""
        return latent_centres(self.cfg.n_latents, frames)

    def embed_video(self, v: torch.Tensor) -> torch.Tensor:
        return self.tokens(v).mean(1)

    def embed_text(self, t: torch.Tensor) -> torch.Tensor:
        return self.text_proj(t.float())

    def losses(self, v: torch.Tensor, caption: torch.Tensor, negatives: torch.Tensor | None,
               phrases: torch.Tensor, n_phrases: torch.Tensor, mam: tuple | None = None) -> dict[str, torch.Tensor]:
        """One batch.

        v `(B, T, ...)` visual features; caption `(B, Dt)`; negatives `(B, H, Dt)` or None;
        phrases `(B, M, Dt)` zero-padded, n_phrases `(B,)`; mam = (inputs, targets, masked) or None.
        """
        cfg = self.cfg
        s = self.tokens(v)  # (B, K, C)
        video = F.normalize(s.mean(1), dim=-1)
        text = F.normalize(self.embed_text(caption), dim=-1)
        logits = video @ text.T / cfg.tau  # (B, B)
        v2t = logits
        if cfg.hard_negatives and negatives is not None and negatives.shape[1]:
            neg = F.normalize(self.embed_text(negatives), dim=-1)  # (B, H, C)
            v2t = torch.cat([logits, torch.einsum("bc,bhc->bh", video, neg) / cfg.tau], dim=1)
        target = torch.arange(len(v), device=v.device)
        out = {"contrastive": 0.5 * (F.cross_entropy(v2t, target) + F.cross_entropy(logits.T, target))}
        p = self.embed_text(phrases)  # (B, M, C)
        if cfg.w_distill:
            t_tok = self.perceiver.teacher(v, p)  # Eq. 2
            m = (torch.arange(p.shape[1], device=v.device)[None] < n_phrases[:, None]).float()[..., None]
            teacher = (t_tok * m).sum(1) / m.sum(1)
            out["distill"] = cfg.w_distill * distill_loss(s.mean(1), teacher, self.embed_text(caption), cfg.tau, cfg.alpha)
        if cfg.w_dtw:
            out["dtw"] = cfg.w_dtw * dtw_objective(s, p, cfg.beta, cfg.gamma, cfg.order_weight, n_phrases)
        if cfg.w_mam and self.decoder is not None and mam is not None:
            inp, tgt, masked = mam
            lg = self.decoder(inp, s)
            out["mam"] = cfg.w_mam * mam_loss(lg, tgt)
            out["verb_acc"] = torch.tensor(verb_accuracy(lg, tgt, masked))
        out["total"] = sum(val for k, val in out.items() if k != "verb_acc")
        return out
