"""The policy head: frozen-encoder features of the current frame window(s) + robot state -> action.

`mlp` (default, the R3M head): BatchNorm1d over the concatenated input, then MLP(256, 256) with
ReLUs, then a linear layer to the action. `step` (optional, STEP-style temporal head): the features
of the last `history` windows are projected to tokens, mixed by one transformer-encoder layer with a
learned position embedding, and the last token (plus proprio) goes through the same MLP.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn


@dataclasses.dataclass
class HeadConfig:
    feature_dim: int = 0  # encoder features per step (all views concatenated); set from the data
    proprio_dim: int = 0  # robot state dims; set from the data
    action_dim: int = 7
    hidden: tuple[int, ...] = (256, 256)
    kind: str = "mlp"  # mlp | step
    history: int = 1  # windows seen by the step head (1 for mlp)
    dropout: float = 0.0

    def validate(self) -> None:
        if self.kind not in ("mlp", "step"):
            raise ValueError(f"head kind must be 'mlp' or 'step', got {self.kind!r}")
        if self.kind == "mlp" and self.history != 1:
            raise ValueError("the mlp head sees one window: history must be 1 (use kind=step for more)")
        if self.history < 1 or self.feature_dim < 1 or self.action_dim < 1 or self.proprio_dim < 0:
            raise ValueError(f"bad head dims: {self}")


def _mlp(n_in: int, hidden: tuple[int, ...], n_out: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(n_in, h), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        n_in = h
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


class HeadNetwork(nn.Module):
    """`forward(features (B, history, F), proprio (B, P)) -> actions (B, A)`."""

    def __init__(self, cfg: HeadConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        if cfg.kind == "mlp":
            n_in = cfg.feature_dim + cfg.proprio_dim
            self.norm = nn.BatchNorm1d(n_in)
        else:
            d = cfg.hidden[0]
            self.feat_norm = nn.BatchNorm1d(cfg.feature_dim)
            self.proj = nn.Linear(cfg.feature_dim, d)
            self.pos = nn.Parameter(torch.zeros(cfg.history, d))
            self.mix = nn.TransformerEncoderLayer(d, nhead=4, dim_feedforward=2 * d, dropout=cfg.dropout,
                                                  batch_first=True)
            n_in = d + cfg.proprio_dim
            self.norm = nn.BatchNorm1d(n_in)
        self.mlp = _mlp(n_in, tuple(cfg.hidden), cfg.action_dim, cfg.dropout)

    def forward(self, features: torch.Tensor, proprio: torch.Tensor) -> torch.Tensor:
        if features.ndim == 2:
            features = features[:, None]
        if self.cfg.kind == "mlp":
            x = torch.cat([features[:, -1], proprio], dim=1)
        else:
            b, h, f = features.shape
            z = self.proj(self.feat_norm(features.reshape(b * h, f)).reshape(b, h, f))
            z = self.mix(z + self.pos[-h:])
            x = torch.cat([z[:, -1], proprio], dim=1)
        return self.mlp(self.norm(x))
