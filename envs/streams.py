"""Timestamped streams: one recorded episode before it is put on a time grid, and the resampling.

A teleop recording or a LeRobot dataset holds each signal as its own stream `(t (N,) s, v (N, ...))`
on one clock. `StreamEpisode` keeps them as read; `resample` puts one onto a grid and `on_grid` puts
all of them onto t0 + k / rate over their common window -- the step that turns streams into the
per-step arrays of an `envs.episodes.Episode` (LeRobot files directly, teleop through
real_robot/ingest.py, which adds checks and per-step skill labels).

Stream names: joint_states (N, J) (J joints: the dataset's own count), action (N, A), gripper_state (N,) or (N, 1), force_torque (N, 6),
cam_<name> (N, H, W, 3) uint8, any other numeric stream under its own name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

HOLD = ("action",)  # zero-order hold (commands); cameras are held too
CAMERA_OBS = {"front": "agentview_rgb", "wrist": "eye_in_hand_rgb"}
SNAP_S = 1e-4


@dataclass
class StreamEpisode:
    """One episode before alignment. streams[field] = (t (N,) float64 s, v (N, ...))."""

    name: str
    instruction: str
    streams: dict[str, tuple[np.ndarray, np.ndarray]]
    markers: list[tuple[float, str]] = field(default_factory=list)
    skills: list[str] | None = None  # per-sample labels given by the source (robomimic)
    skill_objects: list[str] | None = None  # per-sample sim object each skill acts on, beside `skills`
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Problem:
    episode: str
    field: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.episode}: {self.field}: {self.kind}: {self.detail}"


# -- alignment -------------------------------------------------------------------------------------------
def _nearest_exact(t: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    i = np.clip(np.searchsorted(t, grid), 1, len(t) - 1)
    j = np.where(np.abs(t[i - 1] - grid) <= np.abs(t[i] - grid), i - 1, i)
    return j, np.abs(t[j] - grid) <= SNAP_S


def resample(t: np.ndarray, v: np.ndarray, grid: np.ndarray, hold: bool) -> np.ndarray:
    """(N,) times + (N, ...) values -> (len(grid), ...) values: exact samples where a sample sits on a
    grid time, otherwise linear interpolation (hold=False) or the last sample at or before it (hold=True)."""
    j, exact = _nearest_exact(t, grid)
    if hold or v.dtype.kind != "f":
        prev = np.clip(np.searchsorted(t, grid + SNAP_S, side="right") - 1, 0, len(t) - 1)
        return v[np.where(exact, j, prev)]
    flat = v.reshape(len(t), -1).astype(np.float64)
    out = np.stack([np.interp(grid, t, flat[:, c]) for c in range(flat.shape[1])], axis=1)
    out[exact] = flat[j[exact]]
    return out.reshape((len(grid), *v.shape[1:]))


def on_grid(ep: StreamEpisode, rate: float) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Every stream of `ep` on the grid t0 + k / rate over the streams' common window.

    Returns grid (T,) s, obs {name: (T, ...)} under the demo file's obs names (cam_front ->
    agentview_rgb, cam_wrist -> eye_in_hand_rgb, other cam_<c> -> <c>_rgb, gripper_state ->
    gripper_states (T, 1)) and actions (T, A) float64. Actions and frames are held, the rest interpolated."""
    if "action" not in ep.streams:
        raise ValueError(f"{ep.name}: no 'action' stream")
    t0 = max(float(t[0]) for t, _ in ep.streams.values())
    t1 = min(float(t[-1]) for t, _ in ep.streams.values())
    grid = t0 + np.arange(int(np.floor((t1 - t0) * rate + 1e-6)) + 1) / rate
    obs: dict[str, np.ndarray] = {}
    actions = np.zeros((len(grid), 0))
    for name, (t, v) in ep.streams.items():
        r = resample(t, v, grid, hold=name in HOLD or name.startswith("cam_"))
        if name == "action":
            actions = r.astype(np.float64)
        elif name.startswith("cam_"):
            cam = name[4:]
            obs[CAMERA_OBS.get(cam, f"{cam}_rgb")] = r.astype(np.uint8)
        else:
            obs[{"gripper_state": "gripper_states"}.get(name, name)] = (
                r.reshape(len(grid), -1).astype(np.float64) if r.ndim == 1 or name == "gripper_state" else r)
    return grid, obs, actions
