"""Generate LIBERO demonstrations with the scripted atomic-skill experts (only successes are kept).

    python scripts/make_libero_demos.py --suite libero_goal --tasks 0,5,6,7 --episodes 50 --out data/libero_demos
    python scripts/make_libero_demos.py --suite all --episodes 50 --out data/libero_demos --format lerobot

Writes <out>/<suite>/<task name>_demo.hdf5 (LIBERO's naming and layout, see envs/demos.py) with a
per-step atomic-skill label; <out>/config.yaml and <out>/summary.json (attempts, successes per task).
`--suite all` writes every task with a scripted program of libero_spatial, libero_object, libero_goal
and libero_10. `--format lerobot` also writes the demos as one LeRobot v3.0 dataset in <out>/lerobot
(parquet, one mp4 per camera, meta; envs/lerobot_writer.py), which LeRobot's own trainers read and
`policies/train.py demos=<out>/lerobot` trains on; the hdf5 files stay the resumable store.
Diversity: attempt k starts from init state k mod 50, the skills jitter their waypoints (seeded by
seed and k) and `noise` adds Gaussian noise to the arm actions. Rerunning resumes: demos already on
disk are kept and generation continues from the next attempt. The work is
`envs.demo_tasks.make_libero_demos`; this file only parses the command line.

Across processes and machines (`torchrun --nproc_per_node M [--nnodes N ...] scripts/make_libero_demos.py ...`
or `accelerate launch`): the tasks are split across the ranks (one hdf5 file per task has one
writer, so the task is the unit), each summary row names the rank that wrote the file, rank 0
writes summary.json and prints the rows; a rank without a task prints one line and exits with 0.
Rerunning with another world size resumes every task's file. `status=true` writes nothing and prints
the demos on disk so far (per task: demos, attempts, wall time of every run up to its last flush).
"""

from __future__ import annotations

import sys

from configs.cli import run_cli
from configs.loader import parse_cli
from envs.demo_tasks import LiberoDemoConfig, libero_demo_status, make_libero_demos
from envs.evaluator import launch_rank


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_cli(
        LiberoDemoConfig,
        argv,
        description=__doc__.split("\n")[0],
        flags={
            "--suite": ("suite", "LIBERO suite, or all (spatial, object, goal, 10)"),
            "--tasks": ("tasks", "task ids, e.g. 0,5,6,7, or all (= all with a program)"),
            "--episodes": ("episodes", "successful demos per task"),
            "--out": ("out", "output directory (rerun to resume)"),
            "--seed": ("seed", "seed"),
            "--format": ("format", "hdf5, or lerobot (also <out>/lerobot as a LeRobot v3.0 dataset)"),
        },
    )
    if cfg.status:  # the demos so far, as a table (writes nothing)
        st = libero_demo_status(cfg)
        print("| suite | task | demos | attempts | wall s (all runs) |\n|---|---:|---:|---:|---:|")
        for t in st["tasks"]:
            print(f"| {t['suite']} | {t['task_id']} | {t['demos']} | {t['attempts']} | {t['wall_s_all_runs']:.0f} |")
        print(f"\n{st['done_tasks']}/{len(st['tasks'])} tasks at {cfg.episodes} demos; {st['demos']} demos; "
              f"{st['wall_s_all_runs_summed']:.0f} s of generation (summed over tasks, up to each run's last flush)")
        return st
    summary = make_libero_demos(cfg)
    if launch_rank()[0] != 0:  # rank 0 prints the merged rows, once
        return summary
    for t in summary["tasks"]:
        print(f"{t['suite']} task {t['task_id']} {t['name']}: {t['demos']} demos from {t['attempts']} attempts "
              f"-> {t['file']}")
    if summary.get("lerobot", {}).get("path"):
        lr = summary["lerobot"]
        print(f"LeRobot v3.0 dataset: {lr['episodes']} episodes, {lr['frames']} frames, cameras {lr['cameras']} "
              f"-> {lr['path']}")
    return summary


if __name__ == "__main__":
    sys.exit(run_cli(main))
