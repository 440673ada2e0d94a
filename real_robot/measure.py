"""Measurements for docs/results/real_robot.md: watchdog stopping time on the real-time twin, and the
safety layer's worst limit excess under random / adversarial command streams.

    python -m real_robot.measure --trials 10 --out docs/results/real_robot_safety.json
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import numpy as np

from configs.cli import ArgumentParser, run_cli
from real_robot.robot import JOINT_KEYS, action_dict, joints_of, make_robot  # noqa: E402
from real_robot.safety import SafeRobot, SafetyLimits  # noqa: E402


def watchdog_trial(watchdog_s: float = 0.2, speed: float = 1.0, seed: int = 0) -> dict[str, float]:
    """Stream a j0 sweep at `speed` rad/s on the real-time twin, stop commanding, and time (on the arm's
    clock) the watchdog's hold and the moment j0 slows below 0.02 rad/s."""
    lim = SafetyLimits(watchdog_s=watchdog_s, max_joint_vel=max(speed, 0.1))
    robot = SafeRobot(make_robot("mujoco_twin", realtime_scale=1.0, cameras=(), seed=seed), lim)
    robot.connect()
    try:
        q = joints_of(robot.get_observation())
        t_end = time.monotonic() + 0.4
        while time.monotonic() < t_end:
            q[0] += speed * 0.02
            robot.send_action(action_dict(q, 0.0, 10.0))
            time.sleep(0.02)
        t_last = robot.log[-1].t
        v_last = abs(robot.get_observation()["j0.vel"])
        stop_t = None
        t_give_up = time.monotonic() + 3.0
        while time.monotonic() < t_give_up:
            obs = robot.get_observation()
            if robot.held and abs(obs["j0.vel"]) < 0.02:
                stop_t = robot.clock()
                break
            time.sleep(0.005)
        holds = [s.t for s in robot.log if s.kind == "hold"]
    finally:
        robot.disconnect()
    return {"velocity_at_last_command": v_last, "hold_after_s": (holds[0] - t_last) if holds else float("nan"),
            "stopped_after_s": (stop_t - t_last) if stop_t is not None else float("nan")}


def limit_excess(n_streams: int = 200, length: int = 50, seed: int = 0) -> dict[str, Any]:
    """Random and adversarial command streams through SafeRobot (perfect-tracking fake arm, fake clock);
    the largest excess over each limit among all forwarded commands (0 = never exceeded)."""
    from real_robot.kinematics import ArmKinematics

    rng = np.random.default_rng(seed)
    lim, kin = SafetyLimits(), ArmKinematics()
    lo, hi = np.asarray(lim.joint_lower), np.asarray(lim.joint_upper)
    box_lo, box_hi = np.asarray(lim.workspace_lo), np.asarray(lim.workspace_hi)
    worst = {"joint_position": 0.0, "joint_velocity": 0.0, "workspace": 0.0, "gripper_force": 0.0, "rate": 0.0}
    commands = 0
    events: dict[str, int] = {}
    for _ in range(n_streams):
        clock = [0.0]
        arm = _PerfectArm()
        robot = SafeRobot(arm, lim, kinematics=kin, clock=lambda c=clock: c[0], watchdog=False)
        robot.connect()
        for _ in range(length):
            clock[0] += float(rng.choice([0.0, 0.001, 0.05, 0.5, 3.0]))
            kind = rng.integers(4)
            q = {0: rng.uniform(-4, 4, 7), 1: joints_of(arm.get_observation()) + rng.normal(0, 1.0, 7),
                 2: np.where(rng.random(7) < 0.3, rng.choice([np.nan, np.inf, -1e9]), rng.uniform(-3, 3, 7)),
                 3: np.full(7, rng.choice([-10.0, 10.0]))}[int(kind)]  # fmt: skip
            robot.send_action(action_dict(q, float(rng.uniform(-5, 5)), float(rng.uniform(-500, 500))))
            commands += 1
        prev = None
        for s in robot.log:
            worst["joint_position"] = max(worst["joint_position"], float(np.max(np.r_[lo - s.q, s.q - hi, 0])))
            p, _ = kin.fk(s.q)
            worst["workspace"] = max(worst["workspace"], float(np.max(np.r_[box_lo - p, p - box_hi, 0])))
            worst["gripper_force"] = max(worst["gripper_force"], s.force - lim.max_gripper_force, 0.0)
            if s.kind == "cmd" and prev is not None:
                dt = min(s.t - prev.t, lim.max_dt)
                worst["joint_velocity"] = max(worst["joint_velocity"],
                                              float(np.max(np.abs(s.q - prev.q))) - lim.max_joint_vel * dt)
                if prev.kind == "cmd":
                    worst["rate"] = max(worst["rate"], 1.0 / lim.max_rate_hz - (s.t - prev.t))
            prev = s
        for k, v in robot.events.items():
            events[k] = events.get(k, 0) + v
    return {"streams": n_streams, "commands": commands, "worst_excess": worst, "interventions": events}


class _PerfectArm:
    name = "perfect"
    observation_features = {k: float for k in JOINT_KEYS}
    action_features = {k: float for k in JOINT_KEYS}

    def __init__(self) -> None:
        from real_robot.twin_scene import HOME_Q

        self.q, self.is_connected = HOME_Q.copy(), False

    def connect(self, calibrate: bool = True) -> None:
        self.is_connected = True

    def disconnect(self) -> None:
        self.is_connected = False

    def get_observation(self) -> dict:
        return {k: float(v) for k, v in zip(JOINT_KEYS, self.q)}

    def send_action(self, action: dict) -> dict:
        self.q = np.array([action[k] for k in JOINT_KEYS])
        return action


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(description=__doc__, prog="real_robot/measure.py")
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--watchdog", type=float, default=0.2)
    p.add_argument("--out", default="")
    a = p.parse_args(argv)
    trials = [watchdog_trial(a.watchdog, seed=i) for i in range(a.trials)]
    hold = np.array([t["hold_after_s"] for t in trials])
    stop = np.array([t["stopped_after_s"] for t in trials])
    out = {"watchdog_s": a.watchdog, "trials": trials,
           "hold_after_s": {"mean": float(np.nanmean(hold)), "max": float(np.nanmax(hold))},
           "stopped_after_s": {"mean": float(np.nanmean(stop)), "max": float(np.nanmax(stop))},
           "limits": limit_excess()}  # fmt: skip
    print(json.dumps({k: v for k, v in out.items() if k != "trials"}, indent=1))
    if a.out:
        from configs.runs import atomic_write_json

        atomic_write_json(a.out, out)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
