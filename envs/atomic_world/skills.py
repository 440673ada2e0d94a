"""Scripted atomic actions and the truth check for each verb.

Each skill moves the effector from wherever it is, acts, and returns a `Check`: what the simulator
state says actually happened. A clip whose check fails is never written; the take is re-sampled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from envs.atomic_world import mjcf
from envs.atomic_world.sim import AtomicSim, quat_tilt, wrap
from envs.atomic_world.vocab import ObjectSpec

# Truth thresholds (the label must be visibly true, not merely nudged).
MOVE_MIN = 0.03  # push/pull/slide: >= 3 cm along the verb's direction
LIFT_MIN = 0.05  # pick up / put down: >= 5 cm vertical change
DRAWER_MIN = 0.05  # open/close: >= 5 cm of drawer travel
KNOB_MIN = np.deg2rad(60)  # turn on/off: >= 60 degrees of knob rotation
ROTATE_MIN = np.deg2rad(30)  # rotate: >= 30 degrees of yaw
REST_TOL = 0.012  # "resting": object origin within 1.2 cm of its resting height
TILT_MAX = np.deg2rad(20)  # objects that do not roll must stay upright

DIRECTIONS = {"push": (0.0, 1.0), "pull": (0.0, -1.0), "slide left": (-1.0, 0.0), "slide right": (1.0, 0.0)}


@dataclass
class Check:
    ok: bool
    measured: dict[str, float]
    reason: str = ""


@dataclass
class TakeContext:
    spec: ObjectSpec
    rest_z: float  # object origin height when resting on the table
    rng: np.random.Generator
    tempo: float = 1.0  # >1 is slower
    drawer_xy: tuple[float, float] = (0.0, 0.0)
    put_target: tuple[float, float, float] | None = None  # (x, y, resting z) for the next put down
    notes: dict = field(default_factory=dict)


def _t(ctx: TakeContext, seconds: float) -> float:
    return seconds * ctx.tempo


def grip_closed(half_width: float) -> float:
    return float(np.clip(mjcf.FINGER_OPEN - half_width, 0.0, mjcf.FINGER_TRAVEL))


def _top(sim: AtomicSim, ctx: TakeContext) -> float:
    return float(sim.obj_pos[2] + ctx.spec.half_height)


def _grasp(sim: AtomicSim, ctx: TakeContext) -> float:
    """Approach from above, close the fingers and attach; returns the effector yaw used."""
    c = sim.obj_pos
    yaw = wrap(sim.obj_yaw + ctx.spec.grasp_yaw)
    # fingers straddle a box in either of two orientations; pick the one needing less turning
    if abs(wrap(yaw + np.pi - sim.eff_yaw)) < abs(wrap(yaw - sim.eff_yaw)):
        yaw = wrap(yaw + np.pi)
    z = _top(sim, ctx) - mjcf.PALM_BOTTOM + 0.002
    sim.move(_t(ctx, 0.5), pos=(c[0], c[1], z + 0.07), yaw=yaw, grip=0.0)
    sim.move(_t(ctx, 0.35), pos=(c[0], c[1], z))
    sim.move(_t(ctx, 0.2), grip=grip_closed(min(ctx.spec.radius, 0.035)))
    sim.attach()
    return yaw


def _release_and_retreat(sim: AtomicSim, ctx: TakeContext) -> None:
    sim.move(_t(ctx, 0.2), grip=0.0)
    sim.release()
    sim.wait(0.1)
    p = sim.eff_pos
    sim.move(_t(ctx, 0.4), pos=(p[0], p[1], p[2] + 0.08))


def _resting(sim: AtomicSim, ctx: TakeContext, rest_z: float) -> tuple[bool, float, float]:
    dz = abs(float(sim.obj_pos[2]) - rest_z)
    tilt = quat_tilt(sim.obj_quat)
    return dz < REST_TOL and (ctx.spec.rolls or tilt < TILT_MAX), dz, tilt


def pick_up(sim: AtomicSim, ctx: TakeContext, action: str) -> Check:
    z0 = float(sim.obj_pos[2])
    _grasp(sim, ctx)
    p = sim.eff_pos
    sim.move(_t(ctx, 0.45), pos=(p[0], p[1], p[2] + ctx.rng.uniform(0.08, 0.12)))
    sim.wait(0.1)
    dz = float(sim.obj_pos[2]) - z0
    ok = dz >= LIFT_MIN and sim.holding
    return Check(ok, {"dz": dz}, "" if ok else f"lifted only {dz:.3f} m")


def put_down(sim: AtomicSim, ctx: TakeContext, action: str) -> Check:
    if not sim.holding:
        return Check(False, {}, "put down without holding the object")
    z0 = float(sim.obj_pos[2])
    if ctx.put_target is not None:
        tx, ty, rest = ctx.put_target
        ctx.put_target = None
    else:
        c = sim.obj_pos
        tx, ty, rest = c[0] + ctx.rng.uniform(-0.05, 0.05), c[1] + ctx.rng.uniform(-0.04, 0.04), ctx.rest_z
    # effector height that puts the object origin 4 mm above its resting height
    lower = (sim.eff_pos[2] - sim.obj_pos[2]) + rest + 0.004
    sim.move(_t(ctx, 0.45), pos=(tx, ty, sim.eff_pos[2]))
    sim.move(_t(ctx, 0.45), pos=(tx, ty, lower))
    _release_and_retreat(sim, ctx)
    resting, dz_rest, tilt = _resting(sim, ctx, rest)
    dz = float(sim.obj_pos[2]) - z0
    ok = dz <= -LIFT_MIN and resting and not sim.holding
    return Check(ok, {"dz": dz, "rest_err": dz_rest, "tilt": tilt}, "" if ok else "object did not come to rest lower")


def push_like(sim: AtomicSim, ctx: TakeContext, action: str) -> Check:
    """push / pull / slide left / slide right: an invisible flat paddle between the fingers shoves the object."""
    d = np.asarray(DIRECTIONS[action])
    c0 = sim.obj_pos
    dist = ctx.rng.uniform(0.06, 0.1)
    gap = ctx.spec.radius + mjcf.PUSHER_HALF[1] + 0.02
    start = c0[:2] - d * gap
    # paddle face perpendicular to the push direction; low on the object so tall ones do not tip
    yaw = 0.0 if d[0] == 0 else np.pi / 2
    z = max(0.6 * float(c0[2]), 0.016) - mjcf.PUSHER_Z
    sim.move(_t(ctx, 0.5), pos=(start[0], start[1], z + 0.06), yaw=yaw, grip=mjcf.FINGER_TRAVEL * 0.8)
    sim.move(_t(ctx, 0.3), pos=(start[0], start[1], z))
    sim.set_pusher(True)
    end = start + d * (dist + 0.02)
    sim.move(_t(ctx, 0.75), pos=(end[0], end[1], z))
    sim.set_pusher(False)
    sim.move(_t(ctx, 0.35), pos=(end[0], end[1], z + 0.07))
    delta = sim.obj_pos - c0
    along = float(delta[:2] @ d)
    across = float(abs(delta[0] * d[1] - delta[1] * d[0]))
    resting, dz_rest, tilt = _resting(sim, ctx, float(c0[2]))
    ok = along >= MOVE_MIN and across <= max(0.02, 0.5 * along) and resting
    return Check(ok, {"along": along, "across": across, "tilt": tilt, "rest_err": dz_rest},
                 "" if ok else f"moved {along:.3f} m along, {across:.3f} m across, resting={resting}")  # fmt: skip


def rotate(sim: AtomicSim, ctx: TakeContext, action: str) -> Check:
    sign = -1.0 if action == "rotate clockwise" else 1.0
    yaw0, z0 = sim.obj_yaw, float(sim.obj_pos[2])
    yaw = _grasp(sim, ctx)
    p = sim.eff_pos
    sim.move(_t(ctx, 0.25), pos=(p[0], p[1], p[2] + 0.02))
    sim.move(_t(ctx, 0.7), yaw=yaw + sign * np.deg2rad(ctx.rng.uniform(60, 100)))
    sim.move(_t(ctx, 0.25), pos=(p[0], p[1], p[2] + 0.003))
    _release_and_retreat(sim, ctx)
    dyaw = wrap(sim.obj_yaw - yaw0)
    resting, dz_rest, tilt = _resting(sim, ctx, z0)
    ok = sign * dyaw >= ROTATE_MIN and resting
    return Check(ok, {"dyaw": dyaw, "tilt": tilt, "rest_err": dz_rest}, "" if ok else f"yaw changed {dyaw:.2f} rad")


def drawer(sim: AtomicSim, ctx: TakeContext, action: str) -> Check:
    q0 = sim.drawer_q
    target = min(mjcf.DRAWER_MAX - 0.005, q0 + ctx.rng.uniform(0.1, 0.13)) if action == "open" else 0.0
    h = sim.handle_pos()
    above = 0.042  # effector above the handle so the fingers straddle it
    sim.move(_t(ctx, 0.5), pos=(h[0], h[1] - 0.05, h[2] + above + 0.05), yaw=np.pi / 2, grip=0.0)
    sim.move(_t(ctx, 0.3), pos=(h[0], h[1], h[2] + above))
    sim.move(_t(ctx, 0.2), grip=grip_closed(0.007))
    travel = target - q0  # drawer opens along -y
    sim.move(_t(ctx, 0.8), pos=(h[0], h[1] - travel, h[2] + above), drawer=target)
    sim.wait(0.1)
    sim.move(_t(ctx, 0.2), grip=0.0)
    p = sim.eff_pos
    sim.move(_t(ctx, 0.35), pos=(p[0], p[1] - 0.03, p[2] + 0.07))
    dq = sim.drawer_q - q0
    ok = dq >= DRAWER_MIN if action == "open" else dq <= -DRAWER_MIN
    return Check(ok, {"dq": dq}, "" if ok else f"drawer moved {dq:.3f} m")


def knob(sim: AtomicSim, ctx: TakeContext, action: str) -> Check:
    q0 = sim.knob_q
    target = ctx.rng.uniform(1.35, 1.6) if action == "turn on" else ctx.rng.uniform(-0.05, 0.05)
    k = sim.knob_pos()
    z = k[2] + 0.024 - mjcf.PALM_BOTTOM - 0.012  # fingers around the knob, palm just above it
    yaw0 = sim.eff_yaw
    sim.move(_t(ctx, 0.5), pos=(k[0], k[1], z + 0.06), grip=0.0)
    sim.move(_t(ctx, 0.3), pos=(k[0], k[1], z))
    sim.move(_t(ctx, 0.2), grip=grip_closed(0.022))
    sim.move(_t(ctx, 0.75), yaw=yaw0 + (target - q0), knob=target)
    sim.wait(0.15)
    sim.move(_t(ctx, 0.2), grip=0.0)
    sim.move(_t(ctx, 0.35), pos=(k[0], k[1], z + 0.08))
    dq = sim.knob_q - q0
    ok = dq >= KNOB_MIN if action == "turn on" else dq <= -KNOB_MIN
    return Check(ok, {"dq": dq}, "" if ok else f"knob turned {dq:.2f} rad")


SKILLS: dict[str, Callable[[AtomicSim, TakeContext, str], Check]] = {
    "pick up": pick_up,
    "put down": put_down,
    "push": push_like,
    "pull": push_like,
    "slide left": push_like,
    "slide right": push_like,
    "rotate clockwise": rotate,
    "rotate counterclockwise": rotate,
    "open": drawer,
    "close": drawer,
    "turn on": knob,
    "turn off": knob,
}
