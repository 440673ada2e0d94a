"""Issue 23 §4: segmentation boundary error vs the uniform split on held-out atomic-world keysteps and LIBERO demos.

    python scripts/segment_results.py out=docs/results/segmentation.json             # uniform + changepoint
    python scripts/segment_results.py out=docs/results/segmentation.json dtw=true    # + the InstrAction DTW path

The work is `encoders.instraction.segment_eval.run_segmentation_eval`; this file only parses the command line.
"""

from __future__ import annotations

import sys

from configs.cli import run_cli
from configs.loader import parse_cli
from encoders.instraction.segment_eval import EvalConfig, run_segmentation_eval


def main(argv: list[str] | None = None) -> int:
    cfg = parse_cli(EvalConfig, argv, description=__doc__, prog="scripts/segment_results.py")
    res = run_segmentation_eval(cfg)
    for name in ("world", "libero"):
        for method, m in res[name]["held_out"].items():
            if "mae" not in m:
                continue
            print(f"{name:6s} {method:13s} mae {m['mae']:.2f} steps ({100 * m['mae_frac']:.1f} %), F1 {m['f1']:.2f}, n {m['n']}")
    print(f"{res['seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
