"""Prismatic/OpenVLA-shaped vision-language models behind one registry (`build_vla`).

    vision tower (B, 3, S, S) -> patch tokens (B, N, Cv) -> MLP projector (B, N, D)
    -> causal LM (transformers `LlamaForCausalLM`, hidden D) over [image tokens] + [instruction tokens]

This is the VLA backbone of the LAPA-style pipeline (invact.txt App. A.3, OpenVLA, Kim et al. 2024):
stage 2 puts a latent head on the hidden state after the instruction, stage 3 appends learned
action queries (`extra_embeds`) and regresses actions from their hidden states.

Registered models (`build_vla(name, **overrides)`):
  tiny     random init (seeded): WordPiece tokenizer built offline, a conv patch tower, a 2-layer
           Llama (hidden 64). Builds in well under a second; for tests.
  smol     EfficientNet-Lite0 patch tokens (frozen, ImageNet) + MLP projector (random, seeded) +
           SmolLM2-135M from the offline GGUF package, cached as safetensors (vla/lm.py).
  openvla  an OpenVLA checkpoint directory in its Hugging Face layout (vla/openvla.py); a directory
           given as the spec means the same thing.

Prompt format (all models), after OpenVLA's `PurePromptBuilder`:
    "In: What action should the robot take to {instruction}?\\nOut:"
with the instruction lower-cased and stripped of a trailing period. Text is right-padded.

Sequence layout. `forward` returns the LM's last hidden states over
    [image tokens (N per view x V views, in view order)] + [text tokens (L)] + [extra_embeds (Q)]
When the tokenizer prepends a BOS token (OpenVLA's Llama tokenizer does; tiny and smol do not) the
image tokens go right after it, as in OpenVLA (`[BOS] + image + text[1:]`); the length is V N + L + Q
either way. Position ids count only real tokens (cumsum of the mask), so padding never shifts
the image, the text or the queries, and pad positions are masked out as keys: a sample's outputs
do not depend on how much padding its batch needed.
  - hidden state after the instruction: `hidden[b, vla.last_text_index(attention_mask)[b]]`
    (the last real text token, i.e. the ":" of "Out:");
  - extra queries: `hidden[:, -Q:]`; image tokens: `hidden[:, vla.image_slice]`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from configs.registry import Registry

# peft/transformers call a deprecated alias internally on every gradient-checkpointing check; the
# FutureWarning is about their code, not anything a user of this project can change.
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)

VLAS: Registry = Registry("vla", modules=("vla.modeling", "vla.openvla"),
                          hint="or a directory holding an OpenVLA checkpoint")

PROMPT = "In: What action should the robot take to {instruction}?\nOut:"
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class VLAConfig:
    """Everything needed to rebuild a VLA; maps 1:1 onto YAML (configs/vla/model_*.yaml).

    `image_size` 0 means the model's default (tiny 32, smol 128, openvla: its config.json
    `image_sizes`); after `build_vla` the model's `cfg` holds the resolved value."""

    name: str = "tiny"  # registry name: tiny | smol | openvla
    path: str = ""  # openvla: checkpoint directory; smol: a cached LM folder (empty: build/find the cache)
    image_size: int = 0  # square input size S the vision tower sees; 0 = model default
    dtype: str = "float32"  # float32 | bfloat16 | float16 (weights and activations)
    seed: int = 0  # init of the random parts (all of tiny; the projector of smol)
    freeze_vision: bool = True  # vision tower frozen and kept in eval mode (BatchNorm statistics fixed)
    prompt: str = PROMPT  # must contain "{instruction}"
    max_text_len: int = 128  # text tokens beyond this are truncated (instructions are far shorter)
    cache_dir: str = ""  # smol: cache root ("" = $ATOMVLA_CACHE or .cache/atomvla)
    backbone: str = "efficientnet_lite0"  # smol: vision tower from encoders.build_backbone
    lm_layers: int = 0  # smol/openvla: keep only the first K decoder layers (0 = all); a CPU speed knob
    # tiny sizes
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 128
    vision_dim: int = 32
    patch_size: int = 8

    def validate(self) -> None:
        if self.dtype not in _DTYPES:
            raise ValueError(f"vla dtype must be one of {', '.join(_DTYPES)}, got {self.dtype!r}")
        if "{instruction}" not in self.prompt:
            raise ValueError(f"vla prompt must contain '{{instruction}}', got {self.prompt!r}")
        if self.image_size < 0:
            raise ValueError(f"vla image_size must be >= 0, got {self.image_size}")
        if self.lm_layers < 0:
            raise ValueError(f"vla lm_layers must be >= 0, got {self.lm_layers}")

    @property
    def torch_dtype(self) -> torch.dtype:
        return _DTYPES[self.dtype]


def _config_hash(cfg: VLAConfig, keys: tuple[str, ...]) -> str:
    blob = json.dumps({k: getattr(cfg, k) for k in keys}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:8]


# -- vision towers ------------------------------------------------------------------------------------
def _to_bchw_uint8(images: Any) -> torch.Tensor:
    """(B, H, W, 3) or (H, W, 3) uint8 numpy/tensor -> (B, 3, H, W) uint8 tensor."""
    x = torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else torch.as_tensor(images)
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"images must be (B, H, W, 3) uint8, got shape {tuple(x.shape)}")
    if x.dtype != torch.uint8:
        raise ValueError(f"images must be uint8 (0..255), got {x.dtype}")
    return x.permute(0, 3, 1, 2)


def resize_float(frames: torch.Tensor, size: int, mode: str = "bilinear") -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float (B, 3, size, size) in 0..1, antialiased when shrinking."""
    x = frames.float() / 255.0
    if x.shape[-2:] != (size, size):
        shrink = bool(x.shape[-1] > size or x.shape[-2] > size)
        x = F.interpolate(x, size=(size, size), mode=mode, align_corners=False, antialias=shrink)
        if mode == "bicubic":
            x = x.clamp(0.0, 1.0)
    return x


class VisionTower(nn.Module):
    """Base: `preprocess` (B, 3, H, W) uint8 -> (B, 3, S, S) float; `forward` -> (B, N, dim)."""

    dim: int = 0
    image_size: int = 0
    num_tokens: int = 0

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters that get gradients when the tower is not frozen (all, unless some are unused)."""
        return list(self.parameters())


class PatchTower(VisionTower):
    """tiny: a strided conv patch embedding + GELU + linear; (x - 0.5) / 0.5 normalisation."""

    def __init__(self, image_size: int, patch: int, dim: int):
        super().__init__()
        if image_size % patch:
            raise ValueError(f"tiny vision: image_size {image_size} must be a multiple of patch_size {patch}")
        self.image_size, self.dim = image_size, dim
        self.num_tokens = (image_size // patch) ** 2
        self.proj = nn.Conv2d(3, dim, patch, stride=patch)
        self.mix = nn.Linear(dim, dim)

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        return (resize_float(frames, self.image_size) - 0.5) / 0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tok = self.proj(x).flatten(2).transpose(1, 2)  # (B, N, dim)
        return self.mix(F.gelu(tok))


class BackboneTower(VisionTower):
    """smol: a frozen `encoders.backbones.Backbone`; tokens = its `frame_tokens` patch grid."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.dim, self.image_size = int(backbone.dim), int(backbone.image_size)
        with torch.no_grad():
            probe = backbone.frame_tokens(backbone.preprocess(torch.zeros(1, 3, 8, 8, dtype=torch.uint8)))[0]
        self.num_tokens = int(probe.shape[1])

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        return self.backbone.preprocess(frames)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.frame_tokens(x)[0]


class Projector(nn.Module):
    """Prismatic's MLP projector (OpenVLA names: fc1, fc2[, fc3]).

    `gelu-mlp`: fc1 (Cv->D), GELU, fc2 (D->D). `fused-gelu-mlp` (fused DINOv2+SigLIP towers):
    fc1 (Cv->4Cv), GELU, fc2 (4Cv->D), GELU, fc3 (D->D)."""

    def __init__(self, vision_dim: int, llm_dim: int, fused: bool = False):
        super().__init__()
        self.fused = fused
        if fused:
            self.fc1 = nn.Linear(vision_dim, 4 * vision_dim)
            self.fc2 = nn.Linear(4 * vision_dim, llm_dim)
            self.fc3 = nn.Linear(llm_dim, llm_dim)
        else:
            self.fc1 = nn.Linear(vision_dim, llm_dim)
            self.fc2 = nn.Linear(llm_dim, llm_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc2(F.gelu(self.fc1(x)))
        return self.fc3(F.gelu(x)) if self.fused else x


# -- the model ------------------------------------------------------------------------------------------
class PrismaticVLA(nn.Module):
    """Vision tower -> projector -> causal LM. See the module docstring for the sequence layout.

    Attributes: cfg (resolved VLAConfig), tokenizer (right padding, pad token set), vision,
    projector, lm (LlamaForCausalLM; may be wrapped by peft later), hidden_size D, image_size S,
    lm_id (identity of the LM weights: stage 3 refuses a stage-2 run from another LM)."""

    def __init__(self, cfg: VLAConfig, tokenizer: Any, vision: VisionTower, projector: nn.Module,
                 lm: nn.Module, lm_id: str, extra: dict | None = None):
        super().__init__()
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.vision = vision
        self.projector = projector
        self.lm = lm
        self.lm_id = lm_id
        self.hidden_size = int(lm.config.hidden_size)
        self.image_size = int(vision.image_size)
        self.extra = dict(extra or {})  # e.g. OpenVLA's norm_stats / n_action_bins
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        tokenizer.padding_side = "right"
        # OpenVLA inserts the image tokens after <s>; mirror that whenever the tokenizer adds a BOS
        probe = tokenizer("x")["input_ids"]
        bos = tokenizer.bos_token_id
        self.image_offset = 1 if bos is not None and len(probe) > 0 and probe[0] == bos else 0
        for p in self.vision.parameters():
            p.requires_grad_(False)
        if cfg.freeze_vision:
            self.vision.eval()
        else:  # unused parameters (e.g. OpenVLA's last ViT block) stay frozen: DDP requires it
            for p in self.vision.trainable_parameters():
                p.requires_grad_(True)

    # -- properties ------------------------------------------------------------------------------
    @property
    def num_image_tokens(self) -> int:
        return int(self.vision.num_tokens)

    @property
    def image_slice(self) -> slice:
        """Positions of the image tokens in the full sequence."""
        return slice(self.image_offset, self.image_offset + self.num_image_tokens)

    @property
    def device(self) -> torch.device:
        return next(self.projector.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.projector.parameters()).dtype

    def train(self, mode: bool = True) -> PrismaticVLA:
        super().train(mode)
        if self.cfg.freeze_vision:  # a frozen tower keeps eval behaviour (BatchNorm, dropout)
            self.vision.eval()
        return self

    # -- inputs ----------------------------------------------------------------------------------
    def preprocess(self, images: Any) -> torch.Tensor:
        """images (B, H, W, 3) uint8 (numpy or tensor; a single (H, W, 3) is batched) ->
        pixel_values (B, 3, S, S) float on the model's device, resized and normalised for the tower."""
        x = _to_bchw_uint8(images).to(self.device)
        return self.vision.preprocess(x)

    def format_prompt(self, instruction: str) -> str:
        text = instruction.strip().rstrip(".").strip().lower()
        return self.cfg.prompt.format(instruction=text)

    def tokenize(self, texts: list[str], prompt: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Instructions -> (input_ids (B, L) long, attention_mask (B, L) long), right-padded, on device.

        With `prompt` (default) each text is wrapped in `cfg.prompt` (see the module docstring)."""
        if isinstance(texts, str):
            texts = [texts]
        texts = [self.format_prompt(t) if prompt else t for t in texts]
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.cfg.max_text_len,
                             return_tensors="pt")
        ids, mask = enc["input_ids"].long(), enc["attention_mask"].long()
        return ids.to(self.device), mask.to(self.device)

    def last_text_index(self, attention_mask: torch.Tensor, views: int = 1) -> torch.Tensor:
        """(B,) long: index in the full sequence (`forward`'s output) of the last real text token.

        With right padding the last real token of row b is text position len_b - 1; the V N image
        tokens sit before it whether or not a BOS precedes them, so the index is V N + len_b - 1."""
        return views * self.num_image_tokens + attention_mask.long().sum(1) - 1

    # -- forward ---------------------------------------------------------------------------------
    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) float -> projected image tokens (B, N, D) in the LM's dtype; (B, V, 3, S, S)
        (V camera views, vla/views.py) -> (B, V N, D), each view's N tokens in view order."""
        if pixel_values.ndim == 5:  # one tower + projector pass over all B V frames
            b, v = pixel_values.shape[:2]
            return self.encode_images(pixel_values.flatten(0, 1)).reshape(b, v * self.num_image_tokens, -1)
        vparam = next(self.vision.parameters())
        x = pixel_values.to(device=vparam.device, dtype=vparam.dtype)
        if self.cfg.freeze_vision:
            with torch.no_grad():
                patches = self.vision(x)
        else:
            patches = self.vision(x)
        return self.projector(patches.to(self.dtype))

    def _decoder(self) -> nn.Module:
        """The LM's decoder stack (LlamaModel), also through a peft wrapper (PeftModel forwards
        `get_decoder` to the wrapped LlamaForCausalLM). Calling the decoder, not the LM, skips the
        vocabulary projection: only hidden states are needed."""
        return self.lm.get_decoder()

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                extra_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """-> last hidden states (B, V N + L + Q, D) over [image] + [text] + [extra_embeds].

        pixel_values (B, 3, S, S) from `preprocess` (V = 1) or (B, V, 3, S, S) (V views); input_ids /
        attention_mask (B, L) from `tokenize` (right padding); extra_embeds (B, Q, D) appended after
        the whole text block, attending to every image and real text token (pads are masked out)."""
        b = input_ids.shape[0]
        if pixel_values.shape[0] != b:
            raise ValueError(f"batch mismatch: {pixel_values.shape[0]} images vs {b} texts")
        img = self.encode_images(pixel_values)  # (B, V N, D)
        txt = self.lm.get_input_embeddings()(input_ids.to(self.device))  # (B, L, D)
        am = attention_mask.to(self.device).long()
        o = self.image_offset
        ones_img = torch.ones(b, img.shape[1], dtype=am.dtype, device=am.device)
        parts = [txt[:, :o], img.to(txt.dtype), txt[:, o:]]
        masks = [am[:, :o], ones_img, am[:, o:]]
        if extra_embeds is not None:
            if extra_embeds.ndim != 3 or extra_embeds.shape[0] != b or extra_embeds.shape[2] != self.hidden_size:
                raise ValueError(f"extra_embeds must be (B={b}, Q, D={self.hidden_size}), "
                                 f"got {tuple(extra_embeds.shape)}")
            parts.append(extra_embeds.to(txt.dtype))
            masks.append(torch.ones(b, extra_embeds.shape[1], dtype=am.dtype, device=am.device))
        embeds = torch.cat(parts, dim=1)
        mask = torch.cat(masks, dim=1)
        # positions count real tokens only, so padding never shifts what follows it
        position_ids = (mask.cumsum(1) - 1).clamp(min=0)
        out = self._decoder()(inputs_embeds=embeds, attention_mask=mask, position_ids=position_ids,
                              use_cache=False)
        return out.last_hidden_state

    # -- reporting -------------------------------------------------------------------------------
    def describe(self) -> dict:
        n_all = sum(p.numel() for p in self.parameters())
        n_train = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return {"name": self.cfg.name, "lm_id": self.lm_id, "hidden_size": self.hidden_size,
                "image_size": self.image_size, "num_image_tokens": self.num_image_tokens,
                "parameters": n_all, "trainable": n_train}


# -- builders -------------------------------------------------------------------------------------------
def build_vla(spec: str | VLAConfig, **overrides: Any) -> PrismaticVLA:
    """A VLA from a registry name (`tiny`, `smol`, `openvla` with path=...), a directory holding an
    OpenVLA checkpoint, or a VLAConfig; `overrides` set VLAConfig fields."""
    if isinstance(spec, VLAConfig):
        cfg = spec
    elif isinstance(spec, str) and spec:
        if os.path.isdir(spec) and spec not in VLAS:
            cfg = VLAConfig(name="openvla", path=spec)
        else:
            VLAS.get(spec)  # unknown name: one error listing the known names
            cfg = VLAConfig(name=spec)
    else:
        raise ValueError(f"vla spec must be a registry name, a directory or a VLAConfig, got {spec!r}")
    if overrides:
        valid = {f.name for f in dataclasses.fields(VLAConfig)}
        bad = sorted(set(overrides) - valid)
        if bad:
            raise ValueError(f"unknown VLAConfig field {bad[0]!r}; valid: {', '.join(sorted(valid))}")
        cfg = dataclasses.replace(cfg, **overrides)
    cfg.validate()
    factory = VLAS.get(cfg.name)
    return factory(cfg).eval()  # inference mode until a trainer calls .train()


def truncate_layers(lm: nn.Module, keep: int, lm_id: str) -> str:
    """Keep the first `keep` decoder layers of a LlamaForCausalLM (0: all); returns the new lm_id.

    A shallower pretrained LM trades quality for CPU speed (the cost is linear in the layers);
    the lm_id records the cut, so a stage-2 run on the cut LM is not reused on the full one."""
    n = int(lm.config.num_hidden_layers)
    if keep == 0 or keep == n:
        return lm_id
    if keep > n:
        raise ValueError(f"lm_layers={keep} but the LM has only {n} layers")
    lm.model.layers = lm.model.layers[:keep]
    lm.config.num_hidden_layers = keep
    if getattr(lm.config, "layer_types", None):
        lm.config.layer_types = list(lm.config.layer_types)[:keep]
    return f"{lm_id}-l{keep}"


@VLAS.register("tiny")
def build_tiny(cfg: VLAConfig) -> PrismaticVLA:
    """Random-init tiny VLA (seeded by cfg.seed): same code path as smol, for tests."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from vla.lm import tiny_tokenizer

    cfg = dataclasses.replace(cfg, image_size=cfg.image_size or 32)
    tok = tiny_tokenizer()
    vocab = int(math.ceil(len(tok) / 64) * 64)  # pad the embedding like OpenVLA (pad_to_multiple_of 64)
    if cfg.hidden_size % cfg.num_heads:
        raise ValueError(f"tiny: hidden_size {cfg.hidden_size} must be divisible by num_heads {cfg.num_heads}")
    lcfg = LlamaConfig(vocab_size=vocab, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
                       num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
                       num_key_value_heads=cfg.num_heads, max_position_embeddings=1024,
                       pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                       eos_token_id=tok.eos_token_id, tie_word_embeddings=True)
    gen = torch.random.fork_rng(devices=[])
    with gen:
        torch.manual_seed(cfg.seed)
        lm = LlamaForCausalLM(lcfg)
        vision = PatchTower(cfg.image_size, cfg.patch_size, cfg.vision_dim)
        projector = Projector(cfg.vision_dim, cfg.hidden_size)
    keys = ("seed", "hidden_size", "num_layers", "num_heads", "intermediate_size")
    lm_id = f"tiny-seed{cfg.seed}-{_config_hash(cfg, keys)}"
    return PrismaticVLA(cfg, tok, vision, projector, lm, lm_id).to(cfg.torch_dtype)


@VLAS.register("smol")
def build_smol(cfg: VLAConfig) -> PrismaticVLA:
    """EfficientNet-Lite0 (frozen) + MLP projector (seeded random init) + SmolLM2-135M (cached)."""
    from encoders import build_backbone
    from vla.lm import load_cached_lm, smollm2_dir

    cfg = dataclasses.replace(cfg, image_size=cfg.image_size or 128)
    lm_dir = Path(cfg.path) if cfg.path else smollm2_dir(cfg.cache_dir or None)
    if not (lm_dir / "config.json").is_file():
        raise FileNotFoundError(f"smol: {lm_dir} holds no config.json (not a cached LM folder)")
    lm, tok = load_cached_lm(lm_dir, dtype=cfg.torch_dtype)
    meta = lm_dir / "atomvla_lm.json"
    lm_id = json.loads(meta.read_text())["lm_id"] if meta.is_file() else f"llama-{lm_dir.resolve().name}"
    lm_id = truncate_layers(lm, cfg.lm_layers, lm_id)
    backbone = build_backbone(cfg.backbone, image_size=cfg.image_size)
    vision = BackboneTower(backbone)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        projector = Projector(vision.dim, int(lm.config.hidden_size))
    model = PrismaticVLA(cfg, tok, vision, projector, lm, lm_id)
    model.projector.to(cfg.torch_dtype)
    return model
