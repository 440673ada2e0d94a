"""InvAct losses (invact.txt Sec. 3.3, Eq. 2-7).

Notation: g (N, d) ego and x (N, d) exo embeddings of N time-synchronised pairs. <a, b> is the
cosine similarity. The paper does not state a temperature for the InfoNCE terms (Eq. 3-5); we
divide cosines by `tau` (default 0.1, the usual contrastive choice; tau=1 is the equations read
literally). Eq. 2 uses the plain cosine, as written. The paper gives lambda_vv = lambda_CE = 0.5,
lambda_att = lambda_rep = 1.0 (App. B.1) but no lambda_text; we use 1.0.

Anchors without a positive (Eq. 3) or without a same-scene negative (Eq. 4) contribute nothing; the
mean runs over the anchors that have one (with the quadruplet layout every anchor has one of each
except S3A2's attraction term and S1A1/S2A1's repulsion term, unless another quadruplet supplies it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class InvActLossConfig:
    tau: float = 0.1
    lambda_vv: float = 0.5
    lambda_att: float = 1.0
    lambda_rep: float = 1.0
    lambda_text: float = 1.0
    lambda_ce: float = 0.5
    # Table 3 "training paradigm": which text target the contrastive text term uses
    text_target: str = "atom"  # "atom": atomic sentence (CLR_atom); "verb": verb label (CLR_verb)

    def validate(self) -> None:
        if self.tau <= 0:
            raise ValueError(f"loss.tau must be > 0, got {self.tau}")
        if self.text_target not in ("atom", "verb"):
            raise ValueError(f"loss.text_target must be 'atom' or 'verb', got {self.text_target!r}")
        if min(self.lambda_vv, self.lambda_att, self.lambda_rep, self.lambda_text, self.lambda_ce) < 0:
            raise ValueError("loss weights must be >= 0")


def cosine_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """`(N, d), (M, d)` -> `(N, M)` cosine similarities."""
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T


def view_alignment_loss(g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Eq. 2: L_vv = 1/N sum_i (1 - <g_i, x_i>)."""
    return (1 - F.cosine_similarity(g, x, dim=-1)).mean()


def attraction_loss(z: torch.Tensor, action: torch.Tensor, scene: torch.Tensor, tau: float) -> torch.Tensor:
    """Eq. 3 for one view: multi-positive InfoNCE; P(i) = same action, other scene; N(i) = other action."""
    s = cosine_matrix(z, z) / tau
    same_a = action[:, None] == action[None, :]
    same_s = scene[:, None] == scene[None, :]
    pos = same_a & ~same_s
    neg = ~same_a
    has = pos.any(1)
    if not has.any():
        return z.sum() * 0.0
    s = s[has]
    num = torch.logsumexp(s.masked_fill(~pos[has], float("-inf")), dim=1)
    den = torch.logsumexp(s.masked_fill(~(pos | neg)[has], float("-inf")), dim=1)
    return (den - num).mean()


def repulsion_loss(z: torch.Tensor, action: torch.Tensor, scene: torch.Tensor, tau: float) -> torch.Tensor:
    """Eq. 4 for one view: -log e^<z_i,z_i> / (e^<z_i,z_i> + sum_{r in R(i)} e^<z_i,z_r>), R(i) = same scene, other action."""
    s = cosine_matrix(z, z) / tau
    rep = (scene[:, None] == scene[None, :]) & (action[:, None] != action[None, :])
    has = rep.any(1)
    if not has.any():
        return z.sum() * 0.0
    s = s[has]
    self_sim = s.gather(1, torch.nonzero(has).squeeze(1)[:, None])  # <z_i, z_i> (1/tau for unit vectors)
    both = torch.cat([self_sim, s.masked_fill(~rep[has], float("-inf"))], dim=1)
    return (torch.logsumexp(both, dim=1) - self_sim.squeeze(1)).mean()


def text_alignment_loss(z: torch.Tensor, t: torch.Tensor, tau: float) -> torch.Tensor:
    """Eq. 5 for one view: symmetric CLIP-style InfoNCE with index-matched positives."""
    s = cosine_matrix(z, t) / tau
    target = torch.arange(len(z), device=z.device)
    return 0.5 * (F.cross_entropy(s, target) + F.cross_entropy(s.T, target))


def verb_ce_loss(logits_g: torch.Tensor, logits_x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Eq. 6: L_CE = -1/N sum_i [log softmax(h(g_i))_{y_i} + log softmax(h(x_i))_{y_i}] (a sum over views)."""
    return F.cross_entropy(logits_g, y) + F.cross_entropy(logits_x, y)


def invact_loss(
    cfg: InvActLossConfig,
    g: torch.Tensor,
    x: torch.Tensor,
    t: torch.Tensor | None,
    logits_g: torch.Tensor | None,
    logits_x: torch.Tensor | None,
    action: torch.Tensor,
    scene: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Eq. 7: weighted sum; a term whose lambda is 0 is skipped. Returns (loss, per-term values)."""
    terms: dict[str, torch.Tensor] = {}
    if cfg.lambda_vv:
        terms["vv"] = view_alignment_loss(g, x)
    if cfg.lambda_att:
        terms["att"] = 0.5 * (attraction_loss(g, action, scene, cfg.tau) + attraction_loss(x, action, scene, cfg.tau))
    if cfg.lambda_rep:
        terms["rep"] = 0.5 * (repulsion_loss(g, action, scene, cfg.tau) + repulsion_loss(x, action, scene, cfg.tau))
    if cfg.lambda_text and t is not None:
        terms["text"] = 0.5 * (text_alignment_loss(g, t, cfg.tau) + text_alignment_loss(x, t, cfg.tau))
    if cfg.lambda_ce and logits_g is not None:
        terms["ce"] = verb_ce_loss(logits_g, logits_x, action)
    weights = {"vv": cfg.lambda_vv, "att": cfg.lambda_att, "rep": cfg.lambda_rep, "text": cfg.lambda_text, "ce": cfg.lambda_ce}
    if not terms:
        raise ValueError("every InvAct loss weight is 0: nothing to train")
    total = sum(weights[k] * v for k, v in terms.items())
    return total, {k: float(v.detach()) for k, v in terms.items()}
