"""Contact sheet of a generated dataset: one row per take, its views side by side.

    python scripts/preview_dataset.py runs/demo/atomic_world --out sheet.png [--takes 12] [--frames 3]

Each view shows `--frames` frames (first, ..., last) of the take's first clip; the row is labelled
with the take's scene, split, subject and the caption (or keystep) of its clips.
"""

from __future__ import annotations

import sys

from configs.cli import ArgumentParser, run_cli
from configs.runs import atomic_write
from envs.atomic_world.preview import contact_sheet


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(description=__doc__, prog="scripts/preview_dataset.py")
    p.add_argument("data", help="dataset directory (with index.parquet)")
    p.add_argument("--out", default="sheet.png", help="output PNG")
    p.add_argument("--takes", type=int, default=12, help="rows (takes) to show")
    p.add_argument("--frames", type=int, default=3, help="frames per view")
    a = p.parse_args(argv)
    sheet = contact_sheet(a.data, a.takes, a.frames)
    atomic_write(a.out, lambda tmp: sheet.save(tmp, format="PNG"))
    print(f"wrote {a.out} ({sheet.width}x{sheet.height})")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
