"""Record a robot episode in the raw teleop layout that real_robot/ingest.py documents and reads.

    rec = RawRecorder(instruction="open the middle drawer, ...", robot="mujoco_twin")
    rec.mark(t, "open the middle drawer")     # operator marker: an atomic step starts at t
    rec.add(t, obs, sent_action)              # one control frame (obs before the action, action as sent)
    rec.save("runs/teleop/x/episode_000")     # written to a temp dir and renamed: never half an episode

Streams: joint_states (N, 7), gripper_state (N,), force_torque (N, 6), action (N, 9) [joint targets,
gripper, grip force], cam_<name> (N, H, W, 3) uint8 for each camera in the observation; one clock t.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from real_robot.robot import ACTION_KEYS, FT_KEYS, GRIPPER_KEY, JOINT_KEYS


class RawRecorder:
    def __init__(self, instruction: str, robot: str = "", cameras: tuple[str, ...] = ("front", "wrist")) -> None:
        self.instruction, self.robot, self.cameras = instruction, robot, cameras
        self.t: list[float] = []
        self.rows: dict[str, list[np.ndarray]] = {"joint_states": [], "gripper_state": [], "force_torque": [],
                                                  "action": []}  # fmt: skip
        self.frames: dict[str, list[np.ndarray]] = {}
        self.markers: list[dict[str, Any]] = []

    def mark(self, t: float, label: str) -> None:
        self.markers.append({"t": float(t), "label": label})

    def add(self, t: float, obs: dict[str, Any], action: dict[str, Any]) -> None:
        self.t.append(float(t))
        self.rows["joint_states"].append(np.array([obs[k] for k in JOINT_KEYS], float))
        self.rows["gripper_state"].append(np.array(float(obs.get(GRIPPER_KEY, 0.0))))
        self.rows["force_torque"].append(np.array([obs.get(k, 0.0) for k in FT_KEYS], float))
        self.rows["action"].append(np.array([action[k] for k in ACTION_KEYS], float))
        for c in self.cameras:
            if c in obs:
                self.frames.setdefault(c, []).append(np.asarray(obs[c], np.uint8))

    def __len__(self) -> int:
        return len(self.t)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700; a published episode is readable like any output
        try:
            t = np.asarray(self.t)
            for k, rows in self.rows.items():
                np.savez(tmp / f"{k}.npz", t=t, v=np.stack(rows))
            for c, frames in self.frames.items():
                np.savez_compressed(tmp / f"cam_{c}.npz", t=t[: len(frames)], v=np.stack(frames))
            (tmp / "meta.json").write_text(json.dumps({"instruction": self.instruction, "robot": self.robot,
                                                       "markers": self.markers}, indent=1))
            if path.exists():
                shutil.rmtree(path)
            os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return path
