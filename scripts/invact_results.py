"""InvAct's claims on held-out scenes, in one run: InvAct vs baselines, and the Table 3 ablations.

    python scripts/invact_results.py --data runs/demo/atomic_world --out docs/results/invact
    python scripts/invact_results.py --data runs/demo/atomic_world --out /tmp/r ablations=false

Trains what is not trained yet (runs resume; finished runs are reused), evaluates every encoder on
the same split in the same process, and writes `<out>.json` plus `<out>.md` (tables and the exact
command). Numbers are whatever the runs give: nothing here is tuned towards a story. The work is
`encoders.invact.results.invact_results`; this file only parses the command line.
"""

from __future__ import annotations

import shlex
import sys

from configs.cli import run_cli
from configs.loader import parse_cli
from encoders.invact.results import ResultsConfig, invact_results


def main(argv: list[str] | None = None) -> int:
    cfg = parse_cli(ResultsConfig, argv, description=__doc__, prog="scripts/invact_results.py",
                    flags={"--data": ("data", "dataset folder"), "--out": ("out", "output path stem")})  # fmt: skip
    command = "python scripts/invact_results.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    invact_results(cfg, command)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
