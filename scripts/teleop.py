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
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

TASK = "open the middle drawer, pick up the tape, place it on the table, close the drawer"
JOG = {"w": (0.01, 0, 0), "s": (-0.01, 0, 0), "a": (0, 0.01, 0), "d": (0, -0.01, 0), "r": (0, 0, 0.01),
       "f": (0, 0, -0.01)}  # fmt: skip


def _keys():
    """Yield single keys: raw terminal mode on a TTY, else tokens from stdin (pipes, tests)."""
    if sys.stdin.isatty():
        import termios
        import tty

        fd = sys.stdin.fileno()
        old = termios.tcgetattr(fd)
        try:
            tty.setcbreak(fd)
            while True:
                yield sys.stdin.read(1)
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, old)
    else:
        for line in sys.stdin:
            for tok in line.split():
                yield from tok
        yield "q"


def record_scripted(robot, rec, steps, policy, retries: int = 1) -> bool:
    from real_robot.executor import Executor

    current = {"step": None}

    def on_frame(obs, action, step):
        if current["step"] is not step:  # operator marker at each atomic-step boundary
            current["step"] = step
            rec.mark(robot.clock(), step.instruction)
        rec.add(robot.clock(), obs, action)

    ep = Executor(robot, policy, retries=retries, on_frame=on_frame).run(rec.instruction, steps)
    return ep.success


def record_keyboard(robot, rec, steps) -> bool:
    from real_robot.kinematics import R_DOWN
    from real_robot.robot import action_dict, joints_of

    obs = robot.get_observation()
    q, grip, k = joints_of(obs), 0.0, 0
    target, _ = robot.kin.fk(q)
    for key in _keys():
        if key == "q":
            break
        if key == "m" and k < len(steps):
            rec.mark(robot.clock(), steps[k].instruction)
            k += 1
        elif key == "g":
            grip = 1.0 - grip
        elif key in JOG:
            q_new, err = robot.kin.ik(target + np.asarray(JOG[key]), R_DOWN, q)
            if err < 0.005:
                target, q = target + np.asarray(JOG[key]), q_new
        sent = robot.send_action(action_dict(q, grip, 25.0))
        rec.add(robot.clock(), obs, sent)
        obs = robot.get_observation()
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--robot", default="mujoco_twin", help="registered robot (mujoco_twin | tcp)")
    p.add_argument("--leader", default="scripted", choices=("scripted", "keyboard"))
    p.add_argument("--task", default=TASK)
    p.add_argument("--episodes", type=int, default=1)
    p.add_argument("--out", required=True, help="directory for episode_XXX/ folders")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise", type=float, default=0.0, help="scripted leader: waypoint noise (m)")
    p.add_argument("--cameras", default="front,wrist", help="cameras to record ('' = none)")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--port", type=int, default=50710, help="tcp robot port")
    p.add_argument("--keep-failed", action="store_true", help="scripted: also keep episodes whose steps failed")
    a = p.parse_args(argv)

    from real_robot.decompose import decompose
    from real_robot.recorder import RawRecorder
    from real_robot.robot import make_robot
    from real_robot.safety import SafeRobot
    from real_robot.skills import TwinScriptedPolicy

    cams = tuple(c for c in a.cameras.split(",") if c)
    if a.robot == "mujoco_twin":
        backend = make_robot("mujoco_twin", cameras=cams, image_size=(a.image_size, a.image_size), seed=a.seed)
    else:
        backend = make_robot(a.robot, port=a.port)
    robot = SafeRobot(backend)
    steps = decompose(a.task)
    out = Path(a.out)
    kept = 0
    try:
        for i in range(a.episodes):
            if hasattr(backend, "reset"):
                backend.reset(a.seed + i)
            robot.connect()
            rec = RawRecorder(a.task, robot=a.robot, cameras=cams)
            if a.leader == "scripted":
                ok = record_scripted(robot, rec, steps, TwinScriptedPolicy(seed=a.seed + i, noise=a.noise))
            else:
                ok = record_keyboard(robot, rec, steps)
            if ok or a.keep_failed:
                rec.save(out / f"episode_{a.seed + i:04d}")
                kept += 1
            print(f"episode {i}: {'ok' if ok else 'failed'}, {len(rec)} frames, {len(rec.markers)} markers", flush=True)
    finally:
        robot.disconnect()
    print(f"{kept} episodes in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
