"""Per-step `EncoderHeadPolicy.act` latency: full re-encode of every window (old path) vs the encoder stream.

    python scripts/bench_policy.py                                   # JSON to stdout
    python scripts/bench_policy.py --out docs/results/bench_policy_act.json threads=2

What is measured and how: policies/bench.py (heads, LIBERO episode) and vla/bench.py (VLA frame count).
"""

from __future__ import annotations

import json
import os
import sys

from configs.cli import run_cli
from configs.loader import parse_cli
from configs.runs import atomic_write_json
from policies.bench import BenchPolicyConfig, run_policy_bench
from vla.bench import libero_vla_frames


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_cli(BenchPolicyConfig, argv, prog="scripts/bench_policy.py", description=__doc__.split("\n")[0],
                    flags={"--out": ("out", "JSON output path"), "--steps": ("steps", "measured steps per path")})
    result = run_policy_bench(cfg)
    if cfg.libero_steps > 0:
        result["libero_vla_episode"] = {"resolution": cfg.libero_resolution,
                                        **libero_vla_frames(cfg.libero_steps, cfg.libero_resolution)}
    result["load_after"] = {"loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()]}
    if cfg.out:
        atomic_write_json(cfg.out, result)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    sys.exit(run_cli(main))
