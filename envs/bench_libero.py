"""The LIBERO env and evaluator timed on this machine (physics-only and rendered steps, evaluator
throughput with 1 and 2 workers): the benchmark behind scripts/bench_libero.py.

`ceiling=true` also measures what limits the 2-worker speed-up: the same fixed work run in one
process and in N processes at once, for a pure-Python loop (the cores alone), a 64 MB numpy copy
(memory bandwidth) and a bare rendered LIBERO env stepping (simulator + software EGL, no
evaluator). Each is reported as a throughput ratio, N processes over one, so the evaluator's
ratio can be read against what the machine itself allows.
"""

from __future__ import annotations

import json
import multiprocessing as mp
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
    ceiling: bool = False  # also time fixed work in 1 vs N processes (cores, memory, bare env)
    ceiling_steps: int = 100  # rendered env steps per process in the bare-env ceiling
    contention: bool = False  # also time the N-process bare env beside a nice-19 CPU hog, in this and in a new session
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


def _kernel(kind: str, arg: tuple, start, out) -> None:
    """One process of the ceiling: wait for `start`, do the fixed work, put its seconds in `out`."""
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("LP_NUM_THREADS", "1")
    if kind == "env":  # build before the clock: the ceiling is about stepping, not start-up
        from envs.libero_env import LiberoEnv

        suite, task, steps, resolution = arg
        env = LiberoEnv(suite, task, resolution=resolution, render=True, fast_render=True)
        env.reset(trial=0)
        rng = np.random.default_rng(0)
    elif kind == "memory":
        a = np.ones(8 * 1024 * 1024)  # 64 MB of float64
        b = np.empty_like(a)
    start.wait()
    t0 = time.perf_counter()
    if kind == "python":
        x = 0
        for i in range(arg[0]):
            x = (x * 31 + i) % 1000003
    elif kind == "memory":
        for _ in range(arg[0]):
            np.copyto(b, a)
    else:
        for _ in range(steps):
            act = rng.uniform(-0.3, 0.3, 7)
            act[6] = -1
            env.step(act)
    out.put(time.perf_counter() - t0)
    if kind == "env":
        env.close()


def time_parallel(kind: str, arg: tuple, procs: int) -> float:
    """Wall seconds for `procs` processes to each do the same fixed work, started together."""
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    ps = [ctx.Process(target=_kernel, args=(kind, arg, start, out)) for _ in range(procs)]
    for p in ps:
        p.start()
    time.sleep(15 if kind == "env" else 2)  # let every process import and build before the clock
    start.set()
    secs = [out.get(timeout=600) for _ in ps]
    for p in ps:
        p.join()
    return max(secs)


def machine_ceiling(cfg: BenchConfig, procs: int) -> dict:
    """Throughput of `procs` processes over one, for the same fixed work per process (see module doc)."""
    work = {"python": (20_000_000,), "memory": (300,),
            "env": (cfg.suite, cfg.task, cfg.ceiling_steps, cfg.resolution)}
    res = {}
    for kind, arg in work.items():
        one = time_parallel(kind, arg, 1)
        many = time_parallel(kind, arg, procs)
        res[kind] = {"one_s": round(one, 2), f"{procs}_s": round(many, 2),
                     "throughput_ratio": round(procs * one / many, 2)}
    return res


def beside_hog(cfg: BenchConfig, procs: int) -> dict:
    """Seconds for `procs` bare envs stepping at once: alone, and beside one busy-looping `nice -n 19`
    process started in this session and in a new one (`setsid`). With the kernel's autogroup
    scheduling on, a new session is its own group and gets its share of the cores whatever its
    nice value, so a background job started from another shell slows the evaluator even when niced."""
    import subprocess
    import sys

    arg = (cfg.suite, cfg.task, cfg.ceiling_steps, cfg.resolution)
    res = {"alone_s": round(time_parallel("env", arg, procs), 2)}
    try:
        with open("/proc/sys/kernel/sched_autogroup_enabled") as f:
            res["autogroup_enabled"] = f.read().strip() == "1"
    except OSError:
        res["autogroup_enabled"] = None
    for name, prefix in (("same_session", []), ("new_session", ["setsid"])):
        hog = subprocess.Popen(prefix + ["nice", "-n", "19", sys.executable, "-c", "while True: pass"])
        try:
            res[f"beside_nice19_hog_{name}_s"] = round(time_parallel("env", arg, procs), 2)
        finally:
            hog.kill()
            hog.wait()
    return res


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
    ep_s = float(np.mean([t["mean_wall_s"] for t in res["tasks"]]))
    # wall time not spent inside episodes: process start, imports, env builds, the parent's merge
    overhead = wall - n * ep_s / workers
    return {"workers": workers, "episodes": n, "episode_steps": cfg.episode_steps, "wall_s": round(wall, 1),
            "episodes_per_hour": round(n / wall * 3600, 1), "mean_episode_s": round(ep_s, 2),
            "overhead_s": round(overhead, 1)}


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
    counts = [int(w) for w in str(cfg.workers).split(",")]
    if cfg.ceiling:
        out["ceiling"] = machine_ceiling(cfg, max(counts))
    if cfg.contention:
        out["contention"] = beside_hog(cfg, max(counts))
    out["eval"] = [time_eval(cfg, w) for w in counts]
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
