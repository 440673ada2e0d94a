"""Training step time when another process starts mid-run: threads sized once vs re-sized between steps.

    python scripts/bench_thread_resize.py --out docs/results/thread_resize.json    # ~2.2 min
    python scripts/bench_thread_resize.py busy=matmul after_s=60

Issue 25: a stage-2 run slowed ~30x when another job started 37 s in, because torch's threads were
sized once at start and then spin-waited for a core. This runs a small training loop (a 2-layer
transformer encoder; forward, backward, AdamW, as configs/training.py `fit` steps) twice, side by
side in one run, each starting on every core (what an idle machine gets):

    sized once at start       (the old behaviour)
    re-sized between steps    (configs.threads.ThreadResizer, which `fit(threads=0)` calls)

Each trains `before_s` alone, then starts a busy process (`busy`: a Python spin loop, or a torch
matmul loop on 2 threads) and trains `after_s` beside it. Prints and writes JSON: step-time mean and
median before and after, the median after the resizer's interval, steps done beside the busy
process, the thread count over time, and the machine's load (load average, runnable tasks, the
other processes' load in cores) at start and end: on a shared machine it says what the numbers had.
The measurement is `configs.bench_thread_resize.bench_thread_resize`; this file only parses the command line.
"""

from __future__ import annotations

import sys

from configs.bench_thread_resize import BenchResizeConfig, bench_thread_resize
from configs.cli import run_cli
from configs.loader import parse_cli


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_cli(BenchResizeConfig, argv, prog="scripts/bench_thread_resize.py", description=__doc__.split("\n")[0],
                    flags={"--out": ("out", "JSON output path")})
    return bench_thread_resize(cfg)


if __name__ == "__main__":
    sys.exit(run_cli(main))
