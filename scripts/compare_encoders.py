"""One table of frozen encoders under one policy-head recipe: demos -> features -> heads -> rollouts.

    python scripts/compare_encoders.py --config configs/policy/compare_libero.yaml        # the paper's protocol
    python scripts/compare_encoders.py --config configs/policy/compare_libero_budget.yaml # the fast path
    python scripts/compare_encoders.py --config configs/policy/compare_libero.yaml only=backbone_mean,scripted
    python scripts/compare_encoders.py --config configs/policy/compare_kitchen.yaml

Each row trains the recipe's head (a policies/train.py YAML, `recipe=`) on one encoder (`rows:` maps a
label to `<encoder> [key=value ...]`: a registered name, an exported encoder dir, `none` for the blind
control, or `policy:<dir>` to evaluate a trained policy) and rolls the final head out `trials` times per
task on the recipe's evaluation tasks (LIBERO: T1-T4 trained, T5/T6 held out, roboact_clip Tables
II/III); the scripted expert and random actions are reference rows under the same evaluator.
`differences:` lists [row, row it is compared with] pairs; the table adds their per-task and overall
differences with Newcombe's 95 % interval. `pools:` names rows that differ only in their seed; the table
adds their rollouts summed per task (a seed joins once its training tasks are finished), and
`differences:` may name a pool.
Everything resumes per row, task and episode: rerun the same command after a kill; `only=` runs some
rows now and the table shows every row with records so far (n per cell). Output under `out=`:
results.md / results.json / bar.png, rows/<row>/{train,eval,row.json,timing.json}; `publish=` copies the
table and every episode record to a committed folder. The work is `policies.compare.compare`.
"""

from __future__ import annotations

from pathlib import Path

from configs.loader import parse_cli
from policies.compare import CompareConfig, compare


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_cli(
        CompareConfig,
        argv,
        description=__doc__.split("\n")[0],
        flags={
            "--recipe": ("recipe", "policies/train.py YAML every head starts from"),
            "--only": ("only", "comma list of rows to run now (default: all)"),
            "--trials": ("trials", "rollouts per task"),
            "--workers": ("workers", "evaluation worker processes"),
            "--out": ("out", "output folder (rerun to resume)"),
            "--publish": ("publish", "also copy the table and episode records here"),
        },
    )
    res = compare(cfg)
    print((Path(cfg.out) / "results.md").read_text())
    cpu = sum(r.get("cpu_s", 0.0) for r in res["rows"])
    print(f"CPU time of the rows so far: {cpu:.0f} s -> {cfg.out}")
    return res


if __name__ == "__main__":
    import sys

    from configs.cli import run_cli

    sys.exit(run_cli(main))  # bad input (a missing recipe, an unknown encoder): one line, exit status 2
