"""Evaluate any policy on the Franka Kitchen primitives (envs/kitchen.py); parallel and resumable.

    python envs/eval_kitchen.py --task micro --policy runs/policy/x/policy --episodes 50 --out runs/eval/k
    python envs/eval_kitchen.py --task all --policy scripted --episodes 20 --workers 2

`--policy` is `random`, `scripted` (= `kitchen_scripted`, the privileged expert that writes the demos),
a registered name, or a checkpoint directory (policies.build_policy). `--task` is `all` or names/ids
(knob, door, light, micro, slide / 0-4). Outputs under --out follow eval_libero.py exactly (the same
core, envs/evaluator.py): config.yaml, episodes/kitchen/task<TT>/trial<III>.json (+ .mp4),
results.json and results.md with 95% Wilson intervals; rerunning with the same --out resumes, and a
crashed episode is recorded with its traceback and counts as a failure. Each distinct error is
printed (one line, with its episodes and the json holding the traceback); a rerun keeps errored
episodes unless `retry_errors=true`, which runs them again. The exit status is 1 when every episode
errored.

Protocol: FrankaKitchen-v1's initial state (observation noise seeded per episode), one primitive per
episode, success from the env's completion information, 280 steps; the R3M protocol's number is the
best of several such evaluations during training (policies/train.py reports both that and the final).
"""

from __future__ import annotations

import functools
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from configs.loader import parse_cli
from envs import kitchen
from envs.env_api import make_env
from envs.evaluator import (
    Benchmark,
    exit_status,
    launch_rank,
    report_errors,
    results_markdown,
    run_evaluation,
)
from envs.policy_api import POLICY_FILE, EnvSpec, read_policy_file

__all__ = ["KitchenEvalConfig", "cli", "evaluate", "kitchen_benchmark", "main"]


@dataclass
class KitchenEvalConfig:
    task: str = "all"  # "all" or comma-separated names / ids: knob, door, light, micro, slide
    policy: str = "random"
    episodes: int = 50
    workers: int = 1
    out: str = "runs/eval/kitchen"
    seed: int = 0
    seed_per_trial: bool = True  # FrankaKitchen-v1 has one initial state: the seed draws the obs noise
    max_steps: int = 0  # 0 = 280, FrankaKitchen-v1's episode length
    resolution: int = 96
    # left_cap | right_cap | wrist | default; "" = the policy's: the second camera of the demos a head was
    # trained on (policy.json trained_on.cameras), else left_cap (blind and scripted policies)
    second_view: str = ""
    fast_render: bool = True
    video: bool = True
    video_stride: int = 1
    wrist_video: bool = False  # also film the second view, side by side
    retry_errors: bool = False  # rerun episodes whose record has status "error" (a rerun keeps them otherwise)
    progress: bool = True
    threads: int = 0
    execution: str = ""  # "" = the checkpoint's; receding | ensemble: run a chunked head either way (same weights)
    # one policy process answers every worker's act in batches (envs/policy_server.py); scripted experts and
    # other unservable policies still run in each worker (one stderr line says so)
    policy_server: bool = False
    policy_server_crash: str = "restart"  # the server died mid-episode (that episode is an error): restart | stop
    policy_timeout_s: float = 300.0  # a worker waits this long for the policy server's answer

    @property
    def trials(self) -> int:  # the evaluator core's name for episodes per task
        return self.episodes

    def validate(self) -> None:
        if self.policy == "scripted":
            self.policy = "kitchen_scripted"
        for name, low in (("episodes", 1), ("workers", 1), ("max_steps", 0), ("video_stride", 1), ("threads", 0),
                          ("resolution", 8)):
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)}")
        trained = policy_cameras(self.policy)
        if not self.second_view:
            self.second_view = trained[1] if len(trained) > 1 else "left_cap"
        if self.second_view not in kitchen.VIEWS:
            raise ValueError(f"second_view must be one of {kitchen.VIEWS}, got {self.second_view!r}")
        if len(trained) > 1 and trained[1] != self.second_view:
            raise ValueError(f"second_view={self.second_view} but {self.policy} was trained on demos filmed with "
                             f"{'+'.join(trained)} (policy.json trained_on.cameras): drop second_view= or set "
                             f"second_view={trained[1]}")
        kitchen.parse_kitchen_tasks(self.task)


def policy_cameras(policy: str) -> list[str]:
    """The cameras of the demos a checkpoint's head was trained on (policy.json trained_on.cameras),
    [] for a registered policy or a checkpoint that does not say."""
    path = Path(policy)
    if not (path / POLICY_FILE).is_file():
        return []
    cams = read_policy_file(path).get("trained_on", {}).get("cameras", [])
    return [str(c) for c in cams] if isinstance(cams, list) else []


def kitchen_protocol(cfg: KitchenEvalConfig) -> dict:
    return {
        "env": "gymnasium-robotics FrankaKitchen-v1 (MuJoCo 3.3.2)",
        "max_steps": cfg.max_steps or kitchen.MAX_STEPS,
        "seed": cfg.seed,
        "seed_per_trial": cfg.seed_per_trial,
        "episodes": cfg.episodes,
        "resolution": cfg.resolution,
        "views": ["default", cfg.second_view],
        "action": f"ee delta (pos x{kitchen.POS_STEP} m, rot x{kitchen.ROT_STEP} rad) + gripper, DLS IK",
        "renderer": "fast (no shadows/reflections/skybox/AA)" if cfg.fast_render else "reference",
    }


def protocol_header(p: dict) -> str:
    return (f"{p['env']}; max steps {p['max_steps']}, seed {p['seed']}, {p['episodes']} episodes/task, "
            f"{p['resolution']}px views {'+'.join(p['views'])}, renderer: {p['renderer']}")


def kitchen_benchmark(cfg: KitchenEvalConfig) -> Benchmark:
    """The Kitchen part of an evaluation: tasks, env factory (envs.env_api.ENVS "kitchen"), protocol."""
    proto = kitchen_protocol(cfg)
    return Benchmark(
        title="Franka Kitchen",
        suite=kitchen.SUITE,
        task_ids=kitchen.parse_kitchen_tasks(cfg.task),
        env_factory=functools.partial(make_env, "kitchen", kitchen.SUITE, resolution=cfg.resolution,
                                      second_view=cfg.second_view, fast_render=cfg.fast_render),
        protocol=proto,
        header=protocol_header(proto),
        record_extra={"fast_render": cfg.fast_render},
        env_spec=EnvSpec("kitchen", cameras=kitchen.CAMERA_KEYS, proprio_dim=kitchen.PROPRIO_DIM, action_dim=7),
    )


def evaluate(cfg: KitchenEvalConfig) -> dict:
    """Run (or resume) the evaluation described by cfg; returns the results dict (also written)."""
    cfg.validate()
    return run_evaluation(cfg, kitchen_benchmark(cfg))


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_cli(
        KitchenEvalConfig,
        argv,
        description=__doc__.split("\n")[0],
        flags={
            "--task": ("task", "all | knob,door,light,micro,slide | ids 0-4"),
            "--policy": ("policy", "random | scripted | checkpoint dir"),
            "--episodes": ("episodes", "episodes per task"),
            "--workers": ("workers", "parallel episode processes"),
            "--out": ("out", "output directory (rerun to resume)"),
            "--seed": ("seed", "env seed"),
            "--max-steps": ("max_steps", "override the 280-step episodes (0 = protocol)"),
        },
    )
    t0 = time.time()
    res = evaluate(cfg)
    if launch_rank()[0] != 0:  # under torchrun, rank 0 prints the merged table and the errors, once
        return res
    o = res["overall"]
    print(results_markdown(res, "Franka Kitchen", protocol_header(res["protocol"])))
    print(f"overall {o['successes']}/{o['n']} = {100 * o['success_rate']:.1f}% "
          f"(95% CI {100 * o['ci95'][0]:.1f}-{100 * o['ci95'][1]:.1f}), {o['errors']} errors, "
          f"{time.time() - t0:.0f}s -> {cfg.out}")
    report_errors(res, cfg.out)
    return res


def cli(argv: list[str] | None = None) -> int:
    """`main`, with exit status 1 when every episode raised an error."""
    return exit_status(main(argv))


if __name__ == "__main__":
    from configs.cli import run_cli
    from envs.eval_kitchen import cli as _cli  # workers unpickle envs.eval_kitchen names, not __main__

    sys.exit(run_cli(_cli))
