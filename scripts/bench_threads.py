"""InvAct training step time vs torch thread count, on an idle machine and beside one CPU-bound process.

    python scripts/bench_threads.py --out docs/results/threads.json
    python scripts/bench_threads.py --data runs/demo/atomic_world steps=40

Torch's intra-op threads spin-wait for a core; on a 2-core machine beside one busy process, a fixed
2 threads loses most of each step waiting. This measures, side by side in one run:

    before: threads=2  (the old fixed default of encoders/train.py)
    after:  threads=0  (automatic: the cores free to this process, configs/threads.py)

each idle and beside one busy process (a Python spin loop started by this script). The model is the
default InvAct config (configs/encoder/invact.yaml) on `data` (generated small if empty). Prints and
writes JSON (s/step, the thread count chosen, the load average at each measurement).
The measurement is `encoders.bench_threads.bench_threads`; this file only parses the command line.
"""

from __future__ import annotations

import sys

from configs.cli import run_cli
from configs.loader import parse_cli
from encoders.bench_threads import BenchThreadsConfig, bench_threads


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_cli(BenchThreadsConfig, argv, prog="scripts/bench_threads.py", description=__doc__.split("\n")[0],
                    flags={"--data": ("data", "dataset folder"), "--out": ("out", "JSON output path")})
    return bench_threads(cfg)


if __name__ == "__main__":
    sys.exit(run_cli(main))
