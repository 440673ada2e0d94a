"""Laying a held bottle down horizontally, for the scripted LIBERO experts (libero_goal 9: the wine
bottle on the rack).

The wine rack's top board is a cradle for a bottle lying along x between two end plates (x -0.40 and
-0.14, up to z 1.22-1.25). A bottle set down upright on it is counted by the env's `On` test but tips
off the inclined board once released; a bottle dropped lying along x (either neck direction) from
1.19-1.28 m over y -0.23..-0.20 settles in the cradle at (y -0.185, z 1.166) and passes (measured in
simulation). The test is on the bottle's origin (the centre of its base) within 2.2 cm of the
region's centre across the board: a bottle that bounces and comes to rest with its thin neck sunk
lower in the cradle (axis 5 degrees off level) fails it by ~3 mm.

The bottle (15.7 cm, 15 g) has a 1.6 cm neck from 9 to 15.7 cm above its base. A downward hand pinches
the neck (fingertips 2.7 cm below the top: the palm, 3 cm above the fingertips, stays clear of it), so
the bottle hangs along the hand's pointing axis; pitching the hand about its finger axis until it
points along -x (towards the robot: the Panda reaches that pose over the rack, 45-55 cm in front of
its base, with room in every joint; pointing +x, 35 cm in front, ran joint 6 into its limit) lays the
bottle along x, neck +x. The pinch is not rigid: the bottle sags or droops by 2-4 degrees, and one let
go neck-low, or 4-5 cm above the cradle, bounced into a rest with its neck sunk (and its base outside
the test's band) or rolled off the front (2 of 20 in a screen). So the hand's orientation is corrected
every step to keep the bottle's axis at a set slight neck-up tilt (`level`), the bottle is brought
down until it is ~1.3 cm above its rest, and its base stays 2 cm short of the region's centre so its
neck tip clears the far end of the cradle.

Conventions as in policies.scripted.core: world frame, metres, radians; a hand rotation's columns are
(finger-closing axis, third axis, pointing axis).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from policies.scripted.core import CLOSE, OPEN, Phase, Scene, Skill, back_off_if_dropped


def pointing_rotation(pointing: tuple, finger: tuple) -> np.ndarray:
    """(3, 3) hand rotation pointing along `pointing` (world vector) with the fingers closing along
    the part of `finger` (world vector) orthogonal to it."""
    z = np.asarray(pointing, dtype=np.float64)
    z = z / np.linalg.norm(z)
    x = np.asarray(finger, dtype=np.float64)
    x = x - (x @ z) * z
    x = x / np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z], axis=1)


def aligning_rotation(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(3, 3) smallest rotation taking direction u (3,) onto direction v (3,) (Rodrigues)."""
    u = np.asarray(u, dtype=np.float64) / np.linalg.norm(u)
    v = np.asarray(v, dtype=np.float64) / np.linalg.norm(v)
    axis = np.cross(u, v)
    s, c = float(np.linalg.norm(axis)), float(u @ v)
    if s < 1e-9:
        return np.eye(3)  # aligned already (an antiparallel u is not asked for here)
    k = axis / s
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * K + (1 - c) * K @ K


class LayDownHeld(Skill):
    """Rise to `carry_z` (hand height, m), turn the hand to rotation `R` (3, 3) where it is (the held
    object turns with it), carry it so the object's origin comes `above` m over target(scene) (world
    xyz), lower it there, open the fingers and rise `retreat` m.

    The carry targets are live: the object's origin is taken where it is in the hand after the turn,
    so a bottle that slid in the pinch still lands where the target says. With `level` (a world
    direction, (3,)) the hand's orientation after the turn is corrected every step so the object's
    z axis points along it: the pinch is not rigid, a bottle held by its neck sags by a few degrees
    one way or the other, and one let go tilted bounces in the cradle. `turn_hold`: steps held where
    the hand turns (the pitch takes ~18). Re-planned by the runner's retry with nothing in the
    fingers, it only rises: a second carry would chase an object that is no longer in the hand."""

    label = "place"

    def __init__(self, obj: str, R: np.ndarray, target: Callable[[Scene], np.ndarray], carry_z: float = 1.32,
                 above: float = 0.06, retreat: float = 0.10, turn_hold: int = 15,
                 predicate: Callable[[Scene], bool] | None = None, level: tuple | None = None) -> None:
        self.obj, self.R, self.target, self.carry_z, self.above = obj, np.asarray(R, dtype=np.float64), target, carry_z, above
        self.retreat, self.turn_hold, self.predicate = retreat, turn_hold, predicate
        self.level = level
        self._planned = False

    def phases(self, s: Scene, rng: np.random.Generator) -> list[Phase]:
        R0 = s.ee_mat()
        retry, self._planned = self._planned, True
        dropped = back_off_if_dropped(s, self.obj, retry, np.array([0.0, 0.0, self.retreat]))
        if dropped:
            return dropped
        up = s.ee_pos()
        up[2] = max(float(up[2]), self.carry_z)
        goal = np.asarray(self.target(s), dtype=np.float64) + rng.normal(0.0, 0.003, 3) * [1, 1, 0]

        def over(sc: Scene) -> np.ndarray:
            # hand where the object's origin is `above` over the goal, from the object's place in the hand now
            return goal + np.array([0.0, 0.0, self.above]) - (sc.pos(self.obj) - sc.ee_pos())

        def at(sc: Scene) -> np.ndarray:
            return goal - (sc.pos(self.obj) - sc.ee_pos())

        def held(sc: Scene) -> np.ndarray:
            if self.level is None:
                return self.R
            # turn the hand by the rotation that would bring the object's axis onto `level`
            return aligning_rotation(sc.mat(self.obj)[:, 2], np.asarray(self.level)) @ sc.ee_mat()

        return [
            Phase(lambda sc: up, CLOSE, ori=R0, tol=0.012, timeout=40, label="lift"),
            Phase(lambda sc: up, CLOSE, ori=self.R, tol=0.012, hold=self.turn_hold, timeout=50),
            Phase(over, CLOSE, ori=held, tol=0.012, timeout=100, live=True),
            Phase(at, CLOSE, ori=held, tol=0.008, timeout=50, speed=0.5, live=True),
            Phase(lambda sc: sc.ee_pos(), OPEN, ori=held, tol=1.0, hold=8, timeout=9),
            Phase(lambda sc: sc.ee_pos() + np.array([0.0, 0.0, self.retreat]), OPEN, ori=self.R, tol=0.015,
                  timeout=40, label="reach"),
        ]

    def success(self, s: Scene) -> bool:
        return bool(self.predicate(s)) if self.predicate is not None else True
