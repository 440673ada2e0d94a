"""Algorithm 1 of roboact_clip.txt: keep single-action clips and re-annotate them as subject-action-object.

    python scripts/prepare_single_action.py --src runs/demo/atomic_world --out /tmp/single_action.jsonl
    python scripts/prepare_single_action.py --src annotations.jsonl --out out.jsonl parser.default_subject=robot
    python scripts/prepare_single_action.py --src ann.csv --out out.jsonl parser.name=openai_compatible \
        parser.url=http://127.0.0.1:8000/v1/chat/completions parser.model=deepseek-r1

--src is one of
  - a dataset folder (or its index.parquet): one annotation per clip (its caption; views share it),
    plus, for takes made of several clips (keystep chains), the take-level annotation "c1, then c2,
    ..." — a multi-action annotation that Algorithm 1 must discard;
  - a .jsonl file of {"id": ..., "text": ...} lines, a .csv with columns id,text, or a .txt file
    with one annotation per line (id = line number).

Each annotation is parsed into (number of actions, subject, action, object) by the parser registry
(envs/datasets/annotations.py: `rules` offline default, `openai_compatible`); multi-action ones are
discarded; the rest get Algorithm 1's description "Robot (or Human) [A] [O]. Action is A, Object is O.".
Annotations that cannot be parsed (empty, no verb, no subject, malformed parser reply) are listed
in the report as bad, never dropped silently.

Writes `--out` (JSONL, one kept record per line) and `<out stem>.report.json`; prints the report.
The work is `envs.datasets.single_action.prepare`; this file only parses the command line.
"""

from __future__ import annotations

import sys

from configs.cli import run_cli
from configs.loader import parse_cli
from envs.datasets.single_action import PrepareConfig, prepare, print_report


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_cli(PrepareConfig, argv, description=__doc__, prog="scripts/prepare_single_action.py",
                    flags={"--src": ("src", "dataset folder, index.parquet or annotation file"),
                           "--out": ("out", "output JSONL of kept clips")})  # fmt: skip
    r = prepare(cfg)
    print_report(r)
    return r


if __name__ == "__main__":
    sys.exit(run_cli(main))
