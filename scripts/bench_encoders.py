"""Throughput of the encoder stack on this machine; prints JSON (clips/s).

    python scripts/bench_encoders.py                       # toy clips, 8 frames x 64 px (the dataset default)
    python scripts/bench_encoders.py --data /tmp/aw_tiny --split val --out bench.json

Measures: frozen backbone feature extraction (cache miss, then the memory-mapped cache hit),
optical flow (miss, hit), and `encode()` of each baseline encoder on in-memory batches.
The measurement is `encoders.bench.bench_encoders`; this file only parses the command line.
"""

from __future__ import annotations

import sys

from configs.cli import run_cli
from configs.loader import parse_cli
from encoders.bench import BenchConfig, bench_encoders


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_cli(BenchConfig, argv, prog="scripts/bench_encoders.py", description=__doc__.split("\n")[0],
                    flags={"--data": ("data", "dataset folder"), "--split": ("split", "split"),
                           "--out": ("out", "JSON output path"), "--seed": ("seed", "random seed")})
    return bench_encoders(cfg)


if __name__ == "__main__":
    sys.exit(run_cli(main))
