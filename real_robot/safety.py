"""The safety layer between any policy and any Robot backend.

    robot = SafeRobot(make_robot("mujoco_twin"), SafetyLimits())
    robot.connect()                      # starts the watchdog
    sent = robot.send_action(action)     # the command actually forwarded (clipped), LeRobot-style
    robot.estop("operator")              # latches; every command is refused until reset_estop()

Every command is made safe before it reaches the backend, in this order:
1. non-finite values or missing keys -> the command is refused and the arm holds;
2. rate limit: a command arriving sooner than 1 / max_rate_hz after the last forwarded one is dropped
   (the last forwarded command is returned) -- a runaway loop cannot flood the arm;
3. joint position limits: targets clipped into [lower, upper];
4. joint velocity limits: the target moves at most max_joint_vel * dt from the last forwarded target,
   dt = time since that command, capped at max_dt (so a pause does not license a jump);
5. Cartesian workspace: if the fingertip (forward kinematics of the target) leaves the box, the
   target is pulled back along the segment from the last (inside) target to the largest inside point;
6. gripper: command clipped to [0, 1], grip force to [0, max_gripper_force].
Observed wrist force above max_wrist_force trips the e-stop. A watchdog thread holds the arm (at the
last measured joints, else the last target) when no command has arrived within `watchdog_s`; the
next command resumes from the hold. The e-stop latches: commands are refused until `reset_estop()`.
Every intervention is counted in `events`; every forwarded command is kept in `log` (bounded).
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from real_robot.kinematics import ArmKinematics
from real_robot.robot import FT_KEYS, JOINT_KEYS, Robot, action_dict, joints_of
from real_robot.twin_scene import JOINT_LOWER, JOINT_UPPER


@dataclass
class SafetyLimits:
    joint_lower: tuple[float, ...] = tuple(JOINT_LOWER + 0.05)  # a margin inside the hardware stops
    joint_upper: tuple[float, ...] = tuple(JOINT_UPPER - 0.05)
    max_joint_vel: float = 1.5  # rad/s, every joint
    workspace_lo: tuple[float, float, float] = (0.05, -0.5, 0.005)  # fingertip box, metres, world frame
    workspace_hi: tuple[float, float, float] = (0.80, 0.5, 0.70)
    max_gripper_force: float = 40.0  # N
    max_wrist_force: float = 150.0  # N, measured; above it the e-stop trips
    max_rate_hz: float = 100.0
    max_dt: float = 0.1  # s, cap on the dt that licenses a velocity step
    watchdog_s: float = 0.5

    def validate(self) -> None:
        lo, hi = np.asarray(self.joint_lower), np.asarray(self.joint_upper)
        if lo.shape != (7,) or hi.shape != (7,) or np.any(lo >= hi):
            raise ValueError("safety: joint_lower / joint_upper must be 7 values with lower < upper")
        if np.any(np.asarray(self.workspace_lo) >= np.asarray(self.workspace_hi)):
            raise ValueError("safety: workspace_lo must be below workspace_hi on every axis")
        for k in ("max_joint_vel", "max_gripper_force", "max_wrist_force", "max_rate_hz", "max_dt", "watchdog_s"):
            if not getattr(self, k) > 0:
                raise ValueError(f"safety: {k} must be > 0, got {getattr(self, k)}")


class SafetyError(RuntimeError):
    """The robot cannot be operated safely (e.g. it starts outside the workspace)."""


@dataclass
class Sent:
    t: float
    kind: str  # "cmd" | "hold"
    q: np.ndarray  # (7,) joint target forwarded
    gripper: float
    force: float
    ee: np.ndarray = field(default_factory=lambda: np.zeros(3))


class SafeRobot:
    """Wraps any Robot; itself a Robot (same protocol). Thread-safe (one re-entrant lock)."""

    def __init__(self, robot: Robot, limits: SafetyLimits | None = None, kinematics: ArmKinematics | None = None,
                 clock: Callable[[], float] | None = None, watchdog: bool = True, log_size: int = 100_000) -> None:
        self.robot = robot
        self.limits = limits or SafetyLimits()
        self.limits.validate()
        self.kin = kinematics or ArmKinematics()
        # the arm's own clock where the backend has one (a simulator run faster than real time), else wall time
        self.clock = clock or getattr(robot, "clock", time.monotonic)
        self.name = f"safe:{getattr(robot, 'name', 'robot')}"
        self.lo, self.hi = np.asarray(self.limits.joint_lower), np.asarray(self.limits.joint_upper)
        self.box_lo, self.box_hi = np.asarray(self.limits.workspace_lo), np.asarray(self.limits.workspace_hi)
        self.events: collections.Counter[str] = collections.Counter()
        self.log: collections.deque[Sent] = collections.deque(maxlen=log_size)
        self.estopped: str | None = None
        self.last_error = ""  # the watchdog's last failure to hold (a broken link), if any
        self.held = False
        self._lock = threading.RLock()
        self._use_watchdog = watchdog
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._target = np.zeros(7)
        self._gripper, self._force = 0.0, 0.0
        self._last_fwd = 0.0  # time of the last forwarded command (velocity dt, rate limit)
        self._last_cmd = 0.0  # time of the last command received (watchdog)
        self._last_cmd_fwd = -np.inf  # time of the last forwarded policy command (rate limit; not holds)
        self._measured: np.ndarray | None = None

    # -- Robot protocol -------------------------------------------------------------------------
    @property
    def observation_features(self) -> dict[str, Any]:
        return self.robot.observation_features

    @property
    def action_features(self) -> dict[str, Any]:
        return self.robot.action_features

    @property
    def is_connected(self) -> bool:
        return self.robot.is_connected

    def connect(self, calibrate: bool = True) -> None:
        with self._lock:
            if not self.robot.is_connected:
                self.robot.connect()
            obs = self.robot.get_observation()
            q = joints_of(obs)
            self._target = np.clip(q, self.lo, self.hi)
            self._measured = q
            self._gripper = float(obs.get("gripper.pos", 0.0))
            if not self._inside(self._target):
                raise SafetyError(f"arm starts outside the workspace box (fingertip at {self.kin.fk(q)[0].round(3)})")
            # (re)connecting starts fresh timers: a reset simulator's clock restarts at 0
            self._last_fwd = self._last_cmd = self.clock()
            self._last_cmd_fwd = -np.inf
            self.held = False
        if self._use_watchdog and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._watch, name="safety-watchdog", daemon=True)
            self._thread.start()

    def disconnect(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        with self._lock:
            self.robot.disconnect()

    def get_observation(self) -> dict[str, Any]:
        with self._lock:
            obs = self.robot.get_observation()
            self._measured = joints_of(obs)
            if all(k in obs for k in FT_KEYS[:3]):
                f = float(np.linalg.norm([obs[k] for k in FT_KEYS[:3]]))
                if f > self.limits.max_wrist_force and self.estopped is None:
                    self.estop(f"wrist force {f:.1f} N > {self.limits.max_wrist_force} N")
            return obs

    def send_action(self, action: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            now = self.clock()
            self._last_cmd = now
            if self.estopped is not None:
                self.events["refused_estop"] += 1
                return self._as_action()
            try:
                q = np.array([float(action[k]) for k in JOINT_KEYS])
                g = float(action.get("gripper.pos", self._gripper))
                f = float(action.get("gripper.force", self._force))
            except (KeyError, TypeError, ValueError):
                self.events["malformed"] += 1
                return self._hold(now)
            if not (np.all(np.isfinite(q)) and np.isfinite(g) and np.isfinite(f)):
                self.events["nonfinite"] += 1
                return self._hold(now)
            if now - self._last_cmd_fwd < 1.0 / self.limits.max_rate_hz:
                self.events["rate"] += 1
                return self._as_action()
            q = self._limit_joints(q, min(now - self._last_fwd, self.limits.max_dt))
            g2, f2 = float(np.clip(g, 0.0, 1.0)), float(np.clip(f, 0.0, self.limits.max_gripper_force))
            if f2 != f:
                self.events["gripper_force"] += 1
            return self._forward(now, "cmd", q, g2, f2)

    # -- e-stop / watchdog ------------------------------------------------------------------------
    def estop(self, reason: str = "requested") -> None:
        """Hold the arm and refuse every command until `reset_estop()` (latching)."""
        with self._lock:
            self.events["estop"] += 1
            self.estopped = reason
            self._hold(self.clock(), count=False)

    def reset_estop(self) -> None:
        with self._lock:
            self.estopped = None
            self._last_cmd = self.clock()

    def _watch(self) -> None:
        period = self.limits.watchdog_s / 10
        while not self._stop.wait(period / max(1.0, getattr(self.robot, "realtime_scale", 1.0))):
            with self._lock:
                if self.held or not self.robot.is_connected:
                    continue
                try:
                    now = self.clock()
                    if now - self._last_cmd > self.limits.watchdog_s:
                        self.events["watchdog"] += 1
                        self._hold(now, count=False)
                except Exception as e:  # noqa: BLE001 -- a failed hold (link down) must not kill the watchdog
                    self.events["watchdog_error"] += 1
                    self.last_error = f"{type(e).__name__}: {e}"

    # -- internals --------------------------------------------------------------------------------
    def _limit_joints(self, q: np.ndarray, dt: float) -> np.ndarray:
        qc = np.clip(q, self.lo, self.hi)
        if np.any(qc != q):
            self.events["joint_limit"] += 1
        step = self.limits.max_joint_vel * max(dt, 0.0)
        qv = self._target + np.clip(qc - self._target, -step, step)
        if np.any(np.abs(qv - qc) > 1e-12):
            self.events["velocity"] += 1
        if self._inside(qv):
            return qv
        self.events["workspace"] += 1
        # the last target is inside: bisect for the largest inside fraction of the step
        lo, hi = 0.0, 1.0
        for _ in range(20):
            mid = (lo + hi) / 2
            if self._inside(self._target + mid * (qv - self._target)):
                lo = mid
            else:
                hi = mid
        return self._target + lo * (qv - self._target)

    def _inside(self, q: np.ndarray) -> bool:
        p, _ = self.kin.fk(q)
        return bool(np.all(p >= self.box_lo) and np.all(p <= self.box_hi))

    def _hold(self, now: float, count: bool = True) -> dict[str, Any]:
        if count:
            self.events["hold"] += 1
        q = self._measured if self._measured is not None else self._target
        q = np.clip(q, self.lo, self.hi)
        if not self._inside(q):  # never command a target outside the box, even to hold
            q = self._target
        out = self._forward(now, "hold", q, self._gripper, self._force)
        self.held = True
        return out

    def _forward(self, now: float, kind: str, q: np.ndarray, g: float, f: float) -> dict[str, Any]:
        self._target, self._gripper, self._force = q.copy(), g, f
        self._last_fwd = now
        self._last_cmd_fwd = now if kind == "cmd" else -np.inf
        self.held = False
        sent = self.robot.send_action(action_dict(q, g, f))
        self.log.append(Sent(now, kind, q.copy(), g, f, self.kin.fk(q)[0]))
        return sent

    def _as_action(self) -> dict[str, Any]:
        return action_dict(self._target, self._gripper, self._force)
