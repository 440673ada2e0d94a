"""Soft-DTW speed and agreement: the anti-diagonal torch implementation (custom backward) timed on
batched cost matrices, and checked against the per-cell NumPy dynamic programme on one matrix.
Used by scripts/bench_soft_dtw.py and the probe results (encoders/probes/results.py).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from encoders.instraction.soft_dtw import soft_dtw, soft_dtw_reference


def bench(size: int, batch: int, gamma: float, repeats: int, dtype: torch.dtype) -> dict:
    x = torch.rand(batch, size, size, dtype=dtype, requires_grad=True)
    soft_dtw(x, gamma).sum().backward()  # warm-up
    fw, fb = [], []
    for _ in range(repeats):
        x.grad = None
        t0 = time.perf_counter()
        v = soft_dtw(x, gamma)
        t1 = time.perf_counter()
        v.sum().backward()
        t2 = time.perf_counter()
        fw.append(t1 - t0)
        fb.append(t2 - t0)
    return {"batch": batch, "size": size, "dtype": str(dtype).replace("torch.", ""),
            "forward_ms": 1000 * float(np.median(fw)), "forward_backward_ms": 1000 * float(np.median(fb)),
            "matrices_per_s": batch / float(np.median(fb))}


def run(size: int = 64, batches: str = "1,8,32,128", gamma: float = 0.1, repeats: int = 5) -> dict:
    """Agreement with the NumPy DP on one matrix + timings per batch size."""
    rng = np.random.default_rng(0)
    d = rng.random((size, size))
    t0 = time.perf_counter()
    ref_v, ref_g = soft_dtw_reference(d, gamma)
    t_ref = time.perf_counter() - t0
    x = torch.tensor(d, requires_grad=True)
    v = soft_dtw(x, gamma)
    v.backward()
    return {
        "gamma": gamma, "threads": torch.get_num_threads(), "torch": torch.__version__,
        "agreement_float64": {"value_abs_diff": abs(float(v.detach()) - ref_v),
                              "grad_max_abs_diff": float(np.abs(x.grad.numpy() - ref_g).max())},
        "numpy_per_cell_ms_per_matrix": 1000 * t_ref,
        "runs": [bench(size, int(b), gamma, repeats, torch.float32) for b in batches.split(",")],
    }
