"""MJCF assembly for one take: scene + subject embodiment + one movable object + fixtures + cameras.

Fixtures: a drawer cabinet (drawer on a slide joint, opening towards the agent) on one side of the
table and a stove with a knob (hinge about z, with an indicator lamp) on the other. The agent's
end effector is a mocap body driven kinematically; its collision "pusher" is switched on only for
push-type verbs so grasp approaches never shove the object.
"""

from __future__ import annotations

import numpy as np

from envs.atomic_world.scenes import BOOK_YAW, DISTRACTOR_HALF, Distractor, SceneSpec, cabinet_xy, stove_xy
from envs.atomic_world.vocab import ObjectSpec

# Geometry constants shared with the skills (metres); the layout (CABINET_X, cabinet_xy, stove_xy) is scenes.py's.
STOVE_KNOB_OFFSET = (0.0, -0.04)  # knob position relative to the stove centre
DRAWER_MAX = 0.15
DRAWER_TRAY_TOP = 0.012
HANDLE_OFFSET = (0.0, -0.118, 0.07)  # handle centre relative to the drawer body origin
KNOB_TOP = 0.066
FINGER_TIP = -0.072
FINGER_OPEN = 0.041  # inner face of an open finger, |x| in the effector frame
FINGER_TRAVEL = 0.036  # fingertip z in the effector frame
PALM_BOTTOM = -0.012
PUSHER_Z = -0.052
PUSHER_HALF = (0.035, 0.008)  # a flat paddle across the effector's x axis: pushes without spinning the object
ARM_SHOULDER = (0.0, -0.52, 0.22)
ARM_LINK = 0.40
HUMAN_FOREARM = 0.34
EXO_CAMERAS = {
    "exo_left": ((-0.5, -0.42, 0.48), (0.0, 0.1, 0.0)),
    "exo_right": ((0.52, -0.36, 0.44), (0.0, 0.1, 0.0)),
}
EGO_CAMERA = {  # subject -> (position, look-at) in the effector frame
    "robot": ((0.0, -0.10, 0.035), (0.0, 0.06, -0.08)),  # wrist camera, under the forearm link
    "human": ((-0.06, -0.26, 0.36), (0.0, 0.08, -0.08)),  # head-mounted, left of the right forearm
}


def xyaxes(pos, target, up=(0.0, 0.0, 1.0)) -> str:
    """MuJoCo camera `xyaxes` for a camera at `pos` looking at `target` (camera looks along -z)."""
    f = np.asarray(target, float) - np.asarray(pos, float)
    f /= np.linalg.norm(f)
    right = np.cross(f, up)
    if np.linalg.norm(right) < 1e-6:
        right = np.cross(f, (0.0, 1.0, 0.0))
    right /= np.linalg.norm(right)
    cam_up = np.cross(right, f)
    return " ".join(f"{v:.4f}" for v in (*right, *cam_up))


def _v(x) -> str:
    return " ".join(f"{float(v):.4f}" for v in x)


def _distractor(d: Distractor, i: int) -> str:
    """One distractor body; its footprint half-sizes come from scenes.DISTRACTOR_HALF (the table that
    clear_of_fixtures keeps away from the cabinet and the stove)."""
    s, (x, y), c = d.scale, d.pos, _v(d.rgba)
    a, b = DISTRACTOR_HALF[d.shape]
    if d.shape == "plant":  # the pot is narrower than the foliage sphere, whose radius is the footprint
        return (
            f'<body name="distractor{i}" pos="{x} {y} 0"><geom type="cylinder" size="{0.035*s} {0.03*s}" '
            f'pos="0 0 {0.03*s}" rgba=".55 .3 .2 1"/><geom type="sphere" size="{a*s}" pos="0 0 {0.1*s}" '
            f'rgba="{c}"/></body>'
        )
    if d.shape == "book":
        return (
            f'<body name="distractor{i}" pos="{x} {y} 0" euler="0 0 {BOOK_YAW*s}"><geom type="box" '
            f'size="{a*s} {b*s} {0.012*s}" pos="0 0 {0.012*s}" rgba="{c}"/></body>'
        )
    if d.shape == "lamp":  # the base is the widest part
        return (
            f'<body name="distractor{i}" pos="{x} {y} 0"><geom type="cylinder" size="{a*s} .006" pos="0 0 .006" '
            f'rgba=".2 .2 .2 1"/><geom type="capsule" fromto="0 0 0 0 0 {0.16*s}" size=".006" rgba=".3 .3 .3 1"/>'
            f'<geom type="sphere" size="{0.035*s}" pos="0 0 {0.17*s}" rgba="{c}"/></body>'
        )
    if d.shape == "vase":
        return (
            f'<body name="distractor{i}" pos="{x} {y} 0"><geom type="capsule" size="{a*s} {0.05*s}" '
            f'pos="0 0 {0.08*s}" rgba="{c}"/></body>'
        )
    return (
        f'<body name="distractor{i}" pos="{x} {y} 0"><geom type="box" size="{a*s} {b*s} {0.04*s}" '
        f'pos="0 0 {0.04*s}" rgba="{c}"/></body>'
    )


def _effector(subject: str) -> str:
    cam_pos, cam_target = EGO_CAMERA[subject]
    cam = f'<camera name="ego" pos="{_v(cam_pos)}" xyaxes="{xyaxes(cam_pos, cam_target)}" fovy="75"/>'
    pusher = (
        f'<geom name="pusher" type="box" size="{PUSHER_HALF[0]} {PUSHER_HALF[1]} .014" pos="0 0 {PUSHER_Z}" rgba="0 0 0 0" group="3" '
        'contype="0" conaffinity="0" friction=".3 .005 .0001"/>'
    )
    vis = 'contype="0" conaffinity="0"'
    if subject == "robot":
        metal, dark = ".72 .74 .78 1", ".18 .18 .2 1"
        body = (
            f'<geom type="box" size=".052 .016 .012" rgba="{metal}" {vis}/>'
            f'<geom type="cylinder" size=".021 .03" pos="0 0 .042" rgba="{dark}" {vis}/>'
            f'<body name="finger_l" pos="-.046 0 -.042"><joint name="finger_l" type="slide" axis="1 0 0" '
            f'range="0 {FINGER_TRAVEL}" damping="2"/><geom type="box" size=".005 .013 .03" rgba="{dark}" {vis} mass=".01"/></body>'
            f'<body name="finger_r" pos=".046 0 -.042"><joint name="finger_r" type="slide" axis="-1 0 0" '
            f'range="0 {FINGER_TRAVEL}" damping="2"/><geom type="box" size=".005 .013 .03" rgba="{dark}" {vis} mass=".01"/></body>'
        )
    else:
        skin = ".86 .66 .52 1"
        fingers = "".join(
            f'<geom type="capsule" fromto="0 {y:.3f} 0 0 {y:.3f} -.052" size=".0075" rgba="{skin}" {vis} mass=".004"/>'
            for y in (-0.018, -0.006, 0.006, 0.018)
        )
        body = (
            f'<geom type="box" size=".05 .026 .011" rgba="{skin}" {vis}/>'
            f'<body name="finger_l" pos="-.046 0 -.008"><joint name="finger_l" type="slide" axis="1 0 0" '
            f'range="0 {FINGER_TRAVEL}" damping="2"/><geom type="capsule" fromto="0 -.012 0 0 -.012 -.045" size=".009" '
            f'rgba="{skin}" {vis} mass=".01"/></body>'
            f'<body name="finger_r" pos=".046 0 -.008"><joint name="finger_r" type="slide" axis="-1 0 0" '
            f'range="0 {FINGER_TRAVEL}" damping="2"/>{fingers}</body>'
        )
    return f'<body name="eff" mocap="true" pos="0 -.15 .25">{body}{pusher}{cam}</body>'


def _arm(subject: str) -> str:
    vis = 'contype="0" conaffinity="0"'
    if subject == "robot":
        sx, sy, sz = ARM_SHOULDER
        h = ARM_LINK / 2
        return (
            f'<body name="arm_base" pos="{sx} {sy} 0"><geom type="cylinder" size=".06 .12" pos="0 0 {-0.12+0.02}" '
            f'rgba=".25 .27 .3 1" {vis}/><geom type="cylinder" size=".04 {sz/2:.3f}" pos="0 0 {sz/2:.3f}" '
            f'rgba=".85 .45 .1 1" {vis}/><geom type="sphere" size=".045" pos="0 0 {sz}" rgba=".25 .27 .3 1" {vis}/></body>'
            f'<body name="link1" mocap="true"><geom type="capsule" fromto="0 0 {-h} 0 0 {h}" size=".03" '
            f'rgba=".85 .45 .1 1" {vis}/><geom type="sphere" size=".036" pos="0 0 {h}" rgba=".25 .27 .3 1" {vis}/></body>'
            f'<body name="link2" mocap="true"><geom type="capsule" fromto="0 0 {-h} 0 0 {h}" size=".024" '
            f'rgba=".85 .45 .1 1" {vis}/></body>'
        )
    h = HUMAN_FOREARM / 2
    return (
        f'<body name="link1" mocap="true"><geom type="capsule" fromto="0 0 {-h} 0 0 {h}" size=".032" '
        f'rgba=".25 .35 .55 1" {vis}/><geom type="capsule" fromto="0 0 {h - 0.05} 0 0 {h}" size=".026" '
        f'rgba=".86 .66 .52 1" {vis}/></body>'
    )


def _object(spec: ObjectSpec, pos) -> str:
    extra = ' condim="6" friction="1 .01 .003"' if any('"sphere"' in p for p in spec.parts) else ""
    geoms = "".join(f'<geom {p} rgba="{_v(spec.rgba)}"{extra}/>' for p in spec.parts)
    return f'<body name="obj" pos="{_v(pos)}"><freejoint name="obj"/>{geoms}</body>'


def build_mjcf(scene: SceneSpec, subject: str, obj: ObjectSpec, obj_pos, views: tuple[str, ...], size: int) -> str:
    """Full MJCF XML string; `size` sets the offscreen buffer (kept small: rendering cost scales with it)."""
    (t1, t2), (f1, f2) = scene.table_rgb, scene.floor_rgb
    cx, cy = cabinet_xy(scene)
    kx, ky = stove_xy(scene)
    a = scene.ambient
    exo = []
    for i, name in enumerate(v for v in views if v != "ego"):
        if name not in EXO_CAMERAS:
            raise ValueError(f"unknown view {name!r}; known: ego, {', '.join(EXO_CAMERAS)}")
        pos, target = EXO_CAMERAS[name]
        pos = np.asarray(pos) + np.asarray(scene.exo_jitter[i % len(scene.exo_jitter)])
        exo.append(f'<camera name="{name}" pos="{_v(pos)}" xyaxes="{xyaxes(pos, target)}" fovy="48"/>')
    static = 'contype="1" conaffinity="1"'
    drawer_c = _v((*np.clip(np.asarray(scene.cabinet_rgb) * 1.15, 0, 1), 1))
    cab_c = _v((*scene.cabinet_rgb, 1))
    return f"""<mujoco model="atomic_world">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="0.002" integrator="implicitfast"/>
  <visual>
    <quality shadowsize="0" offsamples="0"/>
    <global offwidth="{size}" offheight="{size}"/>
    <headlight ambient="{a} {a} {a}" diffuse=".25 .25 .25" specular="0 0 0"/>
    <map znear="0.01"/>
  </visual>
  <asset>
    <texture name="table" type="2d" builtin="{scene.table_tex}" rgb1="{_v(t1)}" rgb2="{_v(t2)}" width="64" height="64"
      mark="random" random="0.02" markrgb="{_v(t2)}"/>
    <material name="table" texture="table" texrepeat="3 3"/>
    <texture name="floor" type="2d" builtin="{scene.floor_tex}" rgb1="{_v(f1)}" rgb2="{_v(f2)}" width="64" height="64"/>
    <material name="floor" texture="floor" texrepeat="6 6"/>
  </asset>
  <worldbody>
    <light directional="true" dir="{_v(scene.light_dir)}" diffuse="{_v(scene.light_rgb)}" castshadow="false" pos="0 0 2"/>
    <geom name="floor" type="plane" size="4 4 .1" pos="0 0 -.75" material="floor" {static}/>
    <geom name="wall" type="box" size="3 .02 1.3" pos="0 1.25 .4" rgba="{_v((*scene.wall_rgb, 1))}" {static}/>
    <geom name="table" type="box" size=".62 .46 .02" pos="0 .1 -.02" material="table" {static}/>
    {''.join(f'<geom type="box" size=".025 .025 .365" pos="{x} {y} -.405" rgba=".3 .25 .2 1" {static}/>'
             for x in (-.57, .57) for y in (-.3, .5))}
    {''.join(_distractor(d, i) for i, d in enumerate(scene.distractors))}
    <body name="cabinet" pos="{cx} {cy} 0">
      <geom type="box" size=".005 .1 .065" pos="-.095 0 .065" rgba="{cab_c}" {static}/>
      <geom type="box" size=".005 .1 .065" pos=".095 0 .065" rgba="{cab_c}" {static}/>
      <geom type="box" size=".09 .005 .065" pos="0 .095 .065" rgba="{cab_c}" {static}/>
      <geom type="box" size=".1 .1 .005" pos="0 0 .135" rgba="{cab_c}" {static}/>
      <body name="drawer">
        <joint name="drawer" type="slide" axis="0 -1 0" range="0 {DRAWER_MAX}" damping="25" armature=".1"/>
        <geom type="box" size=".085 .09 .005" pos="0 0 .007" rgba="{drawer_c}" mass=".3"/>
        <geom type="box" size=".005 .09 .03" pos="-.08 0 .04" rgba="{drawer_c}" mass=".05"/>
        <geom type="box" size=".005 .09 .03" pos=".08 0 .04" rgba="{drawer_c}" mass=".05"/>
        <geom type="box" size=".08 .005 .03" pos="0 .085 .04" rgba="{drawer_c}" mass=".05"/>
        <geom type="box" size=".09 .005 .06" pos="0 -.095 .062" rgba="{drawer_c}" mass=".1"/>
        <geom type="box" size=".035 .007 .008" pos="{_v(HANDLE_OFFSET)}" rgba=".15 .15 .15 1" mass=".02"/>
      </body>
    </body>
    <body name="stove" pos="{kx} {ky} 0">
      <geom type="box" size=".09 .09 .02" pos="0 0 .02" rgba=".12 .12 .13 1" {static}/>
      <geom type="cylinder" size=".04 .002" pos="0 .035 .041" rgba=".35 .35 .38 1" contype="0" conaffinity="0"/>
      <geom name="lamp" type="sphere" size=".009" pos=".055 -.06 .045" rgba=".25 .05 .05 1" contype="0" conaffinity="0"/>
      <body name="knob" pos="{_v((*STOVE_KNOB_OFFSET, 0.042))}">
        <joint name="knob" type="hinge" axis="0 0 1" range="-0.2 1.8" damping=".3" armature=".01"/>
        <geom type="cylinder" size=".022 .012" pos="0 0 .012" rgba=".8 .8 .82 1" mass=".02"/>
        <geom type="box" size=".016 .004 .004" pos=".008 0 .026" rgba=".9 .15 .1 1" mass=".005"/>
      </body>
    </body>
    {_object(obj, obj_pos)}
    {_effector(subject)}
    {_arm(subject)}
    {''.join(exo)}
  </worldbody>
  <actuator>
    <position name="drawer" joint="drawer" kp="400" ctrlrange="0 {DRAWER_MAX}"/>
    <position name="knob" joint="knob" kp="3" ctrlrange="-0.2 1.8"/>
    <position name="finger_l" joint="finger_l" kp="80" ctrlrange="0 {FINGER_TRAVEL}"/>
    <position name="finger_r" joint="finger_r" kp="80" ctrlrange="0 {FINGER_TRAVEL}"/>
  </actuator>
</mujoco>"""
