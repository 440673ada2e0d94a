"""Generate LIBERO demonstrations with the scripted atomic-skill experts (only successes are kept).

    python scripts/make_libero_demos.py --suite libero_goal --tasks 0,5,6,7 --episodes 50 --out data/libero_demos

Writes <out>/<suite>/<task name>_demo.hdf5 (LIBERO's naming and layout, see envs/demos.py) with a
per-step atomic-skill label; <out>/config.yaml and <out>/summary.json (attempts, successes per task).
Diversity: attempt k starts from init state k mod 50, the skills jitter their waypoints (seeded by
seed and k) and `noise` adds Gaussian noise to the arm actions. Rerunning resumes: demos already on
disk are kept and generation continues from the next attempt.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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


def record_episode(env, policy, trial: int, seed: int, max_steps: int):
    """Run the expert once from init state `trial`; returns (Demo, success)."""
    from envs.demos import Demo

    policy.seed_episode(seed)
    policy.reset()
    policy.bind_env(env)
    obs = env.reset(trial=trial)
    init_state = env.get_state()
    keys = ("agentview_rgb", "eye_in_hand_rgb", "ee_pos", "ee_ori", "gripper_states", "joint_states")
    buf: dict[str, list] = {k: [] for k in keys}
    actions, states, labels = [], [], []
    success = False
    for _ in range(max_steps):
        for k in keys:
            buf[k].append(obs[k])
        states.append(env.get_state())
        a = policy.act(obs, env.instruction)
        labels.append(policy.label)
        actions.append(a)
        obs, _, _, info = env.step(a)
        if info["success"]:
            success = True
            break
    T = len(actions)
    o = {k: np.stack(v) for k, v in buf.items()}
    o["ee_states"] = np.concatenate([o["ee_pos"], o["ee_ori"]], axis=1)
    rewards = np.zeros(T, dtype=np.uint8)
    dones = np.zeros(T, dtype=np.uint8)
    if success:
        rewards[-1] = dones[-1] = 1
    demo = Demo(actions=np.stack(actions), obs=o, states=np.stack(states), rewards=rewards, dones=dones,
                instruction=env.instruction, skills=labels, init_state=init_state,
                attrs={"attempt_seed": seed, "init_trial": trial})
    return demo, success


def make_task(cfg: DemoConfig, task_id: int, out: Path) -> dict:
    from tqdm import tqdm

    from envs.demos import DemoWriter
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
        have = writer.num_demos()
        progress_path = path.with_suffix(".progress.json")
        attempt = json.loads(progress_path.read_text())["attempts"] if progress_path.is_file() else 0
        max_attempts = cfg.max_attempts or 3 * cfg.episodes
        policy = ScriptedPolicy(seed=cfg.seed, noise=cfg.noise)
        max_steps = cfg.max_steps or env.max_steps
        bar = tqdm(total=cfg.episodes, initial=min(have, cfg.episodes), desc=f"{cfg.suite}:{task_id}")
        fails = 0
        t0 = time.time()
        while have + len(writer.pending) < cfg.episodes and attempt < max_attempts:
            trial = attempt % env.n_init_states
            demo, ok = record_episode(env, policy, trial, cfg.seed * 1_000_003 + task_id * 10_007 + attempt, max_steps)
            attempt += 1
            if ok:
                writer.add(demo)
                bar.update(1)
            else:
                fails += 1
            bar.set_postfix(kept=have + len(writer.pending), failed=fails)
            if len(writer.pending) >= cfg.flush_every:
                have = writer.flush()
                atomic_write_json(progress_path, {"attempts": attempt})
        if writer.pending:
            have = writer.flush()
        atomic_write_json(progress_path, {"attempts": attempt})
        bar.close()
        return {"task_id": task_id, "name": env.task.name, "file": str(path), "demos": have,
                "attempts": attempt, "failed_this_run": fails, "wall_s": round(time.time() - t0, 1)}
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
