"""Side grasps, a carry that keeps the hand's orientation, and a hinged-door skill for the scripted
LIBERO experts (libero_10 task 9: the mug into the microwave, then close it; libero_goal 2: the wine
bottle onto the cabinet).

The microwave's cavity is 14 cm tall under a top plate at z ~1.09, so nothing held from above goes in:
a hand pointing down reaches 12 cm above its fingertips. The mug is therefore taken by the outer bar of
its handle with the hand near horizontal (pointing along `approach`, fingers closing horizontally
across the bar) and slid in cup first, the hand staying outside the opening; the door is then pushed
shut by the closed fingers of a downward hand on its outer face, the target following the door's arc.
The wine bottle (15.7 cm) is taken the same way by its 4.4 cm body, which a downward hand cannot reach.

Conventions as in policies.scripted.core: world frame, metres, radians; a hand rotation's columns are
(finger-closing axis, third axis, pointing axis).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from policies.scripted.core import CLOSE, OPEN, Phase, Scene, Skill, back_off_if_dropped, wrap_yaw


def side_rotation(approach: np.ndarray, finger_sign: float = 1.0, tilt: float = 0.0) -> np.ndarray:
    """(3, 3) hand rotation pointing along horizontal `approach`, tipped `tilt` rad down, with the
    fingers closing horizontally (across the approach); `finger_sign` picks which of the two rolls
    (the hand is symmetric, the wrist is not)."""
    a = np.array([approach[0], approach[1], 0.0])
    a /= np.linalg.norm(a)
    z = np.cos(tilt) * a - np.sin(tilt) * np.array([0.0, 0.0, 1.0])
    x = np.cross(np.array([0.0, 0.0, 1.0]), a) * finger_sign
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=1)


def handle_point(s: Scene, obj: str) -> np.ndarray:
    """(3,) centre of the collision geom of a cup-like `obj` furthest (horizontally) from its wall's
    axis (Scene.rim_circle): the outer bar of a mug's handle."""
    axis, _ = s.rim_circle(obj)
    best, best_d = None, -1.0
    for n in s.raw.get_object(obj).contact_geoms:
        c = s.geom_pos(n)
        d = float(np.linalg.norm(c[:2] - axis))
        if d > best_d:
            best, best_d = c, d
    return np.array(best)


class GraspSide(Skill):
    """Pinch `obj` at point(scene) (world xyz; default the outer bar of its handle, handle_point) with
    a hand pointing along `approach` (unit xy), tipped `tilt` rad down, fingers closing horizontally:
    turn the hand where it is, go `standoff` m above the point and come straight down onto it, the
    open fingers straddling it; the fingertips end `depth` m past the point so the pads cover it.
    The tilt lifts the wrist, which trails 15-20 cm behind the fingertips, over whatever stands
    behind (a second mug)."""

    label = "grasp"

    def __init__(self, obj: str, approach: tuple = (0.0, 1.0), standoff: float = 0.10, depth: float = 0.005,
                 dz: float = 0.0, finger_sign: float = 1.0, tilt: float = 0.0,
                 point: Callable[[Scene], np.ndarray] | None = None) -> None:
        self.obj, self.approach, self.standoff, self.depth, self.dz = obj, approach, standoff, depth, dz
        self.finger_sign, self.tilt, self.point = finger_sign, tilt, point

    def phases(self, s: Scene, rng: np.random.Generator) -> list[Phase]:
        a = np.array([*self.approach, 0.0]) / np.linalg.norm(self.approach)
        R = side_rotation(a, self.finger_sign, self.tilt)
        p = handle_point(s, self.obj) if self.point is None else np.asarray(self.point(s), dtype=np.float64)
        bar = p + np.array([0.0, 0.0, self.dz]) + rng.normal(0.0, 0.002, 3)
        at = bar + self.depth * a
        # turn the hand high above the table first (the turn swings the wrist through a wide arc), then
        # come down onto the bar from above, fingers straddling it: behind the bar there may be no room
        turn = s.ee_pos()
        pre = at + np.array([0.0, 0.0, self.standoff])
        return [
            Phase(lambda sc: turn, OPEN, ori=R, tol=0.02, hold=15, timeout=40, label="reach"),
            Phase(lambda sc: pre, OPEN, ori=R, tol=0.01, timeout=80, label="reach"),
            Phase(lambda sc: at, OPEN, ori=R, tol=0.006, timeout=60, speed=0.5),
            Phase(lambda sc: at, CLOSE, ori=R, tol=1.0, hold=12, timeout=13),
        ]

    def success(self, s: Scene) -> bool:
        return s.finger_contact(self.obj) and s.gripper_opening() > 0.002


class SlideInto(Skill):
    """Carry the held `obj` so its origin reaches target(scene) (world xyz): rise by `lift`, move to
    `front` m short of the target along `direction` (unit xy, or xyz: (0, 0, -1) sets it down from
    above) at `carry_speed` (a light mug pinched by its handle swings out of the fingers on a fast
    carry), slide in at half speed, open the fingers and back out along -direction. The hand keeps
    the orientation it has (a side grasp stays a side grasp). Re-planned by the runner's retry with
    nothing in the fingers, it only backs off: a second carry would close on nothing, or pull a
    placed object back out."""

    label = "place"

    def __init__(self, obj: str, target: Callable[[Scene], np.ndarray], direction: tuple = (0.0, 1.0),
                 lift: float = 0.06, front: float = 0.12, retreat: float = 0.12,
                 predicate: Callable[[Scene], bool] | None = None, carry_speed: float = 1.0) -> None:
        self.obj, self.target, self.direction, self.lift, self.carry_speed = obj, target, direction, lift, carry_speed
        self.front, self.retreat, self.predicate = front, retreat, predicate
        self._planned = False

    def phases(self, s: Scene, rng: np.random.Generator) -> list[Phase]:
        d = np.array([*self.direction, 0.0][:3], dtype=np.float64)
        u = d / np.linalg.norm(d)
        R = s.ee_mat()
        retry, self._planned = self._planned, True
        dropped = back_off_if_dropped(s, self.obj, retry, -self.retreat * u)
        if dropped:
            return dropped
        # the object's origin in the hand frame (fixed while it is held); the hand keeps R, so it goes
        # to target - R @ o_hand
        o_hand = R.T @ (s.pos(self.obj) - s.ee_pos())
        goal = np.asarray(self.target(s), dtype=np.float64) - R @ o_hand + rng.normal(0.0, 0.003, 3) * [1, 1, 0]
        up = s.ee_pos() + np.array([0.0, 0.0, self.lift])
        if u[2] == 0.0:  # a horizontal slide goes in at the carry height
            goal[2] = max(goal[2], up[2])
        before = goal - self.front * u
        return [
            Phase(lambda sc: up, CLOSE, ori=R, tol=0.012, timeout=30, label="lift"),
            Phase(lambda sc: before, CLOSE, ori=R, tol=0.012, timeout=100, speed=self.carry_speed),
            Phase(lambda sc: goal, CLOSE, ori=R, tol=0.008, timeout=60, speed=0.5),
            Phase(lambda sc: goal, OPEN, ori=R, tol=1.0, hold=8, timeout=9),
            Phase(lambda sc: goal - self.retreat * u, OPEN, ori=R, tol=0.015, timeout=40, label="reach"),
        ]

    def success(self, s: Scene) -> bool:
        return bool(self.predicate(s)) if self.predicate is not None else True


class CloseHingedDoor(Skill):
    """Push a door on a vertical hinge shut with the closed fingers on its outer face, hand pointing down.

    joint: the hinge (closing = qpos rising to `closed`); the door's direction from the hinge at
    qpos q is Rz(q) applied to `door_dir0` (its direction when closed) and its outer face is `face` m
    from the hinge line on the side of Rz(q) applied to `out0`. The fingertips go `z` (world, m) high,
    just below the door's top edge, so the hand (7 cm thick across the fingers, from 3 cm above the
    fingertips) rides above the door; the hand's long axis lies along the door, so a handle lower
    down on the face stays under it. They are put `radius` m from the hinge and driven, every step, to
    where that point would be `lead` rad further on, so the hand follows the door's arc, turning with
    it; the target stops `overshoot` rad past `closed` (the joint stops there).

    A hand pointing down is the Panda's easy pose near its base; a horizontal hand pointing at the
    face of a door 35 cm in front of the base folds the wrist into its joint limits (measured)."""

    label = "close"

    def __init__(self, joint: str, door_dir0: tuple = (1.0, 0.0), out0: tuple = (0.0, -1.0), face: float = 0.056,
                 radius: float = 0.12, z: float = 1.085, lead: float = 0.35, closed: float = 0.0,
                 overshoot: float = 0.3, via: tuple | None = None) -> None:
        self.joint, self.door_dir0, self.out0, self.face, self.radius, self.z = joint, door_dir0, out0, face, radius, z
        self.lead, self.closed, self.overshoot = lead, closed, overshoot
        self.via = via  # optional (3,) offset from the hand's position, a waypoint before the reach

    @property
    def acts_on(self) -> str:
        return self.joint  # the door's hinge joint, named after its body (microwave_1_microjoint)

    def _frame(self, s: Scene, q: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(hinge anchor (3,), door direction (3,), outward normal (3,)) at hinge angle q (rad)."""
        j = s.sim.model.joint_name2id(self.joint)
        anchor = np.array(s.sim.data.xanchor[j])
        c, sn = np.cos(q), np.sin(q)
        d0, n0 = np.array(self.door_dir0, dtype=np.float64), np.array(self.out0, dtype=np.float64)
        e = np.array([c * d0[0] - sn * d0[1], sn * d0[0] + c * d0[1], 0.0])
        n = np.array([c * n0[0] - sn * n0[1], sn * n0[0] + c * n0[1], 0.0])
        return anchor, e, n

    def _contact(self, s: Scene, q: float, gap: float) -> np.ndarray:
        anchor, e, n = self._frame(s, q)
        p = anchor + self.radius * e + (self.face + gap) * n
        p[2] = self.z
        return p

    def _yaw(self, s: Scene, q: float) -> float:
        """Hand yaw laying the finger axis (world y at yaw 0) along the door at angle q."""
        e = self._frame(s, q)[1]
        return wrap_yaw(float(np.arctan2(e[1], e[0])) - np.pi / 2)

    def phases(self, s: Scene, rng: np.random.Generator) -> list[Phase]:
        q0 = s.joint_qpos(self.joint)
        yaw0 = self._yaw(s, q0)

        def push(sc: Scene) -> np.ndarray:
            q = sc.joint_qpos(self.joint)
            return self._contact(sc, min(q + self.lead, self.closed + self.overshoot), 0.012)

        def push_yaw(sc: Scene) -> float:
            # unwrapped along the closing so the hand never flips by pi halfway
            q = min(sc.joint_qpos(self.joint), self.closed)
            return yaw0 + (self._yaw(sc, q) - yaw0 + np.pi / 2) % np.pi - np.pi / 2

        start = self._contact(s, q0, 0.05) + rng.normal(0.0, 0.003, 3) * [1, 1, 0]
        touch = self._contact(s, q0, 0.012)
        phases = []
        if self.via is not None:
            via = s.ee_pos() + np.asarray(self.via, dtype=np.float64)
            phases.append(Phase(lambda sc: via, CLOSE, ori=yaw0, tol=0.02, timeout=60, label="reach"))
        return phases + [
            Phase(lambda sc: start + np.array([0.0, 0.0, 0.08]), CLOSE, ori=yaw0, tol=0.015, timeout=120,
                  label="reach"),
            Phase(lambda sc: start, CLOSE, ori=yaw0, tol=0.01, timeout=40, label="reach"),
            Phase(lambda sc: touch, CLOSE, ori=yaw0, tol=0.01, timeout=30, speed=0.6, label="reach"),
            # tol 0: ends on its timeout (the env's success ends the episode once the door is shut)
            Phase(push, CLOSE, ori=push_yaw, tol=0.0, timeout=150, live=True, speed=0.8),
        ]

    def success(self, s: Scene) -> bool:
        return s.joint_qpos(self.joint) > self.closed - 0.005
