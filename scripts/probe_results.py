"""Issue 15 results: temporal probes (Tables 2-4, Supp. Table 18), soft-DTW check + speed, InstrAction.

    python scripts/probe_results.py --data DIR --out docs/results/probes
    python scripts/probe_results.py --data DIR --out /tmp/p --epochs 5 --skip-instraction   # quick

Writes `<out>.json` (every number) and `<out>.md` (tables + the command). One process: the backbone
and the feature cache are shared by all probes. The work is `encoders.probes.results.probe_results`;
this file only parses the command line.
"""

from __future__ import annotations

import argparse
import sys

from encoders.probes.results import ProbeResultsConfig, probe_results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--out", default="docs/results/probes")
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--proj-dim", type=int, default=128)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--ia-epochs", type=int, default=15)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--cache-dir", default="")
    p.add_argument("--skip-instraction", action="store_true")
    p.add_argument("--encoders", default="", help="comma list of exported encoder dirs to probe through tokens(video)")
    p.add_argument("--encoder-frames", type=int, default=8)
    p.add_argument("--encoder-heads", type=int, default=4)
    a = p.parse_args(argv)
    command = "python scripts/probe_results.py " + " ".join(argv if argv is not None else sys.argv[1:])
    probe_results(ProbeResultsConfig(**vars(a)), command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
