"""Load an OpenVLA checkpoint (Hugging Face layout) into the project's own modules.

No trust_remote_code and no timm: the fused DINOv2 + SigLIP featurizer is rebuilt here as a
minimal ViT whose parameter names are timm's `VisionTransformer` names, so the checkpoint's keys
load 1:1; the LM is the installed transformers' `LlamaForCausalLM`.

Directory layout read (openvla/openvla-7b on the Hub; Kim et al. 2024):
  config.json        `model_type` openvla/prismatic, `vision_backbone_id` (e.g. dinosiglip-vit-so-224px),
                     `llm_backbone_id` (llama2-7b-pure), `arch_specifier` (no-align+fused-gelu-mlp),
                     `use_fused_vision_backbone`, `timm_model_ids`, `image_sizes`, `text_config`
                     (a sparse LlamaConfig dict), `pad_token_id`, `pad_to_multiple_of`, `n_action_bins`,
                     `norm_stats`
  *.safetensors      (+ model.safetensors.index.json when sharded); keys:
                       vision_backbone.featurizer.*        DINOv2 ViT-L/14 reg4 (timm naming)
                       vision_backbone.fused_featurizer.*  SigLIP So400m/14 (timm naming, incl. attn_pool)
                       projector.fc1/fc2/fc3.{weight,bias}
                       language_model.model.{embed_tokens,layers.i.*,norm}.*, language_model.lm_head.weight
  tokenizer files    Llama-2 tokenizer + <PAD> (id 32000)

Facts mirrored from OpenVLA's prismatic/extern/hf/modeling_prismatic.py:
  - each featurizer returns the patch tokens (prefix tokens dropped, no final norm) of the
    SECOND-TO-LAST block (`get_intermediate_layers(n={depth - 2})`); the last block, the final
    norm and SigLIP's attention-pool head are in the checkpoint but unused;
  - timm's LayerScale `gamma` is stored as `ls1.scale_factor` / `ls2.scale_factor` (transformers
    would re-initialise parameters named gamma); a Prismatic-style `gamma` key is accepted too;
  - fused features are concatenated on the channel axis: DINOv2 1024 + SigLIP 1152 = 2176;
  - the projector for fused towers is fc1 (Cv->4Cv), GELU, fc2 (4Cv->D), GELU, fc3 (D->D);
  - image tokens are inserted right after <BOS> (PrismaticVLA handles this when the tokenizer adds a BOS);
  - per-tower normalisation: DINOv2 ImageNet mean/std, SigLIP 0.5/0.5; images resized
    "resize-naive" (bicubic) to `image_sizes`.
  - `text_config` lists only a few fields; the rest are LlamaConfig defaults of transformers
    4.40.1 (OpenVLA's pinned version), pinned below so a newer transformers cannot change them.

Widths come from the timm model id (`TIMM_VITS`). A project extension for small test
checkpoints: an optional config.json field `atomvla_vit_overrides` (a list, one dict per tower)
overrides ViTSpec fields (dim, depth, heads, mlp_hidden, patch...). Every checkpoint key and
shape is checked against the modules before any tensor is read: a missing, unexpected or
mis-shaped key is an error naming the key and its file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from configs.runs import read_json_fields
from vla.modeling import VLAS, PrismaticVLA, Projector, VisionTower, VLAConfig, resize_float, truncate_layers

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
CLIP = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))


@dataclass(frozen=True)
class ViTSpec:
    """A timm VisionTransformer variant, as far as its keys and forward need."""

    patch: int
    dim: int
    depth: int
    heads: int
    mlp_hidden: int
    class_token: bool = True
    reg_tokens: int = 0
    no_embed_class: bool = False  # pos_embed covers patches only (DINOv2 reg4)
    layer_scale: bool = False  # ls1/ls2 (DINOv2)
    pre_norm: bool = False  # norm_pre before the blocks (CLIP); patch conv then has no bias
    pool: str = ""  # "map": SigLIP attention-pool head (attn_pool.*)
    act: str = "gelu"  # gelu | quick_gelu
    eps: float = 1e-6
    mean: tuple[float, ...] = IMAGENET[0]
    std: tuple[float, ...] = IMAGENET[1]


# timm ids used by OpenVLA/Prismatic (configuration_prismatic.py VISION_BACKBONE_TO_TIMM_ID), timm 0.9.x.
TIMM_VITS: dict[str, ViTSpec] = {
    "vit_large_patch14_reg4_dinov2.lvd142m": ViTSpec(14, 1024, 24, 16, 4096, reg_tokens=4, no_embed_class=True,
                                                     layer_scale=True),
    "vit_so400m_patch14_siglip_224": ViTSpec(14, 1152, 27, 16, 4304, class_token=False, pool="map",
                                             mean=HALF[0], std=HALF[1]),
    "vit_so400m_patch14_siglip_384": ViTSpec(14, 1152, 27, 16, 4304, class_token=False, pool="map",
                                             mean=HALF[0], std=HALF[1]),
    "vit_large_patch14_clip_224.openai": ViTSpec(14, 1024, 24, 16, 4096, pre_norm=True, act="quick_gelu",
                                                 eps=1e-5, mean=CLIP[0], std=CLIP[1]),
    "vit_large_patch14_clip_336.openai": ViTSpec(14, 1024, 24, 16, 4096, pre_norm=True, act="quick_gelu",
                                                 eps=1e-5, mean=CLIP[0], std=CLIP[1]),
    "vit_large_patch16_224.augreg_in21k_ft_in1k": ViTSpec(16, 1024, 24, 16, 4096, mean=HALF[0], std=HALF[1]),
}

# configuration_prismatic.py VISION_BACKBONE_TO_TIMM_ID / _RESOLUTION, for configs that omit them
BACKBONE_TIMM_IDS: dict[str, tuple[list[str], list[int]]] = {
    "dinosiglip-vit-so-224px": (["vit_large_patch14_reg4_dinov2.lvd142m", "vit_so400m_patch14_siglip_224"],
                                [224, 224]),
    "dinosiglip-vit-so-384px": (["vit_large_patch14_reg4_dinov2.lvd142m", "vit_so400m_patch14_siglip_384"],
                                [384, 384]),
    "dinoclip-vit-l-336px": (["vit_large_patch14_reg4_dinov2.lvd142m", "vit_large_patch14_clip_336.openai"],
                             [336, 336]),
    "siglip-vit-so400m": (["vit_so400m_patch14_siglip_224"], [224]),
    "dinov2-vit-l": (["vit_large_patch14_reg4_dinov2.lvd142m"], [224]),
    "clip-vit-l": (["vit_large_patch14_clip_224.openai"], [224]),
    "clip-vit-l-336px": (["vit_large_patch14_clip_336.openai"], [336]),
    "in1k-vit-l": (["vit_large_patch16_224.augreg_in21k_ft_in1k"], [224]),
}

# LlamaConfig defaults of transformers 4.40.1: OpenVLA's sparse text_config relies on them.
LLAMA_440_DEFAULTS: dict[str, Any] = dict(
    vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
    num_key_value_heads=None, hidden_act="silu", max_position_embeddings=2048, initializer_range=0.02,
    rms_norm_eps=1e-6, pretraining_tp=1, tie_word_embeddings=False, rope_theta=10000.0, attention_bias=False,
    attention_dropout=0.0,
)
LLAMA_BACKBONES = ("llama2-7b-pure", "llama2-13b-pure", "llama2-7b-chat", "llama2-13b-chat",
                   "vicuna-v15-7b", "vicuna-v15-13b")


# -- timm-named ViT -----------------------------------------------------------------------------------
class LayerScale(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.scale_factor = nn.Parameter(torch.ones(dim))  # OpenVLA's HF name for timm's gamma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale_factor


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"ViT: dim {dim} not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)  # (B, H, N, hd), bidirectional
        return self.proj(y.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, act: str = "gelu"):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        h = h * torch.sigmoid(1.702 * h) if self.act == "quick_gelu" else F.gelu(h)
        return self.fc2(h)


class Block(nn.Module):
    def __init__(self, s: ViTSpec):
        super().__init__()
        self.norm1 = nn.LayerNorm(s.dim, eps=s.eps)
        self.attn = Attention(s.dim, s.heads)
        self.ls1 = LayerScale(s.dim) if s.layer_scale else nn.Identity()
        self.norm2 = nn.LayerNorm(s.dim, eps=s.eps)
        self.mlp = Mlp(s.dim, s.mlp_hidden, s.act)
        self.ls2 = LayerScale(s.dim) if s.layer_scale else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class AttentionPoolLatent(nn.Module):
    """SigLIP's `attn_pool` head (timm names). Unused by OpenVLA, present so the checkpoint's keys load."""

    def __init__(self, s: ViTSpec):
        super().__init__()
        self.latent = nn.Parameter(torch.zeros(1, 1, s.dim))
        self.q = nn.Linear(s.dim, s.dim)
        self.kv = nn.Linear(s.dim, 2 * s.dim)
        self.proj = nn.Linear(s.dim, s.dim)
        self.norm = nn.LayerNorm(s.dim, eps=s.eps)
        self.mlp = Mlp(s.dim, s.mlp_hidden, s.act)


class PatchEmbed(nn.Module):
    def __init__(self, s: ViTSpec):
        super().__init__()
        self.proj = nn.Conv2d(3, s.dim, s.patch, stride=s.patch, bias=not s.pre_norm)


class TimmViT(nn.Module):
    """timm `VisionTransformer` parameter layout; forward = OpenVLA's featurizer output:
    (B, 3, S, S) normalised -> patch tokens of the second-to-last block (B, (S/p)^2, dim)."""

    def __init__(self, s: ViTSpec, image_size: int):
        super().__init__()
        if image_size % s.patch:
            raise ValueError(f"ViT: image size {image_size} is not a multiple of patch {s.patch}")
        self.spec = s
        self.grid = image_size // s.patch
        self.num_prefix = int(s.class_token) + s.reg_tokens
        self.patch_embed = PatchEmbed(s)
        if s.class_token:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, s.dim))
        if s.reg_tokens:
            self.reg_token = nn.Parameter(torch.zeros(1, s.reg_tokens, s.dim))
        n_pos = self.grid**2 + (0 if s.no_embed_class else self.num_prefix)
        self.pos_embed = nn.Parameter(torch.zeros(1, n_pos, s.dim))
        self.norm_pre = nn.LayerNorm(s.dim, eps=s.eps) if s.pre_norm else nn.Identity()
        self.blocks = nn.ModuleList([Block(s) for _ in range(s.depth)])
        self.norm = nn.LayerNorm(s.dim, eps=s.eps)  # unused by OpenVLA (second-to-last layer, no norm)
        if s.pool == "map":
            self.attn_pool = AttentionPoolLatent(s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)  # (B, N, dim)
        prefix = []
        if self.spec.class_token:
            prefix.append(self.cls_token.expand(x.shape[0], -1, -1))
        if self.spec.reg_tokens:
            prefix.append(self.reg_token.expand(x.shape[0], -1, -1))
        if self.spec.no_embed_class:
            x = torch.cat(prefix + [x + self.pos_embed], dim=1)
        else:
            x = torch.cat(prefix + [x], dim=1) + self.pos_embed
        x = self.norm_pre(x)
        for blk in self.blocks[: len(self.blocks) - 1]:  # stop after block depth-2
            x = blk(x)
        return x[:, self.num_prefix:]


class FusedViTTower(VisionTower):
    """OpenVLA's `vision_backbone`: featurizer (+ fused_featurizer), patch tokens concatenated on channels.

    `preprocess` gives the resized image in 0..1 (B, 3, S, S); each tower applies its own
    mean/std in `forward` (OpenVLA channel-stacks two normalised copies instead; same result)."""

    def __init__(self, specs: list[ViTSpec], image_sizes: list[int]):
        super().__init__()
        if len(specs) not in (1, 2) or len(image_sizes) != len(specs):
            raise ValueError(f"OpenVLA vision: need 1 or 2 towers with one image size each, got {len(specs)} "
                             f"towers and image_sizes {image_sizes}")
        if len(set(image_sizes)) != 1:
            raise ValueError(f"OpenVLA vision: towers with different image sizes {image_sizes} are not supported")
        self.image_size = int(image_sizes[0])
        self.featurizer = TimmViT(specs[0], self.image_size)
        self.fused_featurizer = TimmViT(specs[1], self.image_size) if len(specs) == 2 else None
        towers = [self.featurizer] + ([self.fused_featurizer] if self.fused_featurizer is not None else [])
        if len({t.grid for t in towers}) != 1:
            raise ValueError("OpenVLA vision: fused towers must give the same patch grid")
        self.dim = sum(t.spec.dim for t in towers)
        self.num_tokens = towers[0].grid ** 2

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        return resize_float(frames, self.image_size, mode="bicubic")

    def trainable_parameters(self) -> list[nn.Parameter]:
        # the last block, the final norm and the attention pool never see the forward
        unused = set()
        for tower in (self.featurizer, self.fused_featurizer):
            if tower is not None:
                for mod in [tower.blocks[-1], tower.norm] + ([tower.attn_pool] if hasattr(tower, "attn_pool") else []):
                    unused |= {id(p) for p in mod.parameters()}
        return [p for p in self.parameters() if id(p) not in unused]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for tower in (self.featurizer, self.fused_featurizer):
            if tower is None:
                continue
            mean = torch.tensor(tower.spec.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            std = torch.tensor(tower.spec.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            w = tower.patch_embed.proj.weight
            outs.append(tower(((x - mean) / std).to(w.dtype)))
        return torch.cat(outs, dim=2)


# -- checkpoint reading -------------------------------------------------------------------------------
def read_config(path: str | Path) -> dict:
    """config.json of an OpenVLA directory, with the schema fields checked (errors name the field)."""
    d = Path(path)
    f = d / "config.json"
    if not d.is_dir():
        raise FileNotFoundError(f"openvla: checkpoint directory not found: {d}")
    if not f.is_file():
        raise FileNotFoundError(f"openvla: {d} has no config.json (expected an OpenVLA checkpoint in HF layout)")
    cfg = read_json_fields(f, ("vision_backbone_id", "llm_backbone_id", "text_config"), "OpenVLA config (JSON)")
    if cfg["llm_backbone_id"] not in LLAMA_BACKBONES:
        raise ValueError(f"{f}: llm_backbone_id {cfg['llm_backbone_id']!r} is not a Llama backbone; "
                         f"supported: {', '.join(LLAMA_BACKBONES)}")
    vid = cfg["vision_backbone_id"]
    ids, sizes = BACKBONE_TIMM_IDS.get(vid, (None, None))
    cfg.setdefault("timm_model_ids", ids)
    cfg.setdefault("image_sizes", sizes)
    if not cfg["timm_model_ids"] or not cfg["image_sizes"]:
        raise ValueError(f"{f}: unknown vision_backbone_id {vid!r} and no timm_model_ids/image_sizes given; "
                         f"known: {', '.join(BACKBONE_TIMM_IDS)}")
    fused = cfg.get("use_fused_vision_backbone")
    if fused is None:
        fused = vid.startswith(("dinoclip", "dinosiglip"))
    cfg["use_fused_vision_backbone"] = bool(fused)
    if len(cfg["timm_model_ids"]) != (2 if fused else 1):
        raise ValueError(f"{f}: use_fused_vision_backbone={fused} but timm_model_ids has "
                         f"{len(cfg['timm_model_ids'])} entries")
    return cfg


def vit_specs(cfg: dict, source: str = "config.json") -> list[ViTSpec]:
    overrides = cfg.get("atomvla_vit_overrides") or [{}] * len(cfg["timm_model_ids"])
    if len(overrides) != len(cfg["timm_model_ids"]):
        raise ValueError(f"{source}: atomvla_vit_overrides needs one entry per tower")
    specs = []
    fields = {f.name for f in dataclasses.fields(ViTSpec)}
    for tid, over in zip(cfg["timm_model_ids"], overrides):
        if tid not in TIMM_VITS:
            raise ValueError(f"{source}: unsupported timm model id {tid!r}; known: {', '.join(TIMM_VITS)}")
        bad = sorted(set(over) - fields)
        if bad:
            raise ValueError(f"{source}: atomvla_vit_overrides: unknown field {bad[0]!r}; valid: "
                             f"{', '.join(sorted(fields))}")
        over = {k: tuple(v) if isinstance(v, list) else v for k, v in over.items()}
        specs.append(dataclasses.replace(TIMM_VITS[tid], **over))
    return specs


def llama_config(cfg: dict):
    from transformers import LlamaConfig

    text = {k: v for k, v in cfg["text_config"].items()
            if k not in ("model_type", "torch_dtype", "dtype", "architectures", "_name_or_path")}
    merged = {**LLAMA_440_DEFAULTS, **text}
    merged.setdefault("pad_token_id", cfg.get("pad_token_id"))
    return LlamaConfig(**merged)


def weight_files(path: Path) -> list[Path]:
    idx = path / "model.safetensors.index.json"
    if idx.is_file():
        names = sorted(set(json.loads(idx.read_text())["weight_map"].values()))
        files = [path / n for n in names]
        for f in files:
            if not f.is_file():
                raise FileNotFoundError(f"{idx}: names shard {f.name}, which is missing")
        return files
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"openvla: {path} holds no *.safetensors weights")
    return files


def checkpoint_shapes(files: list[Path]) -> dict[str, tuple[tuple[int, ...], Path]]:
    """key -> (shape, file) from the safetensors headers (no tensor data read)."""
    from safetensors import safe_open

    out: dict[str, tuple[tuple[int, ...], Path]] = {}
    for f in files:
        with safe_open(str(f), framework="pt") as st:
            for k in st.keys():
                if k in out:
                    raise ValueError(f"{f}: key {k!r} also in {out[k][1].name}")
                out[k] = (tuple(st.get_slice(k).get_shape()), f)
    return out


_PREFIXES = (("vision_backbone.", "vision."), ("projector.", "projector."), ("language_model.", "lm."))


def to_module_key(key: str) -> str | None:
    """Checkpoint key -> PrismaticVLA state-dict key (None: outside the three OpenVLA parts)."""
    for src, dst in _PREFIXES:
        if key.startswith(src):
            k = dst + key[len(src):]
            if k.endswith((".ls1.gamma", ".ls2.gamma")):  # Prismatic (non-HF) naming of LayerScale
                k = k[: -len("gamma")] + "scale_factor"
            return k
    return None


def check_keys(expected: dict[str, tuple[int, ...]], found: dict[str, tuple[tuple[int, ...], Path]],
               optional: set[str] = frozenset()) -> dict[str, str]:
    """Compare checkpoint keys with the model's; returns module key -> checkpoint key. Errors name the key."""
    mapping: dict[str, str] = {}
    problems: list[str] = []
    for ck, (shape, f) in sorted(found.items()):
        mk = to_module_key(ck)
        if mk is None or mk not in expected:
            problems.append(f"unexpected key {ck!r} (shape {list(shape)}) in {f.name}")
            continue
        if tuple(expected[mk]) != shape:
            problems.append(f"key {ck!r} in {f.name} has shape {list(shape)}, the model expects "
                            f"{list(expected[mk])}")
        mapping[mk] = ck
    for mk in sorted(set(expected) - set(mapping) - set(optional)):
        ck = next((src + mk[len(dst):] for src, dst in _PREFIXES if mk.startswith(dst)), mk)
        problems.append(f"missing key {ck!r} (shape {list(expected[mk])})")
    if problems:
        more = f" (+{len(problems) - 8} more)" if len(problems) > 8 else ""
        raise KeyError("openvla checkpoint does not match the model: " + "; ".join(problems[:8]) + more)
    return mapping


def checkpoint_id(path: Path, files: list[Path]) -> str:
    """Identity of the weights: config.json + weight file names and sizes (copy-stable)."""
    h = hashlib.sha1((path / "config.json").read_bytes())
    for f in files:
        h.update(f"{f.name}:{f.stat().st_size}".encode())
    return f"openvla-{h.hexdigest()[:10]}"


@VLAS.register("openvla")
def build_openvla(cfg: VLAConfig) -> PrismaticVLA:
    """An OpenVLA checkpoint directory (cfg.path) loaded into PrismaticVLA; weights cast to cfg.dtype."""
    from safetensors import safe_open
    from transformers import AutoTokenizer, LlamaForCausalLM

    if not cfg.path:
        raise ValueError("vla 'openvla' needs path=<directory of an OpenVLA checkpoint in HF layout>")
    path = Path(cfg.path)
    ocfg = read_config(path)
    sizes = [int(s) for s in ocfg["image_sizes"]]
    if cfg.image_size and cfg.image_size != sizes[0]:
        raise ValueError(f"openvla: image_size {cfg.image_size} differs from the checkpoint's {sizes[0]} "
                         "(position embeddings are not interpolated)")
    cfg = dataclasses.replace(cfg, image_size=sizes[0])
    specs = vit_specs(ocfg, str(path / "config.json"))
    lcfg = llama_config(ocfg)
    files = weight_files(path)
    found = checkpoint_shapes(files)  # headers only: a bad checkpoint fails before any tensor is read

    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    with torch.device("meta"):  # skeleton without allocating or initialising 7B parameters
        vision = FusedViTTower(specs, sizes)
        projector = Projector(vision.dim, int(lcfg.hidden_size), fused=len(specs) == 2)
        lm = LlamaForCausalLM(lcfg)
    extra = {k: ocfg.get(k) for k in ("norm_stats", "n_action_bins", "vision_backbone_id", "llm_backbone_id",
                                      "arch_specifier") if k in ocfg}
    model = PrismaticVLA(cfg, tok, vision, projector, lm, checkpoint_id(path, files), extra=extra)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    optional = {"lm.lm_head.weight"} if lcfg.tie_word_embeddings else set()
    mapping = check_keys(expected, found, optional)

    state: dict[str, torch.Tensor] = {}
    by_file: dict[Path, list[tuple[str, str]]] = {}
    for mk, ck in mapping.items():
        by_file.setdefault(found[ck][1], []).append((mk, ck))
    for f, pairs in by_file.items():
        with safe_open(str(f), framework="pt") as st:
            for mk, ck in pairs:
                state[mk] = st.get_tensor(ck).to(cfg.torch_dtype)
    if lcfg.tie_word_embeddings and "lm.lm_head.weight" not in state:
        state["lm.lm_head.weight"] = state["lm.model.embed_tokens.weight"]
    model.load_state_dict(state, strict=True, assign=True)
    _materialise_buffers(model)
    if lcfg.tie_word_embeddings:
        model.lm.tie_weights()
    model.lm_id = truncate_layers(model.lm, cfg.lm_layers, model.lm_id)
    model.train(False)
    return model


def _materialise_buffers(model: PrismaticVLA) -> None:
    """Non-persistent buffers (rotary inv_freq) stay on the meta device after an assign-load;
    rebuild the modules holding them on CPU, then refuse anything still on meta."""
    lm = model.lm
    for name, mod in list(lm.named_modules()):
        if any(b.is_meta for b in mod.buffers(recurse=False)) and name.endswith("rotary_emb"):
            parent = lm.get_submodule(name.rsplit(".", 1)[0]) if "." in name else lm
            setattr(parent, name.rsplit(".", 1)[-1], type(mod)(config=lm.config))
    left = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if left:
        raise RuntimeError(f"openvla: tensors left uninitialised after loading: {', '.join(left[:5])}")
