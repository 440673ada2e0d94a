"""Closed-form linear probes: one-vs-all ridge classification in the dual, ridge picked by leave-one-group-out.

    k = zscored_kernel(x, fit_rows)                       # (M, M) over every row, once per feature set
    p = kernel_probe(k, y, n_classes, fit_rows, groups, {"val": val_rows})
    accuracy(p.predictions["val"], y[val_rows])

A linear map `f(x) = z(x) W + b` on z-scored features (the fit rows' statistics), targets one-hot in
{-1, 1} (sklearn's RidgeClassifier), `b` = the mean target. With D (up to ~40k flattened tokens) far
above the number of clips, the dual form `W = Z^T (K + lam I)^-1 (T - b)`, `K = Z Z^T / D`, is exact
and costs one eigendecomposition of the fit rows' kernel per fold; every ridge of the grid is then
free, and one kernel over all rows serves every label. The ridge is chosen by the accuracy of folds
that each leave one group (scene) of the fit rows out, so the evaluation rows never take part.
"""

from __future__ import annotations

import dataclasses

import numpy as np

ALPHAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


@dataclasses.dataclass
class KernelProbe:
    """The chosen ridge, its leave-one-group-out accuracy per ridge, and class-id predictions per row set."""

    alpha: float
    cv_accuracy: dict[float, float]
    predictions: dict[str, np.ndarray]


def accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    """Share of `pred == y` (nan for no rows)."""
    return float(np.mean(np.asarray(pred) == np.asarray(y))) if len(y) else float("nan")


def chance(y_eval: np.ndarray, n_classes: int) -> dict[str, float]:
    """`majority`: the most frequent class's share of `y_eval`; `uniform`: 1 / n_classes."""
    y_eval = np.asarray(y_eval, np.int64)
    top = np.bincount(y_eval, minlength=n_classes).max() / max(1, len(y_eval))
    return {"majority": float(top), "uniform": 1.0 / n_classes}


def zscored_kernel(x: np.ndarray, fit_rows: np.ndarray) -> np.ndarray:
    """`x (M, D)` z-scored per dimension with the statistics of `fit_rows` -> the kernel `Z Z^T / D (M, M)`."""
    x = np.asarray(x, np.float32)
    if x.ndim != 2:
        raise ValueError(f"ridge probe: features must be (M, D), got {x.shape}")
    mean = x[fit_rows].mean(0)
    std = np.maximum(x[fit_rows].std(0), 1e-3)
    z = (x - mean) / std
    return (z @ z.T).astype(np.float64) / x.shape[1]


def _targets(y: np.ndarray, n_classes: int) -> np.ndarray:
    t = -np.ones((len(y), n_classes), np.float64)
    t[np.arange(len(y)), y] = 1.0
    return t


def _solve(kernel: np.ndarray, t: np.ndarray, alphas) -> dict[float, np.ndarray]:
    """`{alpha: (kernel + alpha I)^-1 (t - mean t)}` for every ridge, from one eigendecomposition."""
    s, u = np.linalg.eigh(kernel)
    ut = u.T @ (t - t.mean(0))
    return {a: u @ (ut / (np.clip(s, 0.0, None) + a)[:, None]) for a in alphas}


def kernel_probe(kernel: np.ndarray, y: np.ndarray, n_classes: int, fit: np.ndarray,
                 groups: np.ndarray | None = None, evals: dict[str, np.ndarray] | None = None,
                 alphas=ALPHAS) -> KernelProbe:
    """Fit on rows `fit` of `kernel (M, M)` with labels `y (M,)`; predict the rows of every `evals` set.

    `groups` (one per fit row, e.g. the scene): with >= 2 distinct values the ridge is the one with
    the best leave-one-group-out accuracy (ties to the larger ridge); otherwise the middle of `alphas`.
    Predictions of the fit rows themselves are under the key "fit".
    """
    y = np.asarray(y, np.int64)
    fit = np.asarray(fit)
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] != len(y):
        raise ValueError(f"ridge probe: kernel {kernel.shape} does not match {len(y)} labels")
    if len(fit) < 2:
        raise ValueError(f"ridge probe: need at least 2 fit rows, got {len(fit)}")
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"ridge probe: labels must lie in [0, {n_classes}), got {y.min()}..{y.max()}")
    alphas = sorted(float(a) for a in alphas)
    cv: dict[float, float] = {}
    if groups is not None and len(np.unique(groups)) >= 2:
        groups = np.asarray(groups)
        if len(groups) != len(fit):
            raise ValueError(f"ridge probe: {len(groups)} groups for {len(fit)} fit rows")
        hits = dict.fromkeys(alphas, 0)
        for g in np.unique(groups):
            tr, te = fit[groups != g], fit[groups == g]
            t = _targets(y[tr], n_classes)
            k_te = kernel[np.ix_(te, tr)]
            for a, sol in _solve(kernel[np.ix_(tr, tr)], t, alphas).items():
                hits[a] += int(((k_te @ sol + t.mean(0)).argmax(1) == y[te]).sum())
        cv = {a: hits[a] / len(fit) for a in alphas}
        best = max(cv.values())
        alpha = max(a for a in alphas if cv[a] >= best - 1e-12)
    else:
        alpha = alphas[len(alphas) // 2]
    t = _targets(y[fit], n_classes)
    sol = _solve(kernel[np.ix_(fit, fit)], t, [alpha])[alpha]
    bias = t.mean(0)
    sets = {"fit": fit, **(evals or {})}
    preds = {name: (kernel[np.ix_(np.asarray(rows), fit)] @ sol + bias).argmax(1) for name, rows in sets.items()}
    return KernelProbe(alpha, cv, preds)
