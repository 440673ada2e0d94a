"""The LIBERO env and evaluator timed on this machine (physics-only and rendered steps, evaluator
throughput with 1 and 2 workers): the benchmark behind scripts/bench_libero.py.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass

import numpy as np

from envs import protocol


@dataclass
class BenchConfig:
    suite: str = "libero_goal"
    task: int = 7
    steps: int = 50  # steps timed per env setting
    resolution: int = protocol.RENDER_RESOLUTION
    episodes: int = 4  # episodes per worker setting
    episode_steps: int = 40
    workers: str = "1,2"
    reference_render: bool = True  # also time the reference (shadows/reflections) renderer
    out: str = ""  # optional JSON path

    def validate(self) -> None:
        self.suite = protocol.canonical_suite(self.suite)


def time_steps(suite: str, task: int, steps: int, render: bool, fast: bool, resolution: int) -> dict:
    from envs.libero_env import LiberoEnv

    t0 = time.time()
    env = LiberoEnv(suite, task, resolution=resolution, render=render, fast_render=fast)
    build = time.time() - t0
    try:
        env.reset(trial=0)
        rng = np.random.default_rng(0)
        t0 = time.time()
        for _ in range(steps):
            a = rng.uniform(-0.3, 0.3, 7)
            a[6] = -1
            env.step(a)
        ms = (time.time() - t0) / steps * 1000
    finally:
        env.close()
    return {"ms_per_step": round(ms, 1), "env_build_s": round(build, 1)}


def time_eval(cfg: BenchConfig, workers: int) -> dict:
    from envs.eval_libero import LiberoEvalConfig, evaluate

    with tempfile.TemporaryDirectory() as d:
        ecfg = LiberoEvalConfig(suite=cfg.suite, policy="random:images", trials=cfg.episodes * workers, tasks=str(cfg.task),
                          workers=workers, out=d, max_steps=cfg.episode_steps, resolution=cfg.resolution,
                          video=False, progress=False)
        ecfg.validate()
        t0 = time.time()
        res = evaluate(ecfg)
        wall = time.time() - t0
    n = res["overall"]["n"]
    return {"workers": workers, "episodes": n, "episode_steps": cfg.episode_steps, "wall_s": round(wall, 1),
            "episodes_per_hour": round(n / wall * 3600, 1)}


def bench_libero(cfg: BenchConfig) -> dict:
    """What scripts/bench_libero.py measures, for `cfg` (see its docstring)."""
    import os

    out: dict = {"suite": cfg.suite, "task": cfg.task, "resolution": cfg.resolution, "cpu_count": os.cpu_count(),
                 "load_avg_start": os.getloadavg()}
    out["physics_only"] = time_steps(cfg.suite, cfg.task, cfg.steps, render=False, fast=True, resolution=cfg.resolution)
    out["render_fast"] = time_steps(cfg.suite, cfg.task, cfg.steps, render=True, fast=True, resolution=cfg.resolution)
    if cfg.reference_render:
        out["render_reference"] = time_steps(cfg.suite, cfg.task, max(5, cfg.steps // 5), render=True, fast=False,
                                             resolution=cfg.resolution)
    out["eval"] = [time_eval(cfg, int(w)) for w in str(cfg.workers).split(",")]
    if len(out["eval"]) >= 2:
        out["speedup"] = round(out["eval"][-1]["episodes_per_hour"] / out["eval"][0]["episodes_per_hour"], 2)
    # protocol-length episodes with a vision policy, from the measured per-step cost (one process)
    full = protocol.MAX_STEPS[cfg.suite] + protocol.NUM_WAIT_STEPS
    out["protocol_episode_s_1worker_est"] = round(full * out["render_fast"]["ms_per_step"] / 1000, 1)
    out["load_avg_end"] = os.getloadavg()
    text = json.dumps(out, indent=2)
    print(text)
    if cfg.out:
        from configs.runs import atomic_write_text

        atomic_write_text(cfg.out, text + "\n")
    return out
