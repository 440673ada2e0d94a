"""Benchmark the atomic-world generator at the default size; prints JSON.

    python scripts/bench_render.py [--takes 12] [key=value ...]   (keys of MakeVideosConfig)

Reports end-to-end frames/s (simulation + truth checks + rendering, one process), render-only
ms/frame, and a projection of the default `make demo` dataset's wall time with `workers` processes.
The measurement is `envs.atomic_world.bench.bench_render`; this file only parses the command line.
"""

from __future__ import annotations

import sys

from configs.cli import run_cli
from configs.loader import parse_cli
from envs.atomic_world.bench import bench_render
from envs.atomic_world.generate import MakeVideosConfig


def main(argv: list[str] | None = None) -> int:
    cfg = parse_cli(MakeVideosConfig, argv, description=__doc__, flags={"--takes": ("takes", "takes to time; without --takes: 12, and the projection is for the config's takes")},
                    prog="bench_render.py")  # fmt: skip
    takes = min(cfg.takes, 12) if "--takes" not in (argv or sys.argv) else cfg.takes
    return bench_render(cfg, takes)


if __name__ == "__main__":
    sys.exit(run_cli(main))
