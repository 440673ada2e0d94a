"""A raw teleop recording (real_robot/ingest.py RAW LAYOUT, what scripts/teleop.py writes) -> a LeRobot
v3.0 dataset on disk, in the layout `envs/lerobot.py` reads (and `LeRobotDataset.finalize` writes):

    python scripts/teleop.py --export-lerobot runs/real_robot/teleop --out runs/real_robot/teleop_lerobot
    python scripts/ingest_teleop.py --src runs/real_robot/teleop_lerobot --format lerobot --out ... --rate 20

    OUT/meta/info.json                       codebase_version v3.0, fps, features, path templates
    OUT/meta/tasks.parquet                   index: task string, column task_index
    OUT/meta/episodes/chunk-000/file-000.parquet   per episode: tasks, length, data/video locations
    OUT/meta/stats.json                      min / max / mean / std / count of the numeric features
    OUT/data/chunk-000/file-000.parquet      one row per frame: observation.state (J + 1: j0..j{J-1},
                                             gripper), observation.force (6: fx..tz), action (the
                                             recording's A: j0..j{J-1} targets, gripper, grip_force on
                                             the twin, J = 7), timestamp (float32, as LeRobot writes it),
                                             frame_index, episode_index, index, task_index
    OUT/videos/observation.images.<cam>/chunk-000/file-000.mp4   every episode back to back (h264, yuv420p)

Step labels. LeRobot v3.0 has no operator markers. A frame's `task_index` may change inside an episode,
but `envs/lerobot.py` (and so `ingest --format lerobot`) reads one task per episode (its first frame's),
and a multi-step episode without markers is only labelled through a segmenter. So every atomic step of
a recorded episode (from one marker to the next) becomes its own LeRobot episode whose task is the
step's one-step instruction ("pick up the tape"); ingestion labels such an episode by its instruction.
Frames before the first marker (none in a scripted recording) are left out. Frames are the recorder's,
one per control period (their timestamps must be regular at `fps`, checked); images are h264-encoded
(lossy: within a few grey levels of the raw frames).

Read it back with `scripts/ingest_teleop.py --format lerobot --mapping twin` (configs/ingest/lerobot_twin.yaml);
every exported frame comes back (tests/test_lerobot_mapping.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from envs.lerobot_mapping import FT_NAMES  # the names the reader recognises as force/torque
from envs.lerobot_writer import LeRobotEpisode, LeRobotWriter
from real_robot.ingest import read_raw


def state_names(joints: int) -> list[str]:
    """observation.state names: j0..j{J-1}, gripper."""
    return [*(f"j{i}" for i in range(joints)), "gripper"]


def action_names(joints: int, dims: int) -> list[str]:
    """action names of a (dims,) command: J joint targets, gripper, grip_force (the twin's 9 for J = 7)."""
    names = [*(f"j{i}" for i in range(joints)), "gripper", "grip_force"]
    return names[:dims] if dims <= len(names) else [*names, *(f"a{i}" for i in range(len(names), dims))]


def _split_steps(times: np.ndarray, markers: list[tuple[float, str]]) -> list[tuple[int, int, str]]:
    """Frame times (N,) + markers -> [(first frame, end frame, step instruction)] per marked step."""
    if not markers:
        raise ValueError("a multi-step LeRobot export needs the recording's step markers (none found)")
    starts = np.searchsorted(times, np.array([t for t, _ in markers]) - 1e-4, side="left")
    ends = [*starts[1:], len(times)]
    return [(int(a), int(b), label) for (_, label), a, b in zip(markers, starts, ends) if b > a]


def export_lerobot(src: str | Path, out: str | Path, fps: int = 20, robot_type: str = "mujoco_twin") -> dict[str, Any]:
    """Write the raw recording `src` as a LeRobot v3.0 dataset in `out` (see the module docstring);
    returns {"episodes": LeRobot episodes written, "frames", "recordings", "cameras"}. A recording
    with reading problems, no markers, irregular frame times or differing cameras: one error naming it."""
    src, out = Path(src), Path(out)
    episodes, problems = read_raw(src)
    if problems:
        raise ValueError(f"{src}: {problems[0]}" + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""))
    if not episodes:
        raise ValueError(f"{src}: no recorded episodes")
    cams = sorted(k[4:] for k in episodes[0].streams if k.startswith("cam_"))
    joints = int(np.prod(episodes[0].streams["joint_states"][1].shape[1:]))  # J, the recording's own
    act_dims = int(np.prod(episodes[0].streams["action"][1].shape[1:]))
    writer = LeRobotWriter(out, fps, robot_type, {"observation.state": state_names(joints),
                                                  "observation.force": FT_NAMES,
                                                  "action": action_names(joints, act_dims)})
    for rec in episodes:
        if sorted(k[4:] for k in rec.streams if k.startswith("cam_")) != cams:
            raise ValueError(f"{src / rec.name}: cameras differ from the first episode's {cams}")
        t, q = rec.streams["joint_states"]
        dt = np.diff(t)
        if len(dt) and np.abs(dt - 1.0 / fps).max() > 1e-3:
            raise ValueError(f"{src / rec.name}: frame times are not regular at {fps} Hz (steps {dt.min():.4f}.."
                             f"{dt.max():.4f} s); resample with scripts/ingest_teleop.py first")
        for name in ("action", "gripper_state", "force_torque", *(f"cam_{c}" for c in cams)):
            if name in rec.streams and not np.array_equal(rec.streams[name][0], t):
                raise ValueError(f"{src / rec.name}: stream {name} is not sampled at the joint states' times")
        grip = rec.streams.get("gripper_state", (t, np.zeros(len(t))))[1].reshape(len(t), 1)
        ft = rec.streams.get("force_torque", (t, np.zeros((len(t), 6))))[1].reshape(len(t), 6)
        act = rec.streams["action"][1]
        if q.reshape(len(t), -1).shape[1] != joints or act.reshape(len(t), -1).shape[1] != act_dims:
            raise ValueError(f"{src / rec.name}: joint_states / action dims differ from the first episode's "
                             f"{joints} / {act_dims}")
        state = np.concatenate([q.reshape(len(t), joints), grip], 1)
        for a, b, label in _split_steps(t, rec.markers):
            writer.add(LeRobotEpisode(label, {"observation.state": state[a:b], "observation.force": ft[a:b],
                                              "action": act[a:b].reshape(b - a, act_dims)},
                                      {c: rec.streams[f"cam_{c}"][1][a:b] for c in cams}))
    return {**writer.close(), "recordings": len(episodes)}
