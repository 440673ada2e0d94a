"""LAQ, LAPA's latent action quantisation (Ye et al. 2024, "Latent Action Pretraining from Videos").

    video (B, T, 3, H, W) uint8
      -> frames t and t+H: the first and last frame of the given video (`sample_frames(video, 2)`);
         the caller chooses the window (a whole atomic clip, or a (t, t+H) slice of a demo)
      -> resized to image_size, patches of patch x patch -> LayerNorm, Linear, LayerNorm (shared by both frames)
      -> spatial transformer per frame, then a causal temporal transformer over the 2 frames per patch
      -> NSVQ (encoders/laq/nsvq.py): code-space features of t+H minus those of t, downsampled to
         `code_tokens` vectors (2 x 2), each quantised against one codebook of `codebook_size` codes
      -> decoder: patch tokens of frame t (detached) -> spatial transformer with cross-attention to
         the `code_tokens` action tokens -> Linear to pixels = frame t+H; trained with MSE only.

Facts followed from LAPA's public LAQ code (`laq_model/latent_action_quantization.py`, `nsvq.py`,
`train_sthv2.py`): the two-frame input; the shared patch embedding (LayerNorm-Linear-LayerNorm);
spatial then (causal) temporal encoder transformers; the NSVQ codebook of 8 codes, 4 code tokens
(8^4 = 4096 latent actions), quant_dim 32; quantising the feature *difference* of the two frames;
the decoder reading the detached frame-t tokens and cross-attending to the action tokens; an
MSE-only reconstruction loss; periodic dead-code replacement during the first part of training.

Deviations (CPU sizes and simplifications; all sizes are config fields):
- LAPA: 256 px, patch 32 (an 8 x 8 grid), dim 1024, depth 8 + 8, 16 heads, offset 30 frames,
  batch 64, 100k steps. Here: 64 px, patch 8 (the same 8 x 8 grid), dim 128, depth 2 + 2, 4 heads.
- LAPA's position information is a continuous relative position bias plus a causal depthwise-conv
  position generator (PEG); here learned absolute spatial / temporal / code-token embeddings.
- Pre-norm `torch.nn` transformer layers (GELU MLPs) instead of LAPA's own attention blocks.

The ActionEncoder API:
- `encode(video) -> (B, code_tokens * quant_dim)`: the codebook vectors of the clip's codes,
  flattened token by token (the "code embeddings"; 4 x 32 = 128 by default).
- `codes(video) -> (B, code_tokens) long` in [0, codebook_size): the latent action, one token per
  position, for stage 2's cross-entropy. `flat_code(codes)` maps it to one id in [0, 8^4).
- `tokens(video) -> (B, code_tokens, quant_dim)`; `reconstruct(video)` predicts frame t+H from frame t
  and the hard codes; `decode_codes(frame, codes)` renders any latent action from a frame.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from encoders.base import ActionEncoder, frame_indices, register_encoder, sample_frames
from encoders.laq.nsvq import NSVQ


@dataclasses.dataclass
class LAQConfig:
    image_size: int = 64  # frames are resized to image_size x image_size (LAPA 256)
    patch: int = 8  # patch side; image_size / patch = the patch grid (LAPA 256/32 = 8)
    dim: int = 128  # transformer width (LAPA 1024)
    depth: int = 2  # spatial encoder layers, and decoder layers (LAPA 8)
    temporal_depth: int = 2  # temporal encoder layers (LAPA 8)
    heads: int = 4  # (LAPA 16)
    mlp_ratio: int = 4
    dropout: float = 0.0
    quant_dim: int = 32  # codebook vector size (LAPA 32)
    codebook_size: int = 8  # codes in the one codebook (LAPA 8)
    code_tokens: int = 4  # code tokens per latent action, a square (LAPA 4 = 2 x 2)

    def validate(self) -> None:
        if self.image_size < 1 or self.patch < 1 or self.image_size % self.patch:
            raise ValueError(f"laq: image_size {self.image_size} must be a positive multiple of patch {self.patch}")
        if self.dim % self.heads:
            raise ValueError(f"laq: dim {self.dim} must be divisible by heads {self.heads}")
        if min(self.dim, self.depth, self.temporal_depth, self.quant_dim, self.codebook_size, self.code_tokens) < 1:
            raise ValueError("laq: dim, depth, temporal_depth, quant_dim, codebook_size, code_tokens must be >= 1")
        side = int(round(self.code_tokens ** 0.5))
        if side * side != self.code_tokens:
            raise ValueError(f"laq: code_tokens must be a square number (1, 4, 9, ...), got {self.code_tokens}")
        if (self.image_size // self.patch + 1) // 2 < side:
            raise ValueError(f"laq: a {self.image_size // self.patch}-patch grid is too small for "
                             f"{self.code_tokens} code tokens (needs grid >= {2 * side - 1})")


def resize_frames(frames: torch.Tensor, size: int) -> torch.Tensor:
    """`(..., 3, H, W) uint8` -> `(..., 3, size, size) uint8` (antialiased bilinear; identity at size).

    The one resize of LAQ: encode() and the training cache both go through it."""
    if frames.shape[-1] == size and frames.shape[-2] == size:
        return frames
    lead = frames.shape[:-3]
    x = frames.reshape(-1, *frames.shape[-3:]).float()
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).reshape(*lead, 3, size, size)


def _layers(cfg: LAQConfig, n: int, decoder: bool = False) -> nn.Module:
    kw = dict(d_model=cfg.dim, nhead=cfg.heads, dim_feedforward=cfg.mlp_ratio * cfg.dim, dropout=cfg.dropout,
              activation="gelu", batch_first=True, norm_first=True)
    if decoder:
        return nn.TransformerDecoder(nn.TransformerDecoderLayer(**kw), n, norm=nn.LayerNorm(cfg.dim))
    return nn.TransformerEncoder(nn.TransformerEncoderLayer(**kw), n, norm=nn.LayerNorm(cfg.dim),
                                 enable_nested_tensor=False)


@register_encoder("laq")
class LAQEncoder(ActionEncoder):
    """LAPA's LAQ as an ActionEncoder (see the module docstring)."""

    config_cls = LAQConfig

    @property
    def codebook_size(self) -> int:
        """Codes per token; with `codes()` it marks a discrete encoder (vla/latents.py stores both so
        stage 2 trains with cross-entropy)."""
        return int(self.cfg.codebook_size)

    def __init__(self, cfg: LAQConfig):
        super().__init__(cfg)
        cfg.validate()
        p, c = cfg.patch, 3 * cfg.patch * cfg.patch
        self.grid = cfg.image_size // p
        n = self.grid * self.grid
        self.dim = cfg.code_tokens * cfg.quant_dim
        self.patch_embed = nn.Sequential(nn.LayerNorm(c), nn.Linear(c, cfg.dim), nn.LayerNorm(cfg.dim))
        self.pos = nn.Parameter(torch.randn(n, cfg.dim) * 0.02)  # spatial (shared by encoder and decoder)
        self.time = nn.Parameter(torch.randn(2, cfg.dim) * 0.02)  # frame t / frame t+H
        self.code_pos = nn.Parameter(torch.randn(cfg.code_tokens, cfg.dim) * 0.02)
        self.enc_spatial = _layers(cfg, cfg.depth)
        self.enc_temporal = _layers(cfg, cfg.temporal_depth)
        self.vq = NSVQ(cfg.dim, cfg.quant_dim, cfg.codebook_size, cfg.code_tokens, self.grid)
        self.dec_spatial = _layers(cfg, cfg.depth, decoder=True)
        self.to_pixels = nn.Linear(cfg.dim, c)
        self.register_buffer("causal", torch.triu(torch.full((2, 2), float("-inf")), 1), persistent=False)

    @property
    def num_latent_actions(self) -> int:
        return self.cfg.codebook_size ** self.cfg.code_tokens

    # -- pixels <-> patches ---------------------------------------------------------------------
    def patchify(self, frames: torch.Tensor) -> torch.Tensor:
        """`(B, 3, S, S) float` -> `(B, N, 3*p*p)`."""
        b, p, g = frames.shape[0], self.cfg.patch, self.grid
        return frames.reshape(b, 3, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(b, g * g, 3 * p * p)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        b, p, g = x.shape[0], self.cfg.patch, self.grid
        return x.reshape(b, g, g, 3, p, p).permute(0, 3, 1, 4, 2, 5).reshape(b, 3, g * p, g * p)

    def pairs(self, video: torch.Tensor) -> torch.Tensor:
        """`video (B, T, 3, H, W) uint8` -> frames (t, t+H) = first and last, `(B, 2, 3, S, S) uint8`."""
        return resize_frames(sample_frames(video, 2), self.cfg.image_size)

    # -- the network ----------------------------------------------------------------------------
    def embed(self, frames: torch.Tensor) -> torch.Tensor:
        """`(B, 3, S, S) uint8` -> patch tokens `(B, N, dim)` (without positions)."""
        x = frames.to(self.pos.device, torch.float32) / 255.0
        return self.patch_embed(self.patchify(x))

    def spatial(self, frames: torch.Tensor) -> torch.Tensor:
        """`(M, 3, S, S) uint8` -> spatial encoder features `(M, N, dim)`; each frame on its own."""
        return self.enc_spatial(self.embed(frames) + self.pos)

    def temporal(self, tok: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Spatial features of (frame t, frame t+H) `(B, 2, N, dim)` -> encoder features of each, `(B, N, dim)`."""
        b, n = tok.shape[0], self.grid * self.grid
        tok = tok.permute(0, 2, 1, 3).reshape(b * n, 2, -1) + self.time
        tok = self.enc_temporal(tok, mask=self.causal, is_causal=True).reshape(b, n, 2, -1)
        return tok[:, :, 0], tok[:, :, 1]

    def encode_pair(self, pairs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(B, 2, 3, S, S) uint8` -> encoder features of frame t and frame t+H, each `(B, N, dim)`."""
        b, n = pairs.shape[0], self.grid * self.grid
        return self.temporal(self.spatial(pairs.reshape(b * 2, *pairs.shape[2:])).reshape(b, 2, n, -1))

    def decode(self, first: torch.Tensor, action_tokens: torch.Tensor) -> torch.Tensor:
        """Frame t `(B, 3, S, S) uint8` + action tokens `(B, code_tokens, dim)` -> frame t+H `(B, 3, S, S)` in [0, 1]."""
        tgt = self.embed(first).detach() + self.pos  # LAPA detaches the frame-t tokens fed to the decoder
        out = self.dec_spatial(tgt, action_tokens + self.code_pos)
        return self.unpatchify(self.to_pixels(out))

    def forward_pairs(self, pairs: torch.Tensor, noise: bool = True,
                      generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Training forward on `(B, 2, 3, S, S) uint8`: `recon`, `target` (frame t+H in [0, 1]),
        `indices (B, code_tokens)`, `delta` (the quantiser's input). `noise`: NSVQ substitution."""
        first, last = self.encode_pair(pairs)
        q = self.vq(first, last, noise=noise, generator=generator)
        recon = self.decode(pairs[:, 0], q["tokens"])
        target = pairs[:, 1].to(recon.device, torch.float32) / 255.0
        return {"recon": recon, "target": target, "indices": q["indices"], "delta": q["delta"]}

    # -- the ActionEncoder API ------------------------------------------------------------------
    def codes(self, video: torch.Tensor) -> torch.Tensor:
        """`video (B, T, 3, H, W) uint8` -> code indices `(B, code_tokens)` long in [0, codebook_size)."""
        first, last = self.encode_pair(self.pairs(video))
        return self.vq.nearest(self.vq.delta(first, last))

    def tokens(self, video: torch.Tensor) -> torch.Tensor:
        """The codebook vectors of the clip's codes, `(B, code_tokens, quant_dim)`."""
        return self.vq.codebook[self.codes(video)]

    def _encode(self, video: torch.Tensor) -> torch.Tensor:
        return self.tokens(video).flatten(1)

    # -- streaming hooks (encoders/base.py, encoders/streaming.py): the spatial encoder runs once per
    # frame; the temporal encoder and the quantiser per window (first and last frame) -------------
    def stream_positions(self, window: int) -> np.ndarray:
        return frame_indices(window, 2)

    @torch.no_grad()
    def frame_work(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """`frames (M, 3, H, W) uint8` -> `spatial (M, N, dim)` (resized to image_size first)."""
        return {"spatial": self.spatial(resize_frames(frames, self.cfg.image_size))}

    def encode_from_work(self, frames: dict[str, torch.Tensor], pairs: dict[str, torch.Tensor] | None) -> torch.Tensor:
        first, last = self.temporal(frames["spatial"])
        return self.vq.codebook[self.vq.nearest(self.vq.delta(first, last))].flatten(1).float()

    def code_embeddings(self, codes: torch.Tensor) -> torch.Tensor:
        """`codes (B, code_tokens)` -> what `encode` returns for them, `(B, code_tokens * quant_dim)`."""
        return self.vq.codebook[codes].flatten(1)

    def flat_code(self, codes: torch.Tensor) -> torch.Tensor:
        """`(B, code_tokens)` -> one id per latent action in [0, codebook_size ** code_tokens)."""
        k = self.cfg.codebook_size
        w = k ** torch.arange(codes.shape[-1] - 1, -1, -1, device=codes.device)
        return (codes * w).sum(-1)

    def decode_codes(self, frame: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Frame t `(B, 3, H, W) uint8` + codes `(B, code_tokens)` -> predicted frame t+H `(B, 3, S, S)` in [0, 1]."""
        return self.decode(resize_frames(frame, self.cfg.image_size), self.vq.lookup(codes))

    def reconstruct(self, video: torch.Tensor) -> torch.Tensor:
        """Frame t+H predicted from frame t and the clip's hard codes, `(B, 3, S, S)` in [0, 1]."""
        pairs = self.pairs(video)
        first, last = self.encode_pair(pairs)
        idx = self.vq.nearest(self.vq.delta(first, last))
        return self.decode(pairs[:, 0], self.vq.lookup(idx))
