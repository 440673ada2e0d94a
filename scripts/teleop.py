"""Record teleoperated episodes (raw layout, real_robot/ingest.py) with operator markers at atomic steps.

    python scripts/teleop.py --robot mujoco_twin --leader scripted --episodes 20 --out runs/teleop/drawer
    python scripts/teleop.py --robot mujoco_twin --leader keyboard --out runs/teleop/kb     # in a terminal
    printf 'm ffff g rrr m q\\n' | python scripts/teleop.py --robot mujoco_twin --leader keyboard --out /tmp/kb

Leaders:
- `scripted`: the task is decomposed into atomic steps and each is performed by the scripted skills
  (optionally with waypoint noise `--noise` metres, for varied demonstrations); a marker is written at
  the start of every step, as an operator would press one.
- `keyboard`: jog the fingertip in Cartesian space through IK. Keys: w/s +x/-x, a/d +y/-y, r/f up/down,
  g toggle gripper, m marker (starts the next step of the decomposed task), q end the episode. Reads a
  raw terminal when stdin is a TTY, otherwise whitespace-separated keys from stdin (headless-safe: no
  window, no display needed).
Every command goes through the safety layer. Then: scripts/ingest_teleop.py --format raw.

    python scripts/teleop.py --export-lerobot runs/real_robot/teleop --out runs/real_robot/teleop_lerobot

writes a raw recording as a LeRobot v3.0 dataset instead of recording (real_robot/lerobot_export.py: one
LeRobot episode per atomic step, its task the step's instruction); then ingest it with --format lerobot.
The recording is `real_robot.teleop.record_episodes`; this file only parses the command line.
"""

from __future__ import annotations

import sys

from configs.cli import ArgumentParser, run_cli
from real_robot.teleop import TASK, record_episodes


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(description=__doc__, prog="scripts/teleop.py")
    p.add_argument("--robot", default="mujoco_twin", help="registered robot (mujoco_twin | tcp)")
    p.add_argument("--leader", default="scripted", choices=("scripted", "keyboard"))
    p.add_argument("--task", default=TASK)
    p.add_argument("--episodes", type=int, default=1)
    p.add_argument("--out", required=True, help="directory for episode_XXX/ folders (or the LeRobot dataset)")
    p.add_argument("--export-lerobot", default="", metavar="SRC",
                   help="write the raw recording SRC as a LeRobot v3.0 dataset in --out (records nothing)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise", type=float, default=0.0, help="scripted leader: waypoint noise (m)")
    p.add_argument("--cameras", default="front,wrist", help="cameras to record ('' = none)")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--port", type=int, default=50710, help="tcp robot port")
    p.add_argument("--tape-jitter", default="", help="mujoco_twin: tape start jitter 'X,Y' half-ranges in m "
                   "(default: the twin's 0.015,0.015)")
    p.add_argument("--keep-failed", action="store_true", help="scripted: also keep episodes whose steps failed")
    a = p.parse_args(argv)
    if a.export_lerobot:
        from real_robot.lerobot_export import export_lerobot

        r = export_lerobot(a.export_lerobot, a.out, fps=20)  # bad input: one line, exit 2 (run_cli)
        print(f"{r['episodes']} LeRobot episodes ({r['frames']} frames, {r['recordings']} recordings, cameras "
              f"{r['cameras']}) in {a.out}")
        return 0

    n = record_episodes(a.task, a.out, robot=a.robot, leader=a.leader, episodes=a.episodes, seed=a.seed,
                        noise=a.noise, cameras=tuple(c for c in a.cameras.split(",") if c),
                        image_size=a.image_size, port=a.port, keep_failed=a.keep_failed,
                        tape_jitter=tuple(float(v) for v in a.tape_jitter.split(",")) if a.tape_jitter else None)
    print(f"{n} episodes in {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
