"""InvAct training step time vs torch thread count, idle and beside one CPU-bound process: the
benchmark behind scripts/bench_threads.py (its docstring has the before/after settings).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from configs.loader import load_config, save_config
from configs.runs import atomic_write_json, seed_everything


@dataclasses.dataclass
class BenchThreadsConfig:
    data: str = ""  # clip index; empty: a small world generated in a temp folder (5 scenes, 40 takes)
    config: str = "configs/encoder/invact.yaml"  # the training config whose step is timed
    steps: int = 40  # timed steps per measurement (after `warmup`)
    warmup: int = 3
    settle_s: float = 2.0  # wait after starting the busy process, so the run queue shows it
    seed: int = 0
    out: str = ""  # JSON path (the resolved config is written next to it)


def _busy() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def _time_steps(method, n: int, warmup: int) -> float:
    import torch

    model = method.model
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    dev = torch.device("cpu")
    for step in range(warmup + n):
        if step == warmup:
            t0 = time.perf_counter()
        loss, _ = method.loss(model, step, dev)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / n


def _small_world(root: Path) -> Path:
    from configs.loader import from_dict
    from envs.atomic_world.generate import MakeVideosConfig, make_dataset

    cfg = from_dict(MakeVideosConfig, {
        "out": str(root), "takes": 40, "seed": 0, "workers": 1,
        "world": {"n_scenes": 5, "val_fraction": 0.2, "keystep_prob": 0.0,
                  "actions": ["push", "pull", "open", "close"], "objects": ["red cube"]}})  # fmt: skip
    make_dataset(cfg, progress=False)
    return root


def bench_threads(cfg: BenchThreadsConfig) -> dict:
    """What scripts/bench_threads.py measures, for `cfg` (see its docstring)."""
    import torch

    from configs.threads import apply_threads
    from encoders.methods import method_class
    from encoders.train import TrainConfig

    seed_everything(cfg.seed)
    if cfg.out:
        save_config(cfg, Path(cfg.out).with_name(Path(cfg.out).stem + ".config.yaml"))
    with tempfile.TemporaryDirectory(prefix="bench_threads_") as tmp:
        data = cfg.data or str(_small_world(Path(tmp) / "aw"))
        tcfg = load_config(TrainConfig, cfg.config, [f"data={data}", f"cache_dir={Path(tmp) / 'cache'}"])
        apply_threads(1)
        method = method_class(tcfg.method)(tcfg)  # prepared inputs computed once, outside the timing
        for p in method.model.parameters():
            p.requires_grad_(True)
        rows = []
        for load in ("idle", "one busy process"):
            proc = _busy() if load != "idle" else None
            try:
                if proc is not None:
                    time.sleep(cfg.settle_s)
                for label, requested in (("before: threads=2", 2), ("after: threads=auto", 0)):
                    n = apply_threads(requested)
                    s = _time_steps(method, cfg.steps, cfg.warmup)
                    rows.append({"load": load, "setting": label, "threads": n, "s_per_step": round(s, 4),
                                 "loadavg_1min": round(os.getloadavg()[0], 2)})
                    print(rows[-1], flush=True)
            finally:
                if proc is not None:
                    proc.kill()
                    proc.wait()
    by = {(r["load"], r["setting"]): r["s_per_step"] for r in rows}
    idle_after = by[("idle", "after: threads=auto")]
    result = {
        "machine": {"cores": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)), "torch": torch.__version__},
        "config": cfg.config, "data": cfg.data or "generated: 5 scenes, 40 takes", "steps": cfg.steps,
        "rows": rows,
        "loaded_over_idle_before": round(by[("one busy process", "before: threads=2")] / by[("idle", "before: threads=2")], 2),
        "loaded_over_idle_after": round(by[("one busy process", "after: threads=auto")] / idle_after, 2),
    }
    print(f"loaded/idle step time: before {result['loaded_over_idle_before']}x, "
          f"after {result['loaded_over_idle_after']}x")
    if cfg.out:
        atomic_write_json(cfg.out, result)
    return result
