"""Memory estimate for LoRA training of a VLA, from a known architecture table (nothing is downloaded).

    python vla/estimate.py --model openvla-7b --lora-r 32 --batch 16
    python vla/estimate.py --model smol --lora-r 32 --batch 8 --json

Prints parameters, trainable parameters, optimizer state and activation memory per sample for
bf16 / fp32 activations, with and without gradient checkpointing, and the total for the batch,
so a user knows which GPU to rent before renting it.

Architectures (`ARCHS`): openvla-7b = Llama-2-7B (vocab 32064 = 32000 + <PAD> padded to a
multiple of 64) + DINOv2 ViT-L/14 reg4 + SigLIP So400m/14 at 224 px (256 patch tokens, features
concatenated: 2176) + fused 3-layer MLP projector (Kim et al. 2024); smol = SmolLM2-135M +
EfficientNet-Lite0 at 128 px (16 tokens) + 2-layer projector; tiny = the `tiny` test model.

Formulas (h hidden, f MLP width, k = key/value width = kv_heads * head_dim, V vocab, n layers,
s = image tokens + text tokens + query tokens):
  Llama params    V*h (embed) + n*(2*h*h + 2*h*k + 3*h*f + 2*h) + h (final norm) + V*h (lm_head, untied)
  ViT params      p*p*3*d + d (patch) + n_pos*d + prefix*d + depth*(2 LN 4d + qkv 3d^2+3d + proj d^2+d
                  + fc1 d*m+m + fc2 m*d+d [+ LayerScale 2d]) + final LN 2d
                  [+ SigLIP attention pool: latent d, q d^2+d, kv 2d^2+2d, proj d^2+d, LN 2d, MLP]
  LoRA (rank r)   r*(in + out) for each adapted nn.Linear: q, k, v, o, gate, up, down of every LM
                  layer (`--lora-scope all` adds every Linear of the towers and projector, as
                  OpenVLA's finetune.py does with target_modules="all-linear"); lm_head excluded
  heads           linear head h*head_dim + head_dim, plus `--queries` learned query tokens (q*h)
  weights         frozen params in the compute dtype (bf16 2 B, fp32 4 B); trainable params fp32 (4 B)
  gradients       4 B per trainable param (fp32)
  optimizer       AdamW: two fp32 moments = 8 B per trainable param
  activations     per decoder layer and sample, elements saved for backward (SDPA/flash attention,
                  no dropout, SwiGLU, RMSNorm): s*(6h + 2k + 4f)
                    = norm1 in, norm1 out, q, k, v, attention out, norm2 in, norm2 out,
                      gate, up, silu(gate), gate*up
                  without checkpointing: n * s*(6h + 2k + 4f) + s*h (final norm)
                  with checkpointing (per layer): n * s*h (layer inputs) + s*(6h + 2k + 4f) (one
                  layer recomputed during backward)
                  times 2 B (bf16 autocast) or 4 B (fp32). The frozen vision towers run without
                  grad (no saved activations) unless `--lora-scope all`, which adds the towers'
                  per-layer term t*(6d + 2m) per ViT (t tokens incl. prefix, m its MLP width).
  total           weights + trainable weights + gradients + optimizer + batch * activations.
Excluded: CUDA context (~0.5-1 GiB), allocator fragmentation and temporary buffers (budget
+10-20%), logits (we regress from hidden states, no vocabulary softmax).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from configs.cli import ArgumentParser, run_cli

GIB = 1024**3
GPUS = ((16, "16 GB (T4/V100)"), (24, "24 GB (RTX 4090/A10/L4)"), (40, "40 GB (A100-40G)"),
        (48, "48 GB (L40S/A6000)"), (80, "80 GB (A100/H100-80G)"), (141, "141 GB (H200)"))


@dataclass(frozen=True)
class LlamaArch:
    vocab: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    tied: bool = False

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * (self.hidden // self.heads)

    def linears(self) -> list[tuple[int, int]]:
        """(in, out) of every nn.Linear in the decoder (lm_head excluded)."""
        h, k, f = self.hidden, self.kv_dim, self.intermediate
        return [(h, h), (h, k), (h, k), (h, h), (h, f), (h, f), (f, h)] * self.layers

    def params(self) -> int:
        h = self.hidden
        return (self.vocab * h * (1 if self.tied else 2) + sum(i * o for i, o in self.linears())
                + self.layers * 2 * h + h)

    def act_per_layer(self, s: int) -> int:
        return s * (6 * self.hidden + 2 * self.kv_dim + 4 * self.intermediate)


@dataclass(frozen=True)
class ViTArch:
    dim: int
    depth: int
    mlp: int
    patch: int
    image: int
    prefix: int = 0  # class + register tokens
    pos_prefix: bool = False  # pos_embed also covers the prefix tokens
    layer_scale: bool = False
    attn_pool: bool = False

    @property
    def tokens(self) -> int:
        return (self.image // self.patch) ** 2

    def linears(self) -> list[tuple[int, int]]:
        d, m = self.dim, self.mlp
        out = [(d, 3 * d), (d, d), (d, m), (m, d)] * self.depth
        if self.attn_pool:
            out += [(d, d), (d, 2 * d), (d, d), (d, m), (m, d)]
        return out

    def params(self) -> int:
        d = self.dim
        n = 3 * self.patch**2 * d + d + (self.tokens + (self.prefix if self.pos_prefix else 0)) * d + self.prefix * d
        n += sum(i * o + o for i, o in self.linears())  # every Linear has a bias in these towers
        n += self.depth * (4 * d + (2 * d if self.layer_scale else 0)) + 2 * d
        if self.attn_pool:
            n += d + 2 * d  # latent + its LayerNorm
        return n

    def act_per_layer(self) -> int:
        t = self.tokens + self.prefix
        return t * (6 * self.dim + 2 * self.mlp)


@dataclass(frozen=True)
class Arch:
    lm: LlamaArch
    vision_params: int  # frozen tower(s), total
    vits: tuple[ViTArch, ...] = ()  # when the towers are ViTs (LoRA-able, activation term)
    image_tokens: int = 256
    projector: tuple[tuple[int, int], ...] = ()  # (in, out) of its Linear layers
    note: str = ""
    extra: dict = field(default_factory=dict)


_DINO = ViTArch(1024, 24, 4096, 14, 224, prefix=5, layer_scale=True)
_SIGLIP = ViTArch(1152, 27, 4304, 14, 224, attn_pool=True)
ARCHS: dict[str, Arch] = {
    "openvla-7b": Arch(LlamaArch(32064, 4096, 11008, 32, 32, 32), _DINO.params() + _SIGLIP.params(),
                       (_DINO, _SIGLIP), 256, ((2176, 8704), (8704, 4096), (4096, 4096)),
                       "Llama-2-7B + DINOv2 ViT-L/14 reg4 + SigLIP So400m/14, 224 px (OpenVLA, Kim et al. 2024)"),
    "smol": Arch(LlamaArch(49152, 576, 1536, 30, 9, 3, tied=True), 3_371_008, (), 16, ((1280, 576), (576, 576)),
                 "SmolLM2-135M + EfficientNet-Lite0 (3.37M, counted from the offline weights), 128 px"),
    "tiny": Arch(LlamaArch(256, 64, 128, 2, 4, 4, tied=True), 3 * 64 * 32 + 32 + 32 * 32 + 32, (), 16,
                 ((32, 64), (64, 64)), "the `tiny` test model (random init)"),
}


@dataclass
class Estimate:
    model: str
    lora_r: int
    batch: int
    text_len: int
    queries: int
    head_dim: int
    lora_scope: str
    sequence_length: int = 0
    parameters: dict = field(default_factory=dict)
    memory_bytes: dict = field(default_factory=dict)
    activations_per_sample_bytes: dict = field(default_factory=dict)
    total_bytes: dict = field(default_factory=dict)
    smallest_gpu: dict = field(default_factory=dict)
    note: str = ""


def estimate(model: str, lora_r: int = 32, batch: int = 16, text_len: int = 32, queries: int = 0,
             head_dim: int = 7, lora_scope: str = "lm") -> Estimate:
    """The numbers of the module docstring for architecture `model` (a key of ARCHS)."""
    if model not in ARCHS:
        raise KeyError(f"unknown architecture {model!r}; known: {', '.join(ARCHS)}")
    if lora_scope not in ("lm", "all"):
        raise ValueError(f"lora_scope must be 'lm' or 'all', got {lora_scope!r}")
    a = ARCHS[model]
    lm = a.lm
    h = lm.hidden
    s = a.image_tokens + text_len + queries
    projector = sum(i * o + o for i, o in a.projector)
    total = a.vision_params + projector + lm.params()
    adapted = list(lm.linears())
    if lora_scope == "all":
        adapted += list(a.projector) + [lin for v in a.vits for lin in v.linears()]
    lora = lora_r * sum(i + o for i, o in adapted)
    heads = h * head_dim + head_dim + queries * h
    trainable = lora + heads

    per_layer = lm.act_per_layer(s)
    vit_acts = sum(v.depth * v.act_per_layer() for v in a.vits) if lora_scope == "all" else 0
    vit_ckpt = (sum(v.depth * (v.tokens + v.prefix) * v.dim + v.act_per_layer() for v in a.vits)
                if lora_scope == "all" else 0)
    elems = {"no_checkpointing": lm.layers * per_layer + s * h + vit_acts,
             "checkpointing": lm.layers * s * h + per_layer + vit_ckpt}
    acts = {p: {k: v * b for k, v in elems.items()} for p, b in (("bf16", 2), ("fp32", 4))}
    mem = {"weights_bf16": 2 * total, "weights_fp32": 4 * total, "trainable_weights": 4 * trainable,
           "gradients": 4 * trainable, "optimizer_state": 8 * trainable}
    fixed = mem["trainable_weights"] + mem["gradients"] + mem["optimizer_state"]
    totals = {p: {k: mem[f"weights_{p}"] + fixed + batch * v for k, v in acts[p].items()} for p in acts}
    gpu = {p: {k: _smallest_gpu(v) for k, v in totals[p].items()} for p in totals}
    return Estimate(model, lora_r, batch, text_len, queries, head_dim, lora_scope, s,
                    {"total": total, "vision": a.vision_params, "projector": projector, "lm": lm.params(),
                     "trainable": trainable, "lora": lora, "heads": heads},
                    mem, acts, totals, gpu, a.note)


def _smallest_gpu(nbytes: int) -> str:
    need = nbytes * 1.15 / 1e9 + 1.0  # +15% fragmentation/temporaries, +1 GB CUDA context
    for gb, name in GPUS:
        if need <= gb:
            return name
    return f"more than one GPU (~{need:.0f} GB)"


def _fmt_n(n: int) -> str:
    return f"{n / 1e9:.3f} B" if n >= 1e9 else f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n:,}"


def _fmt_b(n: int) -> str:
    return f"{n / GIB:.2f} GiB" if n >= GIB / 10 else f"{n / 2**20:.1f} MiB"


def render(e: Estimate) -> str:
    p, m = e.parameters, e.memory_bytes
    lines = [f"{e.model}: {e.note}",
             f"sequence: {e.sequence_length} tokens (image + text {e.text_len} + queries {e.queries}); "
             f"LoRA r={e.lora_r} on {'every Linear' if e.lora_scope == 'all' else 'the LM Linears'}; "
             f"batch {e.batch}",
             "",
             f"parameters        {_fmt_n(p['total'])}  (vision {_fmt_n(p['vision'])}, projector "
             f"{_fmt_n(p['projector'])}, LM {_fmt_n(p['lm'])})",
             f"trainable         {_fmt_n(p['trainable'])}  (LoRA {_fmt_n(p['lora'])}, heads {_fmt_n(p['heads'])}; "
             f"{100 * p['trainable'] / p['total']:.2f}%)",
             f"weights           bf16 {_fmt_b(m['weights_bf16'])}, fp32 {_fmt_b(m['weights_fp32'])} "
             f"(+ trainable fp32 {_fmt_b(m['trainable_weights'])})",
             f"gradients         {_fmt_b(m['gradients'])} (fp32)",
             f"optimizer state   {_fmt_b(m['optimizer_state'])} (AdamW, 2 fp32 moments)",
             "",
             f"{'':18}{'per sample':>14}{'batch total':>16}   smallest GPU (+15%, +1 GB context)"]
    for prec in ("bf16", "fp32"):
        for ck, label in (("no_checkpointing", "no ckpt"), ("checkpointing", "grad ckpt")):
            lines.append(f"{prec + ' ' + label:18}{_fmt_b(e.activations_per_sample_bytes[prec][ck]):>14}"
                         f"{_fmt_b(e.total_bytes[prec][ck]):>16}   {e.smallest_gpu[prec][ck]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> Estimate:
    ap = ArgumentParser(
        prog="vla/estimate.py", description="Analytic parameter / optimizer / activation memory estimate for LoRA training of a VLA "
                    "(formulas in the module docstring; nothing is downloaded).")
    ap.add_argument("--model", default="openvla-7b", choices=sorted(ARCHS), help="architecture (default openvla-7b)")
    ap.add_argument("--lora-r", type=int, default=32, help="LoRA rank (default 32, as invact.txt App. A.3)")
    ap.add_argument("--batch", type=int, default=16, help="samples per step on one GPU (default 16)")
    ap.add_argument("--text-len", type=int, default=32, help="text tokens per sample incl. prompt (default 32)")
    ap.add_argument("--queries", type=int, default=0, help="learned action-query tokens appended (default 0)")
    ap.add_argument("--head-dim", type=int, default=7, help="output width of the linear head (default 7)")
    ap.add_argument("--lora-scope", default="lm", choices=["lm", "all"],
                    help="lm: LoRA on the LM's Linears (default); all: also towers + projector (OpenVLA finetune.py)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = ap.parse_args(argv)
    e = estimate(args.model, args.lora_r, args.batch, args.text_len, args.queries, args.head_dim, args.lora_scope)
    print(json.dumps(asdict(e), indent=2) if args.json else render(e))
    return e


if __name__ == "__main__":
    import sys

    sys.exit(run_cli(main))
