"""Nudging an open container out of the way before a manipulation that would box the hand in.

libero_goal 3 ("open the top drawer and put the bowl inside"): the wooden cabinet's top drawer,
pulled out 16 cm, overhangs the bowl's far side by ~4 cm in x and y (its floor 10 cm above the bowl's
rim), and the wine bottle stands ~12 cm on the other side. An open Panda hand is ~20 cm long along
its finger axis and reaches 12 cm above the fingertips, so every rim pinch of the bowl as it stands
either comes down through the open drawer or onto the bottle. Dragging the bowl a few cm from under
the drawer's footprint while the drawer is still shut leaves a clean pinch for later.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from policies.scripted.core import CLOSE, Phase, Scene, Skill, wrap_yaw


class DragInside(Skill):
    """Drag `obj` (a bowl) `dist` m along direction(scene) (unit xy) with the closed fingertips
    lowered inside it, `dz` m above its lowest point, then lift the hand `lift` m.

    The fingertips go down `back` m behind the centre and push the inner wall ahead of them (`wall` m
    from the centre at their height), so they travel dist + wall - back. The hand's long axis (the
    finger axis) is laid along the drag, so the palm, 3 cm above the fingertips, spans the bowl from
    rim to rim above it rather than sweeping sideways over neighbours. The bowl slides on ~2 cm past
    the fingertips' stop."""

    label = "push"

    def __init__(self, obj: str, direction: Callable[[Scene], np.ndarray], dist: float = 0.06,
                 dz: float = 0.03, back: float = 0.01, wall: float = 0.04, speed: float = 0.8,
                 lift: float = 0.07) -> None:
        self.obj, self.direction, self.dist, self.dz, self.back, self.speed = obj, direction, dist, dz, back, speed
        self.wall, self.lift = wall, lift
        self._start: np.ndarray | None = None

    def phases(self, s: Scene, rng: np.random.Generator) -> list[Phase]:
        u = np.asarray(self.direction(s), dtype=np.float64)[:2]
        u = u / np.linalg.norm(u)
        p = s.pos(self.obj)
        self._start = p.copy()
        lo, hi = s.bbox_z(self.obj)
        # fingers close along world y at yaw 0: lay that axis along u
        yaw = wrap_yaw(float(np.arctan2(u[1], u[0])) - np.pi / 2)
        dist = self.dist + rng.uniform(-0.005, 0.005)
        start = np.array([*(p[:2] - self.back * u), lo + self.dz])
        end = np.array([*(p[:2] + (dist + self.wall - self.back) * u), lo + self.dz])
        above = start + np.array([0.0, 0.0, hi - lo + 0.03])
        return [
            Phase(lambda sc: above, CLOSE, ori=yaw, tol=0.015, timeout=80, label="reach"),
            Phase(lambda sc: start, CLOSE, ori=yaw, tol=0.008, timeout=40, speed=0.8, label="reach"),
            # a bowl jammed against a neighbour (the stove) stops the drag: give up early, the rest of
            # the task needs the steps
            Phase(lambda sc: end, CLOSE, ori=yaw, tol=0.015, timeout=20, speed=self.speed),
            Phase(lambda sc: end + np.array([0.0, 0.0, self.lift]), CLOSE, ori=yaw, tol=0.015, timeout=40),
        ]

    def success(self, s: Scene) -> bool:
        return self._start is not None and float(np.linalg.norm(s.pos(self.obj)[:2] - self._start[:2])) > 0.5 * self.dist

