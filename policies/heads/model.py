"""The policy head: frozen-encoder features of the current frame window(s) + robot state
(+ instruction) -> an action, or a chunk of `chunk` actions.

`mlp` (default, the R3M head): BatchNorm1d over the concatenated input, then MLP(256, 256) with
ReLUs, then a linear layer to the action(s). `step` (optional, STEP-style temporal head): the features
of the last `history` windows are projected to tokens, mixed by one transformer-encoder layer with a
learned position embedding, and the last token (plus proprio) goes through the same MLP.

Instruction conditioning (`text_dim` > 0: a frozen sentence embedding of the instruction, MiniLM by
default): `condition="concat"` appends it to the MLP input (inside the BatchNorm); `"film"` maps it to
a per-unit scale and shift of every hidden layer, h <- (1 + gamma(text)) * h + beta(text) (FiLM,
Perez et al. 2018), initialised to the identity. Without it a head trained on several tasks of one
scene (libero_goal) cannot know which task it is doing.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

CHOICES: dict[str, tuple[str, ...]] = {"kind": ("mlp", "step"), "norm": ("batch", "standard"),
                                       "condition": ("concat", "film")}


def check_choices(cfg: object, choices: dict[str, tuple[str, ...]], what: str = "") -> None:
    """One error naming the field when a string field of `cfg` is not one of its `choices`."""
    for name, allowed in choices.items():
        if getattr(cfg, name) not in allowed:
            raise ValueError(f"{what}{name} must be one of {', '.join(allowed)}; got {getattr(cfg, name)!r}")


@dataclasses.dataclass
class HeadConfig:
    feature_dim: int = 0  # encoder features per step (all views concatenated); set from the data
    proprio_dim: int = 0  # robot state dims; set from the data
    action_dim: int = 7
    hidden: tuple[int, ...] = (256, 256)
    kind: str = "mlp"  # mlp | step
    history: int = 1  # windows seen by the step head (1 for mlp)
    dropout: float = 0.0
    text_dim: int = 0  # instruction embedding dims (0: not conditioned)
    condition: str = "concat"  # concat | film: how the instruction enters
    chunk: int = 1  # actions predicted per call (OpenVLA-OFT / ACT chunking)
    feature_proj: int = 0  # > 0: BatchNorm + Linear of the encoder features to this many dims before the MLP
    feature_dropout: float = 0.0  # dropout on the (projected) encoder features while training
    feature_eps: float = 1e-5  # BatchNorm eps of the encoder features before the projection (a variance floor)
    norm: str = "batch"  # batch (R3M: BatchNorm1d over the MLP input) | standard (fixed demo mean / floored std)
    proprio: bool = True  # False: the robot state is not an input (the proprio ablation)

    def validate(self) -> None:
        check_choices(self, CHOICES, "head ")
        if self.kind == "step" and self.feature_proj:
            raise ValueError("feature_proj is for the mlp head (the step head projects its features itself)")
        if self.feature_proj < 0 or not 0.0 <= self.feature_dropout < 1.0:
            raise ValueError(f"bad head feature_proj={self.feature_proj} / feature_dropout={self.feature_dropout}")
        if self.text_dim < 0 or self.chunk < 1:
            raise ValueError(f"bad head dims: text_dim={self.text_dim}, chunk={self.chunk}")
        if self.kind == "mlp" and self.history != 1:
            raise ValueError("the mlp head sees one window: history must be 1 (use kind=step for more)")
        if self.feature_dim == 0 and (self.kind != "mlp" or self.feature_proj or self.proprio_dim == 0 or not self.proprio):
            raise ValueError("a head without encoder features (encoder=none) is an mlp head on proprio")
        if self.history < 1 or self.feature_dim < 0 or self.action_dim < 1 or self.proprio_dim < 0:
            raise ValueError(f"bad head dims: {self}")


class _MLP(nn.Module):
    """Linear -> ReLU (-> Dropout) per hidden size, then a linear output; optional FiLM of every
    hidden layer by a conditioning vector (identity at initialisation)."""

    def __init__(self, n_in: int, hidden: tuple[int, ...], n_out: int, dropout: float, film_dim: int = 0) -> None:
        super().__init__()
        dims = [n_in, *hidden]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.out = nn.Linear(dims[-1], n_out)
        self.film = nn.ModuleList(nn.Linear(film_dim, 2 * h) for h in hidden) if film_dim else None
        for f in self.film or ():
            nn.init.zeros_(f.weight)
            nn.init.zeros_(f.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if self.film is not None and cond is not None:
                gamma, beta = self.film[i](cond).chunk(2, dim=-1)
                x = (1 + gamma) * x + beta
            x = self.drop(torch.relu(x))
        return self.out(x)


class Standardize(nn.Module):
    """x -> (x - mean) / std with fixed statistics of the training inputs (`fit`), stored as buffers.

    Unlike BatchNorm it has no batch/running-statistics gap between training and acting, and its std
    is floored (`floor` x the median std): constant or near-constant inputs (one task's instruction
    embedding, dead feature dims) stay at 0 instead of being blown up."""

    def __init__(self, n: int, floor: float = 0.1) -> None:
        super().__init__()
        self.floor = floor
        self.register_buffer("mean", torch.zeros(n))
        self.register_buffer("std", torch.ones(n))

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        """x (N, n): the MLP inputs of the training rows."""
        std = x.std(0)
        self.mean.copy_(x.mean(0))
        self.std.copy_(torch.clamp(std, min=max(float(std.median()) * self.floor, 1e-6)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _input_norm(cfg: HeadConfig, n_in: int) -> nn.Module:
    return nn.BatchNorm1d(n_in) if cfg.norm == "batch" else Standardize(n_in)


class HeadNetwork(nn.Module):
    """`forward(features (B, history, F), proprio (B, P), text (B, text_dim) or None)` -> actions
    `(B, A)` (chunk 1) or `(B, chunk, A)`."""

    def __init__(self, cfg: HeadConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        concat_text = cfg.text_dim if cfg.condition == "concat" else 0
        # a few thousand demo steps against thousands of feature dims: a bottleneck (and dropout) keeps
        # the head from memorising the episode through the features and ignoring proprio
        feat = cfg.feature_proj or cfg.feature_dim
        # frozen pooled features hold near-constant dims (std < 1e-3 for 3% of EfficientNet's); unit-variance
        # scaling blows their rollout-time wobble up, so `feature_eps` floors the variance it divides by
        self.feat_proj = (nn.Sequential(nn.BatchNorm1d(cfg.feature_dim, eps=cfg.feature_eps),
                                        nn.Linear(cfg.feature_dim, cfg.feature_proj))
                          if cfg.feature_proj else nn.Identity())
        self.feat_drop = nn.Dropout(cfg.feature_dropout) if cfg.feature_dropout > 0 else nn.Identity()
        prop = cfg.proprio_dim if cfg.proprio else 0
        if cfg.kind == "mlp":
            n_in = feat + prop + concat_text
            self.norm = _input_norm(cfg, n_in)
        else:
            d = cfg.hidden[0]
            self.feat_norm = nn.BatchNorm1d(cfg.feature_dim)
            self.proj = nn.Linear(cfg.feature_dim, d)
            self.pos = nn.Parameter(torch.zeros(cfg.history, d))
            self.mix = nn.TransformerEncoderLayer(d, nhead=4, dim_feedforward=2 * d, dropout=cfg.dropout,
                                                  batch_first=True)
            n_in = d + prop + concat_text
            self.norm = _input_norm(cfg, n_in)
        film = cfg.text_dim if cfg.condition == "film" else 0
        self.mlp = _MLP(n_in, tuple(cfg.hidden), cfg.chunk * cfg.action_dim, cfg.dropout, film)

    def mlp_input(self, features: torch.Tensor, proprio: torch.Tensor, text: torch.Tensor | None) -> torch.Tensor:
        """(B, n_in): the (projected or mixed) features, proprio (unless `proprio=False`) and, for concat,
        the instruction."""
        if self.cfg.text_dim and (text is None or text.shape[-1] != self.cfg.text_dim):
            raise ValueError(f"this head is conditioned on a {self.cfg.text_dim}-d instruction embedding, got "
                             f"{None if text is None else tuple(text.shape)}")
        if features.ndim == 2:
            features = features[:, None]
        if self.cfg.kind == "mlp":
            z = self.feat_drop(self.feat_proj(features[:, -1]))
        else:
            b, h, f = features.shape
            z = self.proj(self.feat_norm(features.reshape(b * h, f)).reshape(b, h, f))
            z = self.mix(z + self.pos[-h:])[:, -1]
        parts = [z, proprio] if self.cfg.proprio else [z]
        if self.cfg.text_dim and self.cfg.condition == "concat":
            parts.append(text)
        return torch.cat(parts, dim=1)

    def forward(self, features: torch.Tensor, proprio: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        out = self.mlp(self.norm(self.mlp_input(features, proprio, text)),
                       text if self.cfg.condition == "film" else None)
        return out if self.cfg.chunk == 1 else out.reshape(len(out), self.cfg.chunk, self.cfg.action_dim)

    @torch.no_grad()
    def fit_input_norm(self, batches: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]) -> None:
        """`norm="standard"`: set the input statistics from (features, proprio, text) batches of the
        training rows (with `feature_proj`, the projection is the one at initialisation)."""
        if not isinstance(self.norm, Standardize):
            return
        was = self.training
        self.eval()  # dropout off: the statistics of what the head sees when it acts
        self.norm.fit(torch.cat([self.mlp_input(f, p, t) for f, p, t in batches]))
        self.train(was)
