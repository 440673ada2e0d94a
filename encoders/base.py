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
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from configs.loader import ConfigError, from_dict, to_dict
from configs.registry import Registry
from configs.runs import atomic_write, atomic_write_json, damaged, read_json_fields
from encoders.video import check_video, frame_indices, sample_frames  # noqa: F401 (public here too)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1

# Modules imported on demand when a name is not registered yet (keeps `import encoders` light and
# lets later packages add encoders without this file importing them eagerly). config.json records
# the defining module; only project packages may be imported from it (Registry.import_trusted), so
# a directory from elsewhere cannot make us import arbitrary code.
ENCODERS: Registry[type[ActionEncoder]] = Registry(
    "encoder", modules=("encoders.baselines", "encoders.invact", "encoders.roboact", "encoders.with_frame"),
    hint="or pass a directory written by save_pretrained")


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
        ENCODERS.add(name, cls)
        cls.registry_name = name
        return cls

    return deco


def available_encoders() -> list[str]:
    return ENCODERS.names()


def get_encoder_class(name: str) -> type[ActionEncoder]:
    """Registered class for `name`; by convention encoder "foo" may live in package `encoders.foo`,
    which is imported on first use (so a new method package needs no edit here)."""
    if name not in ENCODERS and name.isidentifier() and importlib.util.find_spec(f"encoders.{name}") is not None:
        ENCODERS.import_trusted(f"encoders.{name}")
    return ENCODERS.get(name)


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

    # -- streaming hooks (encoders/streaming.py) --------------------------------------------------
    # A rollout encodes a window that slides by one frame per step, so almost all of `encode`'s
    # frozen work (backbone passes, resizes, optical flow) was already done for the previous window.
    # An encoder whose `encode` splits into
    #     per-frame work   frame_work(frames)          one row per frame, from that frame alone
    #     per-pair work    pair_work(first, second)    one row per pair of sampled frames (e.g. flow)
    #     the rest         encode_from_work(...)       cheap, over the window's rows
    # implements these hooks, and `EncoderStream` / `episode_features` compute each frame's and each
    # pair's work once per episode. Contract: `encode_from_work` over the work of the frames at
    # `stream_positions(T)` of a `(B, T, ...)` video (and of their consecutive pairs) equals
    # `encode(video)`; tests/test_streaming.py checks it per encoder to 1e-5. An encoder without
    # hooks (`stream_positions` returns None) is streamed by re-encoding each window: correct, not faster.
    stream_pairs: ClassVar[bool] = False  # True: encode_from_work also reads pair work

    def stream_positions(self, window: int) -> np.ndarray | None:
        """Positions in a window of `window` frames whose work `encode` reads, in order (repeats
        allowed), e.g. `frame_indices(window, cfg.frames)`; None: no streaming hooks."""
        return None

    def frame_work(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """`frames (M, 3, H, W) uint8` -> per-frame work `{name: (M, ...)}`; row m depends on frame m only."""
        raise NotImplementedError(f"{type(self).__name__} has no streaming hooks")

    def pair_work(self, first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Frame work of M pairs (rows of `first` -> rows of `second`) -> per-pair work `{name: (M, ...)}`."""
        raise NotImplementedError(f"{type(self).__name__} has no pair work")

    def encode_from_work(self, frames: dict[str, torch.Tensor],
                         pairs: dict[str, torch.Tensor] | None) -> torch.Tensor:
        """Work of the sampled frames `{name: (B, n, ...)}` and of their n-1 consecutive pairs
        `{name: (B, n-1, ...)}` (None unless `stream_pairs`) -> embeddings `(B, D)` float32."""
        raise NotImplementedError(f"{type(self).__name__} has no streaming hooks")

    def freeze(self) -> ActionEncoder:
        """No gradients, eval mode (dropout/batch-norm statistics fixed); returns self."""
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()

    # -- frozen helpers (backbone, text encoder) ----------------------------------------------------
    # Frozen tools are rebuilt from their spec, never stored in the encoder's weights: they are fixed
    # inputs, a saved encoder stays small, and the optimiser never sees them. They live in the
    # instance __dict__, outside nn.Module's registration, so state_dict(), parameters() and DDP
    # ignore them.
    def frozen(self, name: str, factory: Callable[[], Any]) -> Any:
        """The frozen helper `name`, built by `factory()` on first use and kept outside the state dict."""
        parts = self.__dict__.setdefault("_frozen_parts", {})
        if name not in parts:
            parts[name] = factory()
        return parts[name]

    def hold_frozen(self, name: str, obj: Any) -> Any:
        """Share an already built frozen helper (e.g. a trainer reuses one backbone for two models)."""
        self.__dict__.setdefault("_frozen_parts", {})[name] = obj
        return obj

    def backbone(self) -> Any:
        """The frozen image backbone named by `cfg.backbone` at `cfg.backbone_size` (if the config has them)."""
        spec = getattr(self.cfg, "backbone", None)
        if not spec:
            raise AttributeError(f"{type(self).__name__} has no `backbone` in its config")

        def build() -> Any:
            from encoders.backbones import build_backbone

            return build_backbone(spec, image_size=getattr(self.cfg, "backbone_size", None) or None).freeze()

        return self.frozen("backbone", build)

    # -- datasets -------------------------------------------------------------------------------
    def embed_dataset(self, root: str | Path, split: str | None = None, views: Any = None,
                      batch_size: int = 8, cache_root: str | Path | None = None) -> tuple[Any, np.ndarray]:
        """(index, embeddings `(M, D)` float32) for every clip of `split` of a clip index.

        Default: `encode` over every clip. Encoders with cacheable frozen inputs override this."""
        from encoders.features import iter_clip_batches
        from envs.atomic_world.dataset import read_index

        index = read_index(root, split, views)
        out = np.zeros((len(index), self.dim), np.float32)
        with torch.inference_mode():
            for start, video in iter_clip_batches(root, index, batch_size, desc=f"encode {self.registry_name}"):
                out[start : start + len(video)] = self.encode(video).numpy()
        return index, out

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
        meta = read_json_fields(cfg_path, ("encoder", "config"), "encoder config (JSON)")
        name = meta["encoder"]
        if name not in ENCODERS:
            ENCODERS.import_trusted(str(meta.get("module", "")), source=str(cfg_path))
        enc_cls = get_encoder_class(name)
        if cls is not ActionEncoder and not issubclass(enc_cls, cls):
            raise TypeError(f"{d} holds a {enc_cls.__name__} ({name!r}), not a {cls.__name__}")
        cfg = from_dict(enc_cls.config_cls, meta["config"], source=str(cfg_path))
        model = enc_cls(cfg)
        try:
            state = load_file(str(w_path))
        except Exception as e:  # safetensors raises its own error types for a torn file
            raise damaged(w_path, "encoder weights (safetensors)", e) from None
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as e:  # shape mismatches
            raise ValueError(f"{w_path}: weights do not fit the encoder built from {cfg_path}: {e}") from None
        if missing or unexpected:
            raise ValueError(f"{w_path}: weights do not match {name!r}: missing {list(missing)[:5]}, "
                             f"unexpected {list(unexpected)[:5]}")
        return model.freeze()


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
        for _, enc_cls in ENCODERS.items():
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
    return s not in ENCODERS and Path(s).is_dir()
