"""InvAct (invact.txt Sec. 3.1, Fig. 3): a view- and scene-invariant atomic-action encoder.

    video (B, T0, C, H, W) uint8
      -> T frames sampled uniformly                       (T = cfg.frames, paper: 8)
      -> optical flow f (B, T-1, 3, S, S)                  (dx, dy, |d| per pixel; encoders/flow.py)
      -> 3D-CNN tubelet embedder phi -> (B, N, d),  N = (T-1) * (S/8) * (S/8)
      -> [CLS] + tokens -> transformer with 3D rotary positions over (t, y, x)
                           and cross-attention to frozen image features D(v) (frame-averaged patch tokens)
      -> output CLS = the action embedding z_CLS (B, d)                              (Eq. 1)

Text is used only by the losses (encoders/invact_losses.py); inference needs video only.

CPU defaults (documented deviations from the paper's Table 4: d=256, 256 px, DINOv3, RAFT):
d=64, depth 2, flow at 32 px (4x4 tubelets per flow map), DIS flow, EfficientNet-Lite0 at 96 px
(3x3 patch tokens). Every one of them is a config field.

`modality` selects the input ablations of Table 3: "flow" (no cross-attention), "rgb" (tubelets
from RGB instead of flow), "rgb+flow" (6-channel tubelets), "backbone+flow" (the paper's model).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from encoders.base import ActionEncoder, frame_indices, register_encoder
from encoders.invact.config import MODALITIES, InvActConfig  # noqa: F401 (public names, kept here too)
from encoders.invact.inputs import prepare_inputs, prepared_inputs


# --------------------------------------------------------------------------------------- RoPE
class Rope3D(nn.Module):
    """Rotary embeddings over (t, y, x): the head's rotation pairs are split between the three axes.

    For integer positions p, q' = R(p) q, k' = R(p') k with R block-diagonal 2x2 rotations, so
    <q', k'> depends on p - p' only (the relative-position property).
    """

    def __init__(self, head_dim: int, base: float = 100.0):
        super().__init__()
        pairs = head_dim // 2
        per_axis = [pairs - 2 * (pairs // 3), pairs // 3, pairs // 3]
        freqs = [base ** (-torch.arange(n, dtype=torch.float32) / max(n, 1)) for n in per_axis]
        self.per_axis = per_axis
        for i, f in enumerate(freqs):
            self.register_buffer(f"freq{i}", f, persistent=False)

    def angles(self, pos: torch.Tensor) -> torch.Tensor:
        """`pos (N, 3)` -> rotation angles `(N, head_dim/2)`."""
        return torch.cat([pos[:, i : i + 1].float() * getattr(self, f"freq{i}") for i in range(3)], dim=-1)

    @staticmethod
    def rotate(x: torch.Tensor, ang: torch.Tensor) -> torch.Tensor:
        """`x (..., N, head_dim)` rotated pairwise by `ang (N, head_dim/2)`."""
        x1, x2 = x[..., 0::2], x[..., 1::2]
        cos, sin = ang.cos(), ang.sin()
        out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
        return out.flatten(-2)


class Block(nn.Module):
    """Pre-norm: self-attention (RoPE) -> cross-attention to frozen features (optional) -> MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float, cross: bool):
        super().__init__()
        self.heads = heads
        self.n1, self.qkv, self.proj = nn.LayerNorm(dim), nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.cross = cross
        if cross:
            self.n2, self.q, self.kv, self.cproj = nn.LayerNorm(dim), nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)
            self.nc = nn.LayerNorm(dim)
        self.n3 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, int(dim * mlp_ratio)), nn.GELU(), nn.Linear(int(dim * mlp_ratio), dim))
        self.drop = nn.Dropout(dropout)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.view(b, n, self.heads, c // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, ang: torch.Tensor, ctx: torch.Tensor | None) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(self.n1(x)).chunk(3, dim=-1)
        q, k, v = self._split(q), self._split(k), self._split(v)
        q, k = Rope3D.rotate(q, ang), Rope3D.rotate(k, ang)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c)
        x = x + self.drop(self.proj(a))
        if self.cross and ctx is not None:
            kk, vv = self.kv(self.nc(ctx)).chunk(2, dim=-1)
            a = F.scaled_dot_product_attention(self._split(self.q(self.n2(x))), self._split(kk), self._split(vv))
            x = x + self.drop(self.cproj(a.transpose(1, 2).reshape(b, n, c)))
        return x + self.drop(self.mlp(self.n3(x)))


# ----------------------------------------------------------------------------------- model
@register_encoder("invact")
class InvActEncoder(ActionEncoder):
    config_cls = InvActConfig

    def __init__(self, cfg: InvActConfig):
        super().__init__(cfg)
        self.dim = cfg.dim
        in_ch = 3 * (int(cfg.uses_flow) + int(cfg.uses_rgb))
        pad_t = cfg.tubelet_t // 2
        self.tubelet = nn.Conv3d(in_ch, cfg.dim, kernel_size=(cfg.tubelet_t, cfg.patch, cfg.patch),
                                 stride=(1, cfg.patch, cfg.patch), padding=(pad_t, 0, 0))  # fmt: skip
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        nn.init.normal_(self.cls, std=0.02)
        self.rope = Rope3D(cfg.dim // cfg.heads, cfg.rope_base)
        self.blocks = nn.ModuleList(
            Block(cfg.dim, cfg.heads, cfg.mlp_ratio, cfg.dropout, cross=cfg.uses_backbone) for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(cfg.dim)
        self.ctx_proj = nn.Linear(self.backbone().dim, cfg.dim) if cfg.uses_backbone else None
        self.verb_head = nn.Linear(cfg.dim, cfg.num_verbs)  # h(.) of Eq. 6
        self.text_proj = nn.Linear(cfg.text_dim, cfg.dim)  # text embedding -> action space (Eq. 5)
        self.stream_pairs = cfg.uses_flow  # flow is the per-pair work of the streaming hooks

    def positions(self, t: int, h: int, w: int, device=None) -> torch.Tensor:
        """`(1 + t*h*w, 3)` integer (t, y, x) per token; the CLS token sits at the origin."""
        tt, yy, xx = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")
        pos = torch.stack([tt, yy, xx], dim=-1).reshape(-1, 3)
        return torch.cat([torch.zeros(1, 3, dtype=pos.dtype), pos]).to(device)

    def forward_inputs(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Prepared inputs (see `prepare_inputs`) -> z_CLS `(B, d)` (Eq. 1)."""
        return self.norm(self._transformer(inputs)[:, 0])

    def tokens(self, video: torch.Tensor) -> torch.Tensor:
        """`video (B, T0, 3, H, W) uint8` -> the output tubelet tokens `(B, N, d)` (CLS excluded),
        N = (T-1) * (S/p)^2, for probes (encoders/probes) that read an encoder's tokens."""
        from encoders.base import check_video

        check_video(video, name="invact.tokens(video)")
        return self.norm(self._transformer(self.prepare(video))[:, 1:]).float()

    def _transformer(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Prepared inputs -> the last block's output `(B, 1 + N, d)`: [CLS] + tubelet tokens."""
        parts = []
        if self.cfg.uses_flow:
            # flow in pixels; dividing by the frame size keeps the scale independent of S
            parts.append(inputs["flow"].float() / self.cfg.flow_size * 8.0)
        if self.cfg.uses_rgb:
            rgb = inputs["rgb"].float() / 127.5 - 1.0
            parts.append(rgb[:, 1:] if self.cfg.uses_flow else rgb)  # align with the T-1 flow maps
        x = torch.cat(parts, dim=2).transpose(1, 2)  # (B, C, T', S, S)
        tok = self.tubelet(x)  # (B, d, T', S/p, S/p)
        b, d, t, h, w = tok.shape
        tok = tok.flatten(2).transpose(1, 2)  # (B, N, d)
        z = torch.cat([self.cls.expand(b, -1, -1), tok], dim=1)
        ang = self.rope.angles(self.positions(t, h, w, z.device))
        ctx = self.ctx_proj(inputs["ctx"].float()) if self.cfg.uses_backbone else None
        for blk in self.blocks:
            z = blk(z, ang, ctx)
        return z

    def prepare(self, video: torch.Tensor) -> dict[str, torch.Tensor]:
        return prepare_inputs(self.cfg, video, self.backbone() if self.cfg.uses_backbone else None)

    def _encode(self, video: torch.Tensor) -> torch.Tensor:
        return self.forward_inputs(self.prepare(video))

    # -- streaming hooks (encoders/base.py, encoders/streaming.py): the same ops as `prepare_inputs`,
    # split into per-frame work (resized frames, backbone tokens) and per-pair work (flow) ------------
    def stream_positions(self, window: int) -> np.ndarray:
        return frame_indices(window, self.cfg.frames)

    @torch.no_grad()
    def frame_work(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """`frames (M, 3, H, W) uint8` -> `small (M, S, S, 3)` uint8 (flow input), `rgb (M, 3, S, S)`
        uint8, `tok (M, N, C)` float32 backbone patch tokens (each only when the modality uses it)."""
        import cv2

        cfg, s = self.cfg, self.cfg.flow_size
        hwc = frames.permute(0, 2, 3, 1).contiguous().numpy()
        out: dict[str, torch.Tensor] = {}
        if cfg.uses_flow:  # compute_flow resizes only frames that are not S x S already
            small = hwc if hwc.shape[1:3] == (s, s) else np.stack(
                [cv2.resize(f, (s, s), interpolation=cv2.INTER_AREA) for f in hwc])
            out["small"] = torch.from_numpy(np.ascontiguousarray(small))
        if cfg.uses_rgb:
            rgb = np.stack([cv2.resize(f, (s, s), interpolation=cv2.INTER_AREA) for f in hwc])
            out["rgb"] = torch.from_numpy(rgb).permute(0, 3, 1, 2).contiguous()
        if cfg.uses_backbone:
            tokens, _ = self.backbone().extract(frames[None], tokens=True)  # (1, M, N, C)
            out["tok"] = tokens[0]
        return out

    @torch.no_grad()
    def pair_work(self, first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Flow from each `first` frame to its `second` frame: `flow (M, 3, S, S)` float32."""
        from encoders.flow import compute_flow

        a, b = first["small"].numpy(), second["small"].numpy()
        flows = np.stack([compute_flow(np.stack([x, y]), self.cfg.flow_method, self.cfg.flow_size)[0]
                          for x, y in zip(a, b)])  # fmt: skip
        return {"flow": torch.from_numpy(flows).permute(0, 3, 1, 2)}

    def encode_from_work(self, frames: dict[str, torch.Tensor], pairs: dict[str, torch.Tensor] | None) -> torch.Tensor:
        inputs: dict[str, torch.Tensor] = {}
        if self.cfg.uses_flow:
            inputs["flow"] = pairs["flow"].to(torch.float16)  # the dtype prepare_inputs (and its cache) hands over
        if self.cfg.uses_rgb:
            inputs["rgb"] = frames["rgb"]
        if self.cfg.uses_backbone:
            inputs["ctx"] = frames["tok"].mean(1).to(torch.float16)  # frame-averaged, as prepare_inputs
        return self.forward_inputs(inputs).float()

    def embed_dataset(self, root, split=None, views=None, batch_size=32, cache_root=None):
        """Embeddings through the prepared-input cache (flow and backbone run once per dataset)."""
        index, arrays = prepared_inputs(self, root, split, views, cache_root=cache_root)
        out = np.zeros((len(index), self.dim), np.float32)
        with torch.inference_mode():
            for s in range(0, len(index), batch_size):
                batch = {k: torch.from_numpy(np.array(a[s : s + batch_size])) for k, a in arrays.items()}
                out[s : s + batch_size] = self.forward_inputs(batch).numpy()
        return index, out

