"""RoboAct-CLIP (roboact_clip.txt Sec. III-B, Eq. 1-27): spatiotemporal diff-transformer + subject /
action / object disentanglement on top of frozen frame and text encoders.

    video (B, T0, 3, H, W) uint8
      -> n frames sampled uniformly (cfg.frames; paper n=16)                    -> frozen backbone (Eq. 5)
      -> F_vi (B, n, C), standardised with training statistics, projected to d (linear, so the
         differences below are the projections of the feature differences of Eq. 6)
      -> dF_i = F_vi - F_v(i-1), i=2..n (Eq. 6) + sinusoidal positions -> Transformer (Eq. 7) -> Tem_vn
      -> F_v = MLP([Tem_vn; F_vn - F_v1; F_v1; F_vn]) (B, d)                                  (Eq. 8)
      -> F_v_attn = MultiHeadAttention(F_v, F_v, F_v)                                          (Eq. 9)
      -> subject / object / action branches (B, b) each                                   (Eq. 10-12)
      -> embedding = Concat(F_v_sub, F_v_obj, F_v_act) (B, 3b)                                (Eq. 24)
    text (frozen, Eq. 1) -> subject / action / object MLPs (Eq. 2-4) -> Concat (Eq. 25)
    auxiliary classifiers on F_v_attn (Eq. 22); feature banks + recombination MLP (Eq. 15-18).

Choices the paper leaves open:
- Eq. 9 attends over a single vector per clip; with one token self-attention degenerates to a
  linear map, so F_v is split into `attn_tokens` chunks of d/attn_tokens that attend to each other
  (Q = K = V = F_v as written), with a residual connection and LayerNorm.
- MLPs are Linear-GELU-Linear with hidden width d; branch width b = `branch_dim`.
- Feature banks (Eq. 15-17) are buffers (saved with the model) holding one vector per class; the
  update rule is `update_banks` in encoders/roboact/banks.py (EMA of the per-class batch mean, every
  `loss.bank_every` steps).
- Recombination MLP (Eq. 18): [B_sub[s]; B_act[a]; B_obj[o]] (3b) -> d -> 3b, i.e. it lands in the
  Eq. 24/25 space, so a recombined triplet can be compared with `encode(video)` and `text_embed`.

Ablations (Sec. IV-C): `temporal: endpoints` (A1: MLP on [F_v1; F_vn] only), `disentangle: false`
(A2: F_v is projected straight to the 3b space, no attention/branches/banks), `frames: 2` (A5),
`temporal: raw` + `disentangle: false` (A6: a linear map of the frame-averaged raw features).
A3/A4 are loss weights (encoders/roboact_losses.py).

Options beyond the paper (issue 23, named in the config and the results): `motion: diff` (Eq. 6 in
pixel space), `action_input: temporal` (the action from Tem_vn only), `object_input: pixels` (the
object from a trainable stem over the small frames); see RoboActConfig.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from encoders.base import ActionEncoder, frame_indices, register_encoder
from encoders.pixel_motion import OBJECT_POOLS, POOLS, MotionStem, ObjectStem, shrink
from encoders.roboact.banks import FACTORS, FeatureBanks

TEMPORAL = ("diff", "endpoints", "raw")


@dataclasses.dataclass
class RoboActConfig:
    frames: int = 16  # n uniformly sampled frames (paper 16; 2/8/16/32 configurable)
    backbone: str = "efficientnet_lite0"  # frozen visual encoder (Eq. 5); CLIP: hf:/local/clip-vit dir
    backbone_size: int = 96
    feature_dim: int = 0  # C of the backbone's pooled features; 0: asked from the backbone
    text_encoder: str = "minilm"  # frozen text encoder (Eq. 1); CLIP: hf_clip_text:/local/dir
    text_dim: int = 384
    dim: int = 64  # d: trunk width (CPU-sized; every trunk matmul scales with d^2)
    depth: int = 2  # diff-transformer layers (Eq. 7)
    heads: int = 4
    attn_tokens: int = 4  # Eq. 9: F_v split into this many chunks that self-attend
    branch_dim: int = 32  # b: width of each branch (embedding = 3b)
    dropout: float = 0.1
    temporal: str = "diff"  # "diff" (Eq. 6-8) | "endpoints" (A1) | "raw" (A6)
    disentangle: bool = True  # False: A2
    output: str = "concat"  # encode() returns "concat" (Eq. 24) or the "action" branch only
    # Not in the paper (issue 23): "diff" takes Eq. 6's differences in pixel space through a trainable
    # CNN stem (encoders/pixel_motion.py) at motion_size px instead of from the frozen features
    motion: str = "none"  # "none" | "diff"
    motion_size: int = 48
    motion_width: int = 16
    # how the motion stem pools its grid (encoders/pixel_motion.py POOLS): "mean_max", or "moments",
    # which adds each channel's x/y first moments (where in the frame the motion is)
    motion_pool: str = "mean_max"
    # True: each motion step also sees its frame f_i beside the differences (MotionStem): the image
    # gradient that gives a difference its direction (a rotation's sense, on or off for the knob)
    motion_frame: bool = False
    # Not in the paper (issue 23): "temporal" feeds the action branch (Eq. 12) and the action classifier
    # (Eq. 22) from Tem_vn, the last Eq. 7 output, instead of F_v_attn, so the action cannot be read
    # off the frozen F_v1 / F_vn (the scene); "fused" is the paper's
    action_input: str = "fused"
    # Not in the paper (issue 23): "pixels" feeds the object branch (Eq. 11) and the object classifier
    # (Eq. 22) from a trainable stem over its own object_size px frames (ObjectStem: first, middle, last
    # frame and last - first; needs motion "diff") instead of F_v_attn; "fused" is the paper's
    object_input: str = "fused"
    object_size: int = 96  # the object stem's frames (px): the atomic world's own size; at 48 px an object is 3-5 px
    object_width: int = 24
    # how the object stem pools its grid (encoders/pixel_motion.py OBJECT_POOLS): "mean_max", or "attn",
    # learned attention over the grid cells, so a static distractor's colour need not reach the object head
    # (measured: it fits more slowly; docs/results/roboact_diagnosis.md)
    object_pool: str = "mean_max"
    # class names per factor (training overwrites them with the dataset's vocabulary; the defaults
    # are the atomic world's, so `build_encoder("roboact_clip")` gives an untrained model)
    subjects: list[str] = dataclasses.field(default_factory=lambda: ["robot", "human"])
    actions: list[str] = dataclasses.field(default_factory=lambda: [
        "pick up", "put down", "push", "pull", "slide left", "slide right", "rotate clockwise",
        "rotate counterclockwise", "open", "close", "turn on", "turn off"])  # fmt: skip
    objects: list[str] = dataclasses.field(default_factory=lambda: [
        "red cube", "blue cylinder", "green ball", "yellow block", "purple bottle", "orange mug", "white carton",
        "drawer", "knob"])  # fmt: skip
    n_triplets: int = 0  # size of the valid-triplet set M (a buffer, filled by training)

    def validate(self) -> None:
        if self.temporal not in TEMPORAL:
            raise ValueError(f"roboact_clip.temporal: {self.temporal!r} is not one of {TEMPORAL}")
        if self.motion not in ("none", "diff") or (self.motion == "diff" and self.temporal != "diff"):
            raise ValueError(f"roboact_clip.motion: {self.motion!r} must be 'none', or 'diff' with temporal 'diff'")
        if self.action_input not in ("fused", "temporal") or (self.action_input == "temporal" and (
                self.temporal != "diff" or not self.disentangle)):
            raise ValueError(f"roboact_clip.action_input: {self.action_input!r} must be 'fused', or 'temporal' "
                             "with temporal 'diff' and disentangle true")
        if self.object_input not in ("fused", "pixels") or (self.object_input == "pixels" and (
                self.motion != "diff" or not self.disentangle)):
            raise ValueError(f"roboact_clip.object_input: {self.object_input!r} must be 'fused', or 'pixels' "
                             "with motion 'diff' and disentangle true")
        if self.motion_pool not in POOLS:
            raise ValueError(f"roboact_clip.motion_pool: {self.motion_pool!r} is not one of {sorted(POOLS)}")
        if self.object_pool not in OBJECT_POOLS:
            raise ValueError(f"roboact_clip.object_pool: {self.object_pool!r} is not one of {list(OBJECT_POOLS)}")
        if self.output not in ("concat", "action"):
            raise ValueError(f"roboact_clip.output: {self.output!r} is not 'concat' or 'action'")
        if self.frames < 2:
            raise ValueError(f"roboact_clip.frames must be >= 2, got {self.frames}")
        if self.dim % self.heads or self.dim % self.attn_tokens or (self.dim // self.attn_tokens) % self.heads:
            raise ValueError(f"roboact_clip.dim ({self.dim}) must be divisible by heads ({self.heads}) and by "
                             f"attn_tokens*heads ({self.attn_tokens}*{self.heads})")
        if min(self.depth, self.branch_dim, self.text_dim) < 1:
            raise ValueError("roboact_clip.depth, branch_dim and text_dim must be >= 1")
        if not self.subjects or not self.actions or not self.objects:
            raise ValueError("roboact_clip.subjects/actions/objects: every factor needs a non-empty class list")
        for name in FACTORS:
            vals = getattr(self, name + "s")
            if len(set(vals)) != len(vals):
                raise ValueError(f"roboact_clip.{name}s has duplicate class names: {vals}")


def mlp(i: int, h: int, o: int, dropout: float = 0.0) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, h), nn.GELU(), nn.Dropout(dropout), nn.Linear(h, o))


def sinusoidal_positions(n: int, d: int) -> torch.Tensor:
    """`(n, d)` fixed sinusoidal encoding (Vaswani et al., the paper's [23])."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(n, d)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)[:, : d // 2]
    return pe


@register_encoder("roboact_clip")
class RoboActEncoder(FeatureBanks, ActionEncoder):
    """`encode(video (B, T, 3, H, W) uint8) -> (B, 3b)` (or `(B, b)` with output=action)."""

    config_cls = RoboActConfig

    def __init__(self, cfg: RoboActConfig):
        super().__init__(cfg)
        d, b = cfg.dim, cfg.branch_dim
        c = cfg.feature_dim or self.backbone().dim
        self.feature_dim = c
        self.k = {"subject": len(cfg.subjects), "action": len(cfg.actions), "object": len(cfg.objects)}
        self.dim = 3 * b if cfg.output == "concat" else b
        # feature standardisation (training-set statistics; buffers so export keeps them)
        self.register_buffer("feat_mean", torch.zeros(c))
        self.register_buffer("feat_std", torch.ones(c))
        self.in_proj = nn.Linear(c, d)
        # motion "diff" / object_input "pixels": every frame's feature row also carries its small
        # frames, flattened, in this order (with_pixels, pixel_slices)
        self.pixel_sizes = {"motion": cfg.motion_size} if cfg.motion == "diff" else {}
        if cfg.object_input == "pixels":
            self.pixel_sizes["object"] = cfg.object_size
        self.pixels = sum(3 * s * s for s in self.pixel_sizes.values())
        if cfg.motion == "diff":
            self.motion = MotionStem(d, cfg.motion_width, cfg.motion_pool, cfg.motion_frame)
        if cfg.object_input == "pixels":
            self.object_stem = ObjectStem(d, cfg.object_width, cfg.object_pool)
        if cfg.temporal == "diff":
            layer = nn.TransformerEncoderLayer(d, cfg.heads, 2 * d, cfg.dropout, activation="gelu",
                                               batch_first=True, norm_first=True)  # fmt: skip
            self.diff_transformer = nn.TransformerEncoder(layer, cfg.depth, enable_nested_tensor=False)
            self.register_buffer("pos", sinusoidal_positions(max(cfg.frames - 1, 1), d), persistent=False)
            self.fuse = mlp(4 * d, d, d, cfg.dropout)  # Eq. 8
        elif cfg.temporal == "endpoints":
            self.fuse = mlp(2 * d, d, d, cfg.dropout)  # A1
        if cfg.disentangle:
            self.attn = nn.MultiheadAttention(d // cfg.attn_tokens, cfg.heads, batch_first=True)  # Eq. 9
            self.attn_norm = nn.LayerNorm(d)
            self.v_branch = nn.ModuleDict({f: mlp(d, d, b) for f in FACTORS})  # Eq. 10-12
            self.recomb = mlp(3 * b, d, 3 * b)  # Eq. 18
            for f in FACTORS:  # Eq. 15-17: one vector per class, `filled` marks classes seen so far
                self.register_buffer(f"bank_{f}", torch.zeros(self.k[f], b))
                self.register_buffer(f"bank_{f}_filled", torch.zeros(self.k[f], dtype=torch.bool))
        else:
            self.v_proj = nn.Linear(d, 3 * b)  # A2/A6: F_v straight into the Eq. 24 space
        self.t_branch = nn.ModuleDict({f: mlp(cfg.text_dim, d, b) for f in FACTORS})  # Eq. 2-4
        self.classifier = nn.ModuleDict({f: mlp(d, d, self.k[f]) for f in FACTORS})  # Eq. 22
        # valid (subject, action, object) triplets M of Eq. 18-20, as class ids
        self.register_buffer("triplets", torch.zeros(cfg.n_triplets, 3, dtype=torch.long))

    # -- frozen parts (ActionEncoder.frozen: kept outside the state dict, never trained) ---------
    def text_encoder(self):
        from encoders.text import build_text_encoder

        return self.frozen("text", lambda: build_text_encoder(self.cfg.text_encoder))

    # -- visual path --------------------------------------------------------------------------
    def frame_features(self, video: torch.Tensor) -> torch.Tensor:
        """`video (B, T0, 3, H, W) uint8` -> frozen per-frame features F_vi `(B, n, C)` (Eq. 5);
        `(B, n, C + P)` with small frames (`with_pixels`)."""
        idx = torch.from_numpy(frame_indices(video.shape[1], self.cfg.frames))
        _, pooled = self.backbone().extract(video[:, idx], tokens=False)
        return self.with_pixels(pooled, video[:, idx])

    def with_pixels(self, pooled: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """`pooled (..., C)` + `frames (..., 3, H, W) uint8` -> `(..., C + P)`: the frame's small copies
        at each size of `pixel_sizes` (motion, then object), flattened; P = sum of 3 s^2. Without
        pixel options, `pooled` as it is."""
        if not self.pixels:
            return pooled
        return torch.cat([pooled.float(), *(shrink(frames, s).flatten(-3).float() for s in self.pixel_sizes.values())], -1)

    def pixel_slices(self) -> dict[str, slice]:
        """Where each block of small frames sits in a frame row `(C + P)`: {"motion" / "object": slice}."""
        out, at = {}, self.feature_dim
        for name, s in self.pixel_sizes.items():
            out[name], at = slice(at, at + 3 * s * s), at + 3 * s * s
        return out

    def pixel_block(self, feats: torch.Tensor, name: str) -> torch.Tensor | None:
        """Frame rows `(B, n, C + P)` -> block `name`'s ("motion" / "object") small frames `(B, n, 3, s, s)`
        in [0, 1]; None when the model has no such block."""
        sl = self.pixel_slices().get(name)
        if sl is None:
            return None
        return feats[..., sl].float().reshape(*feats.shape[:2], 3, self.pixel_sizes[name], -1) / 255.0

    def trunk(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`feats (B, n, C)` raw frame features -> (F_v `(B, d)` (Eq. 6-8, or the A1/A6 variants),
        Tem_vn `(B, d)`, the last Eq. 7 output, or None without Eq. 7)."""
        if feats.shape[-1] != self.feature_dim + self.pixels:
            raise ValueError(f"roboact_clip: frame features have width {feats.shape[-1]}, expected "
                             f"{self.feature_dim + self.pixels}")
        pix = self.pixel_block(feats, "motion")
        feats = feats[..., : self.feature_dim]
        x = self.in_proj((feats.float() - self.feat_mean) / self.feat_std)  # (B, n, d)
        if self.cfg.temporal == "raw":
            return x.mean(1), None  # A6: linear map of frame-averaged raw features
        first, last = x[:, 0], x[:, -1]
        if self.cfg.temporal == "endpoints":
            return self.fuse(torch.cat([first, last], dim=-1)), None  # A1
        tem = self.temporal_tokens(x, pix)[:, -1]
        return self.fuse(torch.cat([tem, last - first, first, last], dim=-1)), tem  # Eq. 8

    def temporal_tokens(self, x: torch.Tensor, pix: torch.Tensor | None = None) -> torch.Tensor:
        """Projected frame features `x (B, n, d)` (+ the small frames `pix (B, n, 3, s, s)` in [0, 1] with
        motion "diff") -> the Eq. 7 transformer outputs over the Eq. 6 frame differences `(B, n-1, d)`."""
        if self.cfg.motion == "diff":  # Eq. 6 in pixel space: a trainable stem over the small frames' differences
            diff = self.motion(pix)
        else:
            diff = x[:, 1:] - x[:, :-1]  # Eq. 6
        pos = self.pos if self.pos.shape[0] == diff.shape[1] else sinusoidal_positions(diff.shape[1], x.shape[-1]).to(x)
        return self.diff_transformer(diff + pos)  # Eq. 7

    def tokens(self, video: torch.Tensor) -> torch.Tensor:
        """`video (B, T0, 3, H, W) uint8` -> per-step tokens for probes (encoders/probes): the Eq. 7
        outputs `(B, n-1, d)`; with `temporal` raw/endpoints (no Eq. 7), the projected frames `(B, n, d)`."""
        from encoders.base import check_video

        check_video(video, name="roboact_clip.tokens(video)")
        feats = self.frame_features(video)
        pix = self.pixel_block(feats, "motion")
        x = self.in_proj((feats[..., : self.feature_dim].float() - self.feat_mean) / self.feat_std)
        if self.cfg.temporal in ("raw", "endpoints"):
            return x.float()
        return self.temporal_tokens(x, pix).float()

    def attend(self, fv: torch.Tensor) -> torch.Tensor:
        """Eq. 9: `(B, d)` -> `(B, d)`; F_v as `attn_tokens` chunks attending to each other (+ residual, LN)."""
        if not self.cfg.disentangle:
            return fv
        tok = fv.view(fv.shape[0], self.cfg.attn_tokens, -1)
        a, _ = self.attn(tok, tok, tok, need_weights=False)
        return self.attn_norm(fv + a.reshape_as(fv))

    def forward_features(self, feats: torch.Tensor) -> dict[str, torch.Tensor]:
        """`feats (B, n, C)` -> {fv (B, d), attn (B, d), subject/action/object (B, b) (A2: None),
        embedding (B, 3b) (Eq. 24 order: sub, obj, act), logits_subject/action/object (B, K_f)}."""
        fv, tem = self.trunk(feats)
        at = self.attend(fv)
        out: dict[str, Any] = {"fv": fv, "attn": at}
        # action_input "temporal": the action branch and classifier read Tem_vn only; object_input
        # "pixels": the object branch and classifier read the object stem (see RoboActConfig)
        src = {f: tem if f == "action" and self.cfg.action_input == "temporal" else at for f in FACTORS}
        if self.cfg.object_input == "pixels":
            src["object"] = self.object_stem(self.pixel_block(feats, "object"))
        if self.cfg.disentangle:
            for f in FACTORS:
                out[f] = self.v_branch[f](src[f])
            out["embedding"] = torch.cat([out["subject"], out["object"], out["action"]], dim=-1)  # Eq. 24
        else:
            out.update(subject=None, action=None, object=None)
            out["embedding"] = self.v_proj(at)
        for f in FACTORS:
            out[f"logits_{f}"] = self.classifier[f](src[f])
        return out

    def output_of(self, out: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.cfg.output == "action":
            if out["action"] is None:
                b = self.cfg.branch_dim
                return out["embedding"][:, 2 * b :]
            return out["action"]
        return out["embedding"]

    def _encode(self, video: torch.Tensor) -> torch.Tensor:
        return self.output_of(self.forward_features(self.frame_features(video)))

    # -- streaming hooks (encoders/base.py, encoders/streaming.py): per-frame work = the frozen pooled
    # features of `frame_features`; everything after them is cheap and runs per window -------------
    def stream_positions(self, window: int) -> np.ndarray:
        return frame_indices(window, self.cfg.frames)

    @torch.no_grad()
    def frame_work(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """`frames (M, 3, H, W) uint8` -> `pooled (M, C)` frozen frame features F_vi (Eq. 5)."""
        _, pooled = self.backbone().extract(frames[None], tokens=False)
        return {"pooled": self.with_pixels(pooled[0], frames)}

    def encode_from_work(self, frames: dict[str, torch.Tensor], pairs: dict[str, torch.Tensor] | None) -> torch.Tensor:
        return self.output_of(self.forward_features(frames["pooled"])).float()

    # -- the pieces the policy heads and the real-arm executor use ------------------------------
    def branches(self, video: torch.Tensor) -> dict[str, torch.Tensor]:
        """`video (B, T, 3, H, W) uint8` -> {"subject", "action", "object"}: `(B, b)` each (Eq. 10-12)."""
        from encoders.base import check_video

        check_video(video, name="roboact_clip.branches(video)")
        out = self.forward_features(self.frame_features(video))
        if out["subject"] is None:  # A2: the 3b embedding is split in the Eq. 24 order
            b = self.cfg.branch_dim
            e = out["embedding"]
            return {"subject": e[:, :b], "object": e[:, b : 2 * b], "action": e[:, 2 * b :]}
        return {f: out[f] for f in FACTORS}

    def classify(self, video: torch.Tensor) -> dict[str, torch.Tensor]:
        """`video (B, T, 3, H, W) uint8` -> {factor: probabilities `(B, K_f)`} (Eq. 22); class names are
        `cfg.subjects / cfg.actions / cfg.objects`."""
        from encoders.base import check_video

        check_video(video, name="roboact_clip.classify(video)")
        return self.classify_features(self.frame_features(video))

    def classify_features(self, feats: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.forward_features(feats)
        return {f: out[f"logits_{f}"].softmax(-1) for f in FACTORS}

    def triplet_scores(self, video: torch.Tensor, subject: Any, action: Any, object: Any) -> dict[str, torch.Tensor]:  # noqa: A002
        """How well each clip shows the (subject, action, object) step, for an executor's "step done?" check.

        `video (B, T, 3, H, W) uint8` -> {"prob": P(s) P(a) P(o) from the classifiers `(B,)`,
        "recomb_cos": cosine between encode(video) (Eq. 24) and recombine(s, a, o) `(B,)` (needs banks)}."""
        from encoders.base import check_video

        check_video(video, name="roboact_clip.triplet_scores(video)")
        out = self.forward_features(self.frame_features(video))
        prob = torch.ones(video.shape[0], device=out["fv"].device)
        for f, v in (("subject", subject), ("action", action), ("object", object)):
            ids = self.class_ids(f, v)
            p = out[f"logits_{f}"].softmax(-1)
            prob = prob * p.gather(1, ids.expand(video.shape[0]).reshape(-1, 1) if ids.numel() == 1 else ids[:, None]).squeeze(1)
        res = {"prob": prob}
        if self.cfg.disentangle:
            r = self.recombine(subject, action, object)
            res["recomb_cos"] = F.cosine_similarity(out["embedding"], r.expand_as(out["embedding"]), dim=-1)
        return res

    def text_branches(self, ft: torch.Tensor) -> torch.Tensor:
        """Frozen text features `(B, text_dim)` -> Concat(F_t_sub, F_t_obj, F_t_act) `(B, 3b)` (Eq. 2-4, 25)."""
        ft = ft.to(self.in_proj.weight)
        return torch.cat([self.t_branch["subject"](ft), self.t_branch["object"](ft), self.t_branch["action"](ft)], dim=-1)

    def text_embed(self, texts: list[str]) -> torch.Tensor:
        """Texts (N strings) -> `(N, 3b)` through the frozen text encoder and the Eq. 2-4 MLPs."""
        return self.text_branches(self.text_encoder().encode(list(texts)))

    # -- dataset embedding through the frozen-feature cache --------------------------------------
    def embed_dataset(self, root, split=None, views=None, batch_size=32, cache_root=None):
        """(index, embeddings `(M, dim)`) using the cached frozen frame features (backbone runs once)."""
        index, feats = self.dataset_features(root, split, views, cache_root)
        out = np.zeros((len(index), self.dim), np.float32)
        with torch.inference_mode():
            step = max(batch_size, 64)
            for s in range(0, len(index), step):
                x = torch.from_numpy(np.asarray(feats[s : s + step], dtype=np.float32))
                out[s : s + step] = self.output_of(self.forward_features(x)).float().numpy()
        return index, out

    def dataset_features(self, root, split=None, views=None, cache_root=None):
        """(index, `FrameRows` `(M, n, C)` frozen frame features at this model's n uniformly sampled
        frames; `(M, n, C + P)` with small frames: each row's small frames appended, as `with_pixels`,
        kept uint8 until a row is read)."""
        from encoders.features import backbone_features
        from encoders.roboact.frame_rows import FrameRows

        res = backbone_features(self.backbone(), root, split, views, cache_root=cache_root)
        pooled = res.arrays["pooled"]
        idx = frame_indices(pooled.shape[1], self.cfg.frames)
        by_size: dict[int, np.ndarray] = {}  # motion_size == object_size: one array for both blocks
        if self.pixels:
            from encoders.features import small_frames

            for s in self.pixel_sizes.values():
                if s not in by_size:
                    px = small_frames(root, split, views, s, cache_root).arrays["frames"][:, idx]
                    by_size[s] = px.reshape(*px.shape[:2], -1)
        return res.index, FrameRows(pooled[:, idx], [by_size[s] for s in self.pixel_sizes.values()])
