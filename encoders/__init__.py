"""Frozen feature extractors, the ActionEncoder API, and the retrieval benchmark.

    from encoders import build_encoder, build_backbone, build_text_encoder
    enc = build_encoder("backbone_mean")          # or a directory written by enc.save_pretrained(dir)
    emb = enc.encode(video)                        # video (B, T, C, H, W) uint8 -> (B, D)
"""

from encoders.backbones import Backbone, available_backbones, build_backbone
from encoders.base import (
    ActionEncoder,
    EncoderSpec,
    available_encoders,
    build_encoder,
    check_video,
    register_encoder,
)
from encoders.text import TextEncoder, available_text_encoders, build_text_encoder

__all__ = [
    "ActionEncoder",
    "Backbone",
    "EncoderSpec",
    "TextEncoder",
    "available_backbones",
    "available_encoders",
    "available_text_encoders",
    "build_backbone",
    "build_encoder",
    "build_text_encoder",
    "check_video",
    "register_encoder",
]
