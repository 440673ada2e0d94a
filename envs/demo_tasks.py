"""Scripted demonstration sets: the per-task recording of the LIBERO and Franka Kitchen demo writers.

    from envs.demo_tasks import KitchenDemoConfig, make_kitchen_demos
    make_kitchen_demos(KitchenDemoConfig(task="slide", episodes=5, out="runs/demos/kitchen"))

`make_libero_task` / `make_kitchen_task` open the env, name the hdf5 file and fill its `env_args` /
`problem_info` (the schema `policies/heads/data.py` and `vla/data.py` read back) and run the shared
recording loop (`envs.demos.collect_demos`) with the scripted expert; `make_libero_demos` /
`make_kitchen_demos` do it for every task of a config and write `config.yaml` + `summary.json`.
The command lines are scripts/make_libero_demos.py and scripts/make_kitchen_demos.py.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from configs.loader import save_config
from configs.runs import atomic_write_json, seed_everything
from envs import protocol
from envs.evaluator import RANK_TIMEOUT_S, Ranks, idle_line, join_ranks

# ------------------------------------------------------------------------------------------- LIBERO
# `--suite all`: the four suites the published VLA numbers average (40 tasks; libero_90 is pretraining data)
ALL_SUITES: tuple[str, ...] = ("libero_spatial", "libero_object", "libero_goal", "libero_10")
FORMATS = ("hdf5", "lerobot")


@dataclass
class LiberoDemoConfig:
    suite: str = "libero_goal"  # a LIBERO suite, or "all" = libero_spatial, libero_object, libero_goal, libero_10
    tasks: str = "all"  # "all" = every task with a scripted program (with suite=all: always "all")
    format: str = "hdf5"  # hdf5 | lerobot: also write <out>/lerobot, the demos as one LeRobot v3.0 dataset
    episodes: int = 50  # successful demos per task
    max_attempts: int = 0  # 0 = 3 x episodes
    out: str = "data/libero_demos"
    seed: int = 0
    resolution: int = 128  # LIBERO's datasets are 128x128
    fast_render: bool = True
    noise: float = 0.02  # std of Gaussian noise on the arm actions
    flush_every: int = 5
    max_steps: int = 0  # 0 = the suite's protocol max
    rank_timeout_s: float = 0.0  # under torchrun: how long a rank waits for the others (0 = 7 days)
    status: bool = False  # true: write nothing, report the demos on disk so far (libero_demo_status)

    def validate(self) -> None:
        if str(self.suite).strip().lower() != "all":
            self.suite = protocol.canonical_suite(self.suite)
        elif str(self.tasks).strip() not in ("all", ""):
            raise ValueError(f"tasks: with suite=all every task with a program is written; got tasks={self.tasks!r}")
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {self.format!r}")
        if self.rank_timeout_s < 0:
            raise ValueError(f"rank_timeout_s must be >= 0, got {self.rank_timeout_s}")
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {self.episodes}")
        if self.noise < 0:
            raise ValueError(f"noise must be >= 0, got {self.noise}")
        if self.flush_every < 1:
            raise ValueError(f"flush_every must be >= 1, got {self.flush_every}")


def demo_file(out: Path, suite: str, name: str) -> Path:
    """A task's demo file: <out>/<suite>/<task name>_demo.hdf5 (suite "kitchen" for Kitchen)."""
    return Path(out) / suite / f"{name}_demo.hdf5"


def make_libero_task(cfg: LiberoDemoConfig, suite: str, task_id: int, out: Path, record: dict | None = None) -> dict:
    from envs.demos import DemoWriter, collect_demos, progress_file
    from envs.libero_env import LiberoEnv
    from envs.policy_api import build_policy

    # render=False: the rollout loop renders both cameras on every step with render_frame, exactly as
    # the evaluator renders a policy's cameras (frames of the state after the step)
    env = LiberoEnv(suite, task_id, resolution=cfg.resolution, render=False, fast_render=cfg.fast_render)
    try:
        path = demo_file(out, suite, env.task.name)
        writer = DemoWriter(
            path,
            env_args={"type": 1, "env_name": env.task.name, "suite": suite, "task_id": task_id,
                      "proprio_keys": list(protocol.PROPRIO_KEYS),
                      "env_kwargs": {"camera_heights": cfg.resolution, "camera_widths": cfg.resolution,
                                     "controller": "OSC_POSE", "fast_render": cfg.fast_render}},
            problem_info={"problem_name": env.raw.__class__.__name__, "language_instruction": env.instruction},
            bddl_file_name=env.task.bddl_file,
        )
        max_steps = cfg.max_steps or env.max_steps
        t0 = time.time()
        expert = build_policy("scripted", seed=cfg.seed, noise=cfg.noise)  # by registered name: envs < policies
        got = collect_demos(env, expert, writer, episodes=cfg.episodes,
                            max_attempts=cfg.max_attempts or 3 * cfg.episodes, max_steps=max_steps,
                            seed_base=cfg.seed * 1_000_003 + task_id * 10_007,
                            progress_path=progress_file(path), flush_every=cfg.flush_every,
                            desc=f"{suite}:{task_id}", trial_of=lambda k: k % env.n_init_states, record=record)
        return {"suite": suite, "task_id": task_id, "name": env.task.name, "file": str(path), "demos": got["demos"],
                "attempts": got["attempts"], "failed_this_run": got["failed_this_run"],
                "wall_s": round(time.time() - t0, 1), "wall_s_all_runs": got["wall_s_all_runs"]}
    finally:
        env.close()


def libero_demo_tasks(cfg: LiberoDemoConfig) -> list[tuple[str, int]]:
    """The (suite, task id) jobs of `cfg` ("all" = every task with a scripted program; suite "all" =
    every such task of ALL_SUITES); an unknown id, or one without a program, is one ValueError line
    naming the valid ones."""
    from envs.evaluator import parse_tasks
    from envs.libero_env import num_tasks
    from envs.policy_api import POLICIES

    scripted = POLICIES.get("scripted")
    if cfg.suite == "all":
        return [(s, t) for s in ALL_SUITES for t in scripted.supported_tasks(s)]
    supported = scripted.supported_tasks(cfg.suite)
    if str(cfg.tasks).strip() in ("all", ""):
        return [(cfg.suite, t) for t in supported]
    tasks = parse_tasks(cfg.tasks, num_tasks(cfg.suite), cfg.suite)
    missing = [t for t in tasks if t not in supported]
    if missing:
        raise ValueError(f"no scripted program for {cfg.suite} tasks {missing}; available: {list(supported)}")
    return [(cfg.suite, t) for t in tasks]


def libero_demo_status(cfg: LiberoDemoConfig) -> dict:
    """The demos of `cfg` on disk so far, without a simulator: per task the demos kept, attempts and the
    wall time of every run up to its last flush (progress.json), and the totals; a task not started
    counts 0; `rank` / `world_size`: the run that last wrote it (None before its first flush, or for
    files written before they were recorded). {"suite", "tasks": [{suite, task_id, name, file, demos,
    attempts, wall_s_all_runs, rank, world_size}], "done_tasks", "demos", "wall_s_all_runs_summed"}."""
    from envs.demos import DemoWriter, progress_file, read_progress
    from envs.libero_env import get_task

    cfg.validate()
    rows = []
    for suite, t in libero_demo_tasks(cfg):
        name = get_task(suite, t).name
        path = demo_file(cfg.out, suite, name)
        p = read_progress(progress_file(path))
        rows.append({"suite": suite, "task_id": t, "name": name, "file": str(path),
                     "demos": DemoWriter(path).num_demos(), "attempts": int(p.get("attempts", 0)),
                     "wall_s_all_runs": float(p.get("wall_s", 0.0)), "rank": p.get("rank"),
                     "world_size": p.get("world_size")})
    return {"suite": cfg.suite, "tasks": rows, "done_tasks": sum(r["demos"] >= cfg.episodes for r in rows),
            "demos": sum(r["demos"] for r in rows),
            "wall_s_all_runs_summed": round(sum(r["wall_s_all_runs"] for r in rows), 1)}


def deal_unfinished(disk: list[dict], episodes: int, rank: int, world: int) -> tuple[list, list]:
    """`disk`: status rows ({suite, task_id, demos, ...}, `libero_demo_status`) -> (the (suite, task id)
    pairs with fewer than `episodes` demos, in order; the share of `rank`: every `world`-th of them)."""
    left = [(r["suite"], r["task_id"]) for r in disk if r["demos"] < episodes]
    return left, left[rank::world]


def make_libero_demos(cfg: LiberoDemoConfig, ranks: Ranks | None = None) -> dict:
    """Demos for every task of `cfg` (resumable); writes <out>/config.yaml and <out>/summary.json.

    Under torchrun / accelerate launch the *unfinished* tasks (fewer than `episodes` demos on disk,
    as rank 0 reads them) are dealt to the ranks in turn (task k of them to rank k mod world): a
    task's demos are one hdf5 file with one writer, resumed from the demos in it and its attempt
    counter (<task>_demo.progress.json), so the task, not the episode, is the unit. Dealing only the
    unfinished tasks, in turn, keeps the ranks balanced when a suite's tasks are slower (libero_10's
    two-step tasks take ~4x libero_object's) and again on every resume. Each summary row names the
    `rank` and `world_size` that wrote its file (recorded in its progress file, so a finished task's
    row keeps the run that wrote it); rank 0 gathers the rows and writes summary.json (rows in task
    order, as one process writes them); every rank returns it. A rank without a task prints one line.
    A rerun with another world size resumes every file."""
    cfg.validate()
    tasks = libero_demo_tasks(cfg)  # before anything is written
    seed_everything(cfg.seed)
    own = ranks is None
    ranks = ranks or join_ranks(cfg.rank_timeout_s or RANK_TIMEOUT_S)
    try:
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        if ranks.main:
            save_config(cfg, out / "config.yaml")
        disk = ranks.broadcast(libero_demo_status(cfg)["tasks"] if ranks.main else None)  # one reading for all
        left, mine = deal_unfinished(disk, cfg.episodes, ranks.rank, ranks.world)
        if ranks.world > 1 and not mine:
            print(idle_line("task(s)", len(left), ranks), flush=True)
        record = {"rank": ranks.rank, "world_size": ranks.world}
        rows = [{**make_libero_task(cfg, s, t, out, record), **record} for s, t in mine]
        if ranks.main:  # finished before this run: their row from disk, no simulator
            rows += [{**r, "failed_this_run": 0, "wall_s": 0.0} for r in disk if r["demos"] >= cfg.episodes]
        every = sorted((r for part in ranks.gather(rows) for r in part),
                       key=lambda r: tasks.index((r["suite"], r["task_id"])))
        # wall_s: this run's; wall_s_all_runs: every run's, up to its last flush (resumed parts added)
        summary: dict = {"suite": cfg.suite, "tasks": every,
                         "wall_s_summed": round(sum(r["wall_s"] for r in every), 1),
                         "wall_s_all_runs_summed": round(sum(r["wall_s_all_runs"] for r in every), 1)}
        if ranks.main and cfg.format == "lerobot" and not any(r["demos"] for r in every):
            summary["lerobot"] = {"path": "", "episodes": 0, "frames": 0, "cameras": [], "wall_s": 0.0}  # nothing to export
        elif ranks.main and cfg.format == "lerobot":
            from envs.lerobot_writer import export_demos

            t0 = time.time()
            lr = export_demos(out, out / "lerobot", fps=protocol.CONTROL_HZ, files=[Path(r["file"]) for r in every])
            summary["lerobot"] = {"path": str(out / "lerobot"), **{k: lr[k] for k in ("episodes", "frames", "cameras")},
                                  "wall_s": round(time.time() - t0, 1)}
        if ranks.main:
            atomic_write_json(out / "summary.json", summary)
        return summary
    finally:
        if own:
            ranks.close()


# ------------------------------------------------------------------------------------------ Kitchen
@dataclass
class KitchenDemoConfig:
    task: str = "all"  # all | knob,door,light,micro,slide | ids 0-4
    episodes: int = 25  # successful demos per task (R3M: 25)
    max_attempts: int = 0  # 0 = 3 x episodes
    out: str = "runs/demos/kitchen"
    seed: int = 0
    resolution: int = 96
    # the second camera (eye_in_hand_rgb): "wrist" tracks the hand; FrankaKitchen-v1's left_cap /
    # right_cap frame the counter / lower cabinets and never the arm (docs/results/policy_heads_tables.md)
    second_view: str = "wrist"
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


def make_kitchen_task(cfg: KitchenDemoConfig, task_id: int, out: Path) -> dict:
    from envs.demos import DemoWriter, collect_demos, progress_file
    from envs.kitchen import PROPRIO_KEYS, KitchenEnv
    from envs.policy_api import build_policy

    env = KitchenEnv(task_id, resolution=cfg.resolution, render=False, second_view=cfg.second_view,
                     fast_render=cfg.fast_render)
    try:
        t = env.task
        path = demo_file(out, "kitchen", t.short)
        writer = DemoWriter(
            path,
            env_args={"type": "kitchen", "env_name": "FrankaKitchen-v1", "suite": "kitchen", "task_id": task_id,
                      "task": t.short, "element": t.element, "proprio_keys": list(PROPRIO_KEYS),
                      "env_kwargs": {"resolution": cfg.resolution, "views": ["default", cfg.second_view],
                                     "fast_render": cfg.fast_render, "action": "ee_delta_dls_ik"}},
            problem_info={"problem_name": f"kitchen_{t.short}", "primitive": t.primitive,
                          "language_instruction": t.instruction},
            bddl_file_name="",
        )
        t0 = time.time()
        expert = build_policy("kitchen_scripted", seed=cfg.seed, noise=cfg.noise, jitter=cfg.jitter)
        got = collect_demos(env, expert, writer,
                            episodes=cfg.episodes, max_attempts=cfg.max_attempts or 3 * cfg.episodes,
                            max_steps=cfg.max_steps or env.max_steps,
                            seed_base=cfg.seed * 1_000_003 + task_id * 10_007,
                            progress_path=progress_file(path), flush_every=cfg.flush_every,
                            desc=f"kitchen:{t.short}")
        attempt, fails = got["attempts"], got["failures"]
        return {"task_id": task_id, "task": t.short, "element": t.element, "file": str(path), "demos": got["demos"],
                "attempts": attempt, "failures": fails,
                "scripted_success": round((attempt - fails) / attempt, 4) if attempt else None,
                "wall_s": round(time.time() - t0, 1)}
    finally:
        env.close()


def make_kitchen_demos(cfg: KitchenDemoConfig) -> dict:
    """Demos for every task of `cfg` (resumable); writes <out>/config.yaml and <out>/summary.json
    (rows of tasks from earlier runs into the same folder are kept)."""
    from envs.kitchen import parse_kitchen_tasks

    cfg.validate()
    seed_everything(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    summary = {"suite": "kitchen", "tasks": [make_kitchen_task(cfg, t, out) for t in parse_kitchen_tasks(cfg.task)]}
    prev = out / "summary.json"
    if prev.is_file():  # keep other tasks' rows from earlier runs into the same folder
        old = {r["task_id"]: r for r in json.loads(prev.read_text()).get("tasks", [])}
        old.update({r["task_id"]: r for r in summary["tasks"]})
        summary["tasks"] = [old[k] for k in sorted(old)]
    atomic_write_json(prev, summary)
    return summary
