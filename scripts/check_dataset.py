"""Report every damaged or missing file of a clip dataset (made by scripts/make_atomic_videos.py).

    python scripts/check_dataset.py runs/demo/atomic_world          # cheap: records, sizes, index
    python scripts/check_dataset.py runs/demo/atomic_world --full   # also decode every clip

Checks meta.json and index.parquet parse, every take's completion record parses, every clip it
lists exists with the recorded size, and every clip the index names exists (with --full: decodes
as (T, H, W, 3) uint8). Prints one line per problem and a summary; exit status 1 if any.
`python scripts/make_atomic_videos.py --out DIR --resume` regenerates damaged takes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from configs.cli import ArgumentParser, run_cli
from envs.atomic_world.check import check


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="scripts/check_dataset.py", description=__doc__)
    p.add_argument("root", help="dataset folder (meta.json, index.parquet, clips/, takes/)")
    p.add_argument("--full", action="store_true", help="decode every clip, not only sizes and records")
    args = p.parse_args(argv)
    problems = check(Path(args.root), full=args.full)
    for line in problems:
        print(line)
    print(f"{args.root}: {'OK' if not problems else f'{len(problems)} problem(s)'}"
          + ("" if args.full else " (cheap check: records, sizes, index; --full decodes every clip)"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
