"""RoboAct-CLIP losses (roboact_clip.txt Sec. III-B, Eq. 13, 14, 20, 21, 23, 26, 27).

Notation: N clips in a batch; `sub`, `act`, `obj` (N, b) visual branch features; `fv`, `ft` (N, 3b)
the concatenated visual / text features (Eq. 24-25). Choices the paper leaves open (documented
here and in `RoboActLossConfig`):

- tau: one fixed temperature 0.07 (CLIP's initial value) for Eq. 20 and Eq. 26.
- Eq. 26 with repeated descriptions: the atomic world has ~100 distinct (subject, action, object)
  triplets, so a batch of 64 holds duplicates. The softmax runs over the *distinct* descriptions of
  the batch (a duplicate of the positive is not a negative); each clip's target is its own text.
- Eq. 13 read literally (signed cosine) is minimised by anti-parallel branches, not independent
  ones; by default we take |CosSim| so the optimum is orthogonality (`sim_abs: false` = literal).
- Eq. 14: the squared L2 norms are averaged over the batch (the paper writes no reduction).
- Eq. 23: CE already carries the minus sign of the log-likelihood, so we add the CEs (the leading
  minus in the paper's formula would otherwise maximise them).
- Weights: the paper gives no values; lambda_disent = lambda_aux = lambda_ortho = lambda_recomb = 1,
  alpha_s = alpha_a = alpha_o = 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class RoboActLossConfig:
    tau: float = 0.07  # temperature of Eq. 20 and Eq. 26
    lambda_disent: float = 1.0  # Eq. 27
    lambda_aux: float = 1.0  # Eq. 27 (A4: 0)
    lambda_ortho: float = 1.0  # Eq. 21
    lambda_recomb: float = 1.0  # Eq. 21 (A3: 0)
    l2_weight: float = 0.01  # Eq. 14's 0.01
    alpha_s: float = 1.0  # Eq. 23
    alpha_a: float = 1.0
    alpha_o: float = 1.0
    sim_abs: bool = True  # Eq. 13 on |CosSim| (see module docstring)
    batch_size: int = 0  # clips per step; 0: 8 * batch_quads
    bank_every: int = 5  # feature banks (Eq. 15-17) are refreshed every this many steps
    bank_momentum: float = 0.9  # EMA momentum of a refresh (see encoders/roboact/banks.py:update_banks)
    # Not in the paper: probability per clip of a scene-prototype swap, x <- x - mu(scene) + mu(other
    # scene) on the frozen frame features (mu = the scene's mean training feature). Frame differences
    # (Eq. 6) are unchanged; F_v1 / F_vn lose the scene shortcut. 0 disables it.
    scene_swap: float = 0.0
    # Not in the paper: with model.motion "diff", per-clip augmentation of the small frames (as the
    # motion probe): a circular shift of up to this many pixels and a brightness gain of 1 +- this
    motion_shift: int = 3
    motion_brightness: float = 0.2
    motion_tint: float = 0.0  # and a gain of 1 +- this per colour channel (the scenes' light warmth)

    def validate(self) -> None:
        if self.tau <= 0:
            raise ValueError(f"loss.tau must be > 0, got {self.tau}")
        weights = (self.lambda_disent, self.lambda_aux, self.lambda_ortho, self.lambda_recomb, self.l2_weight,
                   self.alpha_s, self.alpha_a, self.alpha_o)  # fmt: skip
        if min(weights) < 0:
            raise ValueError("loss weights (lambda_*, l2_weight, alpha_*) must be >= 0")
        if self.batch_size < 0 or self.bank_every < 1:
            raise ValueError(f"loss.batch_size must be >= 0 and loss.bank_every >= 1, got {self.batch_size}, {self.bank_every}")
        if self.motion_shift < 0 or not 0.0 <= self.motion_brightness < 1.0 or not 0.0 <= self.motion_tint < 1.0:
            raise ValueError(f"loss.motion_shift must be >= 0 and loss.motion_brightness, loss.motion_tint in [0, 1), "
                             f"got {self.motion_shift}, {self.motion_brightness}, {self.motion_tint}")
        if not 0.0 <= self.scene_swap <= 1.0:
            raise ValueError(f"loss.scene_swap must be in [0, 1], got {self.scene_swap}")
        if not 0.0 <= self.bank_momentum < 1.0:
            raise ValueError(f"loss.bank_momentum must be in [0, 1), got {self.bank_momentum}")


def orthogonality_loss(sub: torch.Tensor, act: torch.Tensor, obj: torch.Tensor, absolute: bool = True) -> torch.Tensor:
    """Eq. 13: L_sim = 1/(3N) sum_i [cos(sub_i, act_i) + cos(sub_i, obj_i) + cos(act_i, obj_i)].

    `(N, b)` x 3 -> scalar. `absolute`: |cos| per pair (orthogonality is the minimum)."""
    pairs = (F.cosine_similarity(sub, act, dim=-1), F.cosine_similarity(sub, obj, dim=-1),
             F.cosine_similarity(act, obj, dim=-1))  # fmt: skip
    s = torch.stack(pairs, dim=1)  # (N, 3)
    if absolute:
        s = s.abs()
    return s.sum(1).mean() / 3.0


def l2_loss(sub: torch.Tensor, act: torch.Tensor, obj: torch.Tensor, weight: float = 0.01) -> torch.Tensor:
    """Eq. 14: L_L2 = 0.01 (||sub||^2 + ||act||^2 + ||obj||^2), averaged over the N rows. `(N, b)` x 3 -> scalar."""
    return weight * (sub.pow(2).sum(-1) + act.pow(2).sum(-1) + obj.pow(2).sum(-1)).mean()


def recombination_loss(f_recomb: torch.Tensor, t_all: torch.Tensor, target: torch.Tensor, tau: float) -> torch.Tensor:
    """Eq. 20: -1/N sum_i log softmax_b(sim(F_recomb^i, T_recomb^b) / tau)[target_i], b over all of M.

    `f_recomb (N, D)` recombined features of N sampled triplets, `t_all (M, D)` text features of every
    valid triplet, `target (N,)` index into M of each sample's own triplet. sim = cosine."""
    logits = F.normalize(f_recomb, dim=-1) @ F.normalize(t_all, dim=-1).T / tau
    return F.cross_entropy(logits, target)


def disentanglement_loss(l_sim: torch.Tensor, l_l2: torch.Tensor, l_recomb: torch.Tensor,
                         lambda_ortho: float, lambda_recomb: float) -> torch.Tensor:  # fmt: skip
    """Eq. 21: L_disent = lambda_ortho (L_sim + L_L2) + lambda_recomb L_recomb."""
    return lambda_ortho * (l_sim + l_l2) + lambda_recomb * l_recomb


def aux_classification_loss(logits: dict[str, torch.Tensor], labels: dict[str, torch.Tensor],
                            alphas: dict[str, float]) -> torch.Tensor:  # fmt: skip
    """Eq. 22-23: sum_f alpha_f CE(softmax(logits_f), y_f), averaged over N.

    `logits[f] (N, K_f)` pre-softmax scores of the subject/action/object classifiers, `labels[f] (N,)`."""
    total = None
    for f, a in alphas.items():
        term = a * F.cross_entropy(logits[f], labels[f])
        total = term if total is None else total + term
    assert total is not None
    return total


def clip_loss(fv: torch.Tensor, ft: torch.Tensor, text_id: torch.Tensor, tau: float) -> torch.Tensor:
    """Eq. 26: -1/N sum_i log [exp(sim(F_v^i, F_t^i)/tau) / sum_j exp(sim(F_v^i, F_t^j)/tau)].

    `fv (N, D)` video features, `ft (U, D)` text features of the U distinct descriptions in the batch,
    `text_id (N,)` row of ft that describes clip i (j runs over distinct descriptions; with all
    descriptions distinct, U = N, ft[i] pairs with fv[i] and this is Eq. 26 verbatim)."""
    logits = F.normalize(fv, dim=-1) @ F.normalize(ft, dim=-1).T / tau
    return F.cross_entropy(logits, text_id)


def total_loss(l_clip: torch.Tensor, l_disent: torch.Tensor, l_aux: torch.Tensor,
               lambda_disent: float, lambda_aux: float) -> torch.Tensor:  # fmt: skip
    """Eq. 27: L_total = L_CLIP + lambda_disent L_disent + lambda_aux L_aux."""
    return l_clip + lambda_disent * l_disent + lambda_aux * l_aux
