"""NSVQ: Noise Substitution in Vector Quantization (Vali & Bäckström, IEEE Access 2022), as LAPA's LAQ uses it.

Facts followed (LAPA `laq_model/nsvq.py`, public):
- The quantiser sees one vector per code token: the *difference* of the (projected, downsampled)
  encoder features of frame t+H and frame t. Patch features are projected to `quant_dim`, laid out
  on their patch grid, and a small CNN (3x3 stride-2 conv, ReLU, valid conv) shrinks the grid to
  `code_tokens` positions (4 = 2 x 2 in LAPA). The same CNN serves both frames.
- One codebook of `codebook_size` entries (8 in LAPA), shared by all code tokens: 8^4 latent actions.
- Training forward: the nearest code q is found, but the vector passed on is x + (|x - q| / |r|) r with
  r ~ N(0, I): the quantisation error is substituted by noise of the same norm. The output is a
  differentiable function of x (so gradients reach the encoder) and of q through |x - q| (so the
  codebook learns) with no straight-through estimator and no codebook/commitment losses.
- Inference: the hard code q itself.
- Perplexity exp(H(mean one-hot)) of the batch assignments is reported; per-code usage is counted
  between replacements, and codes used less than `discard_threshold` are replaced (NSVQ's trick).
- Quantised vectors are projected back to the model width (`project_out`) before the decoder.

Choices that differ from LAPA (documented so results can be read against it):
- Dead-code replacement. LAPA copies a used code plus 1e-12 noise into each dead slot; with such
  tiny noise the copy ties with its source and argmin keeps choosing the source. Here a dead code
  becomes an actual encoder output of the current (global) batch, drawn with probability
  proportional to its squared quantisation error (k-means++-like: points the codebook serves
  worst), so it is used at once. The draw comes from a generator seeded by (seed, step), and the
  usage counts and candidates are the same on every data-parallel rank (see `LAQMethod`), so all
  ranks make the identical replacement.
- Usage counts (`usage`) and the running number of replacements (`replaced_total`) are buffers, so a
  checkpoint restores them and resume stays exact.
"""

from __future__ import annotations

import torch
from torch import nn

EPS = 1e-12


class NSVQ(nn.Module):
    """`(first, last) patch features (B, h*w, dim)` -> quantised action tokens `(B, code_tokens, dim)`.

    `grid` is the patch grid side h = w; `code_tokens` must be a square (1, 4, 9, ...)."""

    def __init__(self, dim: int, quant_dim: int, codebook_size: int, code_tokens: int, grid: int):
        super().__init__()
        side = int(round(code_tokens ** 0.5))
        if side * side != code_tokens:
            raise ValueError(f"code_tokens must be a square number (1, 4, 9, ...), got {code_tokens}")
        half = (grid + 1) // 2  # after the stride-2 conv
        if half < side:
            raise ValueError(f"a {grid}x{grid} patch grid is too small for {code_tokens} code tokens "
                             f"(needs ceil(grid/2) >= {side})")
        self.quant_dim, self.codebook_size, self.code_tokens, self.grid = quant_dim, codebook_size, code_tokens, grid
        self.project_in = nn.Linear(dim, quant_dim)
        self.project_out = nn.Linear(quant_dim, dim)
        # LAPA: 8x8 grid -> 3x3/s2 conv -> 4x4 -> 3x3 valid conv -> 2x2 = 4 tokens; the valid kernel
        # here is sized so any grid lands on side x side
        self.down = nn.Sequential(
            nn.Conv2d(quant_dim, quant_dim, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(quant_dim, quant_dim, half - side + 1))
        self.codebook = nn.Parameter(torch.randn(codebook_size, quant_dim))  # LAPA: normal init
        self.register_buffer("usage", torch.zeros(codebook_size))  # assignments since the last replacement
        self.register_buffer("replaced_total", torch.zeros((), dtype=torch.long))  # codes re-initialised so far

    # -- pieces ---------------------------------------------------------------------------------
    def to_code_space(self, feats: torch.Tensor) -> torch.Tensor:
        """`(B, grid*grid, dim)` -> `(B, code_tokens, quant_dim)`."""
        b = feats.shape[0]
        x = self.project_in(feats).transpose(1, 2).reshape(b, self.quant_dim, self.grid, self.grid)
        return self.down(x).flatten(2).transpose(1, 2)

    def delta(self, first: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """The vectors that are quantised: code-space features of t+H minus those of t, `(B, n, quant_dim)`."""
        return self.to_code_space(last) - self.to_code_space(first)

    def nearest(self, x: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for every vector of `x (..., quant_dim)`."""
        flat = x.reshape(-1, self.quant_dim)
        d = (flat.square().sum(1, keepdim=True) - 2 * flat @ self.codebook.t()
             + self.codebook.square().sum(1)[None])
        return d.argmin(1).reshape(x.shape[:-1])

    def substitute(self, x: torch.Tensor, idx: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """NSVQ's training output: x + (|x - q| / |r|) r, r ~ N(0, I)."""
        q = self.codebook[idx]
        r = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        err = (x - q).square().sum(-1, keepdim=True).add(EPS).sqrt()
        return x + err / r.square().sum(-1, keepdim=True).add(EPS).sqrt() * r

    # -- forward --------------------------------------------------------------------------------
    def forward(self, first: torch.Tensor, last: torch.Tensor, noise: bool = True,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Returns `tokens (B, n, dim)` for the decoder, `indices (B, n)`, `delta (B, n, quant_dim)`,
        `quantised (B, n, quant_dim)` (noise-substituted when `noise`, else the hard codes)."""
        x = self.delta(first, last)
        idx = self.nearest(x)
        qx = self.substitute(x, idx, generator) if noise else self.codebook[idx]
        return {"tokens": self.project_out(qx), "indices": idx, "delta": x, "quantised": qx}

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Decoder tokens `(B, n, dim)` for given code indices `(B, n)` (LAPA's decode_from_codebook_indices)."""
        return self.project_out(self.codebook[indices])

    # -- usage and replacement ------------------------------------------------------------------
    def counts(self, indices: torch.Tensor) -> torch.Tensor:
        return torch.bincount(indices.reshape(-1), minlength=self.codebook_size).to(self.usage.dtype)

    @torch.no_grad()
    def dead_codes(self, threshold: float) -> torch.Tensor:
        """Indices of codes whose share of the assignments since the last replacement is < `threshold`."""
        total = self.usage.sum()
        if total <= 0:
            return torch.zeros(0, dtype=torch.long, device=self.usage.device)
        return torch.nonzero(self.usage / total < threshold).reshape(-1)

    @torch.no_grad()
    def replace_dead(self, candidates: torch.Tensor, threshold: float, generator: torch.Generator) -> int:
        """Re-initialise dead codes from `candidates (N, quant_dim)` (encoder outputs); resets `usage`.

        Each dead code takes a distinct candidate drawn with probability proportional to its squared
        distance to the nearest code (k-means++ seeding); returns how many codes were replaced."""
        dead = self.dead_codes(threshold)
        n = int(dead.numel())
        if n:
            cand = candidates.reshape(-1, self.quant_dim).float()
            alive = torch.ones(self.codebook_size, dtype=torch.bool, device=cand.device)
            alive[dead.to(cand.device)] = False
            ref = self.codebook.detach().float()[alive] if alive.any() else None
            w = (torch.cdist(cand, ref).min(1).values.square() if ref is not None
                 else torch.ones(len(cand), device=cand.device))
            w = w + EPS if float(w.sum()) > 0 else torch.ones_like(w)
            pick = torch.multinomial(w.cpu(), min(n, len(cand)), replacement=len(cand) < n, generator=generator)
            self.codebook[dead] = cand[pick.to(cand.device)].to(self.codebook.dtype)
            self.replaced_total += n
        self.usage.zero_()
        return n


def perplexity(counts: torch.Tensor) -> float:
    """exp(entropy) of the code distribution given by `counts (K,)`: 1 = collapse, K = uniform use."""
    p = counts.float() / counts.sum().clamp(min=1)
    return float(torch.exp(-(p * (p + EPS).log()).sum()))
