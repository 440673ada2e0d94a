"""MJCF for the digital twin of roboact_clip.txt Sec. IV-D: a 7-DoF arm with a parallel gripper and a
wrist force-torque sensor on a table, a three-drawer cabinet (the middle drawer slides) with a roll of
tape inside it, a front RGB-D camera on the drawer and tabletop, and a wrist camera.

World frame: table top at z = 0, arm base at the origin, +x toward the cabinet. The arm alone
(`arm_xml()`) is also the kinematic model the safety layer and the scripted skills use, so the
forward kinematics they compute are the twin's by construction.
"""

from __future__ import annotations

import numpy as np

# joint axes of the 7-DoF chain (Panda-like alternation of roll and pitch) and their limits (rad)
JOINT_AXES = ("0 0 1", "0 1 0", "0 0 1", "0 1 0", "0 0 1", "0 1 0", "0 0 1")
JOINT_LOWER = np.array([-2.9, -1.76, -2.9, -0.1, -2.9, -2.9, -2.9])
JOINT_UPPER = np.array([2.9, 1.76, 2.9, 2.9, 2.9, 2.9, 2.9])
HOME_Q = np.array([0.0, 0.3, 0.0, 1.9, 0.0, 0.94, 0.0])  # gripper pointing down above the table
FINGER_TRAVEL = 0.045  # metres per finger, 0 = open
MAX_GRIP_FORCE = 60.0  # N, the actuator's own hard limit
# fingers touch the table, cabinet and handle but not the tape: a grasped tape is carried kinematically,
# and finger-tape contact would fight that and fling the tape on release (contype 4 & tape conaffinity 1 = 0)
FINGER_CONTACT = 'contype="4" conaffinity="1" friction="1.5 0.01 0.001"'

# cabinet / drawer / tape geometry (metres)
CAB_FRONT_X = 0.60
CAB_DEPTH = 0.30
CAB_HALF_W = 0.18
DRAWER_H = 0.12  # each of the three drawers
DRAWER_TRAVEL = 0.22
HANDLE_OUT = 0.04  # handle bar stands this far out of the drawer front
MIDDLE_Z = DRAWER_H * 1.5  # handle height of the middle drawer
TAPE_R, TAPE_HH = 0.035, 0.018
TAPE_IN_DRAWER_X = CAB_FRONT_X + 0.075  # tape centre when the drawer is closed
DRAWER_FLOOR_Z = DRAWER_H + 0.01


def handle_pos(drawer_open: float) -> np.ndarray:
    """(3,) world position of the middle drawer's handle bar centre for an opening (m, >= 0)."""
    return np.array([CAB_FRONT_X - HANDLE_OUT - drawer_open, 0.0, MIDDLE_Z])


def _v(x) -> str:
    return " ".join(f"{float(a):.6g}" for a in x)


def _xyaxes(pos, target) -> str:
    """Camera orientation looking from `pos` at `target` with world z up."""
    f = np.asarray(target, float) - np.asarray(pos, float)
    f /= np.linalg.norm(f)
    x = np.cross(f, [0, 0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(x, f)
    return _v([*x, *y])


def arm_xml(with_cameras: bool = True) -> str:
    """The arm body tree (base .. hand, fingers, `ee` site at the fingertip centre, `ft_site`)."""
    # (parent offset of the joint, link capsule length) along the local z axis
    offs = [0.15, 0.15, 0.15, 0.15, 0.14, 0.14, 0.04]
    links = []
    for i, (off, axis) in enumerate(zip(offs, JOINT_AXES)):
        nxt = offs[i + 1] if i + 1 < len(offs) else 0.04
        rng = f"{JOINT_LOWER[i]:.4f} {JOINT_UPPER[i]:.4f}"
        links.append(
            f'<body name="link{i}" pos="0 0 {off}" gravcomp="1">'
            f'<joint name="j{i}" axis="{axis}" range="{rng}" damping="8" armature="0.05"/>'
            f'<geom type="capsule" fromto="0 0 0 0 0 {nxt}" size="0.035" rgba="0.85 0.85 0.88 1" '
            f'contype="0" conaffinity="0" mass="1.0"/>'
        )
    cam = ('<camera name="wrist" pos="0.05 0 0.03" xyaxes="0 1 0 1 0 0" fovy="75"/>'
           if with_cameras else "")  # fmt: skip
    hand = (
        f'<body name="hand" pos="0 0 0.04" gravcomp="1">'
        f'<site name="ft_site" pos="0 0 0" size="0.01"/>'
        f'<geom type="box" size="0.03 0.06 0.02" pos="0 0 0.02" rgba="0.2 0.2 0.22 1" mass="0.5"/>'
        f'{cam}'
        f'<site name="ee" pos="0 0 0.10" size="0.006" rgba="1 0 0 0"/>'
        f'<body name="finger_l" pos="0 0.05 0.07" gravcomp="1">'
        f'<joint name="finger_l" type="slide" axis="0 -1 0" range="0 {FINGER_TRAVEL}" damping="5"/>'
        f'<geom type="box" size="0.012 0.005 0.035" rgba="0.15 0.15 0.15 1" mass="0.05" {FINGER_CONTACT}/>'
        f'</body>'
        f'<body name="finger_r" pos="0 -0.05 0.07" gravcomp="1">'
        f'<joint name="finger_r" type="slide" axis="0 1 0" range="0 {FINGER_TRAVEL}" damping="5"/>'
        f'<geom type="box" size="0.012 0.005 0.035" rgba="0.15 0.15 0.15 1" mass="0.05" {FINGER_CONTACT}/>'
        f'</body></body>'
    )
    return ('<body name="base" pos="0 0 0"><geom type="cylinder" size="0.07 0.03" pos="0 0 0.03" '
            'contype="0" conaffinity="0" rgba="0.3 0.3 0.3 1"/>' + "".join(links) + hand + "</body>" * 8)


def _actuators() -> str:
    kp = [600, 600, 400, 400, 200, 200, 100]
    arm = "".join(f'<position name="a{i}" joint="j{i}" kp="{k}" kv="{k * 0.08:.3g}" '
                  f'ctrlrange="{JOINT_LOWER[i]:.4f} {JOINT_UPPER[i]:.4f}"/>' for i, k in enumerate(kp))
    fingers = "".join(f'<position name="{n}" joint="{n}" kp="800" ctrlrange="0 {FINGER_TRAVEL}" '
                      f'forcelimited="true" forcerange="-{MAX_GRIP_FORCE} {MAX_GRIP_FORCE}"/>'
                      for n in ("finger_l", "finger_r"))
    drawer = f'<position name="drawer" joint="drawer" kp="400" kv="40" ctrlrange="-{DRAWER_TRAVEL} 0"/>'
    return f"<actuator>{arm}{fingers}{drawer}</actuator>"


def arm_only_xml() -> str:
    """A model with just the arm (kinematics for IK / FK; no scene, no cameras)."""
    return (f'<mujoco model="arm"><compiler angle="radian"/><worldbody>{arm_xml(False)}</worldbody>'
            f"</mujoco>")


def _cabinet() -> str:
    x0, d, w, h = CAB_FRONT_X, CAB_DEPTH, CAB_HALF_W, DRAWER_H
    cx = x0 + d / 2
    wood = 'rgba="0.55 0.4 0.28 1"'
    parts = [
        f'<geom type="box" size="{d / 2} 0.01 {1.5 * h}" pos="{cx} {w} {1.5 * h}" {wood}/>',
        f'<geom type="box" size="{d / 2} 0.01 {1.5 * h}" pos="{cx} {-w} {1.5 * h}" {wood}/>',
        f'<geom type="box" size="0.01 {w} {1.5 * h}" pos="{x0 + d} 0 {1.5 * h}" {wood}/>',
        f'<geom type="box" size="{d / 2} {w} 0.005" pos="{cx} 0 {3 * h}" {wood}/>',
        f'<geom type="box" size="{d / 2} {w} 0.005" pos="{cx} 0 {h}" {wood}/>',
        f'<geom type="box" size="{d / 2} {w} 0.005" pos="{cx} 0 {2 * h}" {wood}/>',
        # fixed top and bottom drawer fronts, handles offset so they never block the middle one
        f'<geom type="box" size="0.01 {w} {h / 2 - 0.005}" pos="{x0 - 0.01} 0 {h / 2}" rgba="0.6 0.45 0.3 1"/>',
        f'<geom type="box" size="0.01 {w} {h / 2 - 0.005}" pos="{x0 - 0.01} 0 {2.5 * h}" rgba="0.6 0.45 0.3 1"/>',
        f'<geom type="box" size="0.01 0.04 0.008" pos="{x0 - 0.03} {w - 0.06} {h / 2}" rgba="0.7 0.7 0.7 1"/>',
        f'<geom type="box" size="0.01 0.04 0.008" pos="{x0 - 0.03} {w - 0.06} {2.5 * h}" rgba="0.7 0.7 0.7 1"/>',
    ]
    iw, idp = w - 0.015, d - 0.02  # drawer box half width, depth
    drawer = (
        f'<body name="drawer" pos="{x0} 0 {h}">'
        f'<joint name="drawer" type="slide" axis="1 0 0" range="-{DRAWER_TRAVEL} 0" damping="20"/>'
        f'<geom type="box" size="{idp / 2} {iw} 0.005" pos="{idp / 2} 0 0.01" rgba="0.5 0.36 0.25 1" mass="0.6"/>'
        f'<geom type="box" size="0.01 {w} {h / 2 - 0.005}" pos="-0.01 0 {h / 2}" rgba="0.62 0.46 0.3 1" mass="0.3"/>'
        f'<geom type="box" size="0.005 {iw} 0.04" pos="{idp} 0 0.05" rgba="0.5 0.36 0.25 1" mass="0.1"/>'
        f'<geom type="box" size="{idp / 2} 0.005 0.04" pos="{idp / 2} {iw} 0.05" rgba="0.5 0.36 0.25 1" mass="0.1"/>'
        f'<geom type="box" size="{idp / 2} 0.005 0.04" pos="{idp / 2} {-iw} 0.05" rgba="0.5 0.36 0.25 1" mass="0.1"/>'
        f'<geom name="handle" type="capsule" fromto="-{HANDLE_OUT} 0 {h / 2 - 0.03} -{HANDLE_OUT} 0 {h / 2 + 0.03}" '
        f'size="0.008" rgba="0.8 0.8 0.82 1" mass="0.05"/>'
        f'<geom type="box" size="{HANDLE_OUT / 2} 0.006 0.006" pos="-{HANDLE_OUT / 2} 0 {h / 2 - 0.03}" rgba="0.8 0.8 0.82 1"/>'
        f'<geom type="box" size="{HANDLE_OUT / 2} 0.006 0.006" pos="-{HANDLE_OUT / 2} 0 {h / 2 + 0.03}" rgba="0.8 0.8 0.82 1"/>'
        f"</body>"
    )
    return "".join(parts) + drawer


def scene_xml(width: int = 64, height: int = 64) -> str:
    """The full twin scene; `width` x `height` is the offscreen buffer for the cameras."""
    tape = (f'<body name="tape" pos="{TAPE_IN_DRAWER_X} 0 {DRAWER_FLOOR_Z + 0.005 + TAPE_HH}">'
            f'<freejoint name="tape"/><geom type="cylinder" size="{TAPE_R} {TAPE_HH}" rgba="0.95 0.8 0.2 1" '
            f'mass="0.08" friction="1.2 0.01 0.001" contype="2" conaffinity="1"/>'
            f'<geom type="cylinder" size="{TAPE_R * 0.55} {TAPE_HH + 0.0005}" rgba="0.4 0.3 0.2 1" '
            f'contype="0" conaffinity="0" mass="0.001"/></body>')  # fmt: skip
    front_pos = (0.0, -0.55, 0.55)
    return f"""<mujoco model="roboact_twin">
  <compiler angle="radian"/>
  <option timestep="0.002" integrator="implicitfast"/>
  <visual><quality shadowsize="0" offsamples="0"/><global offwidth="{width}" offheight="{height}"/>
    <map znear="0.02" zfar="5"/></visual>
  <worldbody>
    <light directional="true" dir="0.3 0.4 -1" diffuse="0.8 0.8 0.8" castshadow="false" pos="0 0 2"/>
    <geom name="floor" type="plane" size="3 3 0.1" pos="0 0 -0.75" rgba="0.4 0.4 0.42 1"/>
    <geom name="table" type="box" size="0.7 0.7 0.02" pos="0.45 0 -0.02" rgba="0.75 0.72 0.66 1"/>
    <camera name="front" pos="{_v(front_pos)}" xyaxes="{_xyaxes(front_pos, (0.45, 0.0, 0.12))}" fovy="50"/>
    {arm_xml(True)}
    {_cabinet()}
    {tape}
  </worldbody>
  <sensor><force name="ft_force" site="ft_site"/><torque name="ft_torque" site="ft_site"/></sensor>
  {_actuators()}
</mujoco>"""
