"""Teleoperation leaders for the real-arm adapter: record episodes (raw layout, real_robot/ingest.py)
with operator markers at atomic steps. The command line is scripts/teleop.py (its docstring has the
keys and the leaders); ingest the recordings with scripts/ingest_teleop.py --format raw.
"""

from __future__ import annotations

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


def record_episodes(task: str = TASK, out: str | Path = "runs/teleop/x", robot: str = "mujoco_twin",
                    leader: str = "scripted", episodes: int = 1, seed: int = 0, noise: float = 0.0,
                    cameras: tuple[str, ...] = ("front", "wrist"), image_size: int = 64, port: int = 50710,
                    keep_failed: bool = False, tape_jitter: tuple[float, float] | None = None) -> int:
    """Record `episodes` episodes of `task` with `leader` into `out`/episode_XXXX (raw layout); returns how
    many were kept (failed scripted episodes only with `keep_failed`). Every command goes through SafeRobot.
    `tape_jitter`: the twin's (x, y) tape start jitter in metres (None: its default, +-1.5 cm)."""
    from real_robot.decompose import decompose
    from real_robot.recorder import RawRecorder
    from real_robot.robot import make_robot
    from real_robot.safety import SafeRobot
    from real_robot.skills import TwinScriptedPolicy

    cams = tuple(cameras)
    if robot == "mujoco_twin":
        jit = {} if tape_jitter is None else {"tape_jitter": tuple(tape_jitter)}
        backend = make_robot("mujoco_twin", cameras=cams, image_size=(image_size, image_size), seed=seed, **jit)
    else:
        backend = make_robot(robot, port=port)
    safe = SafeRobot(backend)
    steps = decompose(task)
    out = Path(out)
    kept = 0
    try:
        for i in range(episodes):
            if hasattr(backend, "reset"):
                backend.reset(seed + i)
            safe.connect()
            if safe.estopped is not None:  # the operator clears a latched e-stop between episodes (run_task does too)
                print(f"episode {i}: resetting e-stop ({safe.estopped})", flush=True)
                safe.reset_estop()
            rec = RawRecorder(task, robot=robot, cameras=cams)
            if leader == "scripted":
                ok = record_scripted(safe, rec, steps, TwinScriptedPolicy(seed=seed + i, noise=noise))
            else:
                ok = record_keyboard(safe, rec, steps)
            if ok or keep_failed:
                rec.save(out / f"episode_{seed + i:04d}")
                kept += 1
            print(f"episode {i}: {'ok' if ok else 'failed'}, {len(rec)} frames, {len(rec.markers)} markers", flush=True)
    finally:
        safe.disconnect()
    return kept
