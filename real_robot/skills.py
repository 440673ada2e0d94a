"""Scripted atomic skills for the twin's workcell, as a step-conditioned Policy, and completion predicates.

    policy = build_policy("twin_scripted")     # after `import real_robot.skills`
    policy.reset()
    a = policy.act(obs, "open the middle drawer")   # (9,) [7 joint targets, gripper 0..1, grip force N]
    policy.done()                                    # True once the skill's waypoints are spent

A skill is a list of task-space waypoints (fingertip position, gripper orientation, gripper command,
frames to wait) built from the observation's scene estimate (tape.*, handle.*) when the step starts;
each waypoint is solved by IK (seeded by the previous one) and reached by joint-space interpolation at
`speed` rad/s (kept below the safety layer's velocity limit). Straight segments that move a grasped
object (pull / push / lift) are split into 2 cm IK waypoints so the fingertip follows a line.

`PREDICATES[verb](obs, step)` says whether a step's outcome holds in an observation (the executor's
default completion check; RoboAct-CLIP's classifier is the alternative, see executor.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from envs.policy_api import POLICIES, Policy
from real_robot.decompose import AtomicStep, decompose
from real_robot.kinematics import R_DOWN, R_FORWARD, ArmKinematics
from real_robot.robot import GRIPPER_KEY, joints_of
from real_robot.twin_scene import CAB_FRONT_X, TAPE_HH, handle_pos

OPEN_DIST = 0.16  # m the drawer is pulled open (enough to reach the tape from above)
TABLE_SPOT = np.array([0.38, -0.25])  # where "on the table" puts an object (free table area)
GRIP_FORCE = 25.0  # N
VIA_X, VIA_Z = 0.30, 0.30  # free point above the table where the gripper changes orientation between skills


def _shut(obs: dict[str, Any]) -> float:
    """1.0 when the measured gripper is shut (on an object or empty), else 0.0; an open gripper reads ~0."""
    return 1.0 if float(obs[GRIPPER_KEY]) > 0.05 else 0.0


def _vec(obs: dict[str, Any], name: str) -> np.ndarray:
    return np.array([float(obs[f"{name}.{a}"]) for a in "xyz"])


class TwinScriptedPolicy(Policy):
    """Scripted skills open / close (drawer), pick / place (tape) for the twin's workcell."""

    def __init__(self, seed: int = 0, control_hz: float = 20.0, speed: float = 1.0, noise: float = 0.0) -> None:
        self.control_hz, self.speed, self.noise = control_hz, speed, noise
        self.rng = np.random.default_rng(seed)
        self.kin = ArmKinematics()
        self.plan: list[tuple[np.ndarray, float]] = []
        self._done = False
        self._step: AtomicStep | None = None

    @classmethod
    def from_spec(cls, spec: str, seed: int = 0, **kwargs: Any) -> TwinScriptedPolicy:
        noise = float(spec.split(":", 1)[1]) if ":" in spec else 0.0
        return cls(seed=seed, noise=noise, **kwargs)

    def seed_episode(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        self.plan, self._done, self._step = [], False, None

    def act(self, obs: dict, instruction: str) -> np.ndarray:
        if self._step is None:
            steps = decompose(instruction)
            if len(steps) != 1:
                raise ValueError(f"a skill runs one atomic step; {instruction!r} has {len(steps)}")
            self._step = steps[0]
            self.plan = self._build(obs, self._step)
        if not self.plan:
            self._done = True
            q = joints_of(obs)
            return np.array([*q, _shut(obs), GRIP_FORCE])
        q, g = self.plan.pop(0)
        self._done = not self.plan
        return np.array([*q, g, GRIP_FORCE])

    def done(self) -> bool:
        return self._done

    def episode_info(self) -> dict[str, Any]:
        return {"skill": self._step.verb if self._step else None}

    # -- planning ---------------------------------------------------------------------------------
    def _build(self, obs: dict[str, Any], step: AtomicStep) -> list[tuple[np.ndarray, float]]:
        q0 = joints_of(obs)
        g0 = _shut(obs)
        jitter = self.rng.normal(0.0, self.noise, 3) if self.noise > 0 else np.zeros(3)
        wps = WAYPOINTS.get(step.verb)
        if wps is None:
            raise ValueError(f"no scripted skill for {step.verb!r} (have {sorted(WAYPOINTS)})")
        plan: list[tuple[np.ndarray, float]] = []
        q, g = q0, g0
        skill = [(pos + jitter, rot, grip, wait, line) for pos, rot, grip, wait, line in wps(obs, step)]
        for pos, rot, grip, wait, line in self._transit(q0, g0, skill[0]) + skill:
            targets = [pos]
            if line:  # straight line from the previous fingertip position, 2 cm IK waypoints
                start, _ = self.kin.fk(q)
                n = max(1, int(np.ceil(np.linalg.norm(pos - start) / 0.02)))
                targets = [start + (pos - start) * (i + 1) / n for i in range(n)]
            for p in targets:
                q_next, err = self.kin.ik(p, rot, q)
                if err > 0.01:
                    raise RuntimeError(f"skill {step.verb}: waypoint {np.round(p, 3)} unreachable ({err:.3f} m)")
                plan += self._interp(q, q_next, g)
                q = q_next
            if grip != g:
                g = grip
            plan += [(q.copy(), g)] * wait
        return plan

    def _transit(self, q0: np.ndarray, g0: float, first: Waypoint) -> list[Waypoint]:
        """Lift clear of the cabinet, reorient at a free via point, and come down onto the first waypoint
        in a straight line (joint-space moves between distant poses sweep the hand through fixtures)."""
        p0, r0 = self.kin.fk(q0)
        p_first, r_first = first[0], first[1]
        up = np.array([min(p0[0], 0.40), p0[1], max(p0[2], VIA_Z)])
        via = np.array([VIA_X, p_first[1], VIA_Z])
        return [(up, r0, g0, 0, True), (via, r0, g0, 0, True), (via, r_first, g0, 0, False),
                (p_first, r_first, first[2], 0, True)]

    def _interp(self, qa: np.ndarray, qb: np.ndarray, g: float) -> list[tuple[np.ndarray, float]]:
        dq = float(np.max(np.abs(qb - qa)))
        n = max(1, int(np.ceil(dq / (self.speed / self.control_hz))))
        return [(qa + (qb - qa) * (i + 1) / n, g) for i in range(n)]


# waypoint lists: (fingertip position (3,), orientation (3, 3), gripper 0/1, frames to wait, straight line?)
Waypoint = tuple[np.ndarray, np.ndarray, float, int, bool]


def _open(obs: dict[str, Any], step: AtomicStep) -> list[Waypoint]:
    h = _vec(obs, "handle")
    back = np.array([-0.10, 0, 0])
    return [(h + back, R_FORWARD, 0.0, 0, False), (h, R_FORWARD, 0.0, 2, True), (h, R_FORWARD, 1.0, 6, False),
            (h + np.array([-OPEN_DIST, 0, 0]), R_FORWARD, 1.0, 10, True),
            (h + np.array([-OPEN_DIST, 0, 0]), R_FORWARD, 0.0, 4, False),
            (h + np.array([-OPEN_DIST - 0.08, 0, 0.0]), R_FORWARD, 0.0, 0, True)]


def _close(obs: dict[str, Any], step: AtomicStep) -> list[Waypoint]:
    h = _vec(obs, "handle")
    shut = handle_pos(0.0) + np.array([0.005, 0, 0])
    return [(h + np.array([-0.10, 0, 0.0]), R_FORWARD, 0.0, 0, False), (h, R_FORWARD, 0.0, 2, True),
            (h, R_FORWARD, 1.0, 6, False), (shut, R_FORWARD, 1.0, 10, True), (shut, R_FORWARD, 0.0, 4, False),
            (shut + np.array([-0.12, 0, 0]), R_FORWARD, 0.0, 0, True)]


def _pick(obs: dict[str, Any], step: AtomicStep) -> list[Waypoint]:
    t = _vec(obs, "tape")
    up = np.array([0, 0, 0.12])
    return [(t + up, R_DOWN, 0.0, 0, False), (t, R_DOWN, 0.0, 2, True), (t, R_DOWN, 1.0, 6, False),
            (t + np.array([0, 0, 0.15]), R_DOWN, 1.0, 2, True)]


def _place(obs: dict[str, Any], step: AtomicStep) -> list[Waypoint]:
    spot = np.array([*TABLE_SPOT, TAPE_HH + 0.01])
    up = np.array([0, 0, 0.15])
    return [(spot + up, R_DOWN, 1.0, 0, False), (spot, R_DOWN, 1.0, 2, True), (spot, R_DOWN, 0.0, 6, False),
            (spot + up, R_DOWN, 0.0, 0, True)]


WAYPOINTS: dict[str, Callable[[dict[str, Any], AtomicStep], list[Waypoint]]] = {
    "open": _open, "close": _close, "pick": _pick, "place": _place,
}  # fmt: skip


def _held(obs: dict[str, Any]) -> bool:
    # the tape sits between the fingertips (perception) and the gripper is shut
    d = np.linalg.norm(_vec(obs, "tape") - _vec(obs, "ee"))
    return bool(d < 0.03 and float(obs[GRIPPER_KEY]) > 0.05)


PREDICATES: dict[str, Callable[[dict[str, Any], AtomicStep], bool]] = {
    "open": lambda o, s: float(o["drawer.open"]) >= 0.10,
    "close": lambda o, s: float(o["drawer.open"]) <= 0.01,
    "pick": lambda o, s: float(o["tape.z"]) >= 0.22 and _held(o),
    "place": lambda o, s: (-0.005 <= float(o["tape.z"]) <= TAPE_HH + 0.012 and float(o["tape.x"]) < CAB_FRONT_X - 0.05
                           and float(o[GRIPPER_KEY]) < 0.05),
}  # fmt: skip

POLICIES.add("twin_scripted", TwinScriptedPolicy)
