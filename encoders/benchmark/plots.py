"""Figures for the retrieval benchmark: t-SNE by scene / by verb, and same-scene fraction vs k."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from configs.runs import atomic_write


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # headless: never needs a display
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path = atomic_write(path, lambda p: fig.savefig(p, dpi=110, bbox_inches="tight"))
    _plt().close(fig)
    return path


def tsne_2d(emb: np.ndarray, seed: int = 0) -> np.ndarray:
    """`(M, D)` -> `(M, 2)` t-SNE on cosine distance (perplexity capped for small M)."""
    from sklearn.manifold import TSNE

    m = len(emb)
    if m < 3:
        raise ValueError(f"t-SNE needs at least 3 points, got {m}")
    perplexity = float(min(30.0, max(2.0, (m - 1) / 3.0)))
    # 500 iterations are enough for a picture; exact gradients are cheaper than Barnes-Hut for small M
    return TSNE(n_components=2, perplexity=perplexity, metric="cosine", init="random", random_state=seed,
                max_iter=500, method="exact" if m <= 300 else "barnes_hut").fit_transform(np.asarray(emb, dtype=np.float32))


def scatter_by(xy: np.ndarray, labels: Sequence, title: str, path: str | Path, max_legend: int = 20,
               ego: Sequence[bool] | None = None) -> Path:
    """Scatter `xy (M, 2)` coloured by `labels` (legend: up to `max_legend`); `ego` picks circle vs triangle."""
    plt = _plt()
    labels = np.asarray(labels, dtype=object)
    names = sorted(set(labels.tolist()), key=str)
    cmap = plt.get_cmap("tab20" if len(names) > 10 else "tab10")
    fig, ax = plt.subplots(figsize=(6, 5))
    is_ego = np.ones(len(labels), bool) if ego is None else np.asarray(ego, bool)
    for i, name in enumerate(names):
        for marker, view_sel in (("o", is_ego), ("^", ~is_ego)):
            sel = (labels == name) & view_sel
            if sel.any():
                ax.scatter(xy[sel, 0], xy[sel, 1], s=10, marker=marker, color=cmap(i % cmap.N),
                           label=str(name) if i < max_legend and (marker == "o" or not is_ego[labels == name].any()) else None)
    ax.set_title(title + (" (o ego, ^ exo)" if ego is not None else ""))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=6, markerscale=1.5, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return _save(fig, Path(path))


def same_scene_plot(curves: dict[str, Sequence[float]], path: str | Path, title: str = "") -> Path:
    """One line per encoder: same-scene fraction of the top-k vs k (all-scenes retrieval)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 4))
    for name, c in curves.items():
        c = np.asarray(c, dtype=float)
        ax.plot(np.arange(1, len(c) + 1), c, label=name)
    ax.set_xlabel("k")
    ax.set_ylabel("same-scene fraction of top-k")
    ax.set_ylim(0, 1)
    ax.set_title(title or "same-scene fraction vs k")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, Path(path))
