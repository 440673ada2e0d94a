"""Held-out demo action error with intervals: the informative column of a latent-action comparison
when every LIBERO success is 0 (vla/compare.py).

The windows of one demo are strongly correlated, so intervals resample whole held-out demos (a
cluster bootstrap), and a difference between two variants is a paired bootstrap over the same windows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

PER_WINDOW = "heldout_l1_norm_per_window"
WINDOW_DEMO = "heldout_window_demo"


def demo_bootstrap(values: np.ndarray, demos: np.ndarray, n_boot: int = 2000, seed: int = 0,
                   level: float = 0.95) -> list[float]:
    """Percentile interval `[lo, hi]` of the mean of `values (W,)`, resampling the held-out demos
    `demos (W,)` (ids) with replacement and keeping each drawn demo's windows together."""
    values, demos = np.asarray(values, float), np.asarray(demos)
    if values.shape != demos.shape or values.ndim != 1 or len(values) == 0:
        raise ValueError(f"demo_bootstrap: values {values.shape} and demos {demos.shape} must be equal, 1-D, non-empty")
    ids = np.unique(demos)
    sums = np.array([values[demos == d].sum() for d in ids])
    counts = np.array([(demos == d).sum() for d in ids])
    rng = np.random.default_rng(seed)
    draw = rng.integers(0, len(ids), size=(n_boot, len(ids)))
    means = sums[draw].sum(1) / counts[draw].sum(1)
    a = (1 - level) / 2
    return [float(np.quantile(means, a)), float(np.quantile(means, 1 - a))]


def paired_difference(row: dict[str, Any], ref: dict[str, Any], n_boot: int = 2000) -> dict[str, Any] | None:
    """Held-out L1 of `row` minus that of `ref` on the same windows: mean and demo-bootstrap 95% interval
    (`None` when either lacks per-window errors or the windows differ)."""
    if PER_WINDOW not in row or PER_WINDOW not in ref or row[WINDOW_DEMO] != ref[WINDOW_DEMO]:
        return None
    d = np.asarray(row[PER_WINDOW]) - np.asarray(ref[PER_WINDOW])
    lo, hi = demo_bootstrap(d, np.asarray(row[WINDOW_DEMO]), n_boot=n_boot)
    return {"mean": float(d.mean()), "ci95": [lo, hi], "resolved": bool(hi < 0 or lo > 0)}


def rescore(run: str | Path) -> dict[str, Any]:
    """The held-out report (per-window errors included) of a finished stage-3 run, recomputed from its
    resolved `config.yaml` and its last checkpoint (for runs written before per-window errors were kept)."""
    from configs.loader import load_config
    from configs.training import latest_checkpoint, load_checkpoint
    from vla.posttrain import PosttrainConfig, PosttrainMethod

    run = Path(run)
    ck = latest_checkpoint(run)
    if ck is None:
        raise FileNotFoundError(f"{run}: no checkpoint to rescore (not a finished vla/posttrain.py run)")
    method = PosttrainMethod(load_config(PosttrainConfig, run / "config.yaml", []))
    load_checkpoint(ck, method.model)
    return method.heldout_l1(method.model)


HELDOUT_KEYS = ("heldout_l1_norm", "heldout_l1_norm_mean_baseline", "heldout_l1_raw", "heldout_l1_raw_mean_baseline",
                "heldout_demos", "train_demos", "heldout_window_demo", "heldout_l1_norm_per_window",
                "heldout_l1_norm_baseline_per_window")


def heldout_fields(r3: dict[str, Any]) -> dict[str, Any]:
    """The held-out report of a stage-3 run, with a demo-bootstrap 95% interval of its L1."""
    row = {k: r3.get(k) for k in HELDOUT_KEYS if k in r3 or not k.endswith(("_per_window", "_window_demo"))}
    if r3.get(PER_WINDOW):
        row["heldout_l1_norm_ci95"] = demo_bootstrap(r3[PER_WINDOW], r3[WINDOW_DEMO])
    return row
