"""Franka Kitchen (gymnasium-robotics `FrankaKitchen-v1` on the pinned MuJoCo) under the project's Env protocol.

    env = KitchenEnv("micro")                          # or make_env("kitchen", "micro") / task id 3
    obs = env.reset(trial=0, seed=0)
    obs, reward, done, info = env.step(action)         # (7,) end-effector delta + gripper; info["success"]

d4rl's kitchen does not run on modern MuJoCo (it needs mujoco-py / MuJoCo 2.0); `FrankaKitchen-v1`
is the maintained port of the same scene, goals and 0.3 completion threshold (D4RL -> Gymnasium-Robotics).

Tasks: the paper's five primitives (roboact_clip Sec. IV-B), one kitchen element per episode:

| id | short | primitive      | FrankaKitchen-v1 task | instruction |
|---:|-------|----------------|-----------------------|-------------|
| 0  | knob  | turn knob      | bottom burner         | turn the oven knob |
| 1  | door  | open door      | hinge cabinet         | open the hinge cabinet door |
| 2  | light | flip switch    | light switch          | flip the light switch |
| 3  | micro | open microwave | microwave             | open the microwave door |
| 4  | slide | slide door     | slide cabinet         | slide the cabinet door open |

Success is the env's own completion information (`info["episode_task_completions"]` holds the task:
its joints within 0.3 of the goal). Episodes are `max_steps` = 280 env steps (12.5 Hz).

Action space (differs from R3M, which commands the 9 joint velocities directly): a (7,) action like
LIBERO's, so one evaluator and one head serve both benchmarks: `a[:3] * POS_STEP` metres and
`a[3:6] * ROT_STEP` radians (axis-angle, world frame) of end-effector motion per step, `a[6]` the
gripper (-1 open / +1 close). Damped least-squares IK on the `end_effector` site with joint-limit
clamping turns it into the env's joint-velocity action.

Observations (the project-wide keys): `agentview_rgb` (the env's default free camera) and
`eye_in_hand_rgb` (second view; by default `left_cap`, the R3M-style second static camera; `wrist`
= a camera tracking the hand) as (R, R, 3) uint8, `proprio` (12,) float32 = 9 robot joint positions
+ end-effector position, plus `ee_pos`, `ee_ori`, `gripper_states`, `joint_states` (LIBERO's hdf5
obs keys). Fast CPU rendering: the offscreen buffer is the camera size, no shadows, reflections,
skybox or multisampling.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from envs.env_api import ENVS

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

SUITE = "kitchen"
MAX_STEPS = 280  # FrankaKitchen-v1's max_episode_steps
POS_STEP = 0.03  # metres of end-effector motion per step at |a| = 1
ROT_STEP = 0.15  # radians per step at |a| = 1
IK_DAMPING = 0.05
GAIN = 2.0  # joint targets lead the IK step: the env's position servos track only a fraction per step
EE_SITE = "end_effector"
SETPOINT_LEAD = 0.08  # metres the Cartesian set-point may lead the hand


@dataclass(frozen=True)
class KitchenTask:
    task_id: int
    short: str
    primitive: str
    element: str  # the FrankaKitchen-v1 task name
    instruction: str
    skills: tuple[str, ...]  # atomic labels (envs.demos.SKILL_VOCAB) of the scripted expert's phases


TASKS: tuple[KitchenTask, ...] = (
    KitchenTask(0, "knob", "turn knob", "bottom burner", "turn the oven knob", ("reach", "turn")),
    KitchenTask(1, "door", "open door", "hinge cabinet", "open the hinge cabinet door", ("reach", "open")),
    KitchenTask(2, "light", "flip switch", "light switch", "flip the light switch", ("reach", "push")),
    KitchenTask(3, "micro", "open microwave", "microwave", "open the microwave door", ("reach", "grasp", "open")),
    KitchenTask(4, "slide", "slide door", "slide cabinet", "slide the cabinet door open", ("reach", "push")),
)
_ALIASES = {"microwave": "micro", "burner": "knob", "bottom burner": "knob", "bottom_burner": "knob",
            "hinge": "door", "hinge cabinet": "door", "hinge_cabinet": "door", "switch": "light",
            "light switch": "light", "light_switch": "light", "slide cabinet": "slide", "slide_cabinet": "slide",
            "turn knob": "knob", "open door": "door", "flip switch": "light", "open microwave": "micro",
            "slide door": "slide"}


def get_task(task: int | str) -> KitchenTask:
    """A task by id (0-4), short name (knob, door, light, micro, slide), primitive or element name."""
    if isinstance(task, (int, np.integer)) or (isinstance(task, str) and task.strip().isdigit()):
        i = int(task)
        if not 0 <= i < len(TASKS):
            raise ValueError(f"kitchen task id {i} out of range 0..{len(TASKS) - 1}")
        return TASKS[i]
    key = str(task).strip().lower()
    key = _ALIASES.get(key, key)
    for t in TASKS:
        if t.short == key:
            return t
    raise ValueError(f"unknown kitchen task {task!r}; known: {', '.join(t.short for t in TASKS)} "
                     f"(or ids 0-{len(TASKS) - 1}, or the FrankaKitchen-v1 names)")


def parse_kitchen_tasks(spec: str) -> list[int]:
    """'all' -> [0..4]; 'micro,knob' or '3,0' -> sorted ids; unknown names raise ValueError."""
    spec = str(spec).strip()
    if spec in ("all", ""):
        return [t.task_id for t in TASKS]
    return sorted({get_task(p).task_id for p in spec.split(",") if p.strip()})


# what an observation carries: two cameras (agentview = the default free camera, the second view
# below), proprio = 9 robot joint positions + end-effector position (3)
CAMERA_KEYS: tuple[str, ...] = ("agentview_rgb", "eye_in_hand_rgb")
PROPRIO_KEYS: tuple[str, ...] = ("joint_states", "gripper_states", "ee_pos")  # demo obs keys: 7 + 2 + 3
PROPRIO_DIM: int = 12

# the second view's choices: a model camera name, "default" (the env's free camera) or "wrist"
VIEWS = ("default", "left_cap", "right_cap", "wrist")


class KitchenEnv:
    """One Franka Kitchen primitive (see the module docstring), under the `envs.env_api.Env` protocol."""

    suite = SUITE

    def __init__(self, task: int | str = "micro", resolution: int = 96, render: bool = True,
                 second_view: str = "left_cap", fast_render: bool = True, robot_noise_ratio: float = 0.01,
                 max_steps: int = MAX_STEPS) -> None:
        from gymnasium_robotics.envs.franka_kitchen.kitchen_env import KitchenEnv as _Kitchen

        self.task = get_task(task)
        if second_view not in VIEWS:
            raise ValueError(f"unknown second_view {second_view!r}; choose from {VIEWS}")
        self.task_id = self.task.task_id
        self.instruction = self.task.instruction
        self.max_steps = max_steps
        self.resolution = int(resolution)
        self.render_enabled = render
        self.fast_render = fast_render
        self.views = {"agentview_rgb": "default", "eye_in_hand_rgb": second_view}
        self.raw = _Kitchen(tasks_to_complete=[self.task.element], terminate_on_tasks_completed=False,
                            remove_task_when_completed=True, robot_noise_ratio=robot_noise_ratio)
        self.model, self.data = self.raw.model, self.raw.data
        import mujoco

        self._mj = mujoco
        self.site_id = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, EE_SITE)
        self.hand_body = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, "panda0_link7")
        self.q_low = np.array(self.model.jnt_range[:7, 0])
        self.q_high = np.array(self.model.jnt_range[:7, 1])
        self._renderer: Any = None
        self._render_size = 0
        self._success = False
        self.steps = 0

    @property
    def task_name(self) -> str:
        return f"{self.task.short} ({self.task.element})"

    # ------------------------------------------------------------------ rendering

    def _make_renderer(self, size: int) -> Any:
        mj = self._mj
        if self._renderer is not None and self._render_size == size:
            return self._renderer
        if self._renderer is not None:
            self._renderer.close()
        m = self.model
        if self.fast_render:
            m.vis.global_.offwidth = max(size, 1)
            m.vis.global_.offheight = max(size, 1)
            m.vis.quality.shadowsize = 0
            m.vis.quality.offsamples = 0
            m.light_castshadow[:] = 0
        else:
            m.vis.global_.offwidth = max(m.vis.global_.offwidth, size)
            m.vis.global_.offheight = max(m.vis.global_.offheight, size)
        self._renderer = mj.Renderer(m, size, size)
        self._render_size = size
        return self._renderer

    def _camera(self, view: str) -> Any:
        mj = self._mj
        if view in ("left_cap", "right_cap"):
            return view
        cam = mj.MjvCamera()
        if view == "wrist":
            cam.type = mj.mjtCamera.mjCAMERA_TRACKING
            cam.trackbodyid = self.hand_body
            cam.distance, cam.azimuth, cam.elevation = 0.55, 90.0, -30.0
            cam.lookat[:] = self.data.site_xpos[self.site_id]
        else:  # FrankaKitchen-v1's default viewer camera
            cam.type = mj.mjtCamera.mjCAMERA_FREE
            cam.distance, cam.azimuth, cam.elevation = 2.2, 70.0, -35.0
            cam.lookat[:] = [-0.2, 0.5, 2.0]
        return cam

    def render_frame(self, key: str = "agentview_rgb", size: int | None = None) -> np.ndarray:
        r = self._make_renderer(int(size or self.resolution))
        r.update_scene(self.data, camera=self._camera(self.views.get(key, key)))
        if self.fast_render:
            for flag in ("mjRND_SHADOW", "mjRND_REFLECTION", "mjRND_SKYBOX"):
                r.scene.flags[getattr(self._mj.mjtRndFlag, flag)] = 0
        return r.render().copy()

    # ------------------------------------------------------------------ episode

    def reset(self, trial: int = 0, seed: int | None = 0) -> dict:
        """Reset to FrankaKitchen-v1's initial state; the env's observation noise is seeded from seed + trial."""
        s = None if seed is None else int(seed) * 1000 + int(trial)
        self.raw.reset(seed=s)
        self._reset_setpoint()
        self._success = False
        self.steps = 0
        return self._obs()

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """End-effector site position (3,) and rotation matrix (3, 3) in world coordinates."""
        return self.data.site_xpos[self.site_id].copy(), self.data.site_xmat[self.site_id].reshape(3, 3).copy()

    def setpoint(self) -> np.ndarray:
        """The Cartesian set-point the actions move (privileged; scripted experts servo it)."""
        return self._x_des.copy()

    def _reset_setpoint(self) -> None:
        self._x_des, self._R_des = self.ee_pose()

    def ik_joint_action(self, action: np.ndarray) -> np.ndarray:
        """(7,) ee-delta action -> the env's (9,) joint-velocity action.

        The action moves a Cartesian set-point (kept within SETPOINT_LEAD of the hand, so it never
        winds up); damped least-squares IK on the end-effector site maps the set-point error to a joint
        step, clamped to the joint limits, which the env's position servos then track. The set-point
        makes the hand hold its pose against gravity and coupling between steps."""
        from scipy.spatial.transform import Rotation

        mj = self._mj
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(-1), -1.0, 1.0)
        x, R = self.ee_pose()
        self._x_des = self._x_des + a[:3] * POS_STEP
        lead = self._x_des - x
        n = np.linalg.norm(lead)
        if n > SETPOINT_LEAD:
            self._x_des = x + lead * (SETPOINT_LEAD / n)
        self._R_des = Rotation.from_rotvec(a[3:6] * ROT_STEP).as_matrix() @ self._R_des
        rot_err = Rotation.from_matrix(self._R_des @ R.T).as_rotvec()
        if np.linalg.norm(rot_err) > 0.5:  # same anti-windup for the orientation
            self._R_des = Rotation.from_rotvec(rot_err * (0.5 / np.linalg.norm(rot_err))).as_matrix() @ R
            rot_err = rot_err * (0.5 / np.linalg.norm(rot_err))
        err = np.concatenate([self._x_des - x, rot_err])
        jp = np.zeros((3, self.model.nv))
        jr = np.zeros((3, self.model.nv))
        mj.mj_jacSite(self.model, self.data, jp, jr, self.site_id)
        J = np.vstack([jp[:, :7], jr[:, :7]])
        dq = J.T @ np.linalg.solve(J @ J.T + IK_DAMPING**2 * np.eye(6), err)
        q = self.data.qpos[:7]
        q_target = np.clip(q + GAIN * dq, self.q_low + 1e-3, self.q_high - 1e-3)
        finger = 0.0 if a[6] > 0 else 0.04
        target = np.concatenate([q_target, [finger, finger]])
        robot = self.raw.robot_env
        last = getattr(robot, "_last_robot_qpos", self.data.qpos[:9])
        vel = (target - last) / robot.dt
        return np.clip(vel / robot.act_rng, -1.0, 1.0)

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, dict]:
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape[0] != 7 or not np.all(np.isfinite(a)):
            raise ValueError(f"kitchen actions are finite (7,) ee deltas + gripper, got {a}")
        _, reward, _, _, info = self.raw.step(self.ik_joint_action(a))
        self.steps += 1
        if self.task.element in info.get("episode_task_completions", []):
            self._success = True
        info = dict(info, success=self._success)
        return self._obs(), float(reward), self._success, info

    def success(self) -> bool:
        return self._success

    def element_state(self) -> np.ndarray:
        """The task's joint values (what the env's completion check compares with its goal)."""
        from gymnasium_robotics.envs.franka_kitchen.kitchen_env import OBS_ELEMENT_INDICES

        return self.data.qpos[OBS_ELEMENT_INDICES[self.task.element]].copy()

    def get_state(self) -> np.ndarray:
        return np.concatenate([[self.data.time], self.data.qpos, self.data.qvel]).astype(np.float64)

    def _obs(self) -> dict:
        from scipy.spatial.transform import Rotation

        pos, mat = self.ee_pose()
        q = self.data.qpos[:9].astype(np.float32)
        obs = {
            "ee_pos": pos.astype(np.float32),
            "ee_ori": Rotation.from_matrix(mat).as_rotvec().astype(np.float32),
            "gripper_states": q[7:9].copy(),
            "joint_states": q[:7].copy(),
        }
        obs["proprio"] = np.concatenate([obs[k] for k in PROPRIO_KEYS]).astype(np.float32)
        if self.render_enabled:
            for key in ("agentview_rgb", "eye_in_hand_rgb"):
                obs[key] = self.render_frame(key)
        return obs

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self.raw.close()

    def __enter__(self) -> KitchenEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@ENVS.register("kitchen")
def make_kitchen_env(suite: str, task_id: int | str, **kwargs: Any) -> KitchenEnv:
    """`make_env("kitchen", "kitchen", task_id, render=..., resolution=...)` (suite is always "kitchen")."""
    if suite != SUITE:
        raise ValueError(f"the kitchen env has one suite, 'kitchen', got {suite!r}")
    return KitchenEnv(task_id, **kwargs)
