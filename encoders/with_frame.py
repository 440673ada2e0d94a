"""`with_frame`: an action encoder's clip embedding beside a frame encoder's embedding of the clip's last frame.

    encode(video (B, T, C, H, W) uint8) = concat(action.encode(video), frame.encode(video[:, -1:]))   (B, D_a + D_f)

Why it exists (issue 23, docs/results/policy_heads_tables.md): in the LIBERO head table the action
encoders (InvAct, RoboAct-CLIP, LAQ) read an 8-frame clip and score under a single-frame
`backbone_mean` head, so two causes are confounded: the encoder and the window (a head that sees
its own recent motion copies it). A head on `with_frame` features sees everything the
single-frame `backbone_mean` head sees (the current frame) plus the action encoder's clip, so
it separates "the action features add nothing" from "the window costs the head". It is a named
option of the table, not a change to either encoder.

    build_encoder("with_frame", action="runs/demo/invact/encoder")            # frame: backbone_mean
    build_encoder("configs/encoder/with_frame_invact.yaml")                   # the YAML form

The sub-encoders are given as any `build_encoder` spec (a registry name, an exported directory,
or `{name, params}`); the built encoder stores both as `{name, params}` and their weights in its own
state dict (`action.*`, `frame.*`), so a saved `with_frame` (e.g. inside a saved policy) loads
without the directories it was built from.

Streaming (encoders/base.py hooks): a frame's work is both encoders' work of that frame, a pair's
work is the action encoder's, and the frame encoder reads the work of the window's last sampled
frame (the action encoder's positions end at the window's last frame: `frame_indices` keeps it),
so a rollout does each frame's frame-encoder work once.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from configs.loader import to_dict
from encoders.base import ActionEncoder, build_encoder, register_encoder

Work = dict[str, torch.Tensor]


@dataclasses.dataclass
class WithFrameConfig:
    # the clip encoder: a registry name, an exported encoder directory, or {name, params}
    action: str | dict[str, Any] = ""
    # the current-frame encoder (a single-frame encoder: no pair work), same forms
    frame: str | dict[str, Any] = "backbone_mean"

    def validate(self) -> None:
        for key in ("action", "frame"):
            if not getattr(self, key):
                raise ValueError(f"with_frame: {key} must name an encoder (a registry name, an exported "
                                 "encoder directory or {name, params})")


def _spec(encoder: ActionEncoder) -> dict[str, Any]:
    """A built encoder as the `{name, params}` spec that rebuilds its architecture (weights aside)."""
    return {"name": encoder.registry_name, "params": to_dict(encoder.cfg)}


def _part(work: Work, prefix: str) -> Work:
    return {k[len(prefix):]: v for k, v in work.items() if k.startswith(prefix)}


@register_encoder("with_frame")
class WithFrameEncoder(ActionEncoder):
    """`(B, T, C, H, W) uint8` -> `concat(action(clip) (B, D_a), frame(last frame) (B, D_f))`."""

    config_cls = WithFrameConfig

    def __init__(self, cfg: WithFrameConfig):
        cfg.validate()
        super().__init__(cfg)
        self.action = build_encoder(cfg.action)
        self.frame = build_encoder(cfg.frame)
        if self.frame.stream_pairs:
            raise ValueError(f"with_frame: the frame encoder {self.frame.registry_name!r} reads frame pairs; "
                             "give a single-frame encoder such as backbone_mean")
        # self-contained config: a saved with_frame rebuilds both parts from it and loads their weights
        self.cfg = dataclasses.replace(cfg, action=_spec(self.action), frame=_spec(self.frame))
        self.dim = self.action.dim + self.frame.dim
        self.stream_pairs = self.action.stream_pairs

    def _encode(self, video: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.action.encode(video), self.frame.encode(video[:, -1:])], dim=1)

    # -- streaming hooks --------------------------------------------------------------------------
    def stream_positions(self, window: int) -> np.ndarray | None:
        pos = self.action.stream_positions(window)
        own = self.frame.stream_positions(1)
        if pos is None or own is None or len(pos) == 0 or int(pos[-1]) != window - 1:
            return None  # no hooks on a part, or the clip ends before the window's last frame: re-encode
        return pos

    def frame_work(self, frames: torch.Tensor) -> Work:
        """`frames (M, 3, H, W) uint8` -> both parts' frame work, keys prefixed `a.` / `f.`."""
        a = {f"a.{k}": v for k, v in self.action.frame_work(frames).items()}
        return {**a, **{f"f.{k}": v for k, v in self.frame.frame_work(frames).items()}}

    def pair_work(self, first: Work, second: Work) -> Work:
        return self.action.pair_work(_part(first, "a."), _part(second, "a."))

    def encode_from_work(self, frames: Work, pairs: Work | None) -> torch.Tensor:
        """Work of the sampled frames `{name: (B, n, ...)}` (+ pairs) -> `(B, D_a + D_f)`."""
        own = torch.as_tensor(self.frame.stream_positions(1))
        last = {k: v[:, -1:][:, own] for k, v in _part(frames, "f.").items()}  # the frame encoder's 1-frame clip
        ea = self.action.encode_from_work(_part(frames, "a."), pairs)
        return torch.cat([ea.float(), self.frame.encode_from_work(last, None).float()], dim=1)
