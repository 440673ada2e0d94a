"""Cut robot-domain atomic clips from demo hdf5 files (one clip per expert skill segment) into the clip index.

    python scripts/demo_clips.py --demos runs/demos/libero --out runs/demos/libero_atomic
    python scripts/demo_clips.py --demos runs/demos/kitchen --out runs/demos/kitchen_atomic
    python scripts/demo_clips.py --demos runs/demos/libero --out /tmp/la split_by=demo val_every=5
    python scripts/demo_clips.py --demos runs/demos/libero --out /tmp/la split_by=task val=[libero_goal/5]

The output folder is read like the atomic world (index.parquet + meta.json + clips/), so encoders
train on it (`encoders/train.py data=[runs/demo/atomic_world,runs/demos/libero_atomic]
data_weights=[0.7,0.3]`) and the retrieval benchmark runs on it (`encoders/evaluate.py --data ...`).
Verb / object mapping, views, scenes, splits and the derived per-segment success:
envs/datasets/demo_clips.py. Prints clips per verb and split; writes <out>/report.json and
<out>/segments.parquet (every segment, kept or dropped, with its success).
"""

from __future__ import annotations

import sys

from configs.cli import run_cli
from configs.loader import parse_cli
from envs.datasets.demo_clips import DemoClipsConfig, demo_clips


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_cli(DemoClipsConfig, argv, description=__doc__, prog="scripts/demo_clips.py",
                    flags={"--demos": ("demos", "demo folder or hdf5 file"), "--out": ("out", "output folder"),
                           "--resume": ("resume", "continue an interrupted run")})  # fmt: skip
    s = demo_clips(cfg)
    print(f"{s['demos']} -> {s['out']}: {s['takes']} demos, {s['segments']} segments, {s['clips']} clips "
          f"({s['clip_views']} clip-views)")
    print("  clips per verb: " + ", ".join(f"{v}={n}" for v, n in s["clips_per_verb"].items()))
    print("  clips per split: " + ", ".join(f"{k}={n}" for k, n in sorted(s["clips_per_split"].items())))
    print("  dropped segments: " + (", ".join(f"{k}={n}" for k, n in s["dropped"].items()) or "none"))
    return s


if __name__ == "__main__":
    sys.exit(run_cli(main))
