"""Forward and inverse kinematics of the twin's arm (the same MJCF body tree as the simulator).

    kin = ArmKinematics()
    pos, rot = kin.fk(q)                    # (7,) -> (3,), (3, 3) pose of the `ee` site
    q = kin.ik(pos, rot, q_seed)            # damped least squares, joint limits respected

Used by the safety layer (Cartesian workspace check of a commanded joint target) and the scripted
skills (waypoints in task space). A vendor arm served over TCP would bring its own model; this one is
the default.
"""

from __future__ import annotations

import mujoco
import numpy as np

from real_robot.twin_scene import HOME_Q, JOINT_LOWER, JOINT_UPPER, arm_only_xml

# gripper orientations used by the skills: columns are the ee frame's x, y (finger closing axis),
# z (approach direction) in world coordinates
R_DOWN = np.array([[-1.0, 0, 0], [0, 1, 0], [0, 0, -1]])  # approach from above, fingers close along y
R_FORWARD = np.array([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]])  # approach along +x, fingers close along y


class ArmKinematics:
    """FK / IK of the 7-DoF arm. Not thread-safe (one MjData); create one per thread."""

    def __init__(self) -> None:
        self.model = mujoco.MjModel.from_xml_string(arm_only_xml())
        self.data = mujoco.MjData(self.model)
        self.site = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, "ee")
        self.lower = JOINT_LOWER.copy()
        self.upper = JOINT_UPPER.copy()
        self._jp = np.zeros((3, self.model.nv))
        self._jr = np.zeros((3, self.model.nv))

    def fk(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(7,) joints -> ee position (3,) and rotation matrix (3, 3)."""
        self.data.qpos[:7] = q
        mujoco.mj_kinematics(self.model, self.data)
        return self.data.site_xpos[self.site].copy(), self.data.site_xmat[self.site].reshape(3, 3).copy()

    def ik(self, pos: np.ndarray, rot: np.ndarray | None, q_seed: np.ndarray, iters: int = 200,
           tol: float = 1e-4, rot_weight: float = 0.3) -> tuple[np.ndarray, float]:
        """Joints reaching `pos` (3,) and, if given, `rot` (3, 3); returns (q (7,), position error m).

        Damped least squares from `q_seed`, clipped to the joint limits every iteration, with a small
        null-space pull toward HOME_Q so the elbow stays in the same branch between waypoints."""
        q = np.clip(np.asarray(q_seed, float).copy(), self.lower, self.upper)
        m, d = self.model, self.data
        err = np.inf
        for _ in range(iters):
            d.qpos[:7] = q
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            cur_p = d.site_xpos[self.site]
            cur_r = d.site_xmat[self.site].reshape(3, 3)
            e_p = pos - cur_p
            err = float(np.linalg.norm(e_p))
            mujoco.mj_jacSite(m, d, self._jp, self._jr, self.site)
            if rot is not None:
                # orientation error as the rotation vector taking cur_r to rot (small-angle form)
                e_r = 0.5 * sum(np.cross(cur_r[:, i], rot[:, i]) for i in range(3))
                e = np.concatenate([e_p, rot_weight * e_r])
                J = np.vstack([self._jp[:, :7], rot_weight * self._jr[:, :7]])
                done = err < tol and np.linalg.norm(e_r) < 10 * tol
            else:
                e, J = e_p, self._jp[:, :7]
                done = err < tol
            if done:
                break
            lam = 1e-3
            JJt = J @ J.T + lam * np.eye(J.shape[0])
            dq = J.T @ np.linalg.solve(JJt, e)
            null = np.eye(7) - np.linalg.pinv(J) @ J
            dq = dq + 0.05 * null @ (HOME_Q - q)
            step = np.linalg.norm(dq)
            if step > 0.2:  # trust region: large steps jump branches
                dq *= 0.2 / step
            q = np.clip(q + dq, self.lower, self.upper)
        return q, err
