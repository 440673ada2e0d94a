"""Issue 23 §4: segmentation boundary error vs the uniform split on held-out atomic-world keysteps and LIBERO demos.

    python scripts/segment_results.py out=docs/results/segmentation.json             # uniform + changepoint
    python scripts/segment_results.py out=docs/results/segmentation.json dtw=true    # + the InstrAction DTW path
    python scripts/segment_results.py libero= kitchen= "extra_worlds=[runs/world_seed4,runs/world_seed5]" \
        out=docs/results/segmentation_worlds.json    # the world rows alone, + worlds never used in tuning
    python scripts/segment_results.py world= libero= kitchen= "transfer=[runs/demos/libero_all]" \
        out=docs/results/segmentation_transfer.json  # other suites' demos, scored with configs/segment/changepoint.yaml

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
    sets = {name: res[name]["held_out"] for name in ("world", "libero") if name in res}
    if "held_out_no_jump" in res.get("world", {}):
        sets["world"] = {**sets["world"], **res["world"]["held_out_no_jump"]}
    sets.update(res.get("extra_worlds", {}))
    sets.update({k: v for k, v in res.get("transfer", {}).items() if isinstance(v, dict) and "uniform" in v})
    for name, methods in sets.items():
        for method, m in methods.items():
            if isinstance(m, dict) and "mae" in m:
                print(f"{name:6s} {method:13s} mae {m['mae']:.2f} steps ({100 * m['mae_frac']:.1f} %), F1 {m['f1']:.2f}, n {m['n']}")
            elif method.endswith("_minus_uniform"):
                print(f"{name:6s} {method.removesuffix('_minus_uniform')} - uniform {m['mean_diff']:+.2f} "
                      f"[{m['ci95'][0]:+.2f}, {m['ci95'][1]:+.2f}]")
    print(f"{res['seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
