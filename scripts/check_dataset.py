"""Report every damaged or missing file of a clip dataset (made by scripts/make_atomic_videos.py).

    python scripts/check_dataset.py runs/demo/atomic_world          # cheap: records, sizes, index
    python scripts/check_dataset.py runs/demo/atomic_world --full   # also decode every clip

Checks meta.json and index.parquet parse, every take's completion record parses, every clip it
lists exists with the recorded size, and every clip the index names exists (with --full: decodes
as (T, H, W, 3) uint8). Prints one line per problem and a summary; exit status 1 if any.
`python scripts/make_atomic_videos.py --out DIR --resume` regenerates damaged takes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from configs.cli import run_cli


def check(root: Path, full: bool = False) -> list[str]:
    """Problems found under `root`, one line each ([] when the dataset is intact)."""
    from tqdm import tqdm

    from envs.atomic_world.dataset import load_clip, read_index, read_meta
    from envs.atomic_world.generate import take_problems

    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder does not exist")
    problems: list[str] = []
    for reader in (read_meta, read_index):
        try:
            reader(root)
        except (ValueError, FileNotFoundError) as e:
            problems.append(str(e))
    for sidecar in sorted((root / "takes").glob("t*.json")):
        problems += take_problems(root, sidecar)
    try:
        paths = read_index(root)["path"].tolist()
    except (ValueError, FileNotFoundError):
        paths = []
    seen = set(problems)
    for rel in tqdm(paths, desc="clips", unit="clip", disable=not full, leave=False):
        f = root / rel
        if not f.is_file():
            msg = f"{f}: missing clip file"
        elif full:
            try:
                load_clip(f)
                continue
            except ValueError as e:
                msg = str(e)
        else:
            continue
        if msg not in seen and not any(p.startswith(f"{f}:") for p in seen):
            problems.append(msg)
            seen.add(msg)
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/check_dataset.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
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
