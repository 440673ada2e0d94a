"""The simulator for one take: kinematic effector motion, physics for everything it touches, state log.

Motion is simulated first and logged at 50 Hz; frames are rendered afterwards by restoring logged
states. That way a take whose labels fail the truth checks costs no rendering, and every view of
a frame comes from exactly the same physical state (time-synchronised views).
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from envs.atomic_world import mjcf

LOG_EVERY = 10  # physics steps (2 ms each) per logged state -> 50 Hz


def yaw_quat(yaw: float) -> np.ndarray:
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


def quat_yaw(q: np.ndarray) -> float:
    w, x, y, z = q
    return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))


def quat_tilt(q: np.ndarray) -> float:
    """Angle (rad) between the body's z axis and world z: 0 when upright."""
    w, x, y, z = q
    zz = 1 - 2 * (x * x + y * y)
    return float(np.arccos(np.clip(zz, -1, 1)))


def wrap(a: float) -> float:
    return float((a + np.pi) % (2 * np.pi) - np.pi)


def min_jerk(tau: np.ndarray) -> np.ndarray:
    return 10 * tau**3 - 15 * tau**4 + 6 * tau**5


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty(4)
    mujoco.mju_mulQuat(out, a, b)
    return out


def _rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    out = np.empty(3)
    mujoco.mju_rotVecQuat(out, v, q)
    return out


def _segment_pose(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position (midpoint) and quaternion turning +z onto the direction a->b."""
    d = b - a
    n = np.linalg.norm(d)
    quat = np.empty(4)
    mujoco.mju_quatZ2Vec(quat, d / max(n, 1e-9))
    return (a + b) / 2, quat


@dataclass
class Snapshot:
    qpos: np.ndarray
    mocap_pos: np.ndarray  # effector only; arm links are derived at render time
    mocap_quat: np.ndarray


class AtomicSim:
    """One compiled take. Effector targets are interpolated with a minimum-jerk profile."""

    def __init__(self, xml: str, subject: str):
        self.model = mujoco.MjModel.from_xml_string(xml)
        self.data = mujoco.MjData(self.model)
        self.subject = subject
        m = self.model
        body = lambda n: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, n)  # noqa: E731
        self.eff_mocap = int(m.body_mocapid[body("eff")])
        self.link_mocaps = [int(m.body_mocapid[body(n)]) for n in ("link1", "link2") if body(n) >= 0]
        self.obj_body = body("obj")
        jnt = lambda n: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n)  # noqa: E731
        self.obj_qadr = int(m.jnt_qposadr[jnt("obj")])
        self.obj_vadr = int(m.jnt_dofadr[jnt("obj")])
        self.drawer_qadr = int(m.jnt_qposadr[jnt("drawer")])
        self.knob_qadr = int(m.jnt_qposadr[jnt("knob")])
        act = lambda n: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, n)  # noqa: E731
        self.act = {n: act(n) for n in ("drawer", "knob", "finger_l", "finger_r")}
        self.pusher = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "pusher")
        self.lamp = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "lamp")
        self.eff_pos = self.data.mocap_pos[self.eff_mocap].copy()
        self.eff_yaw = 0.0
        self.grip = 0.0  # finger travel in metres (0 = open)
        self._attached: tuple[np.ndarray, np.ndarray] | None = None
        self.log: list[Snapshot] = []
        self._steps = 0
        mujoco.mj_forward(self.model, self.data)

    # ------------------------------------------------------------------ state
    @property
    def obj_pos(self) -> np.ndarray:
        return self.data.qpos[self.obj_qadr : self.obj_qadr + 3].copy()

    @property
    def obj_quat(self) -> np.ndarray:
        return self.data.qpos[self.obj_qadr + 3 : self.obj_qadr + 7].copy()

    @property
    def obj_yaw(self) -> float:
        return quat_yaw(self.obj_quat)

    @property
    def drawer_q(self) -> float:
        return float(self.data.qpos[self.drawer_qadr])

    @property
    def knob_q(self) -> float:
        return float(self.data.qpos[self.knob_qadr])

    @property
    def holding(self) -> bool:
        return self._attached is not None

    def handle_pos(self) -> np.ndarray:
        """World position of the drawer handle centre."""
        b = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, "drawer")
        return self.data.xpos[b] + np.asarray(mjcf.HANDLE_OFFSET)

    def knob_pos(self) -> np.ndarray:
        b = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, "knob")
        return self.data.xpos[b].copy()

    # ---------------------------------------------------------------- setup
    def set_object_pose(self, pos, yaw: float) -> None:
        self.data.qpos[self.obj_qadr : self.obj_qadr + 3] = pos
        self.data.qpos[self.obj_qadr + 3 : self.obj_qadr + 7] = yaw_quat(yaw)
        self.data.qvel[self.obj_vadr : self.obj_vadr + 6] = 0
        mujoco.mj_forward(self.model, self.data)

    def set_fixtures(self, drawer: float, knob: float) -> None:
        self.data.qpos[self.drawer_qadr] = drawer
        self.data.qpos[self.knob_qadr] = knob
        self.data.ctrl[self.act["drawer"]] = drawer
        self.data.ctrl[self.act["knob"]] = knob
        mujoco.mj_forward(self.model, self.data)

    def place_effector(self, pos, yaw: float = 0.0) -> None:
        self.eff_pos = np.asarray(pos, float).copy()
        self.eff_yaw = yaw
        self.data.mocap_pos[self.eff_mocap] = self.eff_pos
        self.data.mocap_quat[self.eff_mocap] = yaw_quat(yaw)
        mujoco.mj_forward(self.model, self.data)

    # --------------------------------------------------------------- motion
    def attach(self) -> None:
        """Rigidly carry the object with the effector (a kinematic grasp)."""
        q_eff = yaw_quat(self.eff_yaw)
        q_inv = np.array([q_eff[0], -q_eff[1], -q_eff[2], -q_eff[3]])
        rel_pos = _rotate(q_inv, self.obj_pos - self.eff_pos)
        rel_quat = _quat_mul(q_inv, self.obj_quat)
        self._attached = (rel_pos, rel_quat)

    def release(self) -> None:
        self._attached = None
        self.data.qvel[self.obj_vadr : self.obj_vadr + 6] = 0

    def set_pusher(self, on: bool) -> None:
        m, b = self.model, self.model.geom_bodyid[self.pusher]
        m.geom_contype[self.pusher] = m.geom_conaffinity[self.pusher] = int(on)
        # the broad phase filters on the per-body OR of geom bits, compiled once: keep it in step
        m.body_contype[b] = m.body_conaffinity[b] = int(on)

    def _physics_step(self) -> None:
        d = self.data
        d.mocap_pos[self.eff_mocap] = self.eff_pos
        d.mocap_quat[self.eff_mocap] = yaw_quat(self.eff_yaw)
        d.ctrl[self.act["finger_l"]] = self.grip
        d.ctrl[self.act["finger_r"]] = self.grip
        if self._attached is not None:
            rel_pos, rel_quat = self._attached
            q_eff = yaw_quat(self.eff_yaw)
            d.qpos[self.obj_qadr : self.obj_qadr + 3] = self.eff_pos + _rotate(q_eff, rel_pos)
            d.qpos[self.obj_qadr + 3 : self.obj_qadr + 7] = _quat_mul(q_eff, rel_quat)
            d.qvel[self.obj_vadr : self.obj_vadr + 6] = 0
        mujoco.mj_step(self.model, d)
        self._steps += 1
        if self._steps % LOG_EVERY == 0:
            self.log.append(Snapshot(d.qpos.copy(), self.eff_pos.copy(), yaw_quat(self.eff_yaw)))

    def move(
        self,
        duration: float,
        pos=None,
        yaw: float | None = None,
        grip: float | None = None,
        drawer: float | None = None,
        knob: float | None = None,
    ) -> None:
        """Interpolate every given channel from its current value to the target over `duration` s."""
        n = max(1, int(round(duration / self.model.opt.timestep)))
        p0, y0, g0 = self.eff_pos.copy(), self.eff_yaw, self.grip
        dr0 = float(self.data.ctrl[self.act["drawer"]])
        kn0 = float(self.data.ctrl[self.act["knob"]])
        p1 = p0 if pos is None else np.asarray(pos, float)
        y1 = y0 if yaw is None else yaw
        g1 = g0 if grip is None else grip
        for s in min_jerk(np.arange(1, n + 1) / n):
            self.eff_pos = p0 + s * (p1 - p0)
            self.eff_yaw = y0 + s * (y1 - y0)
            self.grip = g0 + s * (g1 - g0)
            if drawer is not None:
                self.data.ctrl[self.act["drawer"]] = dr0 + s * (drawer - dr0)
            if knob is not None:
                self.data.ctrl[self.act["knob"]] = kn0 + s * (knob - kn0)
            self._physics_step()

    def wait(self, duration: float) -> None:
        self.move(duration)

    def settle(self, duration: float = 0.3) -> None:
        """Let physics come to rest without logging (before a take starts)."""
        for _ in range(int(duration / self.model.opt.timestep)):
            self._physics_step()
        self.log.clear()

    # -------------------------------------------------------------- render
    def _arm_pose(self, eff_pos: np.ndarray) -> None:
        """Place the visual arm links so they reach the effector (analytic 2-link IK)."""
        d = self.data
        wrist = eff_pos + np.array([0.0, 0.0, 0.07])
        if self.subject == "robot":
            s = np.asarray(mjcf.ARM_SHOULDER)
            v = wrist - s
            dist = min(np.linalg.norm(v), 2 * mjcf.ARM_LINK - 1e-3)
            u = v / np.linalg.norm(v)
            wrist = s + u * dist
            up = np.array([0.0, 0.0, 1.0]) - u[2] * u
            up = up / max(np.linalg.norm(up), 1e-9)
            elbow = s + u * dist / 2 + up * np.sqrt(mjcf.ARM_LINK**2 - (dist / 2) ** 2)
            for mid, (a, b) in zip(self.link_mocaps, ((s, elbow), (elbow, wrist))):
                d.mocap_pos[mid], d.mocap_quat[mid] = _segment_pose(a, b)
        else:
            back = wrist + mjcf.HUMAN_FOREARM * np.array([0.42, -0.78, 0.46])  # a right arm
            d.mocap_pos[self.link_mocaps[0]], d.mocap_quat[self.link_mocaps[0]] = _segment_pose(back, wrist)

    def restore(self, snap: Snapshot) -> None:
        d = self.data
        d.qpos[:] = snap.qpos
        d.mocap_pos[self.eff_mocap] = snap.mocap_pos
        d.mocap_quat[self.eff_mocap] = snap.mocap_quat
        self._arm_pose(snap.mocap_pos)
        on = snap.qpos[self.knob_qadr] > 0.8
        self.model.geom_rgba[self.lamp] = (1.0, 0.25, 0.1, 1.0) if on else (0.25, 0.05, 0.05, 1.0)
        mujoco.mj_forward(self.model, d)

    def render(self, renderer: mujoco.Renderer, snaps: list[Snapshot], views: tuple[str, ...]) -> dict[str, np.ndarray]:
        """view -> `(T, H, W, 3) uint8` for the given logged states; physics state is left as it was."""
        keep = (self.data.qpos.copy(), self.data.qvel.copy(), self.data.mocap_pos.copy(), self.data.mocap_quat.copy())
        out = {v: np.empty((len(snaps), renderer.height, renderer.width, 3), np.uint8) for v in views}
        for t, snap in enumerate(snaps):
            self.restore(snap)
            for v in views:
                renderer.update_scene(self.data, camera=v)
                out[v][t] = renderer.render()
        self.data.qpos[:], self.data.qvel[:], self.data.mocap_pos[:], self.data.mocap_quat[:] = keep
        mujoco.mj_forward(self.model, self.data)
        return out
