"""Benchmark the VLA stages on this machine: stage-2 / stage-3 training samples/s, `act` latency, memory.

    python scripts/bench_vla.py                                  # smol, JSON to stdout
    python scripts/bench_vla.py model=tiny steps=3 out=/tmp/bench_vla.json

Synthetic inputs of the real shapes: `image_size` frames (the evaluator resizes every render to the
policy's image_size before `act`), OpenVLA-prompted instructions, latents of `latent_dim`, K-action
chunks with proprio. Training steps are full optimiser steps (forward, backward, AdamW) on the
LoRA + head parameters, after `warmup` untimed steps. `act` is timed end to end as the evaluator
calls it: protocol resize of a `render_size` frame + forward + un-normalisation of the chunk; per
environment step it costs act_ms / K. Peak memory is the process's max RSS (resource.getrusage),
which includes the model weights. The 1-minute load average is recorded before and after: on a
shared machine it says how many cores the numbers really had.
The measurement is `vla.bench.bench_vla`; this file only parses the command line.
"""

from __future__ import annotations

import sys

from configs.cli import run_cli
from configs.loader import parse_cli
from vla.bench import BenchConfig, bench_vla


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_cli(BenchConfig, argv, description=__doc__.split("\n")[0], prog="scripts/bench_vla.py")
    return bench_vla(cfg)


if __name__ == "__main__":
    sys.exit(run_cli(main))  # an unknown model: one line, exit 2
