"""Training step time before and after another process starts mid-run, with torch's threads sized
once at start vs re-sized between steps (`configs.threads.ThreadResizer`): the benchmark behind
scripts/bench_thread_resize.py (its docstring says what is measured).
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from configs.runs import atomic_write_json
from configs.threads import ThreadResizer, available_cores

BUSY = {
    "spin": "while True: pass",  # one core
    "matmul": "import torch\ntorch.set_num_threads(2)\na = torch.randn(256, 256)\nwhile True: a @ a",
}


@dataclasses.dataclass
class BenchResizeConfig:
    before_s: float = 15.0  # seconds of training alone, per setting
    after_s: float = 45.0  # seconds of training beside the busy process, per setting
    busy: str = "spin"  # the process started mid-run: spin (a Python loop, 1 core) | matmul (torch, 2 threads)
    start_threads: int = 0  # threads both settings start with; 0: every core (what an idle machine gets)
    every_s: float = 10.0  # the resizer's interval (configs.training.fit uses 10 s)
    width: int = 128  # the model: a 2-layer transformer encoder of this width
    batch: int = 32
    tokens: int = 32
    seed: int = 0
    out: str = ""  # JSON path; empty: print only


def _model(cfg: BenchResizeConfig) -> Any:
    import torch
    from torch import nn

    torch.manual_seed(cfg.seed)
    layer = nn.TransformerEncoderLayer(cfg.width, 4, 2 * cfg.width, dropout=0.0, batch_first=True)
    return nn.Sequential(nn.TransformerEncoder(layer, 2, enable_nested_tensor=False), nn.Linear(cfg.width, 1))


def _phase_stats(times: list[float], settle_s: float = 0.0) -> dict[str, Any]:
    """Step-time statistics of one phase; `settle_s` also gives the median after the first
    `settle_s` seconds (the resizer's reaction time)."""
    steps = [b - a for a, b in zip(times, times[1:])]
    row: dict[str, Any] = {"steps": len(steps), "mean_s": round(sum(steps) / max(1, len(steps)), 4),
                           "median_s": round(statistics.median(steps), 4) if steps else None}
    if settle_s:
        late = [b - a for a, b in zip(times, times[1:]) if a - times[0] >= settle_s]
        row[f"median_after_{settle_s:g}s"] = round(statistics.median(late), 4) if late else None
    return row


def _run_setting(cfg: BenchResizeConfig, resize: bool) -> dict[str, Any]:
    """Train `before_s` alone, start the busy process, train `after_s` beside it; step timestamps."""
    import torch

    n0 = cfg.start_threads or available_cores()
    torch.set_num_threads(n0)
    model = _model(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(cfg.batch, cfg.tokens, cfg.width)
    resizer = ThreadResizer(0, every_s=cfg.every_s) if resize else None
    for _ in range(3):  # warm-up, untimed
        model(x).pow(2).mean().backward()
    marks: dict[str, list[float]] = {"before": [], "after": []}
    threads_at: list[tuple[float, int]] = [(0.0, n0)]  # (seconds, threads) at each change
    busy = None
    t0 = time.perf_counter()
    phase = "before"
    try:
        while True:
            now = time.perf_counter() - t0
            if phase == "before" and now >= cfg.before_s:
                busy = subprocess.Popen([sys.executable, "-c", BUSY[cfg.busy]])
                phase = "after"
            if now >= cfg.before_s + cfg.after_s:
                break
            marks[phase].append(now)
            loss = model(x).pow(2).mean()  # one step as configs.training.fit runs it
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if resizer is not None:
                resizer()
            if not threads_at or threads_at[-1][1] != torch.get_num_threads():
                threads_at.append((round(now, 1), torch.get_num_threads()))
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    before = _phase_stats(marks["before"])
    after = _phase_stats(marks["after"], settle_s=cfg.every_s)
    return {"setting": "re-sized between steps" if resize else "sized once at start", "start_threads": n0,
            "threads_timeline": threads_at, "before": before, "after": after,
            "after_over_before_median": round(after["median_s"] / before["median_s"], 2),
            "steps_beside_busy_process": after["steps"]}


def _load() -> dict[str, Any]:
    with open("/proc/loadavg") as f:
        fields = f.read().split()
    return {"loadavg_1_5_15": [float(v) for v in fields[:3]], "runnable_now": fields[3]}


def bench_thread_resize(cfg: BenchResizeConfig) -> dict[str, Any]:
    """What scripts/bench_thread_resize.py measures, for `cfg` (see its docstring)."""
    import torch

    if cfg.busy not in BUSY:
        raise ValueError(f"busy={cfg.busy!r}: expected one of {sorted(BUSY)}")
    probe = ThreadResizer(0)  # the other processes' load over 2 s, this one asleep: the background
    time.sleep(2.0)
    background = round(probe.others_load(), 2)
    load_start = _load()
    rows = []
    for resize in (False, True):
        rows.append(_run_setting(cfg, resize))
        print(rows[-1], flush=True)
    result = {
        "machine": {"cores": os.cpu_count(), "affinity": available_cores(), "torch": torch.__version__},
        "load": {"at_start": load_start, "at_end": _load(), "other_processes_cores_at_start": background,
                 "note": "other processes' load measured by the resizer's own method over 2 s before the run"},
        "config": dataclasses.asdict(cfg), "busy_process": BUSY[cfg.busy], "rows": rows,
    }
    fixed, resized = rows
    print(f"median step beside the busy process: sized once {fixed['after']['median_s']} s "
          f"({fixed['after_over_before_median']}x its own before), re-sized {resized['after']['median_s']} s "
          f"({resized['after_over_before_median']}x); steps in {cfg.after_s:g} s: "
          f"{fixed['steps_beside_busy_process']} vs {resized['steps_beside_busy_process']}; "
          f"load at start {load_start['loadavg_1_5_15']}")
    if cfg.out:
        atomic_write_json(cfg.out, result)
    return result
