"""Soft-DTW speed and agreement: batched 64x64 cost matrices, forward + backward, JSON on stdout.

    python scripts/bench_soft_dtw.py                      # batch sizes 1, 8, 32, 128 at 64x64
    python scripts/bench_soft_dtw.py --size 128 --batches 1,16 --out /tmp/sdtw.json

Compares the anti-diagonal torch implementation (custom backward) with a per-cell NumPy dynamic
programme on one matrix (value and gradient difference, and the NumPy time per matrix). The
measurement is `encoders.instraction.bench.run`; this file only parses the command line.
"""

from __future__ import annotations

import json
import sys

from configs.cli import ArgumentParser, run_cli
from configs.runs import atomic_write_json
from configs.threads import apply_threads
from encoders.instraction.bench import run


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(description=__doc__, prog="scripts/bench_soft_dtw.py")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batches", default="1,8,32,128")
    p.add_argument("--gamma", type=float, default=0.1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", default="")
    a = p.parse_args(argv)
    apply_threads(a.threads)
    result = run(a.size, a.batches, a.gamma, a.repeats)
    print(json.dumps(result, indent=2))
    if a.out:
        atomic_write_json(a.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
