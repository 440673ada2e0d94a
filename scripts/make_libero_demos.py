"""Generate LIBERO demonstrations with the scripted atomic-skill experts (only successes are kept).

    python scripts/make_libero_demos.py --suite libero_goal --tasks 0,5,6,7 --episodes 50 --out data/libero_demos

Writes <out>/<suite>/<task name>_demo.hdf5 (LIBERO's naming and layout, see envs/demos.py) with a
per-step atomic-skill label; <out>/config.yaml and <out>/summary.json (attempts, successes per task).
Diversity: attempt k starts from init state k mod 50, the skills jitter their waypoints (seeded by
seed and k) and `noise` adds Gaussian noise to the arm actions. Rerunning resumes: demos already on
disk are kept and generation continues from the next attempt.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from configs.cli import run_cli
from configs.loader import parse_cli, save_config
from configs.runs import atomic_write_json, seed_everything
from envs import protocol


@dataclass
class DemoConfig:
    suite: str = "libero_goal"
    tasks: str = "all"  # "all" = every task with a scripted program
    episodes: int = 50  # successful demos per task
    max_attempts: int = 0  # 0 = 3 x episodes
    out: str = "data/libero_demos"
    seed: int = 0
    resolution: int = 128  # LIBERO's datasets are 128x128
    fast_render: bool = True
    noise: float = 0.02  # std of Gaussian noise on the arm actions
    flush_every: int = 5
    max_steps: int = 0  # 0 = the suite's protocol max

    def validate(self) -> None:
        self.suite = protocol.canonical_suite(self.suite)
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {self.episodes}")
        if self.noise < 0:
            raise ValueError(f"noise must be >= 0, got {self.noise}")
        if self.flush_every < 1:
            raise ValueError(f"flush_every must be >= 1, got {self.flush_every}")


def make_task(cfg: DemoConfig, task_id: int, out: Path) -> dict:
    from envs.demos import DemoWriter, collect_demos
    from envs.libero_env import LiberoEnv
    from envs.skills.programs import ScriptedPolicy

    env = LiberoEnv(cfg.suite, task_id, resolution=cfg.resolution, render=True, fast_render=cfg.fast_render)
    try:
        path = out / cfg.suite / f"{env.task.name}_demo.hdf5"
        writer = DemoWriter(
            path,
            env_args={"type": 1, "env_name": env.task.name, "suite": cfg.suite, "task_id": task_id,
                      "env_kwargs": {"camera_heights": cfg.resolution, "camera_widths": cfg.resolution,
                                     "controller": "OSC_POSE", "fast_render": cfg.fast_render}},
            problem_info={"problem_name": env.raw.__class__.__name__, "language_instruction": env.instruction},
            bddl_file_name=env.task.bddl_file,
        )
        max_steps = cfg.max_steps or env.max_steps
        t0 = time.time()
        got = collect_demos(env, ScriptedPolicy(seed=cfg.seed, noise=cfg.noise), writer, episodes=cfg.episodes,
                            max_attempts=cfg.max_attempts or 3 * cfg.episodes, max_steps=max_steps,
                            seed_base=cfg.seed * 1_000_003 + task_id * 10_007,
                            progress_path=path.with_suffix(".progress.json"), flush_every=cfg.flush_every,
                            desc=f"{cfg.suite}:{task_id}", trial_of=lambda k: k % env.n_init_states)
        return {"task_id": task_id, "name": env.task.name, "file": str(path), "demos": got["demos"],
                "attempts": got["attempts"], "failed_this_run": got["failed_this_run"],
                "wall_s": round(time.time() - t0, 1)}
    finally:
        env.close()


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_cli(
        DemoConfig,
        argv,
        description=__doc__.split("\n")[0],
        flags={
            "--suite": ("suite", "LIBERO suite"),
            "--tasks": ("tasks", "task ids, e.g. 0,5,6,7, or all (= all with a program)"),
            "--episodes": ("episodes", "successful demos per task"),
            "--out": ("out", "output directory (rerun to resume)"),
            "--seed": ("seed", "seed"),
        },
    )
    from envs.evaluator import parse_tasks
    from envs.libero_env import num_tasks
    from envs.skills.programs import supported_tasks

    seed_everything(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    if str(cfg.tasks).strip() in ("all", ""):
        tasks = supported_tasks(cfg.suite)
    else:
        tasks = parse_tasks(cfg.tasks, num_tasks(cfg.suite))
        missing = [t for t in tasks if t not in supported_tasks(cfg.suite)]
        if missing:
            raise SystemExit(f"no scripted program for {cfg.suite} tasks {missing}; "
                             f"available: {supported_tasks(cfg.suite)}")
    summary = {"suite": cfg.suite, "tasks": [make_task(cfg, t, out) for t in tasks]}
    atomic_write_json(out / "summary.json", summary)
    for t in summary["tasks"]:
        print(f"{cfg.suite} task {t['task_id']} {t['name']}: {t['demos']} demos from {t['attempts']} attempts "
              f"-> {t['file']}")
    return summary


if __name__ == "__main__":
    sys.exit(run_cli(main))
