"""N workers with N policy copies vs N workers with one batched policy server: episodes/hour and peak
memory, side by side in one run; writes JSON (default docs/results/policy_server.json) and prints it.

    python scripts/bench_policy_server.py workers=2 episodes=4 max_steps=40
    python scripts/bench_policy_server.py policies=head=runs/demo/head/policy out=

`policies` is `label=checkpoint,...` (default: the demo's policy head and its `smol` VLA; a missing
checkpoint is skipped with the reason). The measurement is
`envs.bench_policy_server.bench_policy_server`; this file only parses the command line.
"""

from __future__ import annotations

import json
import sys

from configs.cli import run_cli
from configs.loader import parse_cli
from envs.bench_policy_server import ServerBenchConfig, bench_policy_server


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_cli(ServerBenchConfig, argv, description=__doc__.split("\n")[0],
                    flags={"--workers": ("workers", "env worker processes"),
                           "--episodes": ("episodes", "episodes per mode")})
    res = bench_policy_server(cfg)
    print(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    sys.exit(run_cli(main))
