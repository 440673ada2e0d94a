"""N workers with N policy copies vs N workers with one batched policy server, side by side in one
run: episodes/hour and peak memory of all the run's processes (the benchmark behind
scripts/bench_policy_server.py).

For each policy (a policy head and the `smol` VLA checkpoint by default; one whose directory is
missing is skipped with the reason), the same LIBERO evaluation (`envs.eval_libero.evaluate`, no
video) runs twice: `policy_server=false` (every worker loads its own copy) and `policy_server=true`
(one server process, envs/policy_server.py). Memory is sampled every `sample_s` over this process
and all its descendants: the peak of the summed RSS, and of the summed PSS (shared pages divided
between the processes that map them; /proc/<pid>/smaps_rollup), which does not count shared
library pages once per process. The load average before and after is recorded: on a shared CPU the
times move with it.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envs import protocol


@dataclass
class ServerBenchConfig:
    policies: str = "head=runs/demo/head/policy,smol=runs/demo/vla/posttrain/policy"  # label=checkpoint, ...
    suite: str = "libero_goal"
    task: int = 7  # the demo head's and the demo VLA's task
    workers: int = 2
    episodes: int = 4  # per mode, over all workers
    max_steps: int = 40
    resolution: int = protocol.RENDER_RESOLUTION
    sample_s: float = 0.2  # memory sampling period
    out: str = "docs/results/policy_server.json"  # "" = print only

    def validate(self) -> None:
        self.suite = protocol.canonical_suite(self.suite)
        if self.workers < 1 or self.episodes < 1 or self.max_steps < 1 or self.sample_s <= 0:
            raise ValueError(f"workers, episodes, max_steps must be >= 1 and sample_s > 0, got {self.workers}, "
                             f"{self.episodes}, {self.max_steps}, {self.sample_s}")
        parse_policies(self.policies)


def parse_policies(spec: str) -> dict[str, str]:
    """'head=DIR,smol=DIR' -> {label: checkpoint}; a bad entry is one ValueError line."""
    out = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        label, sep, path = part.partition("=")
        if not sep or not label or not path:
            raise ValueError(f"policies: {part!r} is not label=checkpoint (e.g. head=runs/demo/head/policy)")
        out[label] = path
    if not out:
        raise ValueError("policies: give at least one label=checkpoint")
    return out


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class MemorySampler:
    """Peak summed RSS / PSS (MB) of this process and its descendants, sampled in a thread."""

    def __init__(self, period_s: float = 0.2) -> None:
        self.period_s = period_s
        self.peak_rss_mb = self.peak_pss_mb = 0.0
        self.max_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        procs = [me, *me.children(recursive=True)]
        rss = pss = 0
        for p in procs:
            try:
                rss += p.memory_info().rss
                pss += _pss_kb(p.pid) * 1024
            except psutil.Error:
                continue
        self.peak_rss_mb = max(self.peak_rss_mb, rss / 2**20)
        self.peak_pss_mb = max(self.peak_pss_mb, pss / 2**20)
        self.max_processes = max(self.max_processes, len(procs))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.period_s)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def run_mode(cfg: ServerBenchConfig, policy: str, server: bool) -> dict:
    """One evaluation (`cfg.episodes` episodes of one task, `cfg.workers` workers) -> its numbers."""
    from envs.eval_libero import LiberoEvalConfig, evaluate

    with tempfile.TemporaryDirectory() as d:
        ecfg = LiberoEvalConfig(suite=cfg.suite, policy=policy, trials=cfg.episodes, tasks=str(cfg.task),
                                workers=cfg.workers, out=d, max_steps=cfg.max_steps, resolution=cfg.resolution,
                                video=False, progress=False, policy_server=server)
        t0 = time.time()
        with MemorySampler(cfg.sample_s) as mem:
            res = evaluate(ecfg)
        wall = time.time() - t0
        recs = sorted((json.loads(p.read_text()) for p in Path(d, "episodes").rglob("*.json")), key=lambda r: r["trial"])
    o = res["overall"]
    return {"policy_server": server, "episodes": o["n"], "errors": o["errors"], "successes": o["successes"],
            "wall_s": round(wall, 1), "episodes_per_hour": round(3600 * o["n"] / wall, 1),
            "mean_episode_wall_s": round(sum(r["wall_s"] for r in recs) / max(1, len(recs)), 2),
            "peak_rss_mb": round(mem.peak_rss_mb), "peak_pss_mb": round(mem.peak_pss_mb),
            "processes": mem.max_processes, "actions_sha1": [r.get("actions_sha1", "") for r in recs]}


def bench_policy_server(cfg: ServerBenchConfig) -> dict:
    """Both modes for every policy; returns (and writes to cfg.out) the JSON."""
    cfg.validate()
    t0 = time.time()
    load0 = os.getloadavg()
    rows: dict[str, Any] = {}
    for label, path in parse_policies(cfg.policies).items():
        if not (Path(path) / "policy.json").is_file():
            rows[label] = {"checkpoint": path, "skipped": f"{path} holds no policy.json (build it first, e.g. make demo"
                                                          " / make demo-vla)"}
            continue
        copies = run_mode(cfg, path, server=False)
        served = run_mode(cfg, path, server=True)
        rows[label] = {"checkpoint": path, "copies": copies, "server": served,
                       "speedup": round(served["episodes_per_hour"] / copies["episodes_per_hour"], 2),
                       # the executed actions (rounded to 1e-5) agree episode by episode
                       "same_actions": copies.pop("actions_sha1") == served.pop("actions_sha1"),
                       "rss_saved_mb": copies["peak_rss_mb"] - served["peak_rss_mb"],
                       "pss_saved_mb": copies["peak_pss_mb"] - served["peak_pss_mb"]}
    out = {"config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}, "cpus": os.cpu_count(),
           "load_avg_before": [round(x, 2) for x in load0], "load_avg_after": [round(x, 2) for x in os.getloadavg()],
           "wall_s": round(time.time() - t0, 1), "policies": rows}
    if cfg.out:
        from configs.runs import atomic_write_json

        Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(Path(cfg.out), out)
    return out
