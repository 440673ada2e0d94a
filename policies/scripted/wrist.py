"""Wrist-aware hand re-orientation for the scripted LIBERO experts.

A parallel gripper pointing down grasps the same way at yaw y and y + pi, but the Panda's last joint
(range +-2.9 rad) does not: skills elsewhere bring every grasp yaw into (-pi/2, pi/2], which suits a
hand that starts in LIBERO's home pose (yaw 0, joint 7 at ~0.8 rad). After a skill that holds the
hand horizontally (OpenDrawer pulls a handle with the hand pointing against the opening direction)
the way back to yaw 0 is a 180-degree rotation whose geodesic runs the wrist (joint 5, then joint 7)
into its limit. Pitching the hand straight down instead (TurnDown) is a 90-degree turn about one
horizontal axis and lands on a downward hand at a yaw set by the horizontal hand's finger roll: for
a drawer opening along +y, pi with library.HORIZONTAL_FINGER_SIGN and 0 with the other roll (which
libero_goal 3 uses). A grasp planned after it takes the equivalent yaw (mod pi) that the wrist can
reach from there (GraspRimWristSafe), so the wrist never unwinds.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from policies.scripted.core import OPEN, Phase, Scene, Skill, hand_yaw
from policies.scripted.library import GraspRim


def pitched_down(R: np.ndarray) -> np.ndarray:
    """(3, 3) rotation of a hand R (3, 3) turned by the smallest rotation that makes it point straight
    down (its z axis to world -z): one turn about the horizontal axis z x (-z)."""
    z = R[:, 2]
    down = np.array([0.0, 0.0, -1.0])
    axis = np.cross(z, down)
    n = float(np.linalg.norm(axis))
    angle = float(np.arctan2(n, z @ down))
    if n < 1e-8:
        return R.copy()  # already pointing down (or straight up: no unique axis, leave it)
    k = axis / n
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return (np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K) @ R


# Panda joint 7 range (rad) less a margin: the wrist's turn that a grasp yaw asks for must stay inside
WRIST_Q7_SAFE = 2.5


def wrist_safe_yaw(s: Scene, yaw: float) -> float:
    """The downward-hand yaw (rad) equivalent to `yaw` modulo pi that the servo can reach without
    running joint 7 into its limit. The servo turns the hand by the shortest rotation, so from the
    current yaw c the two equivalents are turns d and d -+ pi (both in (-pi, pi]); joint 7 turns
    about the hand's pointing axis (down), so a turn d of the world yaw moves it by ~-d. The smaller
    turn is taken unless it would leave joint 7 beyond +-WRIST_Q7_SAFE."""
    c = hand_yaw(s.ee_mat())
    q7 = float(s.sim.data.qpos[s.robot._ref_joint_pos_indexes[6]])
    d0 = float((yaw - c + np.pi / 2) % np.pi - np.pi / 2)  # in [-pi/2, pi/2)
    d1 = d0 - np.pi if d0 > 0 else d0 + np.pi
    for d in (d0, d1):
        if abs(q7 - d) <= WRIST_Q7_SAFE:
            return c + d
    return c + (d0 if abs(q7 - d0) < abs(q7 - d1) else d1)


class TurnDown(Skill):
    """Move the hand by `offset` (world xyz, m) while pitching it straight down (pitched_down of its
    orientation when the skill starts), gripper open; then, with `then`, on to the point then(scene)
    (world xyz, m), still turning. The 90-degree pitch takes ~18 steps at full rotation action, and
    the phases end on position only, so the first one holds `hold` steps."""

    label = "reach"

    def __init__(self, offset: tuple = (0.0, 0.0, 0.05), hold: int = 10,
                 then: Callable[[Scene], np.ndarray] | None = None) -> None:
        self.offset, self.hold, self.then = offset, hold, then
        self._R: np.ndarray | None = None

    def phases(self, s: Scene, rng: np.random.Generator) -> list[Phase]:
        self._R = pitched_down(s.ee_mat())
        goal = s.ee_pos() + np.asarray(self.offset, dtype=np.float64)
        phases = [Phase(lambda sc: goal, OPEN, ori=self._R, tol=0.015, hold=self.hold, timeout=40)]
        if self.then is not None:
            phases.append(Phase(self.then, OPEN, ori=self._R, tol=0.015, timeout=80))
        return phases

    def success(self, s: Scene) -> bool:
        return bool(s.ee_mat()[2, 2] < -0.9)  # the hand points within ~25 degrees of straight down


class GraspRimWristSafe(GraspRim):
    """GraspRim at the yaw equivalent (mod pi) that the wrist reaches from where it is when the grasp
    is planned (wrist_safe_yaw), so a hand already pointing down at yaw ~pi is not unwound."""

    def phases(self, s: Scene, rng: np.random.Generator) -> list[Phase]:
        phases = super().phases(s, rng)
        yaw = wrist_safe_yaw(s, float(phases[0].ori))  # every phase of a grasp holds one yaw
        for ph in phases:
            ph.ori = yaw
        return phases
