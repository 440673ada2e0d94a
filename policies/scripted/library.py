"""Atomic skills for LIBERO scenes, each with a success predicate on privileged state.

Labels (the per-step atomic action written into demos): reach, grasp, lift, place, push, open,
close, turn. Heights are world z; the table top of LIBERO scenes is at z ~0.90.
"""

from __future__ import annotations

import numpy as np

from policies.scripted.core import (
    CLOSE,
    HAND_BOTTOM_ABOVE_EE,
    OPEN,
    R_DOWN,
    Phase,
    Scene,
    Skill,
    hand_clearance,
    hand_yaw,
    rot_z,
    wrap_yaw,
)

CARRY_Z = 0.12  # clearance above the highest point of an object when moving with it


HORIZONTAL_FINGER_SIGN = 1.0


def horizontal_grasp(approach: np.ndarray, finger_sign: float = HORIZONTAL_FINGER_SIGN) -> np.ndarray:
    """(3, 3) hand rotation pointing along horizontal `approach` with fingers closing vertically."""
    z = np.array([approach[0], approach[1], 0.0])
    z /= np.linalg.norm(z)
    # the fingers open along the hand's local x; x = +z vs -z: one of them drives the Panda's wrist
    # joint into its limit. For a hand pointing along -y from the home pose, -1 is a 90-degree turn
    # from it (+1: 180 degrees) and pitching back down lands on the home yaw (policies.scripted.wrist)
    x = np.array([0.0, 0.0, finger_sign])
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=1)


def _jitter(rng: np.random.Generator, sigma: float, z: bool = False) -> np.ndarray:
    j = rng.normal(0.0, sigma, 3)
    if not z:
        j[2] = 0.0
    return j


class Reach(Skill):
    """Move the hand to a point above `obj` (or a site) keeping the gripper as it is."""

    label = "reach"

    def __init__(self, obj: str, height: float = 0.10, grip: float = OPEN, site: bool = False) -> None:
        self.obj, self.height, self.grip, self.site = obj, height, grip, site

    def _goal(self, s: Scene) -> np.ndarray:
        p = s.site(self.obj) if self.site else s.pos(self.obj)
        return p + np.array([0.0, 0.0, self.height])

    def phases(self, s: Scene, rng: np.random.Generator) -> list[Phase]:
        j = _jitter(rng, 0.01)
        return [Phase(lambda sc: self._goal(sc) + j, self.grip, tol=0.01, timeout=120)]

    def success(self, s: Scene) -> bool:
        return bool(np.linalg.norm(s.ee_pos()[:2] - self._goal(s)[:2]) < 0.04)


class Grasp(Skill):
    """Descend onto `obj` from above with yaw aligned to it and close the fingers.

    grasp_dz: grasp point above the object's lowest point (m); yaw_offset: added to the object's yaw
    so the fingers (closing along world y at yaw 0) close across its narrow side.

    Clutter: the palm is ~21 cm long along the finger axis and comes down to 3 cm above the
    fingertips, so a tall neighbour up to ~12 cm away blocks the descent. With `avoid_yaw` (rad) and
    `avoid_shift` (m) > 0 the grasp turns by up to avoid_yaw and slides along the object's long axis
    (across the fingers) by up to avoid_shift to the pose whose palm footprint is furthest from the
    other objects (policies.scripted.core.hand_clearance); a pose already `clear` metres clear is kept."""

    label = "grasp"

    def __init__(self, obj: str, grasp_dz: float = 0.02, yaw_offset: float = 0.0, xy_offset: tuple = (0.0, 0.0),
                 align: bool = True, avoid_yaw: float = 0.0, avoid_shift: float = 0.0, clear: float = 0.01) -> None:
        self.obj, self.grasp_dz, self.yaw_offset, self.xy_offset, self.align = obj, grasp_dz, yaw_offset, xy_offset, align
        self.avoid_yaw, self.avoid_shift, self.clear = avoid_yaw, avoid_shift, clear
        self.clearance: float | None = None  # of the chosen pose, for logs and tests

    def _clear_pose(self, s: Scene, center: np.ndarray, yaw: float, z: float) -> tuple[float, np.ndarray]:
        """(yaw, xy offset) of the candidate grasp pose with the most palm clearance."""
        pts = s.obstacle_points(self.obj, z + HAND_BOTTOM_ABOVE_EE)
        best = (hand_clearance(pts, center, yaw), 0.0, np.zeros(2))
        if best[0] >= self.clear or (self.avoid_yaw <= 0 and self.avoid_shift <= 0):
            self.clearance = best[0]
            return yaw, np.zeros(2)
        for dyaw in np.linspace(-self.avoid_yaw, self.avoid_yaw, 9):
            across = np.array([np.cos(yaw + dyaw), np.sin(yaw + dyaw)])  # palm's short axis
            for shift in np.linspace(-self.avoid_shift, self.avoid_shift, 5):
                off = shift * across
                c = hand_clearance(pts, center + off, yaw + dyaw)
                # prefer the least deviation among poses that are clear enough
                score = min(c, self.clear) - 0.01 * abs(dyaw) - 0.1 * abs(shift)
                if score > min(best[0], self.clear) - 0.01 * abs(best[1]) - 0.1 * float(np.linalg.norm(best[2])):
                    best = (c, float(dyaw), off)
        self.clearance = best[0]
        return wrap_yaw(yaw + best[1]), best[2]

    def phases(self, s: Scene, rng: np.random.Generator) -> list[Phase]:
        lo, hi = s.bbox_z(self.obj)
        yaw = wrap_yaw(s.yaw(self.obj) + self.yaw_offset) if self.align else self.yaw_offset
        R = s.mat(self.obj)
        off = R[:2, :2] @ np.asarray(self.xy_offset) if self.align else np.asarray(self.xy_offset)
        yaw, extra = self._clear_pose(s, s.pos(self.obj)[:2] + off, yaw, lo + self.grasp_dz)
        off = off + extra
        j = _jitter(rng, 0.003)

        def above(sc: Scene) -> np.ndarray:
            p = sc.pos(self.obj)
            return np.array([p[0] + off[0], p[1] + off[1], hi + 0.08]) + j

        def at(sc: Scene) -> np.ndarray:
            p = sc.pos(self.obj)
            return np.array([p[0] + off[0], p[1] + off[1], lo + self.grasp_dz]) + j

        return [
            Phase(above, OPEN, ori=yaw, tol=0.01, timeout=120, label="reach"),
            Phase(at, OPEN, ori=yaw, tol=0.006, timeout=60, speed=0.6),
            Phase(at, CLOSE, ori=yaw, tol=1.0, hold=12, timeout=13),
        ]

    def success(self, s: Scene) -> bool:
        return s.is_grasping(self.obj)


class GraspRim(Grasp):
    """Pinch the rim of a bowl-like object at the point furthest along `direction(scene)` (unit xy),
    fingers spread radially so the hand's long axis points outwards (clear of what is behind).

    radius="fit" finds the wall from the geometry (Scene.rim_circle): needed for mugs, whose body
    origin is off the cup's axis; a number is the rim radius around the body origin."""

    def __init__(self, obj: str, direction, radius: float | str = 0.055, grasp_dz: float = 0.03) -> None:
        super().__init__(obj, grasp_dz=grasp_dz)
        self.direction, self.radius = direction, radius

    def phases(self, s: Scene, rng: np.random.Generator) -> list[Phase]:
        u = np.asarray(self.direction(s), dtype=np.float64)[:2]
        u = u / np.linalg.norm(u)
        if self.radius == "fit":
            centre, r = s.rim_circle(self.obj)
            self.xy_offset = tuple(centre - s.pos(self.obj)[:2] + u * r)
        else:
            self.xy_offset = tuple(u * self.radius)
        # fingers spread along world y at yaw 0; spread along u
        self.yaw_offset = wrap_yaw(float(np.arctan2(u[1], u[0])) - np.pi / 2)
        self.align = False
        return super().phases(s, rng)

    def success(self, s: Scene) -> bool:
        # a wall pinch closes on a few mm of ceramic and often only one finger registers contact
        # while the cup is held: accept a finger on the object with the fingers not fully shut
        return s.finger_contact(self.obj) and s.gripper_opening() > 0.003


class Lift(Skill):
    """Raise the grasped object by `height` (m) from where it was grasped."""

    label = "lift"

    def __init__(self, obj: str, height: float = 0.12, direction=None, slide: float = 0.0) -> None:
        self.obj, self.height = obj, height
        self.direction, self.slide = direction, slide  # optional horizontal slide (e.g. out of a drawer)
        self._z0: float | None = None

    def phases(self, s: Scene, rng: np.random.Generator) -> list[Phase]:
        self._z0 = float(s.pos(self.obj)[2])
        h = self.height + rng.uniform(-0.02, 0.02)

        start = s.ee_pos()
        z_goal = float(start[2]) + h
        phases = []
        if self.direction is not None and self.slide > 0:
            u = np.asarray(self.direction(s), dtype=np.float64)
            u = np.array([u[0], u[1], 0.0]) / np.linalg.norm(u[:2])
            out = start + self.slide * u + np.array([0.0, 0.0, 0.015])
            phases.append(Phase(lambda sc: out, CLOSE, ori=_current_yaw(s), tol=0.01, timeout=40, speed=0.5))
            start = out

        def up(sc: Scene) -> np.ndarray:
            return np.array([start[0], start[1], z_goal])

        phases.append(Phase(up, CLOSE, ori=_current_yaw(s), tol=0.01, timeout=60))
        return phases

    def success(self, s: Scene) -> bool:
        return s.is_grasping(self.obj) and self._z0 is not None and s.pos(self.obj)[2] > self._z0 + 0.05


def _current_yaw(s: Scene) -> float:
    return hand_yaw(s.ee_mat())


class PlaceInRegion(Skill):
    """Carry the grasped `obj` above `target` (object or site), lower it and open the gripper.

    target: an object, a site (site=True) or a callable scene -> (3,) point on the supporting
    surface (e.g. the exposed floor of an open drawer; `region` then names the LIBERO region).
    predicate: 'on' | 'in' (LIBERO's check_ontop / check_contain against `target`) or a callable.
    carry_speed: speed of the move above the target (1 = full); lower for a pinch that a fast swing
    pulls out of the fingers (a bowl by its rim, a moka pot by its handle).
    carry_z: height (m) of the carry above the higher of the target surface and the object's origin
    (lower it when the object was already lifted clear, to save steps)."""

    label = "place"

    def __init__(self, obj: str, target: str, site: bool = False, release_dz: float = 0.04,
                 predicate: str = "on", xy_offset: tuple = (0.0, 0.0), region: str | None = None,
                 carry_speed: float = 1.0, carry_z: float = CARRY_Z) -> None:
        self.obj, self.target, self.site, self.release_dz = obj, target, site, release_dz
        self.predicate, self.xy_offset = predicate, xy_offset
        self.region = region  # LIBERO state the predicate checks against (default: target)
        self.carry_speed, self.carry_z = carry_speed, carry_z

    def _tpos(self, s: Scene) -> np.ndarray:
        if callable(self.target):
            return np.asarray(self.target(s), dtype=np.float64) + np.array([*self.xy_offset, 0.0])
        return (s.site(self.target) if self.site else s.pos(self.target)) + np.array([*self.xy_offset, 0.0])

    def _support_z(self, s: Scene) -> float:
        """Height of the surface the object is set down on (its top for an object or a site's z)."""
        if callable(self.target):
            return float(self._tpos(s)[2])
        return float(s.site(self.target)[2] if self.site else s.bbox_z(self.target)[1])

    def phases(self, s: Scene, rng: np.random.Generator) -> list[Phase]:
        j = _jitter(rng, 0.004)
        # the hand-object offset: keep the object (not the hand) centred over the target
        grip_off = s.ee_pos() - s.pos(self.obj)
        thi = self._support_z(s)
        carry = max(thi, s.pos(self.obj)[2]) + self.carry_z
        olo, _ = s.bbox_z(self.obj)
        obj_bottom_to_ee = s.ee_pos()[2] - olo

        def above(sc: Scene) -> np.ndarray:
            t = self._tpos(sc)
            return np.array([t[0] + grip_off[0], t[1] + grip_off[1], carry]) + j

        def down(sc: Scene) -> np.ndarray:
            t = self._tpos(sc)
            return np.array([t[0] + grip_off[0], t[1] + grip_off[1], thi + obj_bottom_to_ee + self.release_dz]) + j

        def retreat(sc: Scene) -> np.ndarray:
            return sc.ee_pos() + np.array([0.0, 0.0, 0.10])

        yaw = _current_yaw(s)
        return [
            Phase(above, CLOSE, ori=yaw, tol=0.02, timeout=150, speed=self.carry_speed),
            Phase(down, CLOSE, ori=yaw, tol=0.008, timeout=60, speed=0.6),
            Phase(down, OPEN, ori=yaw, tol=1.0, hold=8, timeout=9),
            Phase(retreat, OPEN, ori=yaw, tol=0.02, timeout=30),
        ]

    def success(self, s: Scene) -> bool:
        if callable(self.predicate):
            return bool(self.predicate(s))
        st, tgt = s.state(self.obj), s.state(self.region or self.target)
        # LIBERO's own predicates: In(a, b) = b.contact(a) and b.contain(a); On(a, b) = b.ontop(a)
        if self.predicate == "in":
            return bool(tgt.check_contact(st) and tgt.check_contain(st))
        return bool(tgt.check_ontop(st))


class Push(Skill):
    """Push `obj` along the table until its centre reaches `goal` (xy of a site/object).

    The closed hand is lowered behind the object (opposite the push direction) `push_z` above its
    lowest point and slid towards the goal. `inside=True` is for plates: the fingers go down inside
    the rim, slightly behind the centre, and catch the far rim (`reach` = centre-to-rim distance),
    which needs no free space behind the object."""

    label = "push"

    def __init__(self, obj: str, goal: str, radius: float = 0.06, push_z: float = 0.015, tol: float = 0.03,
                 inside: bool = False, reach: float = 0.045, rim: float = 0.0) -> None:
        self.obj, self.goal, self.radius, self.push_z, self.tol = obj, goal, radius, push_z, tol
        self.inside, self.reach, self.rim = inside, reach, rim

    def _goal(self, s: Scene) -> np.ndarray:
        if self.goal in s.raw.object_sites_dict or self.goal.startswith("main_table"):
            return s.site(self.goal)
        return s.pos(self.goal)

    def phases(self, s: Scene, rng: np.random.Generator) -> list[Phase]:
        p = s.pos(self.obj)
        g = self._goal(s) + _jitter(rng, 0.005)
        d = g[:2] - p[:2]
        u = d / max(float(np.linalg.norm(d)), 1e-6)
        lo, _ = s.bbox_z(self.obj)
        z = lo + self.push_z
        if self.rim > 0:
            # pinch the leading rim (fingers spread along u) and slide the object: robust when
            # whatever lies ahead would make a bare fingertip ride over a low rim
            yaw = wrap_yaw(float(np.arctan2(u[1], u[0])) - np.pi / 2)
            grasp = np.array([*(p[:2] + u * self.rim), z])
            end = np.array([*(g[:2] + u * self.rim), z + 0.005])
            return [
                Phase(lambda sc: grasp + np.array([0, 0, 0.10]), OPEN, ori=yaw, tol=0.01, timeout=120, label="reach"),
                Phase(lambda sc: grasp, OPEN, ori=yaw, tol=0.006, timeout=60, speed=0.6),
                Phase(lambda sc: grasp, CLOSE, ori=yaw, tol=1.0, hold=10, timeout=11),
                Phase(lambda sc: end, CLOSE, ori=yaw, tol=0.008, timeout=150, speed=0.5),
                Phase(lambda sc: sc.ee_pos(), OPEN, ori=yaw, tol=1.0, hold=6, timeout=7),
                Phase(lambda sc: sc.ee_pos() + np.array([0.0, 0.0, 0.08]), OPEN, ori=yaw, tol=0.02, timeout=30),
            ]
        if self.inside:
            start = np.array([*(p[:2] - u * 0.01), z])
            end = np.array([*(g[:2] + u * self.reach), z])
        else:
            start = np.array([*(p[:2] - u * (self.radius + 0.03)), z])
            end = np.array([*(g[:2] - u * self.radius), z])
        # fingers spread across the push direction (at yaw 0 they spread along world y)
        yaw = wrap_yaw(float(np.arctan2(u[1], u[0])))
        return [
            Phase(lambda sc: start + np.array([0, 0, 0.10]), CLOSE, ori=yaw, tol=0.01, timeout=120, label="reach"),
            Phase(lambda sc: start, CLOSE, ori=yaw, tol=0.006, timeout=60, speed=0.6),
            Phase(lambda sc: end, CLOSE, ori=yaw, tol=0.008, timeout=150, speed=0.5),
            Phase(lambda sc: sc.ee_pos() + np.array([0.0, 0.0, 0.08]), CLOSE, ori=yaw, tol=0.02, timeout=30),
        ]

    def success(self, s: Scene) -> bool:
        return bool(np.linalg.norm(s.pos(self.obj)[:2] - self._goal(s)[:2]) < self.tol)


class _Drawer(Skill):
    """Shared geometry: the drawer body of `cabinet` level (top|middle|bottom), its slide joint and
    its handle (the drawer geom furthest along the opening direction)."""

    def __init__(self, cabinet: str, level: str) -> None:
        self.cabinet, self.level = cabinet, level

    @property
    def acts_on(self) -> str:
        return f"{self.level}_drawer"  # the instruction names the drawer ("the top drawer of the cabinet")

    @property
    def region(self) -> str:
        return f"{self.cabinet}_{self.level}_region"

    def joint(self) -> str:
        return f"{self.cabinet}_{self.level}_level"

    def open_dir(self, s: Scene) -> np.ndarray:
        """World unit vector the drawer moves when opening (qpos decreases when opening)."""
        j = s.sim.model.joint_name2id(self.joint())
        axis = np.array(s.sim.data.xaxis[j])
        return -axis / np.linalg.norm(axis)

    def exposed_floor(self, s: Scene, fit: float | None = None) -> np.ndarray:
        """(3,) point on the part of the drawer's floor that is pulled out of the cabinet, at floor
        height: where an object can be set down from above. Its centre, or with `fit` (an object's
        footprint radius plus a margin) that far behind the front wall, so the object stays clear of
        the cabinet face the drawer slides under. Front wall = the widest drawer geom furthest along
        the opening direction; floor = the geom with the lowest top."""
        u = self.open_dir(s)
        side = np.array([-u[1], u[0], 0.0])
        boxes = [s.geom_aabb(g) for g in s.body_geoms(f"{self.cabinet}_cabinet_{self.level}")]
        wide = [(c, h) for c, h in boxes if abs(h @ np.abs(side)) > 0.07]
        fc, fh = max(wide, key=lambda b: b[0] @ u)
        inner = fc - u * (fh @ np.abs(u))  # inside face of the front wall
        floor = min(c[2] + h[2] for c, h in boxes)
        depth = -s.joint_qpos(self.joint())
        p = inner - u * (depth / 2.0 if fit is None else fit)
        return np.array([p[0], p[1], floor])

    def handle(self, s: Scene) -> np.ndarray:
        geoms = s.body_geoms(f"{self.cabinet}_cabinet_{self.level}")
        u = self.open_dir(s)
        xs = np.array([s.sim.data.geom_xpos[g] for g in geoms])
        return xs[int(np.argmax(xs @ u))]


class OpenDrawer(_Drawer):
    """Grasp the drawer handle and pull it out along the slide axis (finger_sign: see horizontal_grasp)."""

    label = "open"

    def __init__(self, cabinet: str, level: str = "middle", pull: float = 0.17,
                 finger_sign: float = HORIZONTAL_FINGER_SIGN, pull_speed: float = 0.5) -> None:
        super().__init__(cabinet, level)
        self.pull, self.finger_sign, self.pull_speed = pull, finger_sign, pull_speed

    def phases(self, s: Scene, rng: np.random.Generator) -> list[Phase]:
        u = self.open_dir(s)
        h = self.handle(s) + _jitter(rng, 0.002)
        # A hand pointing down is ~20 cm wide along the finger axis and hits the cabinet top above the
        # lower drawers, so the handle is taken from the front: hand horizontal, pointing against u,
        # fingers closing vertically on the bar.
        R = horizontal_grasp(-u, self.finger_sign)
        pull = self.pull + rng.uniform(0.0, 0.02)
        return [
            Phase(lambda sc: h + 0.12 * u + np.array([0, 0, 0.03]), OPEN, ori=R, tol=0.012, timeout=120, label="reach"),
            Phase(lambda sc: h + 0.10 * u, OPEN, ori=R, tol=0.01, timeout=40, label="reach"),
            Phase(lambda sc: h - 0.012 * u, OPEN, ori=R, tol=0.006, timeout=60, speed=0.5),
            Phase(lambda sc: h - 0.012 * u, CLOSE, ori=R, tol=1.0, hold=10, timeout=11),
            Phase(lambda sc: h + pull * u, CLOSE, ori=R, tol=0.01, timeout=80, speed=self.pull_speed),
            Phase(lambda sc: sc.ee_pos(), OPEN, ori=R, tol=1.0, hold=6, timeout=7),
            Phase(lambda sc: sc.ee_pos() + 0.06 * u + np.array([0.0, 0.0, 0.04]), OPEN, ori=R, tol=0.02, timeout=30),
        ]

    def success(self, s: Scene) -> bool:
        return bool(s.state(self.region).is_open())


class CloseDrawer(_Drawer):
    """Push the open drawer home (LIBERO's is_close wants the slide at its closed stop).

    style="horizontal": closed hand held horizontally as for opening, fingertips on the handle,
    driven against the opening direction; suits drawers the hand can face without reaching around.
    style="tilted": closed fingers pointing down, spread along the drawer front and turned `tilt`
    rad towards the push, so the palm trails behind the fingertips and clears the cabinet face
    above the drawer when the handle reaches it; suits a low drawer facing away from the robot."""

    label = "close"

    def __init__(self, cabinet: str, level: str, style: str = "horizontal", tilt: float = 0.45,
                 overshoot: float = 0.012) -> None:
        super().__init__(cabinet, level)
        if style not in ("horizontal", "tilted"):
            raise ValueError(f"CloseDrawer style must be 'horizontal' or 'tilted', got {style!r}")
        self.style, self.tilt, self.overshoot = style, tilt, overshoot

    def phases(self, s: Scene, rng: np.random.Generator) -> list[Phase]:
        u = self.open_dir(s)
        h = self.handle(s) + _jitter(rng, 0.002)
        depth = -s.joint_qpos(self.joint())  # how far the drawer is out
        if self.style == "horizontal":
            R = horizontal_grasp(-u)
            start = h + 0.05 * u
            return [
                Phase(lambda sc: start + np.array([0, 0, 0.03]), CLOSE, ori=R, tol=0.012, timeout=120,
                      label="reach"),
                Phase(lambda sc: start, CLOSE, ori=R, tol=0.008, timeout=40, speed=0.6, label="reach"),
                Phase(lambda sc: h - (depth + 0.01) * u, CLOSE, ori=R, tol=0.01, timeout=80, speed=0.6),
                Phase(lambda sc: sc.ee_pos() + 0.06 * u + np.array([0.0, 0.0, 0.03]), CLOSE, ori=R, tol=0.02,
                      timeout=30),
            ]
        push = -u  # into the cabinet
        R = tilted_down(push, self.tilt, spread=np.array([-u[1], u[0], 0.0]))
        contact = h - 0.018 * push + np.array([0.0, 0.0, 0.004])  # fingertips just in front of the bar
        end = contact + (depth + self.overshoot) * push
        return [
            Phase(lambda sc: contact - 0.04 * push + np.array([0, 0, 0.08]), CLOSE, ori=R, tol=0.012, timeout=120,
                  label="reach"),
            Phase(lambda sc: contact - 0.02 * push, CLOSE, ori=R, tol=0.008, timeout=60, speed=0.6, label="reach"),
            Phase(lambda sc: end, CLOSE, ori=R, tol=0.008, timeout=90, speed=0.6),
            Phase(lambda sc: sc.ee_pos() - 0.05 * push + np.array([0.0, 0.0, 0.06]), CLOSE, ori=R, tol=0.02,
                  timeout=30),
        ]

    def success(self, s: Scene) -> bool:
        return bool(s.state(self.region).is_close())


def tilted_down(push: np.ndarray, tilt: float, spread: np.ndarray) -> np.ndarray:
    """(3, 3) hand rotation: pointing down, fingers spreading along horizontal `spread`, then turned
    by `tilt` rad so the fingertips lead along horizontal `push`."""
    sp = np.array([spread[0], spread[1], 0.0]) / np.linalg.norm(spread[:2])
    # at yaw 0 the fingers spread along world y; of the two equivalent yaws take the one in
    # (-pi/2, pi/2], as every other skill does: the other one runs the Panda's wrist into its limit
    yaw = wrap_yaw(float(np.arctan2(sp[1], sp[0])) - np.pi / 2)
    R0 = rot_z(yaw) @ R_DOWN
    d = np.array([push[0], push[1], 0.0]) / np.linalg.norm(push[:2])
    axis = np.cross(np.array([0.0, 0.0, -1.0]), d)
    axis /= np.linalg.norm(axis)
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    Rt = np.eye(3) + np.sin(tilt) * K + (1 - np.cos(tilt)) * K @ K
    return Rt @ R0


class TurnKnob(Skill):
    """Turn a stove knob: grasp its grip ridge from above and rotate the hand about the hinge.

    The knob is a hinge about world z; a counter-clockwise (positive) turn switches it on, and a
    positive hand-yaw action turns the hand counter-clockwise too."""

    label = "turn"

    def __init__(self, stove: str, on: bool = True, angle: float = 1.1, grasp_dz: float = 0.03) -> None:
        self.stove, self.on, self.angle, self.grasp_dz = stove, on, angle, grasp_dz

    @property
    def acts_on(self) -> str:
        return self.stove

    def joint(self) -> str:
        return f"{self.stove}_button"

    def phases(self, s: Scene, rng: np.random.Generator) -> list[Phase]:
        j = s.sim.model.joint_name2id(self.joint())
        c = np.array(s.sim.data.xanchor[j])
        sign = 1.0 if self.on else -1.0
        z = c[2] + self.grasp_dz + rng.uniform(-0.003, 0.003)
        # the ridge runs along the knob's local x; grasp across it (fingers close along hand y at yaw 0)
        yaw0 = _knob_yaw(s, self.stove)
        grasp = np.array([c[0], c[1], z])
        angle = self.angle + rng.uniform(-0.1, 0.1)
        phases = [
            Phase(lambda sc: grasp + np.array([0, 0, 0.08]), OPEN, ori=yaw0, tol=0.01, timeout=120, label="reach"),
            Phase(lambda sc: grasp, OPEN, ori=yaw0, tol=0.006, timeout=60, speed=0.6),
            Phase(lambda sc: grasp, CLOSE, ori=yaw0, tol=1.0, hold=10, timeout=11),
        ]
        for f in (0.35, 0.7, 1.0):
            phases.append(Phase(lambda sc: grasp, CLOSE, ori=yaw0 + sign * f * angle, tol=1.0, hold=12, timeout=13))
        phases += [
            Phase(lambda sc: grasp, OPEN, ori=yaw0 + sign * angle, tol=1.0, hold=6, timeout=7),
            Phase(lambda sc: grasp + np.array([0, 0, 0.08]), OPEN, ori=yaw0 + sign * angle, tol=0.02, timeout=30),
        ]
        return phases

    def success(self, s: Scene) -> bool:
        st = s.state(self.stove)
        return bool(st.turn_on() if self.on else st.turn_off())


def _knob_yaw(s: Scene, stove: str) -> float:
    """Yaw of the knob's grip ridge: principal xy axis of the knob geoms standing above its disc."""
    j = s.sim.model.joint_name2id(f"{stove}_button")
    z0 = s.sim.data.xanchor[j][2]
    pts = np.array([s.sim.data.geom_xpos[g] for g in s.body_geoms(f"{stove}_button")])
    top = pts[pts[:, 2] > z0 + 0.015][:, :2]
    if len(top) < 2:
        return wrap_yaw(s.yaw(f"{stove}_button"))
    d = top - top.mean(axis=0)
    w, v = np.linalg.eigh(d.T @ d)
    ax = v[:, np.argmax(w)]
    return wrap_yaw(float(np.arctan2(ax[1], ax[0])))

