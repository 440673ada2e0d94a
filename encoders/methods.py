"""The registry of encoder training methods run by `encoders/train.py`.

    @register_method("invact", model=InvActConfig, loss=InvActLossConfig)
    class InvActMethod: ...

A method is built as `cls(train_cfg)`; it exposes `.model` (an ActionEncoder whose trainable
parameters are set), `.loss(model, step, device, rank, world) -> (loss, {term: float})` drawing its
part of batch `step` from (seed, step, rank, world) alone, and `.export(model, out)` (see
configs/training.py). `model` and `loss` are the typed dataclasses of the run config's `model:` and
`loss:` sections: they are checked when the config is parsed, before anything is written, and
listed by `encoders/train.py --help`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from configs.registry import Registry

METHODS: Registry[type] = Registry("training method", modules=("encoders.invact.method", "encoders.roboact.method",
                                                             "encoders.laq.method"))


def register_method(name: str, model: type, loss: type) -> Callable[[type], type]:
    """Class decorator registering a training method with its typed `model` and `loss` sections."""
    if not (dataclasses.is_dataclass(model) and dataclasses.is_dataclass(loss)):
        raise TypeError(f"method {name!r}: model and loss configs must be dataclasses")

    def deco(cls: type) -> type:
        cls.model_config = model
        cls.loss_config = loss
        cls.method_name = name
        METHODS.add(name, cls)
        return cls

    return deco


def method_class(name: str) -> Any:
    return METHODS.get(name)


def sections_help() -> str:
    """`--help` text: every method's model/loss keys with their defaults."""
    lines = ["model/loss sections per method (set as model.KEY=V / loss.KEY=V):"]
    for name, cls in METHODS.items():
        for sec in ("model", "loss"):
            fields = dataclasses.fields(getattr(cls, f"{sec}_config"))
            keys = ", ".join(f"{f.name}={_default(f)!r}" for f in fields)
            lines.append(f"  {name}.{sec}: {keys}")
    return "\n".join(lines)


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return "<required>"
