"""`mujoco_twin`: the simulated arm of Sec. IV-D behind the Robot protocol.

    robot = make_robot("mujoco_twin", realtime_scale=1.0, cameras=("front", "wrist"), image_size=(64, 64))

Time: with `realtime_scale` > 0 the simulation tracks the wall clock times that scale (1.0 = real
time), advanced whenever the robot is read or commanded, so an arm left without commands keeps
moving toward its last target exactly as hardware would; with 0 (tests, batch runs) every
`send_action` advances one control period (1 / control_hz) as fast as the CPU allows.

Grasping: when the gripper is commanded closed with the tape (or the drawer handle) between the
fingertips, the object is attached to the hand (the tape follows the `ee` frame; the drawer's slide
follows the hand along its axis) until the gripper opens; the fingers still collide physically.
That keeps grasps deterministic on a 2 ms step without tuning contact friction.

Observation keys: j*.pos, j*.vel (rad, rad/s), gripper.pos (0 open .. 1 closed, measured), ft.* (N, Nm,
tared at connect), ee.x/y/z (m), and a scene estimate from the twin's ground truth that stands in for
a perception module: tape.x/y/z, handle.x/y/z, drawer.open (m). Cameras: <name> (H, W, 3) uint8 and
front.depth (H, W) float32 metres.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import mujoco
import numpy as np

from real_robot.robot import (
    EE_KEYS,
    FT_KEYS,
    GRIPPER_FORCE_KEY,
    GRIPPER_KEY,
    JOINT_KEYS,
    JOINT_VEL_KEYS,
    ROBOTS,
    DeviceNotConnectedError,
    action_vector,
)  # fmt: skip
from real_robot.twin_scene import (
    DRAWER_TRAVEL,
    FINGER_TRAVEL,
    HOME_Q,
    MAX_GRIP_FORCE,
    TAPE_IN_DRAWER_X,
    TAPE_R,
    handle_pos,
    scene_xml,
)  # fmt: skip

SCENE_KEYS = ("tape.x", "tape.y", "tape.z", "handle.x", "handle.y", "handle.z", "drawer.open")
# the tape's start is jittered uniformly by up to these (x, y) metres per seed: by default +-1.5 cm, inside
# the grasp radius (a blind replay succeeds); larger y jitter (up to the drawer's side walls) needs vision
TAPE_JITTER = (0.015, 0.015)
TAPE_JITTER_MAX = (0.02, 0.12)  # x: the tape stays clear of the drawer's front wall; y: of its side walls
GRASP_RADIUS = 0.03  # m: object centre within this of the fingertip centre counts as between the fingers


@ROBOTS.register("mujoco_twin")
class MujocoTwin:
    """Simulated 7-DoF arm + parallel gripper + wrist F/T + RGB-D camera (see module docstring)."""

    name = "mujoco_twin"

    def __init__(self, realtime_scale: float = 0.0, control_hz: float = 20.0,
                 cameras: Sequence[str] = ("front", "wrist"), image_size: tuple[int, int] = (64, 64),
                 depth: bool = True, seed: int = 0,
                 tape_jitter: Sequence[float] = TAPE_JITTER) -> None:
        self.realtime_scale = float(realtime_scale)
        self.control_hz = float(control_hz)
        self.cameras = tuple(cameras)
        self.image_size = tuple(image_size)
        self.depth = bool(depth) and "front" in self.cameras
        self.seed = seed
        self.tape_jitter = tuple(float(v) for v in tape_jitter)  # (x, y) half-ranges of the tape's start (m)
        if len(self.tape_jitter) != 2 or not all(0.0 <= v <= TAPE_JITTER_MAX[i] for i, v in enumerate(self.tape_jitter)):
            raise ValueError(f"tape_jitter must be (x, y) half-ranges in metres within {TAPE_JITTER_MAX} (the drawer's "
                             f"inside), got {tape_jitter}")
        self.model = mujoco.MjModel.from_xml_string(scene_xml(self.image_size[1], self.image_size[0]))
        self.data = mujoco.MjData(self.model)
        m = self.model
        jid = lambda n: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n)  # noqa: E731
        self._qadr = np.array([m.jnt_qposadr[jid(f"j{i}")] for i in range(7)])
        self._vadr = np.array([m.jnt_dofadr[jid(f"j{i}")] for i in range(7)])
        self._finger_qadr = [m.jnt_qposadr[jid(n)] for n in ("finger_l", "finger_r")]
        self._drawer_qadr = m.jnt_qposadr[jid("drawer")]
        self._tape_qadr = m.jnt_qposadr[jid("tape")]
        self._tape_vadr = m.jnt_dofadr[jid("tape")]
        aid = lambda n: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, n)  # noqa: E731
        self._arm_act = np.array([aid(f"a{i}") for i in range(7)])
        self._finger_act = [aid("finger_l"), aid("finger_r")]
        self._drawer_act = aid("drawer")
        self._ee = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, "ee")
        self._substeps = max(1, int(round(1.0 / (self.control_hz * m.opt.timestep))))
        self._renderer: mujoco.Renderer | None = None
        self._connected = False
        self._ft_bias = np.zeros(6)
        self._attached: str | None = None  # "tape" | "drawer" | None
        self._attach_ref: tuple[Any, ...] = ()
        self._grip_cmd = 0.0
        self._wall0 = 0.0
        self._sim0 = 0.0
        self.reset(seed)

    # -- Robot protocol -------------------------------------------------------------------------
    @property
    def observation_features(self) -> dict[str, Any]:
        h, w = self.image_size
        feats: dict[str, Any] = {k: float for k in (*JOINT_KEYS, *JOINT_VEL_KEYS, GRIPPER_KEY, *FT_KEYS,
                                                     *EE_KEYS, *SCENE_KEYS)}
        for c in self.cameras:
            feats[c] = (h, w, 3)
        if self.depth:
            feats["front.depth"] = (h, w)
        return feats

    @property
    def action_features(self) -> dict[str, Any]:
        return {k: float for k in (*JOINT_KEYS, GRIPPER_KEY, GRIPPER_FORCE_KEY)}

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self, calibrate: bool = True) -> None:
        self._connected = True
        self._wall0, self._sim0 = time.monotonic(), self.data.time
        # tare the F/T sensor on the unloaded hand, as one does with a real wrist sensor
        self._ft_bias = self._ft_raw()

    def disconnect(self) -> None:
        self._connected = False
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def get_observation(self) -> dict[str, Any]:
        self._check()
        self._advance_realtime()
        d = self.data
        obs: dict[str, Any] = {k: float(v) for k, v in zip(JOINT_KEYS, d.qpos[self._qadr])}
        obs.update({k: float(v) for k, v in zip(JOINT_VEL_KEYS, d.qvel[self._vadr])})
        obs[GRIPPER_KEY] = float(np.mean(d.qpos[self._finger_qadr]) / FINGER_TRAVEL)
        obs.update({k: float(v) for k, v in zip(FT_KEYS, self._ft_raw() - self._ft_bias)})
        obs.update({k: float(v) for k, v in zip(EE_KEYS, d.site_xpos[self._ee])})
        tape = d.qpos[self._tape_qadr: self._tape_qadr + 3]
        opening = self.drawer_open
        obs.update(dict(zip(SCENE_KEYS, [*map(float, tape), *map(float, handle_pos(opening)), opening])))
        if self.cameras:
            obs.update(self.render())
        return obs

    def send_action(self, action: dict[str, Any]) -> dict[str, Any]:
        self._check()
        a = action_vector(action)
        self._advance_realtime()
        d = self.data
        d.ctrl[self._arm_act] = np.clip(a[:7], self.model.actuator_ctrlrange[self._arm_act, 0],
                                        self.model.actuator_ctrlrange[self._arm_act, 1])
        self._grip_cmd = float(np.clip(a[7], 0.0, 1.0))
        force = float(np.clip(a[8], 0.0, MAX_GRIP_FORCE))
        for i in self._finger_act:
            # a held tape stops the fingers at its surface (finger-tape contact is off, see twin_scene)
            stop = FINGER_TRAVEL - TAPE_R + 0.002 if self._attached == "tape" else FINGER_TRAVEL
            d.ctrl[i] = min(self._grip_cmd * FINGER_TRAVEL, stop)
            self.model.actuator_forcerange[i] = (-force, force)
        self._update_attachment()
        if self.realtime_scale <= 0:
            self._step(self._substeps)
        out = {k: float(v) for k, v in zip(JOINT_KEYS, d.ctrl[self._arm_act])}
        out[GRIPPER_KEY], out[GRIPPER_FORCE_KEY] = self._grip_cmd, force
        return out

    # -- twin-only API ----------------------------------------------------------------------------
    def clock(self) -> float:
        """The arm's own time in seconds (simulation time; with realtime_scale > 0, where it is heading).

        The safety layer measures velocities and deadlines on this clock, so a fast-as-possible run is
        limited exactly as a real-time one."""
        if self.realtime_scale > 0 and self._connected:
            return self._sim0 + (time.monotonic() - self._wall0) * self.realtime_scale
        return float(self.data.time)

    def reset(self, seed: int | None = None) -> None:
        """Arm home, gripper open, drawer closed, tape in the middle drawer (position jittered by seed)."""
        rng = np.random.default_rng(self.seed if seed is None else seed)
        d = self.data
        mujoco.mj_resetData(self.model, d)
        d.qpos[self._qadr] = HOME_Q
        d.ctrl[self._arm_act] = HOME_Q
        jx, jy = self.tape_jitter  # uniform over +-(jx, jy); the default draws exactly what +-1.5 cm always drew
        jitter = rng.uniform([-jx, -jy], [jx, jy], size=2)
        d.qpos[self._tape_qadr: self._tape_qadr + 2] = [TAPE_IN_DRAWER_X + jitter[0], jitter[1]]
        self._attached, self._grip_cmd = None, 0.0
        mujoco.mj_forward(self.model, d)
        self._step(100)  # let the tape settle in the drawer
        self._wall0, self._sim0 = time.monotonic(), d.time

    @property
    def drawer_open(self) -> float:
        """Opening of the middle drawer in metres (0 = closed)."""
        return float(-self.data.qpos[self._drawer_qadr])

    @property
    def tape_pos(self) -> np.ndarray:
        return self.data.qpos[self._tape_qadr: self._tape_qadr + 3].copy()

    @property
    def holding(self) -> str | None:
        return self._attached

    def render(self) -> dict[str, np.ndarray]:
        """{camera: (H, W, 3) uint8, "front.depth": (H, W) float32} from the current state."""
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, *self.image_size)
        r, out = self._renderer, {}
        for c in self.cameras:
            r.update_scene(self.data, camera=c)
            out[c] = r.render().copy()
        if self.depth:
            r.enable_depth_rendering()
            r.update_scene(self.data, camera="front")
            out["front.depth"] = r.render().astype(np.float32)
            r.disable_depth_rendering()
        return out

    # -- internals --------------------------------------------------------------------------------
    def _check(self) -> None:
        if not self._connected:
            raise DeviceNotConnectedError(f"{self.name} is not connected; call connect() first")

    def _ft_raw(self) -> np.ndarray:
        return self.data.sensordata[:6].copy()

    def _advance_realtime(self) -> None:
        if self.realtime_scale <= 0:
            return
        target = self._sim0 + (time.monotonic() - self._wall0) * self.realtime_scale
        n = int((target - self.data.time) / self.model.opt.timestep)
        if n > 0:
            self._step(n)

    def _step(self, n: int) -> None:
        m, d = self.model, self.data
        for _ in range(n):
            if self._attached == "drawer":
                # the drawer slide follows the hand along x from where it was grasped
                x0, q0 = self._attach_ref
                d.ctrl[self._drawer_act] = np.clip(q0 + (d.site_xpos[self._ee][0] - x0), -DRAWER_TRAVEL, 0.0)
            mujoco.mj_step(m, d)
            if self._attached == "tape":
                rel_p, rel_q = self._attach_ref
                R = d.site_xmat[self._ee].reshape(3, 3)
                d.qpos[self._tape_qadr: self._tape_qadr + 3] = d.site_xpos[self._ee] + R @ rel_p
                q_ee = np.empty(4)
                mujoco.mju_mat2Quat(q_ee, d.site_xmat[self._ee])
                q = np.empty(4)
                mujoco.mju_mulQuat(q, q_ee, rel_q)
                d.qpos[self._tape_qadr + 3: self._tape_qadr + 7] = q
                d.qvel[self._tape_vadr: self._tape_vadr + 6] = 0.0
        if self._attached == "tape":
            mujoco.mj_forward(m, d)

    def _update_attachment(self) -> None:
        d = self.data
        ee = d.site_xpos[self._ee].copy()
        if self._grip_cmd < 0.5:
            if self._attached == "drawer":
                d.ctrl[self._drawer_act] = d.qpos[self._drawer_qadr]  # the drawer stays where it was left
            self._attached = None
            return
        if self._attached is not None:
            return
        tape = self.tape_pos
        if np.linalg.norm(tape - ee) < GRASP_RADIUS:
            R = d.site_xmat[self._ee].reshape(3, 3)
            q_ee, q_inv, rel_q = np.empty(4), np.empty(4), np.empty(4)
            mujoco.mju_mat2Quat(q_ee, d.site_xmat[self._ee])
            mujoco.mju_negQuat(q_inv, q_ee)
            mujoco.mju_mulQuat(rel_q, q_inv, d.qpos[self._tape_qadr + 3: self._tape_qadr + 7])
            self._attached, self._attach_ref = "tape", (R.T @ (tape - ee), rel_q)
        elif np.linalg.norm(handle_pos(self.drawer_open) - ee) < GRASP_RADIUS:
            self._attached, self._attach_ref = "drawer", (ee[0], float(d.qpos[self._drawer_qadr]))
