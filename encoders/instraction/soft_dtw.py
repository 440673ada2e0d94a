"""Soft-DTW (Cuturi & Blondel 2017) as a batched differentiable torch function, plus hard DTW.

instraction.txt Sec. 4.2: the cost between action tokens s_i and verb phrases v_j is the cosine
distance d = 1 - cos(s_i, v_j) (a matrix C of shape (K, M)); the alignment loss is Soft-DTW(C)
(Eq. 5); the order hinge compares it with the reversed token sequence (Eq. 6); the batch objective
averages align + gamma_order * order (Eq. 7). Eq. 10 is the normalised hard-DTW path cost.

The dynamic programme runs along anti-diagonals: every cell (i, j) with i + j = d depends only on
diagonals d-1 and d-2, so each diagonal is one vectorised torch step (N + M - 1 steps, no per-cell
Python loop). R is kept in a skewed layout (row d = one anti-diagonal), so every step is a slice. The backward pass is the E-matrix recursion of Cuturi & Blondel (Alg. 2), vectorised
the same way in reverse. Variable lengths per batch item are supported (`lengths_x`, `lengths_y`):
R[n_b, m_b] only depends on cells inside the item's own rectangle.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def cosine_cost(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """`x (B, N, D)`, `y (B, M, D)` -> cosine distance `1 - cos (B, N, M)` (Sec. 4.2)."""
    return 1.0 - F.normalize(x, dim=-1) @ F.normalize(y, dim=-1).transpose(-1, -2)


def _diag_cells(n: int, m: int, d: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """1-based (i, j) of anti-diagonal i + j = d inside an n x m grid."""
    i = torch.arange(max(1, d - m), min(n, d - 1) + 1, device=device)
    return i, d - i


def _softmin(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, gamma: float) -> torch.Tensor:
    z = torch.stack([a, b, c], dim=0)
    return -gamma * torch.logsumexp(-z / gamma, dim=0)


def _lengths(lengths: torch.Tensor | None, full: int, batch: int, device) -> torch.Tensor:
    if lengths is None:
        return torch.full((batch,), full, dtype=torch.long, device=device)
    lengths = torch.as_tensor(lengths, device=device).long()
    if lengths.shape != (batch,) or (lengths < 1).any() or (lengths > full).any():
        raise ValueError(f"soft_dtw: lengths must be (B,) in [1, {full}], got {lengths.tolist()}")
    return lengths


def _skew_index(n: int, m: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Skewed layout: cell (i, j) (1-based) lives at [d = i + j, i]. Returns (i, j, valid) of shape (n+m+1, n+1)."""
    d = torch.arange(n + m + 1, device=device)[:, None]
    i = torch.arange(n + 1, device=device)[None, :]
    j = d - i
    valid = (i >= 1) & (j >= 1) & (j <= m)
    return i.expand_as(j), j, valid


class _SoftDTW(torch.autograd.Function):
    """R is stored skewed, `S[b, d, i] = R[i, d - i]`, so one anti-diagonal is one contiguous slice."""

    @staticmethod
    def forward(ctx, cost: torch.Tensor, gamma: float, nx: torch.Tensor, ny: torch.Tensor) -> torch.Tensor:
        b, n, m = cost.shape
        i, j, valid = _skew_index(n, m, cost.device)
        flat = ((i - 1).clamp(min=0) * m + (j - 1).clamp(0, m - 1)).flatten()
        cs = cost.reshape(b, n * m)[:, flat].reshape(b, n + m + 1, n + 1)
        cs = torch.where(valid, cs, torch.full_like(cs, torch.inf))  # invalid cells stay unreachable
        s = torch.full_like(cs, torch.inf)
        s[:, 0, 0] = 0.0
        for d in range(2, n + m + 1):
            s[:, d, 1:] = cs[:, d, 1:] + _softmin(s[:, d - 2, :-1], s[:, d - 1, :-1], s[:, d - 1, 1:], gamma)
        ctx.save_for_backward(cs, s, nx, ny)
        ctx.gamma, ctx.shape = gamma, (n, m)
        return s[torch.arange(b, device=cost.device), nx + ny, nx]

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        cs, s, nx, ny = ctx.saved_tensors
        gamma, (n, m) = ctx.gamma, ctx.shape
        b, dev = cs.shape[0], cs.device
        i, j, valid = _skew_index(n, m, dev)
        inside = valid[None] & (i[None] <= nx[:, None, None]) & (j[None] <= ny[:, None, None])  # (B, D, n+1)
        # padded by 2 diagonals and 1 row: neighbours beyond the grid read -inf (R) / 0 (D, E)
        rb = torch.full((b, n + m + 3, n + 2), -torch.inf, dtype=cs.dtype, device=dev)
        rb[:, : n + m + 1, : n + 1] = torch.where(inside, s, torch.full_like(s, -torch.inf))
        db = torch.zeros_like(rb)
        db[:, : n + m + 1, : n + 1] = torch.where(inside, cs, torch.zeros_like(cs))
        e = torch.zeros_like(rb)
        ar = torch.arange(b, device=dev)
        e[ar, nx + ny, nx] = 1.0
        is_end = torch.zeros((b, n + m + 3, n + 2), dtype=torch.bool, device=dev)
        is_end[ar, nx + ny, nx] = True
        ins = torch.zeros_like(is_end)
        ins[:, : n + m + 1, : n + 1] = inside
        for d in range(n + m - 1, 1, -1):
            r0 = rb[:, d, 1 : n + 1]
            a = torch.exp((rb[:, d + 1, 2:] - r0 - db[:, d + 1, 2:]) / gamma)  # from (i+1, j)
            bb = torch.exp((rb[:, d + 1, 1 : n + 1] - r0 - db[:, d + 1, 1 : n + 1]) / gamma)  # from (i, j+1)
            c = torch.exp((rb[:, d + 2, 2:] - r0 - db[:, d + 2, 2:]) / gamma)  # from (i+1, j+1)
            val = e[:, d + 1, 2:] * a + e[:, d + 1, 1 : n + 1] * bb + e[:, d + 2, 2:] * c
            keep = is_end[:, d, 1 : n + 1]
            e[:, d, 1 : n + 1] = torch.where(keep, e[:, d, 1 : n + 1],
                                             torch.where(ins[:, d, 1 : n + 1], val, torch.zeros_like(val)))
        gi = torch.arange(1, n + 1, device=dev)[:, None].expand(n, m)
        gj = torch.arange(1, m + 1, device=dev)[None, :].expand(n, m)
        grad = e[:, gi + gj, gi] * grad_out[:, None, None]
        return grad, None, None, None


def soft_dtw(cost: torch.Tensor, gamma: float = 0.1, lengths_x: torch.Tensor | None = None,
             lengths_y: torch.Tensor | None = None) -> torch.Tensor:
    """Soft-DTW value `R[n, m]` of cost matrices `(B, N, M)` (or `(N, M)`) -> `(B,)` (or scalar).

    `gamma > 0` is the smoothing; gamma -> 0 recovers hard DTW. Differentiable w.r.t. `cost`.
    """
    if not isinstance(cost, torch.Tensor) or cost.ndim not in (2, 3):
        raise ValueError(f"soft_dtw: cost must be a (B, N, M) or (N, M) tensor, got "
                         f"{getattr(cost, 'shape', type(cost).__name__)}")
    if not gamma > 0:
        raise ValueError(f"soft_dtw: gamma must be > 0, got {gamma}")
    single = cost.ndim == 2
    c = cost[None] if single else cost
    if min(c.shape[1:]) < 1:
        raise ValueError(f"soft_dtw: empty cost matrix {tuple(c.shape)}")
    nx = _lengths(lengths_x, c.shape[1], c.shape[0], c.device)
    ny = _lengths(lengths_y, c.shape[2], c.shape[0], c.device)
    out = _SoftDTW.apply(c, float(gamma), nx, ny)
    return out[0] if single else out


def align_loss(tokens: torch.Tensor, phrases: torch.Tensor, gamma: float = 0.1) -> torch.Tensor:
    """Eq. 5: `Soft-DTW(C)` with C the cosine cost of tokens `(B, K, C)` vs phrases `(B, M, C)` -> `(B,)`."""
    return soft_dtw(cosine_cost(tokens, phrases), gamma)


def order_loss(tokens: torch.Tensor, phrases: torch.Tensor, beta: float = 0.1, gamma: float = 0.1) -> torch.Tensor:
    """Eq. 6: `max(0, L_align(S, V) - L_align(reverse(S), V) + beta)` per item -> `(B,)`."""
    pos = align_loss(tokens, phrases, gamma)
    neg = align_loss(tokens.flip(1), phrases, gamma)
    return F.relu(pos - neg + beta)


def dtw_objective(tokens: torch.Tensor, phrases: torch.Tensor, beta: float = 0.1, gamma: float = 0.1,
                  order_weight: float = 1.0, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 7: `mean_b (L_align + order_weight * L_order)`; `lengths (B,)` = phrases per item (padded M)."""
    cost = cosine_cost(tokens, phrases)
    pos = soft_dtw(cost, gamma, lengths_y=lengths)
    neg = soft_dtw(cosine_cost(tokens.flip(1), phrases), gamma, lengths_y=lengths)
    return (pos + order_weight * F.relu(pos - neg + beta)).mean()


def dtw_path(cost: torch.Tensor, frame_steps: bool = False) -> tuple[list[tuple[int, int]], float]:
    """Hard DTW on one cost matrix `(N, M)`: (0-based path from (0, 0) to (N-1, M-1), summed cost).

    Steps are (1,0), (0,1), (1,1) (classic DTW); `frame_steps=True` allows only (1,0) and (1,1), so
    every row (frame) is matched to exactly one column (phrase) and columns are visited in order,
    which is what segmentation needs (requires N >= M).
    """
    c = torch.as_tensor(cost, dtype=torch.float64).cpu()
    n, m = c.shape
    if frame_steps and m > n:
        raise ValueError(f"dtw_path: frame_steps needs rows >= columns, got {n} x {m}")
    inf = float("inf")
    r = torch.full((n + 1, m + 1), inf, dtype=torch.float64)
    r[0, 0] = 0.0
    back = torch.zeros((n + 1, m + 1), dtype=torch.long)
    for d in range(2, n + m + 1):
        i, j = _diag_cells(n, m, d, "cpu")
        cand = torch.stack([r[i - 1, j - 1], r[i - 1, j], r[i, j - 1] if not frame_steps else
                            torch.full_like(r[i - 1, j], inf)])
        best, arg = cand.min(0)
        r[i, j] = c[i - 1, j - 1] + best
        back[i, j] = arg
    if not torch.isfinite(r[n, m]):
        raise ValueError(f"dtw_path: no monotone path through a {n} x {m} cost matrix")
    path, i, j = [], n, m
    while i > 0 and j > 0:
        path.append((i - 1, j - 1))
        k = int(back[i, j])
        i, j = (i - 1, j - 1) if k == 0 else (i - 1, j) if k == 1 else (i, j - 1)
    if (i, j) != (0, 0):
        raise RuntimeError("dtw_path: backtrack did not reach the origin")
    return path[::-1], float(r[n, m])


def alignment_cost(similarity: torch.Tensor) -> float:
    """Eq. 10: `(1 / L) * sum over the hard DTW path P* of (1 - S_ij)`, S `(T, V)` a similarity matrix."""
    path, total = dtw_path(1.0 - torch.as_tensor(similarity, dtype=torch.float64))
    return total / len(path)


def soft_dtw_reference(d: np.ndarray, gamma: float) -> tuple[float, np.ndarray]:
    """The straightforward per-cell dynamic programme for one `(n, m)` cost matrix: value R[n, m] and its
    gradient dR/dD (Cuturi & Blondel, Alg. 1-2). NumPy, O(nm) Python steps: the independent reference
    that tests and scripts/bench_soft_dtw.py check the vectorised `soft_dtw` against."""
    n, m = d.shape
    r = np.full((n + 2, m + 2), np.inf)
    r[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            z = -np.array([r[i - 1, j - 1], r[i - 1, j], r[i, j - 1]]) / gamma
            zmax = z.max()
            r[i, j] = d[i - 1, j - 1] - gamma * (zmax + np.log(np.exp(z - zmax).sum()))
    value = r[n, m]
    dp = np.zeros((n + 2, m + 2))
    dp[1 : n + 1, 1 : m + 1] = d
    e = np.zeros((n + 2, m + 2))
    e[n + 1, m + 1] = 1.0
    r[:, m + 1] = -np.inf
    r[n + 1, :] = -np.inf
    r[n + 1, m + 1] = r[n, m]
    for j in range(m, 0, -1):
        for i in range(n, 0, -1):
            a = np.exp((r[i + 1, j] - r[i, j] - dp[i + 1, j]) / gamma)
            b = np.exp((r[i, j + 1] - r[i, j] - dp[i, j + 1]) / gamma)
            c = np.exp((r[i + 1, j + 1] - r[i, j] - dp[i + 1, j + 1]) / gamma)
            e[i, j] = e[i + 1, j] * a + e[i, j + 1] * b + e[i + 1, j + 1] * c
    return value, e[1 : n + 1, 1 : m + 1]
