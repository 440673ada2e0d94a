"""Generate Franka Kitchen demonstrations with the scripted experts (only successes are kept).

    python scripts/make_kitchen_demos.py --task micro --episodes 25 --out runs/demos/kitchen
    python scripts/make_kitchen_demos.py --task all --episodes 25 --out runs/demos/kitchen   # the 5 primitives

Writes <out>/kitchen/<task>_demo.hdf5 in the project's demo format (envs/demos.py: robomimic/LIBERO
layout, both camera views, proprio parts, per-step atomic-skill label, instruction), plus
<out>/config.yaml and <out>/summary.json (attempts, successes and success rate per task: the scripted
success). Diversity: the expert's approach/grasp points and speed are jittered and `noise` adds
Gaussian noise to the arm actions, all seeded by (seed, task, attempt); the env's observation noise is
seeded by the attempt. Rerunning resumes: demos already on disk are kept and attempts continue.
The recording loop is the LIBERO writer's (envs.demos.collect_demos); the work is
`envs.demo_tasks.make_kitchen_demos`, this file only parses the command line.
"""

from __future__ import annotations

import sys

from configs.cli import run_cli
from configs.loader import parse_cli
from envs.demo_tasks import KitchenDemoConfig, make_kitchen_demos


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_cli(
        KitchenDemoConfig,
        argv,
        description=__doc__.split("\n")[0],
        flags={
            "--task": ("task", "all | knob,door,light,micro,slide | ids 0-4"),
            "--episodes": ("episodes", "successful demos per task"),
            "--out": ("out", "output directory (rerun to resume)"),
            "--seed": ("seed", "seed"),
        },
    )
    summary = make_kitchen_demos(cfg)
    for r in summary["tasks"]:
        print(f"kitchen {r['task']}: {r['demos']} demos from {r['attempts']} attempts "
              f"(scripted success {r['scripted_success']}) -> {r['file']}")
    return summary


if __name__ == "__main__":
    sys.exit(run_cli(main))
