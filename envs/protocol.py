"""LIBERO evaluation protocol: every constant the published numbers depend on, in one place.

The numbers that VLA papers report on LIBERO (OpenVLA, OpenVLA-OFT, pi0, ... and RoboAct-CLIP, which
builds on such a baseline) follow the OpenVLA evaluation script. Its choices are:

| what                     | value                                                              |
|--------------------------|--------------------------------------------------------------------|
| suites                   | libero_spatial, libero_object, libero_goal, libero_10, libero_90   |
| max policy steps         | 220 / 280 / 300 / 520 / 400 (same order)                           |
| wait steps               | 10 steps of [0,0,0,0,0,0,-1] after reset (objects settle), not counted |
| init state               | trial i uses the suite's fixed init state i                        |
| seed                     | env.seed(0)                                                        |
| trials per task          | 50 (full protocol); 20 here by default for speed                   |
| render                   | 256x256, agentview + wrist camera, images flipped 180 degrees      |
| VLA input                | resize to 224x224, optional centre crop of 90% area then resize back |
| gripper                  | policy [0,1] (1 = open) -> env [-1 open, +1 close], binarised      |
| controller               | OSC_POSE delta: xyz in [-1,1] (x0.05 m), axis-angle in [-1,1] (x0.5 rad) |

`protocol_table()` renders this table from the constants below so docs and code cannot drift.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

SUITES: tuple[str, ...] = ("libero_spatial", "libero_object", "libero_goal", "libero_10", "libero_90")

# Maximum number of policy steps per episode (the longest training demo of each suite, rounded up).
MAX_STEPS: dict[str, int] = {
    "libero_spatial": 220,
    "libero_object": 280,
    "libero_goal": 300,
    "libero_10": 520,
    "libero_90": 400,
}

# Objects drop onto the table for a few frames after a reset; the protocol idles through it.
NUM_WAIT_STEPS: int = 10
WAIT_ACTION: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0)

ENV_SEED: int = 0
DEFAULT_TRIALS: int = 20
FULL_PROTOCOL_TRIALS: int = 50

RENDER_RESOLUTION: int = 256
VLA_RESOLUTION: int = 224
CENTER_CROP_AREA: float = 0.9

ACTION_DIM: int = 7
CONTROL_HZ: int = 20  # LIBERO's robosuite control frequency: one action per 1/20 s (its LeRobot sets: fps 20)
# what a LiberoEnv observation carries (envs/libero_env.py): both cameras, proprio = eef pos (3) +
# eef axis-angle (3) + gripper qpos (2)
CAMERA_KEYS: tuple[str, ...] = ("agentview_rgb", "eye_in_hand_rgb")
PROPRIO_KEYS: tuple[str, ...] = ("ee_pos", "ee_ori", "gripper_states")  # the demo obs keys, in this order
PROPRIO_DIM: int = 8
# OSC_POSE scaling of robosuite's default controller config: an action of 1.0 moves this much.
OSC_POS_SCALE_M: float = 0.05
OSC_ROT_SCALE_RAD: float = 0.5

# RoboAct-CLIP (Sec. IV-a/b): T1-T4 are trained/evaluated, T5/T6 are held out. (suite, task index)
ROBOACT_TASKS: dict[str, tuple[str, int, str]] = {
    "T1": ("libero_goal", 0, "open the middle drawer of the cabinet"),
    "T2": ("libero_goal", 5, "push the plate to the front of the stove"),
    "T3": ("libero_goal", 6, "put the cream cheese in the bowl"),
    "T4": ("libero_goal", 7, "turn on the stove"),
    "T5": ("libero_10", 7, "put both the alphabet soup and the cream cheese box in the basket"),
    "T6": ("libero_spatial", 4, "pick up the black bowl in the top drawer of the wooden cabinet and place it on the plate"),
}

_ALIASES = {s.replace("_", ""): s for s in SUITES} | {s: s for s in SUITES}
_ALIASES |= {s.replace("libero_", ""): s for s in SUITES}  # "goal", "10", "spatial"


def canonical_suite(name: str) -> str:
    """`libero10`, `libero_10`, `10`, `LIBERO-10` -> `libero_10`; unknown names raise ValueError."""
    key = str(name).strip().lower().replace("-", "_")
    if key in _ALIASES:
        return _ALIASES[key]
    if key.replace("_", "") in _ALIASES:
        return _ALIASES[key.replace("_", "")]
    raise ValueError(f"unknown LIBERO suite {name!r}; expected one of {', '.join(SUITES)} (or e.g. libero10)")


def max_steps(suite: str) -> int:
    return MAX_STEPS[canonical_suite(suite)]


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------


def flip_image(img: np.ndarray) -> np.ndarray:
    """Rotate a rendered frame by 180 degrees: MuJoCo's offscreen buffer is upside down and LIBERO's
    training data (and every published policy) uses the rotated view. (H, W, C) -> (H, W, C)."""
    if img.ndim != 3:
        raise ValueError(f"expected an (H, W, C) image, got shape {img.shape}")
    return np.ascontiguousarray(img[::-1, ::-1])


def resize_image(img: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) uint8 with Lanczos, as the OpenVLA evaluation does."""
    if img.shape[0] == size and img.shape[1] == size:
        return img
    return np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.LANCZOS))


def center_crop(img: np.ndarray, area: float = CENTER_CROP_AREA) -> np.ndarray:
    """Crop the centre `area` fraction of the pixels (side sqrt(area)) and resize back to (H, W).

    VLAs trained with random-resized-crop augmentation are evaluated on this centre crop."""
    if not 0.0 < area <= 1.0:
        raise ValueError(f"center crop area must be in (0, 1], got {area}")
    h, w = img.shape[:2]
    s = math.sqrt(area)
    ch, cw = round(h * s), round(w * s)
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = img[top : top + ch, left : left + cw]
    return np.asarray(Image.fromarray(crop).resize((w, h), Image.Resampling.BILINEAR))


def vla_image(img: np.ndarray, size: int = VLA_RESOLUTION, crop: bool = True) -> np.ndarray:
    """Rendered-and-flipped (H, W, 3) frame -> what a VLA sees: resize to `size`, optional centre crop."""
    out = resize_image(img, size)
    return center_crop(out) if crop else out


# ---------------------------------------------------------------------------------------------
# Actions
# ---------------------------------------------------------------------------------------------

GRIPPER_CONVENTIONS = ("env", "openvla")


def policy_gripper_to_env(g: float | np.ndarray, convention: str = "openvla") -> np.ndarray:
    """Map a policy's gripper output onto LIBERO's command (-1 = open, +1 = close).

    convention "openvla": g in [0, 1] with 1 = open (RLDS/OpenVLA LIBERO data). It is rescaled to
        [-1, 1] (2g - 1), binarised (sign, 0 -> +1 is never produced because >0.5 is open), and
        inverted so that open -> -1 and close -> +1.
    convention "env": g is already a LIBERO command (the project's own hdf5 demos store it); it is
        only binarised (>= 0 -> +1 close, < 0 -> -1 open).
    """
    g = np.asarray(g, dtype=np.float64)
    if convention == "openvla":
        if np.any((g < -1e-6) | (g > 1 + 1e-6)):
            raise ValueError(f"openvla gripper value must lie in [0, 1], got {g}")
        return np.where(2.0 * g - 1.0 > 0.0, -1.0, 1.0)
    if convention == "env":
        return np.where(g >= 0.0, 1.0, -1.0)
    raise ValueError(f"unknown gripper convention {convention!r}; expected one of {GRIPPER_CONVENTIONS}")


def to_env_action(action: np.ndarray, convention: str = "env") -> np.ndarray:
    """A policy's (7,) action -> the (7,) float64 action LIBERO's env.step takes (arm part clipped
    to [-1, 1], gripper through `policy_gripper_to_env`)."""
    a = np.asarray(action, dtype=np.float64).reshape(-1)
    if a.shape[0] != ACTION_DIM:
        raise ValueError(f"LIBERO actions have {ACTION_DIM} dims, policy returned shape {np.shape(action)}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"policy returned a non-finite action {a}")
    out = np.clip(a, -1.0, 1.0)
    out[6] = float(policy_gripper_to_env(a[6], convention))
    return out


# ---------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success rate; (0, 1) for n == 0."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def newcombe_difference(s1: int, n1: int, s2: int, n2: int, z: float = 1.96) -> tuple[float, float]:
    """95% interval of the difference of two success rates s1/n1 - s2/n2 from their Wilson intervals
    (Newcombe 1998, method 10, the hybrid score interval); (-1, 1) when either n is 0."""
    if n1 <= 0 or n2 <= 0:
        return (-1.0, 1.0)
    p1, p2 = s1 / n1, s2 / n2
    (l1, u1), (l2, u2) = wilson_interval(s1, n1, z), wilson_interval(s2, n2, z)
    d = p1 - p2
    return (max(-1.0, d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)),
            min(1.0, d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)))


def protocol_table() -> str:
    """Markdown table of the constants (for docs/results)."""
    rows = [("suite", "max steps")] + [(s, str(MAX_STEPS[s])) for s in SUITES]
    lines = ["| " + " | ".join(rows[0]) + " |", "|---|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    lines += [
        "",
        f"- wait steps: {NUM_WAIT_STEPS} x {list(WAIT_ACTION)}",
        f"- env seed: {ENV_SEED}; trial i uses init state i; trials: {FULL_PROTOCOL_TRIALS} (full), "
        f"{DEFAULT_TRIALS} (default)",
        f"- render {RENDER_RESOLUTION}x{RENDER_RESOLUTION}, flipped 180 deg; VLA input {VLA_RESOLUTION}, "
        f"centre crop {CENTER_CROP_AREA:.0%} area",
        "- gripper: policy [0,1] (1=open) -> env -1 open / +1 close",
    ]
    return "\n".join(lines)
