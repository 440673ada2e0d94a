"""Evaluate any policy on LIBERO under the published (OpenVLA) protocol; parallel and resumable.

    python envs/eval_libero.py --suite libero10 --policy random --trials 20 --workers 2 --out runs/eval/x
    python envs/eval_libero.py --suite libero_goal --policy scripted --tasks 0,5,6,7 --out runs/eval/s

`--policy` is `random`, `scripted`, a registered name, or a checkpoint directory (policies.build_policy).
Outputs under --out:
    config.yaml                                   resolved config
    episodes/<suite>/task<TT>/trial<III>.json     one per episode: success, steps, wall_s, status, traceback
    episodes/<suite>/task<TT>/trial<III>.mp4      agentview (| wrist) video
    results.json, results.md                      per task + overall success with 95% Wilson intervals
Rerunning with the same --out skips episodes whose json exists; a crashed episode is stored with
status "error" and its traceback and counts as a failure. Each distinct error is printed (one line,
with its episodes and the json holding the traceback); a rerun keeps errored episodes unless
`retry_errors=true`, which runs them again. The exit status is 1 when every episode errored.

Across processes and machines: launch the same command under torchrun (or `accelerate launch`, the
launcher training uses; both set RANK / WORLD_SIZE / MASTER_ADDR), e.g.

    torchrun --standalone --nproc_per_node 2 envs/eval_libero.py --suite libero10 --policy scripted --out runs/eval/x
    torchrun --nnodes 2 --node_rank R --master_addr HOST --master_port 29500 --nproc_per_node 4 envs/eval_libero.py ...
    accelerate launch --multi_gpu --num_processes 2 envs/eval_libero.py ...   # also on CPU-only machines

The ranks join one gloo group; rank 0 reads the finished records and hands every rank a contiguous
share of the (task, trial) episodes still to run, task-major (`envs.evaluator.rank_jobs`). Each rank
runs its share with its own `--workers` pool and writes its records, which name the `rank` and
`world_size` that ran them; rank 0 gathers them (copying any its disk does not see, so --out need
not be a shared folder; videos stay on the machine that rendered them), and writes results.json /
results.md exactly as a one-process run would (only the records' pid/rank/world_size/wall_s and
the mean wall time differ). Rerunning with any other world size resumes from the records. A rank
with nothing to do (more ranks than episodes left) prints one line and exits with status 0; only
rank 0 prints the table. A rank waits for the others up to `rank_timeout_s` (default 7 days).

This file supplies only LIBERO's part (config, env factory, task list, protocol constants); the
worker pool, records, resume and summaries are the shared core in envs/evaluator.py.
"""

from __future__ import annotations

import functools
import sys
import time
from dataclasses import dataclass

from configs.loader import parse_cli
from envs import protocol
from envs.env_api import make_env
from envs.evaluator import (
    Benchmark,
    episode_path,
    exit_status,
    launch_rank,
    parse_tasks,
    report_errors,
    results_markdown,
    run_evaluation,
)
from envs.policy_api import POLICIES, EnvSpec
from envs.videos import export_gifs

__all__ = ["LiberoEvalConfig", "cli", "episode_path", "evaluate", "libero_benchmark", "main", "parse_tasks"]


@dataclass
class LiberoEvalConfig:
    suite: str = "libero_goal"
    policy: str = "random"
    trials: int = protocol.DEFAULT_TRIALS
    tasks: str = "all"  # "all" or comma-separated task ids, e.g. "0,3,7"
    workers: int = 1
    out: str = "runs/eval/libero"
    seed: int = protocol.ENV_SEED
    seed_per_trial: bool = False  # env.seed(seed + trial) instead of env.seed(seed)
    max_steps: int = 0  # 0 = the protocol's value for the suite
    resolution: int = protocol.RENDER_RESOLUTION
    fast_render: bool = True
    video: bool = True
    video_stride: int = 1  # keep every k-th frame (frames cost a render when the policy is blind)
    wrist_video: bool = False
    retry_errors: bool = False  # rerun episodes whose record has status "error" (a rerun keeps them otherwise)
    progress: bool = True
    gifs: str = ""  # also write one small gif per task (trial 0's video) into this folder
    threads: int = 0  # torch threads per worker process; 0 = the free cores divided between workers
    execution: str = ""  # "" = the checkpoint's; receding | ensemble: run a chunked head either way (same weights)
    rank_timeout_s: float = 0.0  # under torchrun: how long a rank waits for the others (0 = 7 days)
    # one policy process answers every worker's act in batches (envs/policy_server.py); scripted experts and
    # other unservable policies still run in each worker (one stderr line says so)
    policy_server: bool = False
    policy_server_crash: str = "restart"  # the server died mid-episode (that episode is an error): restart | stop
    policy_timeout_s: float = 300.0  # a worker waits this long for the policy server's answer

    def validate(self) -> None:
        self.suite = protocol.canonical_suite(self.suite)
        for name, low in (("trials", 1), ("workers", 1), ("max_steps", 0), ("video_stride", 1), ("threads", 0),
                          ("rank_timeout_s", 0)):
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)}")
        parse_tasks(self.tasks, 10**6)


def libero_protocol(cfg: LiberoEvalConfig) -> dict:
    """The protocol constants recorded in results.json."""
    return {
        "max_steps": cfg.max_steps or protocol.MAX_STEPS[cfg.suite],
        "wait_steps": protocol.NUM_WAIT_STEPS,
        "seed": cfg.seed,
        "seed_per_trial": cfg.seed_per_trial,
        "trials": cfg.trials,
        "resolution": cfg.resolution,
        "renderer": "fast (no shadows/reflections/AA)" if cfg.fast_render else "reference",
        "full_protocol": cfg.trials >= protocol.FULL_PROTOCOL_TRIALS and cfg.max_steps == 0
        and cfg.resolution == protocol.RENDER_RESOLUTION,
    }


def protocol_header(p: dict) -> str:
    """The results.md line that states the protocol."""
    return (f"max steps {p['max_steps']}, {p['wait_steps']} wait steps, seed {p['seed']}, {p['trials']} trials/task, "
            f"{p['resolution']}px, renderer: {p['renderer']}")


def libero_benchmark(cfg: LiberoEvalConfig) -> Benchmark:
    """The LIBERO part of an evaluation: tasks, env factory (envs.env_api.ENVS "libero"), protocol."""
    from envs.libero_env import num_tasks

    task_ids = parse_tasks(cfg.tasks, num_tasks(cfg.suite), cfg.suite)
    name = cfg.policy.split(":", 1)[0]
    if name in POLICIES and str(cfg.tasks).strip() in ("all", ""):
        supported = POLICIES.get(name).supported_tasks(cfg.suite)  # e.g. the scripted expert's programs
        if supported is not None:
            task_ids = [t for t in task_ids if t in supported]
            if not task_ids:
                raise ValueError(f"policy {name!r} has no program for any {cfg.suite} task")
    proto = libero_protocol(cfg)
    return Benchmark(
        title="LIBERO",
        suite=cfg.suite,
        task_ids=task_ids,
        env_factory=functools.partial(make_env, "libero", cfg.suite, resolution=cfg.resolution, wrist=True,
                                      fast_render=cfg.fast_render),
        protocol=proto,
        header=protocol_header(proto),
        record_extra={"fast_render": cfg.fast_render},
        env_spec=EnvSpec(f"libero {cfg.suite}", cameras=protocol.CAMERA_KEYS, proprio_dim=protocol.PROPRIO_DIM,
                         action_dim=protocol.ACTION_DIM),
    )


def evaluate(cfg: LiberoEvalConfig) -> dict:
    """Run (or resume) the evaluation described by cfg; returns the results dict (also written)."""
    cfg.validate()
    return run_evaluation(cfg, libero_benchmark(cfg))


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_cli(
        LiberoEvalConfig,
        argv,
        description=__doc__.split("\n")[0],
        flags={
            "--suite": ("suite", "libero_spatial|libero_object|libero_goal|libero_10|libero_90 (libero10 ok)"),
            "--policy": ("policy", "random | scripted | checkpoint dir"),
            "--trials": ("trials", "episodes per task (50 = full protocol)"),
            "--tasks": ("tasks", "task ids, e.g. 0,3,7 or all"),
            "--workers": ("workers", "parallel episode processes"),
            "--out": ("out", "output directory (rerun to resume)"),
            "--seed": ("seed", "env seed"),
            "--max-steps": ("max_steps", "override the suite's max steps (0 = protocol)"),
        },
    )
    t0 = time.time()
    res = evaluate(cfg)
    rank, _ = launch_rank()
    if rank != 0:  # rank 0 prints the merged table and the errors, once
        return res
    if cfg.gifs:
        for gif in export_gifs(cfg.out, cfg.gifs):
            print(f"gif -> {gif}")
    o = res["overall"]
    print(results_markdown(res, "LIBERO", protocol_header(res["protocol"])))
    print(
        f"overall {o['successes']}/{o['n']} = {100 * o['success_rate']:.1f}% "
        f"(95% CI {100 * o['ci95'][0]:.1f}-{100 * o['ci95'][1]:.1f}), {o['errors']} errors, "
        f"{time.time() - t0:.0f}s -> {cfg.out}"
    )
    report_errors(res, cfg.out)
    return res


def cli(argv: list[str] | None = None) -> int:
    """`main`, with exit status 1 when every episode raised an error."""
    return exit_status(main(argv))


if __name__ == "__main__":
    # run through the package module, so that worker processes unpickle `envs.eval_libero` names
    # (the config class) rather than this script's `__main__`
    from configs.cli import run_cli
    from envs.eval_libero import cli as _cli

    sys.exit(run_cli(_cli))
