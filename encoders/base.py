"""The ActionEncoder API: one `nn.Module` interface, one registry, one loader.

Every video action encoder in the project (baselines here, InvAct, RoboAct-CLIP, ...) subclasses
`ActionEncoder`, registers itself with `@register_encoder("name")`, and is built with

    build_encoder("backbone_mean")                         # registry name, default config
    build_encoder("backbone_mean", backbone="pixels")      # name + constructor overrides
    build_encoder(BackboneMeanConfig(backbone="pixels"))   # the encoder's own config dataclass
    build_encoder(EncoderSpec(name="random", params={"dim": 64}))  # generic form for YAML configs
    build_encoder("runs/invact/x/checkpoint")              # a directory written by save_pretrained
    build_encoder("configs/encoder/flow_mean.yaml")        # YAML in the EncoderSpec form

so swapping encoders anywhere is a config change. On disk an encoder is `DIR/config.json`
(registry name + constructor config) and `DIR/model.safetensors` (state dict); no pickle.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from configs.loader import ConfigError, from_dict, to_dict
from configs.runs import atomic_write, atomic_write_json

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1

# Modules imported on demand when a name is not registered yet (keeps `import encoders` light and
# lets later packages add encoders without this file importing them eagerly).
_BUILTIN_MODULES = ("encoders.baselines", "encoders.invact", "encoders.roboact")
# config.json records the defining module; only project packages may be imported from it, so a
# directory from elsewhere cannot make us import arbitrary code.
_TRUSTED_PREFIXES = ("encoders.", "vla.", "policies.")

_REGISTRY: dict[str, type[ActionEncoder]] = {}


@dataclasses.dataclass
class EncoderSpec:
    """Generic YAML form: `encoder: {name: backbone_mean, params: {backbone: pixels}}`.

    `name` is a registry name or a directory written by `save_pretrained`.
    """

    name: str = "backbone_mean"
    params: dict[str, Any] = dataclasses.field(default_factory=dict)


def register_encoder(name: str):
    """Class decorator: `@register_encoder("backbone_mean")`; the class needs a `config_cls`."""

    def deco(cls: type[ActionEncoder]) -> type[ActionEncoder]:
        if not dataclasses.is_dataclass(getattr(cls, "config_cls", None)):
            raise TypeError(f"encoder {cls.__name__} must set `config_cls` to a dataclass")
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"encoder name {name!r} is already registered by {_REGISTRY[name].__qualname__}")
        cls.registry_name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def _load_builtins() -> None:
    for mod in _BUILTIN_MODULES:
        importlib.import_module(mod)


def available_encoders() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def get_encoder_class(name: str) -> type[ActionEncoder]:
    """Registered class for `name`; by convention encoder "foo" may live in module `encoders.foo`,
    which is imported on first use (so `build_encoder("invact")` works without importing it first)."""
    if name not in _REGISTRY:
        _load_builtins()
    if name not in _REGISTRY and name.isidentifier() and importlib.util.find_spec(f"encoders.{name}") is not None:
        importlib.import_module(f"encoders.{name}")
    if name not in _REGISTRY:
        raise KeyError(f"unknown encoder {name!r}; registered encoders: {', '.join(sorted(_REGISTRY))} "
                       "(or pass a directory written by save_pretrained)")
    return _REGISTRY[name]


class ActionEncoder(nn.Module):
    """Base class: `encode(video (B, T, C, H, W) uint8) -> (B, D) float32`.

    Subclasses set `config_cls` (a dataclass; its fields are the constructor config), take the
    config instance in `__init__`, set `self.dim`, and implement `_encode` on a validated input.
    """

    config_cls: ClassVar[type]
    registry_name: ClassVar[str] = ""

    def __init__(self, cfg: Any):
        super().__init__()
        if not isinstance(cfg, self.config_cls):
            raise TypeError(f"{type(self).__name__} expects a {self.config_cls.__name__}, got {type(cfg).__name__}")
        self.cfg = cfg
        self.dim: int = 0

    # -- encoding -------------------------------------------------------------------------------
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """`video (B, T, C, H, W) uint8` with C == 3 -> embeddings `(B, D)` float32."""
        check_video(video, name=f"{self.registry_name or type(self).__name__}.encode(video)")
        # grad mode is the caller's choice: frozen encoders build no graph anyway, trainable ones need it
        out = self._encode(video)
        if out.ndim != 2 or out.shape[0] != video.shape[0]:
            raise RuntimeError(f"{type(self).__name__}._encode returned shape {tuple(out.shape)}, "
                               f"expected ({video.shape[0]}, D)")
        return out.float()

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.encode(video)

    def _encode(self, video: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def freeze(self) -> ActionEncoder:
        """No gradients, eval mode (dropout/batch-norm statistics fixed); returns self."""
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()

    # -- persistence ----------------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "encoder": self.registry_name,
            "module": type(self).__module__,
            "dim": int(self.dim),
            "config": to_dict(self.cfg),
        }

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write `DIR/config.json` + `DIR/model.safetensors` (atomically, each)."""
        from safetensors.torch import save_file

        if not self.registry_name:
            raise ValueError(f"{type(self).__name__} is not registered; use @register_encoder before saving")
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        # clone + contiguous: safetensors refuses views and tensors sharing storage
        state = {k: v.detach().cpu().contiguous().clone() for k, v in self.state_dict().items()}
        atomic_write(d / WEIGHTS_NAME, lambda p: save_file(state, str(p), metadata={"encoder": self.registry_name}))
        atomic_write_json(d / CONFIG_NAME, self.config_dict())
        return d

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> ActionEncoder:
        """Load any saved encoder (the class is taken from config.json, not from `cls`)."""
        from safetensors.torch import load_file

        d = Path(directory)
        if not d.is_dir():
            raise FileNotFoundError(f"encoder directory not found: {d}")
        cfg_path, w_path = d / CONFIG_NAME, d / WEIGHTS_NAME
        if not cfg_path.is_file():
            raise FileNotFoundError(f"{d}: no {CONFIG_NAME} (not a directory written by save_pretrained)")
        if not w_path.is_file():
            raise FileNotFoundError(f"{d}: no {WEIGHTS_NAME} (not a directory written by save_pretrained)")
        try:
            meta = json.loads(cfg_path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{cfg_path}: not valid JSON ({e})") from None
        for key in ("encoder", "config"):
            if key not in meta:
                raise ValueError(f"{cfg_path}: missing field {key!r}")
        name = meta["encoder"]
        if name not in _REGISTRY:
            mod = str(meta.get("module", ""))
            if mod.startswith(_TRUSTED_PREFIXES):
                importlib.import_module(mod)
        enc_cls = get_encoder_class(name)
        if cls is not ActionEncoder and not issubclass(enc_cls, cls):
            raise TypeError(f"{d} holds a {enc_cls.__name__} ({name!r}), not a {cls.__name__}")
        cfg = from_dict(enc_cls.config_cls, meta["config"], source=str(cfg_path))
        model = enc_cls(cfg)
        state = load_file(str(w_path))
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as e:  # shape mismatches
            raise ValueError(f"{w_path}: weights do not fit the encoder built from {cfg_path}: {e}") from None
        if missing or unexpected:
            raise ValueError(f"{w_path}: weights do not match {name!r}: missing {list(missing)[:5]}, "
                             f"unexpected {list(unexpected)[:5]}")
        return model.freeze()


def check_video(video: Any, name: str = "video") -> None:
    """Raise a ValueError/TypeError naming the problem unless `video` is `(B, T, 3, H, W)` uint8."""
    if not isinstance(video, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor (B, T, C, H, W) uint8, got {type(video).__name__}")
    if video.dtype != torch.uint8:
        raise TypeError(f"{name}: expected dtype uint8 (raw pixels 0..255), got {video.dtype}")
    if video.ndim != 5:
        raise ValueError(f"{name}: expected 5 dims (B, T, C, H, W), got shape {tuple(video.shape)}")
    if video.shape[2] != 3:
        raise ValueError(f"{name}: expected C=3 at dim 2 of (B, T, C, H, W), got shape {tuple(video.shape)}"
                         + (" (channels-last? permute to (B, T, C, H, W))" if video.shape[-1] == 3 else ""))
    if min(video.shape) == 0:
        raise ValueError(f"{name}: empty dimension in shape {tuple(video.shape)}")


def build_encoder(spec: Any, **overrides: Any) -> ActionEncoder:
    """Build an encoder from a registry name, a saved directory, a YAML file, a config dataclass, or EncoderSpec/dict.

    `overrides` are constructor-config fields (only for name/config forms, not directories).
    """
    if isinstance(spec, dict):
        spec = from_dict(EncoderSpec, spec, source="encoder spec")
    if isinstance(spec, EncoderSpec):
        return build_encoder(spec.name, **{**spec.params, **overrides})
    if isinstance(spec, (str, Path)) and str(spec).endswith((".yaml", ".yml")):
        from configs.loader import read_yaml

        return build_encoder(from_dict(EncoderSpec, read_yaml(spec), source=str(spec)), **overrides)
    if isinstance(spec, Path) or (isinstance(spec, str) and _is_directory_spec(spec)):
        if overrides:
            raise ValueError(f"cannot apply overrides {sorted(overrides)} to a saved encoder directory {spec}")
        return ActionEncoder.from_pretrained(spec)
    if isinstance(spec, str):
        enc_cls = get_encoder_class(spec)
        try:
            cfg = from_dict(enc_cls.config_cls, overrides, source=f"encoder {spec!r}")
        except ConfigError as e:
            raise ValueError(str(e)) from None
        return enc_cls(cfg).freeze()
    if dataclasses.is_dataclass(spec) and not isinstance(spec, type):
        _load_builtins()
        for enc_cls in _REGISTRY.values():
            if type(spec) is enc_cls.config_cls:
                cfg = dataclasses.replace(spec, **overrides) if overrides else spec
                validate = getattr(cfg, "validate", None)
                if callable(validate):
                    validate()
                return enc_cls(cfg).freeze()
        raise TypeError(f"no registered encoder takes a {type(spec).__name__} config")
    raise TypeError(f"cannot build an encoder from {type(spec).__name__} {spec!r}")


def _is_directory_spec(s: str) -> bool:
    # anything path-shaped is a directory; a bare word is a registry name unless only a folder matches it
    if "/" in s or "\\" in s or s.startswith("."):
        return True
    if s in _REGISTRY:
        return False
    _load_builtins()
    return s not in _REGISTRY and Path(s).is_dir()
