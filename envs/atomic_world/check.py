"""Every damaged or missing file of a clip dataset (made by scripts/make_atomic_videos.py), one line
each: the library behind scripts/check_dataset.py (its docstring lists what is checked).
"""

from __future__ import annotations

from pathlib import Path


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
