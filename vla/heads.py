"""Heads and adapters that turn a PrismaticVLA into the stage-2 latent model and the stage-3 policy.

    LatentVLA(vla, LatentHead(D, dim))        stage 2: linear head on the hidden state of the last
                                              instruction token -> latent action (invact.txt A.3)
    ActionVLA(vla, ActionHead(D, K, P))       stage 3: K learned action queries appended after the text
                                              (+ one projected proprio embedding), their last hidden
                                              states -> (K, 7) actions by an MLP, trained with L1
                                              (OpenVLA-OFT: parallel decoding, continuous actions, L1)
    add_lora / merge_lora / lora_state        peft LoRA on the LM's linear layers (Hu et al., 2022)

The LoRA is injected into `vla.lm` in place (peft's `get_peft_model` replaces the target Linear
modules inside the model it is given), so `PrismaticVLA.forward` runs unchanged; the PeftModel
handle is kept beside the model (not registered as a sub-module) for merging.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vla.views import view_pixels


# -- LoRA -----------------------------------------------------------------------------------------
@dataclasses.dataclass
class LoraSpec:
    """peft LoRA on the LM. `targets`: "all-linear" (every Linear but the output layer) or a list of
    module-name suffixes (e.g. [q_proj, v_proj])."""

    r: int = 32
    alpha: int = 16
    dropout: float = 0.0
    targets: list[str] = dataclasses.field(default_factory=lambda: ["all-linear"])

    def validate(self) -> None:
        if self.r < 1 or self.alpha < 1:
            raise ValueError(f"lora.r and lora.alpha must be >= 1, got r={self.r} alpha={self.alpha}")
        if not self.targets:
            raise ValueError("lora.targets must name at least one module (or all-linear)")


def add_lora(vla: nn.Module, spec: LoraSpec) -> Any:
    """Inject a fresh LoRA into `vla.lm` (B = 0, so outputs are unchanged); freeze everything else of
    the VLA. Returns the peft handle. The LM's base weights stay frozen."""
    from peft import LoraConfig, get_peft_model

    targets: Any = "all-linear" if list(spec.targets) == ["all-linear"] else list(spec.targets)
    cfg = LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout, target_modules=targets,
                     bias="none")
    for p in vla.parameters():
        p.requires_grad_(False)
    handle = get_peft_model(vla.lm, cfg)  # mutates vla.lm's modules in place
    n = sum(p.numel() for n_, p in vla.lm.named_parameters() if "lora_" in n_)
    if n == 0:
        raise ValueError(f"lora.targets={spec.targets}: matched no Linear module of the LM")
    return handle


def merge_lora(vla: nn.Module, handle: Any) -> None:
    """Fold the LoRA into the LM weights (W <- W + alpha/r B A) and remove the adapter modules."""
    vla.lm = handle.merge_and_unload()
    for p in vla.parameters():
        p.requires_grad_(False)


def lora_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The LoRA tensors of `module` (names relative to it), detached copies."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items() if "lora_" in k}


def load_lora_state(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load LoRA tensors saved by `lora_state`; a missing, unexpected or mis-shaped key is one error
    naming `source`."""
    own = {k: v for k, v in module.state_dict().items() if "lora_" in k}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(f"{source}: LoRA weights do not fit the model: missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]} (another LoRA config or LM?)")
    for k, v in state.items():
        if own[k].shape != v.shape:
            raise ValueError(f"{source}: LoRA key {k!r} has shape {tuple(v.shape)}, the model needs "
                             f"{tuple(own[k].shape)} (another lora.r or LM?)")
    module.load_state_dict(state, strict=False)


# -- heads ----------------------------------------------------------------------------------------
class LatentHead(nn.Module):
    """hidden (B, D) -> latent (B, dim) (continuous), or with codebook > 0 logits (B, dim, codebook)
    for `dim` discrete code groups.

    LAPA/invact.txt A.3: "a single linear head that maps transformer tokens to the latent action"."""

    def __init__(self, hidden: int, dim: int, codebook: int = 0) -> None:
        super().__init__()
        self.dim, self.codebook = dim, codebook
        self.proj = nn.Linear(hidden, dim * codebook if codebook else dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out = self.proj(h)
        return out.view(h.shape[0], self.dim, self.codebook) if self.codebook else out


class ActionHead(nn.Module):
    """OpenVLA-OFT-style continuous action head.

    `extra_embeds(B, proprio)` -> (B, Q, D): [proprio embedding (if proprio_dim > 0)] + K learned
    action queries; they go after the instruction, and `forward` maps the K query hidden states
    (B, K, D) -> actions (B, K, A) in the normalised [-1, 1] space (no tanh: L1 regression, OFT)."""

    def __init__(self, hidden: int, chunk: int = 8, action_dim: int = 7, proprio_dim: int = 0,
                 init_std: float = 0.02) -> None:
        super().__init__()
        self.chunk, self.action_dim, self.proprio_dim = chunk, action_dim, proprio_dim
        self.queries = nn.Parameter(torch.randn(chunk, hidden) * init_std)
        self.proprio = nn.Linear(proprio_dim, hidden) if proprio_dim else None
        self.mlp = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, action_dim))

    @property
    def num_extra(self) -> int:
        return self.chunk + (1 if self.proprio is not None else 0)

    def extra_embeds(self, batch: int, proprio: torch.Tensor | None = None) -> torch.Tensor:
        q = self.queries.unsqueeze(0).expand(batch, -1, -1)
        if self.proprio is None:
            return q
        if proprio is None:
            raise ValueError("this action head was trained with proprio input; pass proprio (B, P)")
        return torch.cat([self.proprio(proprio.to(q.dtype)).unsqueeze(1), q], dim=1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.mlp(h)


# -- the two assembled models ---------------------------------------------------------------------
def _as_pixels(vla: nn.Module, images: Any, device: torch.device) -> torch.Tensor:
    """(B, H, W, 3) or (B, V, H, W, 3) uint8 -> (B, 3, S, S) or (B, V, 3, S, S) float on `device`."""
    return view_pixels(vla, images).to(device)


class LatentVLA(nn.Module):
    """Stage 2 model: VLA (with LoRA) + LatentHead on the hidden state of the last instruction token."""

    def __init__(self, vla: nn.Module, head: LatentHead) -> None:
        super().__init__()
        self.vla, self.head = vla, head

    def forward(self, images: Any, texts: list[str]) -> torch.Tensor:
        """images (B, H, W, 3) uint8, texts B str -> (B, dim) or (B, G, codebook)."""
        dev = self.head.proj.weight.device
        ids, mask = self.vla.tokenize(texts)
        ids, mask = ids.to(dev), mask.to(dev)
        h = self.vla(_as_pixels(self.vla, images, dev), ids, mask)  # (B, N + L, D)
        last = self.vla.last_text_index(mask).to(dev)  # (B,)
        return self.head(h[torch.arange(h.shape[0], device=dev), last].float())


class ActionVLA(nn.Module):
    """Stage 3 model: VLA (stage-2 LoRA merged, fresh LoRA) + ActionHead on K query tokens."""

    def __init__(self, vla: nn.Module, head: ActionHead) -> None:
        super().__init__()
        self.vla, self.head = vla, head

    def forward(self, images: Any, texts: list[str], proprio: torch.Tensor | None = None) -> torch.Tensor:
        """images (B, H, W, 3) or (B, V, H, W, 3) uint8 (V camera views, their tokens concatenated in
        view order: vla/views.py), texts B str, proprio (B, P) normalised -> actions (B, K, A)."""
        dev = self.head.queries.device
        ids, mask = self.vla.tokenize(texts)
        ids, mask = ids.to(dev), mask.to(dev)
        extra = self.head.extra_embeds(ids.shape[0], None if proprio is None else proprio.to(dev))
        h = self.vla(_as_pixels(self.vla, images, dev), ids, mask, extra_embeds=extra)  # (B, VN+L+Q, D)
        return self.head(h[:, -self.head.chunk:].float())


# -- losses ---------------------------------------------------------------------------------------
def latent_loss(pred: torch.Tensor, target: torch.Tensor | None, codes: torch.Tensor | None,
                kind: str) -> torch.Tensor:
    """Stage-2 objective (LAPA / invact.txt A.3: "train the VLA to match ... latent actions").

    cosine: mean(1 - <p, z> / |p||z|) -- the encoder's own geometry (InvAct aligns with cosine, Eq. 2);
    mse:    mean ||p - z||^2 on standardised latents;
    ce:     LAPA's discrete latent actions: cross-entropy of (B, G, V) logits against codes (B, G)."""
    if kind == "ce":
        if codes is None:
            raise ValueError("loss=ce needs discrete codes in the latents file")
        return F.cross_entropy(pred.reshape(-1, pred.shape[-1]), codes.reshape(-1))
    if kind == "cosine":
        return (1.0 - F.cosine_similarity(pred, target, dim=-1)).mean()
    if kind == "mse":
        return F.mse_loss(pred, target)
    raise ValueError(f"unknown latent loss {kind!r}; expected cosine, mse or ce")


def action_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """OpenVLA-OFT's objective: L1 = mean_{b,k,a} |a_hat - a| on normalised action chunks (B, K, A)."""
    return (pred - target).abs().mean()
