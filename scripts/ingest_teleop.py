"""Teleoperation recordings and LeRobot datasets -> the project's demo hdf5 (envs/demos.py) with atomic-step labels.

    python scripts/ingest_teleop.py --src runs/teleop/x --format raw --out runs/demos/teleop
    python scripts/ingest_teleop.py --src tests/fixtures/lerobot_tiny_a --format lerobot --out /tmp/lr
    python scripts/ingest_teleop.py --src ~/so100_pick --format lerobot --mapping so100 --out /tmp/so100
    python scripts/ingest_teleop.py --src demos.hdf5 --format robomimic --out /tmp/rm --rate 20
    python scripts/ingest_teleop.py ... --skip-bad      # write the clean episodes, list the others

Formats: `raw` (the layout documented in real_robot/ingest.py, written by scripts/teleop.py),
`robomimic` (robomimic / LIBERO hdf5, read with envs.demos.DemoReader), `lerobot` (a LeRobot v3.0
dataset directory read from disk: meta/info.json, parquet data, H.264 / AV1 video decoded with PyAV).
`--mapping` (lerobot only) says which LeRobot features are proprio, action, cameras, gripper and
timestamps: `auto` (the generic mapping), a name of configs/ingest/lerobot_<name>.yaml (so100, so101,
koch, aloha, franka, twin) or a YAML path; shapes come from the dataset's meta/info.json.
Streams are aligned and resampled to `--rate` Hz (default: the source's own rate). Output: OUT/demos.hdf5
and OUT/manifest.json; on any problem (gaps, NaNs, clock jumps, missing streams or files, shape
mismatches, short videos, a mapping that does not fit) only OUT/report.json is written, one line per
problem naming episode, field and file, and the exit status is 1. Rerunning over unchanged input does
nothing ("up to date").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from configs.cli import run_cli
from real_robot.ingest import ingest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", required=True, help="source directory (raw, lerobot) or hdf5 file (robomimic)")
    p.add_argument("--format", required=True, choices=("raw", "robomimic", "lerobot"))
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--mapping", default="auto",
                   help="lerobot feature mapping: auto, a configs/ingest/lerobot_<name>.yaml name, or a YAML path "
                        "(default: auto)")
    p.add_argument("--rate", type=float, default=0.0, help="target rate in Hz (0 = the source's rate)")
    p.add_argument("--skip-bad", action="store_true", help="write clean episodes, leave out (and list) bad ones")
    p.add_argument("--max-jump", type=float, default=1.0, help="a forward time step above this (s) is a clock jump")
    p.add_argument("--gap-factor", type=float, default=3.0, help="a step above this x the median step is a gap")
    a = p.parse_args(argv)
    if not Path(a.src).exists():
        p.error(f"--src {a.src} does not exist")
    rep = ingest(a.src, a.format, a.out, rate=a.rate, skip_bad=a.skip_bad, max_jump_s=a.max_jump,
                 gap_factor=a.gap_factor, mapping=a.mapping)
    for prob in rep.get("problems", []):
        print(f"{prob['episode']}: {prob['field']}: {prob['kind']}: {prob['detail']}", file=sys.stderr)
    n = len(rep.get("episodes", []))
    skipped = rep.get("skipped") or []
    print(f"{rep['status']}: {n} episodes at {rep['rate_hz']:g} Hz -> {a.out}"
          + (f"; skipped {len(skipped)}: {', '.join(skipped)}" if skipped else ""))
    return 0 if rep["status"] in ("written", "up to date") else 1


if __name__ == "__main__":
    sys.exit(run_cli(main))
