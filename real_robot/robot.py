"""The Robot protocol (LeRobot-shaped), the robot registry, and the feature names every backend shares.

    robot = make_robot("mujoco_twin", realtime_scale=0.0)   # or make_robot("tcp", host=..., port=...)
    robot.connect()
    obs = robot.get_observation()     # {"j0.pos": float, ..., "front": (H, W, 3) uint8, ...}
    robot.send_action({"j0.pos": 0.1, ..., "gripper.pos": 1.0, "gripper.force": 20.0})
    robot.disconnect()

The method and attribute names are LeRobot's (`lerobot.robots.Robot`): a LeRobot robot satisfies this
protocol as it is, and ours can be handed to LeRobot code where LeRobot is installed. LeRobot itself
is not a dependency (it needs Python >= 3.12).

Feature convention (LeRobot's): `observation_features` / `action_features` map a key to `float` for a
scalar, or to a shape tuple for an array (cameras: (H, W, 3) uint8, depth: (H, W) float32 metres).
Joint targets are absolute positions in radians; `gripper.pos` is in [0, 1] (0 open, 1 closed);
`gripper.force` is the grip force the gripper may apply, in newtons.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from configs.registry import Registry

N_JOINTS = 7
JOINT_KEYS = tuple(f"j{i}.pos" for i in range(N_JOINTS))
JOINT_VEL_KEYS = tuple(f"j{i}.vel" for i in range(N_JOINTS))
FT_KEYS = ("ft.fx", "ft.fy", "ft.fz", "ft.tx", "ft.ty", "ft.tz")
EE_KEYS = ("ee.x", "ee.y", "ee.z")
GRIPPER_KEY = "gripper.pos"
GRIPPER_FORCE_KEY = "gripper.force"
ACTION_KEYS = (*JOINT_KEYS, GRIPPER_KEY, GRIPPER_FORCE_KEY)
# the twin's proprio as demo obs keys (what ingestion writes: 7 joints + gripper 0..1); ingestion
# stores it in the file's env_args["proprio_keys"], so envs.episodes reads it without importing this
PROPRIO_KEYS = ("joint_states", "gripper_states")

# Backends register themselves on import; the registry imports these lazily on the first miss.
ROBOTS: Registry[Any] = Registry("robot", modules=("real_robot.twin", "real_robot.tcp"))


class DeviceNotConnectedError(RuntimeError):
    """A call that needs a connection was made on a disconnected robot (LeRobot raises the same kind)."""


@runtime_checkable
class Robot(Protocol):
    """What every arm backend exposes (LeRobot's `Robot` surface, minus calibration)."""

    name: str

    @property
    def observation_features(self) -> dict[str, Any]: ...

    @property
    def action_features(self) -> dict[str, Any]: ...

    @property
    def is_connected(self) -> bool: ...

    def connect(self, calibrate: bool = True) -> None: ...

    def disconnect(self) -> None: ...

    def get_observation(self) -> dict[str, Any]: ...

    def send_action(self, action: dict[str, Any]) -> dict[str, Any]:
        """Send a command; returns the action actually sent (after any clipping), as LeRobot does."""
        ...


def make_robot(name: str, **kwargs: Any) -> Robot:
    """A backend by registered name ("mujoco_twin", "tcp"), built with `kwargs`."""
    return ROBOTS.get(name)(**kwargs)


def joints_of(obs: dict[str, Any]) -> np.ndarray:
    """(7,) float64 joint positions from an observation dict."""
    return np.array([float(obs[k]) for k in JOINT_KEYS])


def ee_of(obs: dict[str, Any]) -> np.ndarray:
    """(3,) end-effector position (metres, world frame) from an observation dict."""
    return np.array([float(obs[k]) for k in EE_KEYS])


def action_dict(q: np.ndarray, gripper: float, force: float) -> dict[str, float]:
    """(7,) joint targets + gripper command in [0, 1] + grip force (N) -> an action dict."""
    out = {k: float(v) for k, v in zip(JOINT_KEYS, np.asarray(q, float))}
    out[GRIPPER_KEY] = float(gripper)
    out[GRIPPER_FORCE_KEY] = float(force)
    return out


def action_vector(action: dict[str, Any]) -> np.ndarray:
    """An action dict -> (9,) float64 [7 joint targets, gripper, grip force]; KeyError names a missing key."""
    missing = [k for k in ACTION_KEYS if k not in action]
    if missing:
        raise KeyError(f"action is missing {missing}; expected keys {list(ACTION_KEYS)}")
    return np.array([float(action[k]) for k in ACTION_KEYS])


class RenamedRobot:
    """Wrap a robot whose feature keys differ from ours (e.g. a LeRobot SO-100: "shoulder_pan.pos", ...).

    `mapping` maps our key -> the backend's key ({"j0.pos": "shoulder_pan.pos", ..., "gripper.pos":
    "gripper.pos"}); observation keys not in the mapping pass through unchanged, action keys we send
    that the backend lacks (e.g. "gripper.force") are dropped. `scale` multiplies our value into the
    backend's unit per key (LeRobot arms often use degrees or 0..100 for the gripper)."""

    def __init__(self, robot: Any, mapping: dict[str, str], scale: dict[str, float] | None = None) -> None:
        self.robot, self.mapping, self.scale = robot, dict(mapping), dict(scale or {})
        self.inverse = {v: k for k, v in self.mapping.items()}
        self.name = f"renamed:{getattr(robot, 'name', 'robot')}"
        if hasattr(robot, "clock"):  # keep the arm's own clock visible to the safety layer
            self.clock = robot.clock

    @property
    def observation_features(self) -> dict[str, Any]:
        return {self.inverse.get(k, k): v for k, v in self.robot.observation_features.items()}

    @property
    def action_features(self) -> dict[str, Any]:
        return {self.inverse.get(k, k): v for k, v in self.robot.action_features.items()}

    @property
    def is_connected(self) -> bool:
        return self.robot.is_connected

    def connect(self, calibrate: bool = True) -> None:
        self.robot.connect(calibrate)

    def disconnect(self) -> None:
        self.robot.disconnect()

    def get_observation(self) -> dict[str, Any]:
        out = {}
        for k, v in self.robot.get_observation().items():
            ours = self.inverse.get(k, k)
            out[ours] = v / self.scale[ours] if ours in self.scale else v
        return out

    def send_action(self, action: dict[str, Any]) -> dict[str, Any]:
        theirs = self.robot.action_features
        sent = self.robot.send_action({self.mapping.get(k, k): float(v) * self.scale.get(k, 1.0)
                                       for k, v in action.items() if self.mapping.get(k, k) in theirs})
        return {self.inverse.get(k, k): (v / self.scale[self.inverse.get(k, k)]
                                         if self.inverse.get(k, k) in self.scale else v)
                for k, v in sent.items()}  # fmt: skip
