"""Generate Franka Kitchen demonstrations with the scripted experts (only successes are kept).

    python scripts/make_kitchen_demos.py --task micro --episodes 25 --out runs/demos/kitchen
    python scripts/make_kitchen_demos.py --task all --episodes 25 --out runs/demos/kitchen   # the 5 primitives

Writes <out>/kitchen/<task>_demo.hdf5 in the project's demo format (envs/demos.py: robomimic/LIBERO
layout, both camera views, proprio parts, per-step atomic-skill label, instruction), plus
<out>/config.yaml and <out>/summary.json (attempts, successes and success rate per task: the scripted
success). Diversity: the expert's approach/grasp points and speed are jittered and `noise` adds
Gaussian noise to the arm actions, all seeded by (seed, task, attempt); the env's observation noise is
seeded by the attempt. Rerunning resumes: demos already on disk are kept and attempts continue.
The recording loop is the LIBERO writer's (envs.demos.collect_demos).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from configs.loader import parse_cli, save_config
from configs.runs import atomic_write_json, seed_everything


@dataclass
class KitchenDemoConfig:
    task: str = "all"  # all | knob,door,light,micro,slide | ids 0-4
    episodes: int = 25  # successful demos per task (R3M: 25)
    max_attempts: int = 0  # 0 = 3 x episodes
    out: str = "runs/demos/kitchen"
    seed: int = 0
    resolution: int = 96
    second_view: str = "left_cap"
    fast_render: bool = True
    noise: float = 0.1  # std of Gaussian noise on the arm actions (units of the (7,) action)
    jitter: float = 0.01  # metres of approach/grasp point jitter
    flush_every: int = 5
    max_steps: int = 0  # 0 = 280

    def validate(self) -> None:
        from envs.kitchen import VIEWS, parse_kitchen_tasks

        parse_kitchen_tasks(self.task)
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {self.episodes}")
        if self.noise < 0 or self.jitter < 0:
            raise ValueError(f"noise and jitter must be >= 0, got {self.noise}, {self.jitter}")
        if self.second_view not in VIEWS:
            raise ValueError(f"second_view must be one of {VIEWS}, got {self.second_view!r}")
        if self.flush_every < 1:
            raise ValueError(f"flush_every must be >= 1, got {self.flush_every}")


def make_task(cfg: KitchenDemoConfig, task_id: int, out: Path) -> dict:
    from envs.demos import DemoWriter, collect_demos
    from envs.kitchen import KitchenEnv
    from envs.skills.kitchen import KitchenScriptedPolicy

    env = KitchenEnv(task_id, resolution=cfg.resolution, render=True, second_view=cfg.second_view,
                     fast_render=cfg.fast_render)
    try:
        t = env.task
        path = out / "kitchen" / f"{t.short}_demo.hdf5"
        writer = DemoWriter(
            path,
            env_args={"type": "kitchen", "env_name": "FrankaKitchen-v1", "suite": "kitchen", "task_id": task_id,
                      "task": t.short, "element": t.element,
                      "env_kwargs": {"resolution": cfg.resolution, "views": ["default", cfg.second_view],
                                     "fast_render": cfg.fast_render, "action": "ee_delta_dls_ik"}},
            problem_info={"problem_name": f"kitchen_{t.short}", "primitive": t.primitive,
                          "language_instruction": t.instruction},
            bddl_file_name="",
        )
        t0 = time.time()
        got = collect_demos(env, KitchenScriptedPolicy(seed=cfg.seed, noise=cfg.noise, jitter=cfg.jitter), writer,
                            episodes=cfg.episodes, max_attempts=cfg.max_attempts or 3 * cfg.episodes,
                            max_steps=cfg.max_steps or env.max_steps,
                            seed_base=cfg.seed * 1_000_003 + task_id * 10_007,
                            progress_path=path.with_suffix(".progress.json"), flush_every=cfg.flush_every,
                            desc=f"kitchen:{t.short}")
        attempt, fails = got["attempts"], got["failures"]
        return {"task_id": task_id, "task": t.short, "element": t.element, "file": str(path), "demos": got["demos"],
                "attempts": attempt, "failures": fails,
                "scripted_success": round((attempt - fails) / attempt, 4) if attempt else None,
                "wall_s": round(time.time() - t0, 1)}
    finally:
        env.close()


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
    from envs.kitchen import parse_kitchen_tasks

    cfg.validate()
    seed_everything(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    summary = {"suite": "kitchen", "tasks": [make_task(cfg, t, out) for t in parse_kitchen_tasks(cfg.task)]}
    prev = out / "summary.json"
    if prev.is_file():  # keep other tasks' rows from earlier runs into the same folder
        old = {r["task_id"]: r for r in json.loads(prev.read_text()).get("tasks", [])}
        old.update({r["task_id"]: r for r in summary["tasks"]})
        summary["tasks"] = [old[k] for k in sorted(old)]
    atomic_write_json(prev, summary)
    for r in summary["tasks"]:
        print(f"kitchen {r['task']}: {r['demos']} demos from {r['attempts']} attempts "
              f"(scripted success {r['scripted_success']}) -> {r['file']}")
    return summary


if __name__ == "__main__":
    main()
