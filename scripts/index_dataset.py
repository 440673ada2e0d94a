"""Index a real dataset, as downloaded, into the project's clip index (index.parquet + meta.json + .npz clips).

    python scripts/index_dataset.py --kind ego_exo4d --root /data/egoexo4d --out data/egoexo4d
    python scripts/index_dataset.py --kind ssv2 --root /data/ssv2 --out data/ssv2 ssv2.splits=[val]
    python scripts/index_dataset.py --kind rh20t --root /data/rh20t --out data/rh20t rh20t.parser.name=openai_compatible \
        rh20t.parser.url=http://127.0.0.1:8000/v1/chat/completions rh20t.parser.model=deepseek-r1
    python scripts/index_dataset.py --kind ntu120 --root /data/ntu --out data/ntu120 ntu120.protocol=xset
    python scripts/index_dataset.py --kind ego_exo4d --root /data/egoexo4d --out data/egoexo4d --resume

--kind: ego_exo4d | ssv2 | rh20t | bridge | charades_ego | ntu120 (each adapter's docstring in
envs/datasets/<kind>.py says which files it reads and how it labels clips; its options are the
`<kind>.*` keys). Shows a progress bar; prints kept / dropped counts with reasons and one line per
malformed annotation or missing video (naming the path); writes them to <out>/report.json.
Resumable: each take / video / episode is recorded in <out>/items/ once its clips are written;
--resume skips recorded ones (and refuses a run whose kind, root, frames, size or options differ).

Robot demonstrations (LIBERO / robomimic hdf5, LeRobot) are not indexed here: they are read by
envs/demos.py and envs/lerobot.py respectively.
"""

from __future__ import annotations

import sys

from configs.cli import run_cli
from configs.loader import parse_cli
from envs.datasets.index import IndexConfig, format_summary, index_dataset


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_cli(IndexConfig, argv, description=__doc__, prog="scripts/index_dataset.py",
                    flags={"--kind": ("kind", "dataset kind"), "--root": ("root", "dataset folder as downloaded"),
                           "--out": ("out", "output folder"), "--resume": ("resume", "continue an interrupted run"),
                           "--frames": ("frames", "frames per clip"), "--size": ("size", "clip size (pixels)"),
                           "--limit": ("limit", "index at most this many takes/videos/episodes")})  # fmt: skip
    summary = index_dataset(cfg)  # bad input (a missing --root, a damaged annotation): one line, exit 2
    print(format_summary(summary))
    return summary


if __name__ == "__main__":
    sys.exit(run_cli(main))
