"""Run a long-horizon task on a robot by atomic-step decomposition (roboact_clip.txt Sec. IV-D).

    python real_robot/run_task.py --robot mujoco_twin \
        --task "open the middle drawer, pick up the tape, place it on the table, close the drawer"
    python real_robot/run_task.py --robot mujoco_twin --runs 20 --out docs/results/real_robot.json
    python real_robot/run_task.py --policy runs/real_robot/twin_head/policy --runs 20 --seed 1000  # learned (policies/heads/twin.py)
    python real_robot/run_task.py --robot tcp port=50710 --runs 1            # through scripts/arm_bridge_server.py
    python real_robot/run_task.py --robot mujoco_twin realtime_scale=1.0 --runs 1   # real time, paced at 20 Hz
    python real_robot/run_task.py --policy runs/real_robot/twin_vis_backbone_mean/policy --runs 20 --seed 1000 \
        tape_jitter=[0.015,0.08]        # a camera head (its cameras are rendered), tape jittered +-8 cm in y
    python real_robot/run_task.py --robot tcp host=10.0.0.5 port=50710 pace_hz=20   # a real arm's bridge

Every command goes through the safety layer (real_robot/safety.py). Prints the plan, each step's
outcome, and a Table V-style summary (per-subtask success over the runs); `--out` writes it as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from typing import Any

from configs.loader import parse_cli  # noqa: E402
from configs.runs import atomic_write_json  # noqa: E402

TASK = "open the middle drawer, pick up the tape, place it on the table, close the drawer"


@dataclasses.dataclass
class RunTaskConfig:
    robot: str = "mujoco_twin"  # a registered robot: mujoco_twin | tcp
    task: str = TASK
    policy: str = "twin_scripted"  # a registered policy (name or name:arg) or a checkpoint directory
    planner: str = "rules"  # rules | llm (annotation parser's OpenAI-compatible client; set parser_url/model)
    parser_url: str = ""
    parser_model: str = ""
    checker: str = "predicate"  # predicate | classifier:<RoboAct-CLIP export dir>
    runs: int = 1
    seed: int = 0
    retries: int = 1
    max_frames: int = 400
    realtime_scale: float = 0.0  # twin only: 0 = as fast as possible, 1 = real time
    pace_hz: float = 0.0  # commands per wall-clock second (0 = unpaced; the twin in real time: 20 x scale)
    cameras: list[str] = dataclasses.field(default_factory=list)  # twin cameras to render ([] = none)
    # twin only: (x, y) half-ranges in metres of the tape's seeded start jitter ([] = the twin's default,
    # +-1.5 cm, inside the grasp radius); e.g. tape_jitter=[0.015,0.08] puts the tape where a blind policy misses
    tape_jitter: list[float] = dataclasses.field(default_factory=list)
    host: str = "127.0.0.1"  # tcp only
    port: int = 50710  # tcp only
    token_file: str = ""  # tcp only: the bridge's shared token (owner-only file); "" = $ATOMVLA_BRIDGE_TOKEN or none
    watchdog_s: float = 0.5
    out: str = ""  # JSON results file ("" = print only)


def build_robot(cfg: RunTaskConfig) -> Any:
    import real_robot.skills  # noqa: F401 -- registers the twin_scripted policy
    from real_robot.robot import make_robot

    if cfg.robot == "tcp":
        return make_robot("tcp", host=cfg.host, port=cfg.port, token_file=cfg.token_file or None)
    kw: dict[str, Any] = {"realtime_scale": cfg.realtime_scale, "cameras": tuple(cfg.cameras), "seed": cfg.seed}
    if cfg.tape_jitter:
        kw["tape_jitter"] = tuple(cfg.tape_jitter)
    return make_robot(cfg.robot, **kw)


def build_checker(cfg: RunTaskConfig) -> Any:
    from real_robot.executor import ClassifierChecker, PredicateChecker

    if cfg.checker == "predicate":
        return PredicateChecker()
    if cfg.checker.startswith("classifier:"):
        from encoders.base import build_encoder

        enc = build_encoder(cfg.checker.split(":", 1)[1])
        return ClassifierChecker(enc)
    raise ValueError(f"checker must be 'predicate' or 'classifier:<dir>', got {cfg.checker!r}")


def run(cfg: RunTaskConfig) -> dict[str, Any]:
    from envs.policy_api import build_policy
    from real_robot.decompose import decompose
    from real_robot.executor import Executor, table_v
    from real_robot.safety import SafeRobot, SafetyLimits

    parser_cfg = None
    if cfg.planner == "llm":
        from real_robot.decompose import _parsers

        ap = _parsers()
        parser_cfg = ap.ParserConfig(name="openai_compatible", url=cfg.parser_url, model=cfg.parser_model)
    steps = decompose(cfg.task, planner=cfg.planner, parser_cfg=parser_cfg)
    print("plan:", " -> ".join(s.instruction for s in steps))
    policy = build_policy(cfg.policy, seed=cfg.seed)
    if cfg.robot == "mujoco_twin":  # a policy that reads cameras gets them rendered (twin_head with an encoder)
        cfg.cameras = list(dict.fromkeys([*cfg.cameras, *getattr(policy, "inputs", None).cameras]))
    backend = build_robot(cfg)
    robot = SafeRobot(backend, SafetyLimits(watchdog_s=cfg.watchdog_s))
    checker = build_checker(cfg)
    episodes = []
    t0 = time.monotonic()
    try:
        for i in range(cfg.runs):
            if hasattr(backend, "reset"):
                backend.reset(cfg.seed + i)
            robot.connect()
            if robot.estopped is not None:  # the operator clears a latched e-stop between episodes
                print(f"run {i}: resetting e-stop ({robot.estopped})")
                robot.reset_estop()
            policy.seed_episode(cfg.seed + i)
            pace = cfg.pace_hz or (20.0 * cfg.realtime_scale if cfg.robot == "mujoco_twin" else 0.0)
            ep = Executor(robot, policy, checker, retries=cfg.retries, max_frames=cfg.max_frames,
                          pace_hz=pace).run(cfg.task, steps)
            episodes.append(ep)
            marks = " ".join(f"{s.verb}:{'ok' if s.success else 'FAIL'}({s.attempts})" for s in ep.steps)
            stop = f"  [e-stop: {ep.estop}]" if ep.estop else ""
            print(f"run {i}: {'success' if ep.success else 'failure'}  {marks}{stop}", flush=True)
    finally:
        events = dict(robot.events)
        robot.disconnect()
    summary = table_v(episodes)
    out = {"config": dataclasses.asdict(cfg), "plan": [s.instruction for s in steps], "table_v": summary,
           "safety_events": events, "wall_s": round(time.monotonic() - t0, 1),
           "episodes": [e.to_dict() for e in episodes]}
    print(json.dumps(summary, indent=1))
    if cfg.out:
        atomic_write_json(cfg.out, out)
    return out


def main(argv: list[str] | None = None) -> int:
    cfg = parse_cli(RunTaskConfig, argv, description=__doc__, flags={
        "--robot": ("robot", "robot backend"), "--task": ("task", "task instruction"),
        "--policy": ("policy", "step-conditioned policy"), "--runs": ("runs", "episodes"),
        "--seed": ("seed", "first episode seed"), "--out": ("out", "results JSON"),
    })  # fmt: skip
    from configs.threads import default_threads

    default_threads()  # nothing here uses torch threads unless a classifier is loaded; keep the policy cheap
    out = run(cfg)
    return 0 if out["episodes"] and all(e["success"] for e in out["episodes"]) else 1


if __name__ == "__main__":
    from configs.cli import run_cli

    sys.exit(run_cli(main))  # an unknown robot or policy: one line, exit 2
