"""Contact sheet of a generated dataset: one row per take, its views side by side.

    python scripts/preview_dataset.py runs/demo/atomic_world --out sheet.png [--takes 12] [--frames 3]
    python scripts/preview_dataset.py runs/world_large --where object="purple bottle" --where split=val

Each view shows `--frames` frames (first, ..., last) of the take's first clip; the row is labelled
with the take's scene, split, subject and the caption (or keystep) of its clips. `--where COLUMN=VALUE`
(repeatable) keeps the takes with a clip whose index row matches, and shows that clip.
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
    p.add_argument("--where", action="append", default=[], metavar="COLUMN=VALUE",
                   help="show only clips whose index.parquet row has this value (repeatable: all must match)")
    a = p.parse_args(argv)
    where = {}
    for item in a.where:
        col, eq, value = item.partition("=")
        if not eq or not col:
            p.error(f"--where {item!r}: give COLUMN=VALUE, e.g. object=drawer")
        where[col] = value
    sheet = contact_sheet(a.data, a.takes, a.frames, where=where)
    atomic_write(a.out, lambda tmp: sheet.save(tmp, format="PNG"))
    print(f"wrote {a.out} ({sheet.width}x{sheet.height})")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
