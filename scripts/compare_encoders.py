"""Compare frozen encoders under one policy-head protocol: identical heads, seeds, demos and budgets.

    python scripts/compare_encoders.py --env kitchen --tasks all --encoders invact,roboact_clip,backbone_mean,random --demos 25
    python scripts/compare_encoders.py --env kitchen --tasks slide,light --encoders invact=runs/demo/invact/encoder,random \
        --demos 5 steps=300 eval_every=100 eval_episodes=5 --out docs/results/policy_heads_kitchen
    python scripts/compare_encoders.py --env libero --tasks 0,5,6,7 --encoders roboact_clip,random --demos 25 \
        demo_dir=runs/demos/libero heldout="libero_10:7;libero_spatial:4"

`--encoders` is a comma list of `name` or `label=name_or_dir` (an exported encoder directory); a bare
`invact` / `roboact_clip` uses the trained export named in `exports` when it exists (after `make demo`),
otherwise the untrained registered network, and its row says so.
Kitchen follows R3M: one head per task (BatchNorm + MLP(256, 256), MSE, batch 32, lr 1e-3) on the
first `--demos` demos of that task; each head is rolled out `eval_episodes` times every `eval_every`
steps and its number is the *maximum* over those evaluations (the final one is reported too).
LIBERO follows roboact_clip Sec. IV-B: one head trained on T1-T4 (libero_goal 0, 5, 6, 7) and
evaluated on them, and on the held-out T5/T6 (`heldout`, never trained on).
Reference rows, under the same evaluator and episodes: `scripted` (the privileged expert that wrote
the demos) and `random` actions. Kitchen demos missing from `demo_dir` are generated first
(scripts/make_kitchen_demos.py). Everything resumes: rerun the same command to continue.

Output under --out: results.json, results.md (one table: success per task, overall, 95% Wilson
intervals, max and final), bar.png, and runs/<encoder>/<task>/ (the policies/train.py run folders).
The work is `policies.compare.compare`; this file only parses the command line.
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
            "--env": ("env", "kitchen | libero"),
            "--tasks": ("tasks", "kitchen: all|names|ids; libero: training ids (0,5,6,7)"),
            "--encoders": ("encoders", "comma list of name or label=name_or_dir"),
            "--demos": ("demos", "demos per task"),
            "--out": ("out", "output folder (rerun to resume)"),
            "--seed": ("seed", "seed of every head"),
        },
    )
    res = compare(cfg)
    print((Path(cfg.out) / "results.md").read_text())
    print(f"{res['wall_s']:.0f}s -> {cfg.out}")
    return res


if __name__ == "__main__":
    main()
