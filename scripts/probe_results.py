"""Issue 15 results: temporal probes (Tables 2-4, Supp. Table 18), soft-DTW check + speed, InstrAction.

    python scripts/probe_results.py --data DIR --out docs/results/probes
    python scripts/probe_results.py --data DIR --out /tmp/p --epochs 5 --skip-instraction   # quick

Writes `<out>.json` (every number) and `<out>.md` (tables + the command). One process: the backbone
and the feature cache are shared by all probes. The work is `encoders.probes.results.probe_results`;
this file only parses the command line.
"""

from __future__ import annotations

import sys

from configs.cli import run_cli
from configs.loader import parse_cli
from encoders.probes.results import ProbeResultsConfig, probe_results

FLAGS = {f"--{k.replace('_', '-')}": (k, h) for k, h in (
    ("data", "dataset folder (required)"), ("out", "output path without suffix (.json, .md)"),
    ("backbone", "frozen image backbone"), ("image_size", "frame size"), ("frames", "frames per clip"),
    ("proj_dim", "probe width"), ("heads", "probe attention heads"), ("epochs", "probe epochs"),
    ("seeds", "seeds per probe"), ("ia_epochs", "InstrAction epochs"), ("threads", "torch threads (0: free cores)"),
    ("cache_dir", "feature cache"), ("skip_instraction", "skip the InstrAction part"),
    ("encoders", "comma list of exported encoder dirs to probe through tokens(video)"),
    ("encoder_frames", "frames per clip for --encoders"), ("encoder_heads", "probe heads for --encoders"))}


def main(argv: list[str] | None = None) -> int:
    cfg = parse_cli(ProbeResultsConfig, argv, description=__doc__, flags=FLAGS, prog="scripts/probe_results.py")
    if not cfg.data:
        raise ValueError("--data: required (a dataset folder made by scripts/make_atomic_videos.py)")
    command = "python scripts/probe_results.py " + " ".join(argv if argv is not None else sys.argv[1:])
    probe_results(cfg, command)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
