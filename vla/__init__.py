"""Latent-action VLA: model registry (`build_vla`), stage 1 labelling, stage 2 pretraining, stage 3 post-training.

The model API is re-exported lazily (`from vla import build_vla, VLAConfig, PrismaticVLA, VLAS`) so
`import vla` stays light until a model is actually needed.
"""

from __future__ import annotations

from typing import Any

_MODELING = ("VLAS", "VLAConfig", "PrismaticVLA", "build_vla", "PROMPT")

__all__ = list(_MODELING)


def __getattr__(name: str) -> Any:
    if name in _MODELING:
        from vla import modeling

        return getattr(modeling, name)
    raise AttributeError(f"module 'vla' has no attribute {name!r}")
