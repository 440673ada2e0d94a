"""Privileged-state servoing for the scripted LIBERO experts (OSC_POSE delta controller).

Geometry facts the skills rely on (measured in LIBERO's Panda scenes, robosuite 1.4):
- an arm action of 1.0 asks for a 5 cm / 0.5 rad goal offset; the arm then moves ~1 cm per step;
- rotation actions are world-frame axis-angle (positive z turns the hand counter-clockwise from above);
- at yaw 0 the hand points down and the fingers close along world y.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from envs import protocol

# hand pointing down, fingers closing along world y: the orientation LIBERO scenes start in
R_DOWN = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
OPEN, CLOSE = -1.0, 1.0


def rot_z(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rotvec(R: np.ndarray) -> np.ndarray:
    """(3, 3) rotation -> (3,) axis-angle."""
    cos = np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0)
    angle = np.arccos(cos)
    if angle < 1e-6:
        return np.zeros(3)
    axis = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    n = np.linalg.norm(axis)
    if n < 1e-8:  # angle ~ pi: take the axis from the symmetric part
        w, v = np.linalg.eigh((R + np.eye(3)) / 2.0)
        axis = v[:, np.argmax(w)]
        n = 1.0
    return axis / n * angle


def hand_yaw(R: np.ndarray) -> float:
    """Yaw (rad, unwrapped to (-pi, pi]) of a downward hand with rotation R (3, 3): at yaw 0 the
    hand's x axis (the finger-closing axis) is world +y (R_DOWN)."""
    return float(np.arctan2(-R[0, 0], R[1, 0]))


def wrap_yaw(yaw: float, period: float = np.pi) -> float:
    """Bring a grasp yaw into (-period/2, period/2]: a parallel gripper is symmetric under pi."""
    return float((yaw + period / 2) % period - period / 2)


class Scene:
    """Read-only privileged views of a LiberoEnv's simulator."""

    def __init__(self, env: Any) -> None:
        self.env = env
        self.raw = env.raw
        self.sim = env.sim
        self.robot = self.raw.robots[0]
        self._eef = self.robot.eef_site_id

    # robot
    def ee_pos(self) -> np.ndarray:
        return np.array(self.sim.data.site_xpos[self._eef])

    def ee_mat(self) -> np.ndarray:
        return np.array(self.sim.data.site_xmat[self._eef]).reshape(3, 3)

    def gripper_opening(self) -> float:
        """Finger gap in metres (~0.08 open, ~0 closed on nothing)."""
        q = self.sim.data.qpos[self.robot._ref_gripper_joint_pos_indexes]
        return float(abs(q[0]) + abs(q[1]))

    # objects
    def body_id(self, name: str) -> int:
        if name in self.raw.obj_body_id:
            return self.raw.obj_body_id[name]
        return self.sim.model.body_name2id(name)

    def pos(self, name: str) -> np.ndarray:
        return np.array(self.sim.data.body_xpos[self.body_id(name)])

    def mat(self, name: str) -> np.ndarray:
        return np.array(self.sim.data.body_xmat[self.body_id(name)]).reshape(3, 3)

    def yaw(self, name: str) -> float:
        R = self.mat(name)
        return float(np.arctan2(R[1, 0], R[0, 0]))

    def site(self, name: str) -> np.ndarray:
        return np.array(self.sim.data.site_xpos[self.sim.model.site_name2id(name)])

    def joint_qpos(self, name: str) -> float:
        return float(self.sim.data.qpos[self.sim.model.get_joint_qpos_addr(name)])

    def geom_pos(self, name: str) -> np.ndarray:
        return np.array(self.sim.data.geom_xpos[self.sim.model.geom_name2id(name)])

    def body_geoms(self, body: str) -> list[int]:
        m = self.sim.model._model
        b = self.sim.model.body_name2id(body)
        return [g for g in range(m.body_geomadr[b], m.body_geomadr[b] + m.body_geomnum[b]) if m.geom_contype[g] or m.geom_conaffinity[g]]

    def rim_circle(self, obj: str, band: float = 0.02) -> tuple[np.ndarray, float]:
        """(centre xy (2,), radius) of a cup-like object's wall: a least-squares circle through the
        xy centres of the collision geoms that reach within `band` of its top, dropping the worst
        point while it is > 8 mm off (a handle). Mug body origins are not on the cup's axis."""
        pts = []
        _, hi = self.bbox_z(obj)
        for n in self.raw.get_object(obj).contact_geoms:
            c, half = self.geom_aabb(self.sim.model.geom_name2id(n))
            if c[2] + half[2] > hi - band:
                pts.append(c[:2])
        p = np.array(pts)
        while True:
            # x^2 + y^2 = 2 a x + 2 b y + c  (Kasa fit)
            A = np.column_stack([2 * p[:, 0], 2 * p[:, 1], np.ones(len(p))])
            sol, *_ = np.linalg.lstsq(A, (p ** 2).sum(1), rcond=None)
            centre = sol[:2]
            r = float(np.sqrt(sol[2] + centre @ centre))
            res = np.abs(np.linalg.norm(p - centre, axis=1) - r)
            if res.max() <= 0.008 or len(p) <= 4:
                return centre, r
            p = np.delete(p, int(res.argmax()), axis=0)

    def geom_points(self, obj: str) -> np.ndarray:
        """World points (N, 3) covering an object's collision geoms: box geoms as a 3x3x3 lattice
        over the box, meshes as their vertices."""
        m = self.sim.model._model
        pts = []
        for n in self.raw.get_object(obj).contact_geoms:
            g = self.sim.model.geom_name2id(n)
            c = np.array(self.sim.data.geom_xpos[g])
            R = np.array(self.sim.data.geom_xmat[g]).reshape(3, 3)
            if m.geom_type[g] == 7:  # mesh
                mid = m.geom_dataid[g]
                local = m.mesh_vert[m.mesh_vertadr[mid]:m.mesh_vertadr[mid] + m.mesh_vertnum[mid]]
            else:
                size = m.geom_size[g] if m.geom_type[g] == 6 else np.full(3, m.geom_size[g][0])
                grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, 3)] * 3, indexing="ij"), -1).reshape(-1, 3)
                local = grid * size
            pts.append(local @ R.T + c)
        return np.concatenate(pts) if pts else np.zeros((0, 3))

    def footprint_radius(self, obj: str) -> float:
        """Largest horizontal distance (m) of the object's collision geometry from its body origin."""
        d = self.geom_points(obj)[:, :2] - self.pos(obj)[:2]
        return float(np.linalg.norm(d, axis=1).max())

    def obstacle_points(self, exclude: str, above_z: float) -> np.ndarray:
        """xy points (N, 2) of the collision geoms of every object but `exclude` that reach above
        `above_z` (see geom_points)."""
        pts = []
        for name in self.raw.obj_body_id:
            if name == exclude:
                continue
            w = self.geom_points(name)
            w = w[w[:, 2] > above_z]
            if len(w):
                pts.append(w[:, :2])
        return np.concatenate(pts) if pts else np.zeros((0, 2))

    def finger_contact(self, obj: str) -> bool:
        """Some finger (pad or finger body) touches `obj`."""
        g = self.robot.gripper.important_geoms
        model = self.raw.get_object(obj)
        return bool(self.raw.check_contact(g["left_finger"] + g["right_finger"], model))

    def state(self, name: str) -> Any:
        """LIBERO's object-state object (is_open, turn_on, check_ontop, check_contain, ...)."""
        return self.raw.object_states_dict[name]

    def is_grasping(self, obj: str) -> bool:
        """Each finger (pad or finger body) touches `obj`. robosuite's own check wants both pads,
        which a rim pinch (one finger inside a mug, one outside) rarely satisfies."""
        g = self.robot.gripper.important_geoms
        model = self.raw.get_object(obj)
        return bool(self.raw._check_grasp(gripper=[g["left_finger"], g["right_finger"]], object_geoms=model))

    def geom_aabb(self, g: int) -> tuple[np.ndarray, np.ndarray]:
        """(centre (3,), half-extents (3,)) of geom `g`'s world axis-aligned box: exact for box
        geoms, the largest size in every direction for other shapes."""
        c = np.array(self.sim.data.geom_xpos[g])
        size = self.sim.model._model.geom_size[g]
        if self.sim.model._model.geom_type[g] == 6:
            return c, np.abs(np.array(self.sim.data.geom_xmat[g]).reshape(3, 3)) @ size
        return c, np.full(3, size.max())

    def bbox_z(self, obj: str) -> tuple[float, float]:
        """World z-range of an object's collision geoms (for grasp heights)."""
        lo, hi = np.inf, -np.inf
        for n in self.raw.get_object(obj).contact_geoms:
            c, half = self.geom_aabb(self.sim.model.geom_name2id(n))
            lo, hi = min(lo, c[2] - half[2]), max(hi, c[2] + half[2])
        return float(lo), float(hi)


# Footprint of the open Panda hand (hand body + fingers) around the eef site, in the yaw-0 frame
# (fingers closing along world y), measured from the gripper meshes in LIBERO scenes: the palm spans
# +-10.5 cm along the finger axis and ~3.7 cm either side across it, from 3 cm above the fingertip
# site upwards.
HAND_HALF_ALONG, HAND_HALF_ACROSS, HAND_BOTTOM_ABOVE_EE = 0.105, 0.037, 0.03


def hand_clearance(points_xy: np.ndarray, center_xy: np.ndarray, yaw: float) -> float:
    """Smallest distance (m) from obstacle points (N, 2) to the hand footprint at `center_xy` and hand
    yaw `yaw`; negative inside the footprint. inf without points."""
    if len(points_xy) == 0:
        return float("inf")
    c, s = np.cos(yaw), np.sin(yaw)
    d = np.asarray(points_xy, dtype=np.float64) - center_xy
    # into the hand frame: u across the fingers (world x at yaw 0), v along them (world y at yaw 0)
    u = c * d[:, 0] + s * d[:, 1]
    v = -s * d[:, 0] + c * d[:, 1]
    ou = np.abs(u) - HAND_HALF_ACROSS
    ov = np.abs(v) - HAND_HALF_ALONG
    outside = np.hypot(np.maximum(ou, 0.0), np.maximum(ov, 0.0))
    inside = np.minimum(np.maximum(ou, ov), 0.0)
    return float(np.min(outside + inside))


# A hand orientation: a yaw in radians (hand pointing down, see R_DOWN) or a full (3, 3) world rotation.
Orientation = float | np.ndarray


def target_rotation(ori: Orientation) -> np.ndarray:
    """A hand yaw (rad, hand pointing down) or a full (3, 3) world rotation -> (3, 3)."""
    if np.ndim(ori) == 0:
        return rot_z(float(ori)) @ R_DOWN
    return np.asarray(ori, dtype=np.float64).reshape(3, 3)


def servo(scene: Scene, target: np.ndarray, ori: Orientation, grip: float, speed: float = 1.0) -> np.ndarray:
    """(7,) env action driving the hand to `target` (world xyz) with orientation `ori` (a yaw for
    a downward hand, or a (3, 3) rotation), gripper `grip`."""
    a = np.zeros(protocol.ACTION_DIM)
    dp = np.asarray(target, dtype=np.float64) - scene.ee_pos()
    # full speed until 2 cm away, proportional below: converges without overshoot at OSC gains
    a[:3] = np.clip(dp / 0.02, -1.0, 1.0) * speed
    n = np.linalg.norm(a[:3])
    if n > speed:
        a[:3] *= speed / n
    err = rotvec(target_rotation(ori) @ scene.ee_mat().T)
    a[3:6] = np.clip(err / protocol.OSC_ROT_SCALE_RAD * 2.0, -1.0, 1.0)
    a[6] = grip
    return a


@dataclass
class Phase:
    """Drive to a target, optionally holding still afterwards (to let the gripper close/open).

    target(scene) is evaluated once when the phase starts (live=False) or every step (live=True);
    `ori` is the hand orientation to hold (an `Orientation`, or a function of the scene giving one)."""

    target: Callable[[Scene], np.ndarray]
    grip: float
    ori: Orientation | Callable[[Scene], Orientation] = 0.0
    tol: float = 0.006
    hold: int = 0
    timeout: int = 80
    speed: float = 1.0
    live: bool = False
    label: str | None = None  # atomic label of this phase if not the skill's (approach = "reach")


class Skill:
    """An atomic skill: a label, a list of phases and a success predicate on the scene.

    Subclasses build `phases(scene, rng)`; `success(scene)` is the skill's own check."""

    label = "skill"

    @property
    def acts_on(self) -> str:
        """The sim name of what the skill acts on (an object body; `<level>_drawer` for a drawer, the
        hinge joint of a door), "" for none: the per-step object label of a recorded demo."""
        return str(getattr(self, "obj", "") or "")

    def phases(self, scene: Scene, rng: np.random.Generator) -> list[Phase]:
        raise NotImplementedError

    def success(self, scene: Scene) -> bool:
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


def back_off_if_dropped(s: Scene, obj: str, retry: bool, offset: np.ndarray) -> list[Phase] | None:
    """A retried carry whose object is no longer in the fingers: open and move the hand by `offset`
    `(3,)` m (the program's retry then re-grasps it); None on the first try or while it is held."""
    if not retry or s.finger_contact(obj):
        return None
    off, R = s.ee_pos() + offset, s.ee_mat()
    return [Phase(lambda sc: off, OPEN, ori=R, tol=0.015, timeout=30, label="reach")]


class SkillRunner:
    """Executes a sequence of skills step by step; exposes the current atomic label."""

    def __init__(self, skills: list[Skill], scene: Scene, rng: np.random.Generator, action_noise: float = 0.0,
                 retries: int = 1) -> None:
        self.skills = skills
        self.retries = retries
        self._tries = 0
        self.scene = scene
        self.rng = rng
        self.action_noise = action_noise
        self.k = -1
        self.phases: list[Phase] = []
        self.p = 0
        self.t = 0
        self.held = 0
        self.target: np.ndarray | None = None
        self.grip = OPEN
        self.log: list[dict] = []
        self._next_skill()

    @property
    def done(self) -> bool:
        return self.k >= len(self.skills)

    @property
    def label(self) -> str:
        if self.done:
            return "idle"
        return self.phases[self.p].label or self.skills[self.k].label

    @property
    def acts_on(self) -> str:
        """The current skill's `Skill.acts_on` ("" once done)."""
        return "" if self.done else self.skills[self.k].acts_on

    def _next_skill(self) -> None:
        if 0 <= self.k < len(self.skills):
            s = self.skills[self.k]
            ok = bool(s.success(self.scene))
            self.log.append({"skill": s.label, "success": ok})
            if not ok and self._tries < self.retries:
                # re-plan the same skill from the current state (a slipped grasp, a missed handle)
                self._tries += 1
                self.phases = s.phases(self.scene, self.rng)
                self.p = 0
                self._start_phase()
                return
        self._tries = 0
        self.k += 1
        if not self.done:
            self.phases = self.skills[self.k].phases(self.scene, self.rng)
            self.p = 0
            self._start_phase()

    def _start_phase(self) -> None:
        ph = self.phases[self.p]
        self.t = 0
        self.held = 0
        self.target = np.asarray(ph.target(self.scene), dtype=np.float64)

    def act(self) -> np.ndarray:
        while not self.done:
            ph = self.phases[self.p]
            if ph.live:
                self.target = np.asarray(ph.target(self.scene), dtype=np.float64)
            close = np.linalg.norm(self.target - self.scene.ee_pos()) < ph.tol
            if (close and self.held >= ph.hold) or self.t >= ph.timeout:
                self.p += 1
                if self.p >= len(self.phases):
                    self._next_skill()
                else:
                    self._start_phase()
                continue
            if close:
                self.held += 1
            self.t += 1
            ori = ph.ori(self.scene) if callable(ph.ori) else ph.ori
            self.grip = ph.grip
            a = servo(self.scene, self.target, ori, ph.grip, ph.speed)
            if self.action_noise > 0:
                a[:6] += self.rng.normal(0.0, self.action_noise, 6)
                a[:6] = np.clip(a[:6], -1.0, 1.0)
            return a
        a = np.zeros(protocol.ACTION_DIM)
        a[6] = self.grip
        return a
