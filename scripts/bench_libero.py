"""Benchmark the LIBERO env and evaluator on this machine; prints JSON.

    python scripts/bench_libero.py [--suite libero_goal] [--task 7] [steps=50] [episodes=4]
    python scripts/bench_libero.py episode_steps=150 ceiling=true contention=true   # issue 24's measurement

Reports ms/step physics-only (no cameras), ms/step with rendering (agentview + wrist at the
protocol's 256 px, fast and reference renderer), and evaluator throughput (episodes/hour) with 1 and
2 worker processes for a vision-style random policy (renders every step) on `episode_steps`-step
episodes, plus the same extrapolated to protocol-length episodes. `ceiling=true` adds what the
machine itself allows N processes (cores, memory bandwidth, a bare rendered env); `contention=true`
the bare envs beside a niced CPU hog in this and in another session. Run it on an idle machine:
results/libero_throughput.md shows what a background job in another shell does to the ratio.
The measurement is `envs.bench_libero.bench_libero`; this file only parses the command line.
"""

from __future__ import annotations

import sys

from configs.cli import run_cli
from configs.loader import parse_cli
from envs.bench_libero import BenchConfig, bench_libero


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_cli(BenchConfig, argv, description=__doc__.split("\n")[0],
                    flags={"--suite": ("suite", "suite"), "--task": ("task", "task id")})
    return bench_libero(cfg)


if __name__ == "__main__":
    sys.exit(run_cli(main))
