"""Scene factors: table/floor textures and colours, lighting, wall, distractors, layout, exo cameras.

A scene is a pure function of (dataset seed, scene index), so every take in that scene looks the
same apart from the agent, the object and their motion.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

TEXTURES = ("checker", "gradient", "flat")
DISTRACTOR_SHAPES = ("plant", "book", "lamp", "box", "vase")

# Layout (metres): the drawer cabinet and the stove stand at x = +-CABINET_X, y = cabinet_y; their
# xy half-extents (the cabinet's walls, the stove's box in mjcf.build_mjcf)
CABINET_X = 0.40
FIXTURE_HALF = {"cabinet": (0.1, 0.1), "stove": (0.09, 0.09)}
FIXTURE_CLEARANCE = 0.01  # a distractor keeps this much table between itself and a fixture
# per shape at scale 1: xy half-extents of the distractor geoms of mjcf._distractor (the book is
# also turned by BOOK_YAW * scale rad about z)
DISTRACTOR_HALF = {"plant": (0.055, 0.055), "book": (0.07, 0.05), "lamp": (0.04, 0.04), "box": (0.05, 0.04),
                   "vase": (0.03, 0.03)}
BOOK_YAW = 0.4


@dataclass(frozen=True)
class Distractor:
    shape: str
    pos: tuple[float, float]
    rgba: tuple[float, float, float, float]
    scale: float


@dataclass(frozen=True)
class SceneSpec:
    name: str
    table_tex: str
    table_rgb: tuple[tuple[float, float, float], tuple[float, float, float]]
    floor_tex: str
    floor_rgb: tuple[tuple[float, float, float], tuple[float, float, float]]
    wall_rgb: tuple[float, float, float]
    light_dir: tuple[float, float, float]
    light_rgb: tuple[float, float, float]
    ambient: float
    cabinet_side: int  # +1: drawer cabinet at +x and stove knob at -x; -1: mirrored
    cabinet_y: float
    cabinet_rgb: tuple[float, float, float]
    distractors: tuple[Distractor, ...]
    exo_jitter: tuple[tuple[float, float, float], ...]  # per exo camera position offset


def _rgb(rng: np.random.Generator, lo: float = 0.05, hi: float = 0.95) -> tuple[float, float, float]:
    return tuple(float(round(v, 3)) for v in rng.uniform(lo, hi, 3))  # type: ignore[return-value]


def cabinet_xy(scene: SceneSpec) -> tuple[float, float]:
    return scene.cabinet_side * CABINET_X, scene.cabinet_y


def stove_xy(scene: SceneSpec) -> tuple[float, float]:
    return -scene.cabinet_side * CABINET_X, scene.cabinet_y


def distractor_footprint(d: Distractor) -> tuple[float, float]:
    """(hx, hy): half-extents of the axis-aligned box around the distractor's geoms in the table plane."""
    a, b = (v * d.scale for v in DISTRACTOR_HALF[d.shape])
    if d.shape == "book":
        yaw = BOOK_YAW * d.scale
        a, b = abs(a * np.cos(yaw)) + abs(b * np.sin(yaw)), abs(a * np.sin(yaw)) + abs(b * np.cos(yaw))
    return float(a), float(b)


def clear_of_fixtures(scene: SceneSpec) -> SceneSpec:
    """The scene with every distractor that would overlap the cabinet or the stove (plus
    FIXTURE_CLEARANCE) moved straight back (+y) until it does not.

    A distractor reaching into the cabinet pins the drawer (world seed 4, scene 2: a book 4 cm into
    it, so every "open" there failed its truth check and generation stopped); one in the stove only
    interpenetrates it. Moving, not re-drawing, keeps the scene's other draws, so a distractor that
    was clear stays where it was."""
    fixtures = [(cabinet_xy(scene), FIXTURE_HALF["cabinet"]), (stove_xy(scene), FIXTURE_HALF["stove"])]
    moved = []
    for d in scene.distractors:
        (x, y), (hx, hy) = d.pos, distractor_footprint(d)
        for (fx, fy), (fhx, fhy) in fixtures:
            if abs(x - fx) < fhx + hx + FIXTURE_CLEARANCE and abs(y - fy) < fhy + hy + FIXTURE_CLEARANCE:
                y = fy + fhy + FIXTURE_CLEARANCE + hy
        moved.append(d if y == d.pos[1] else replace(d, pos=(x, float(round(y, 4)))))
    return replace(scene, distractors=tuple(moved))


def sample_scene(seed: int, index: int, n_exo: int) -> SceneSpec:
    """Scene `index` of the scene family drawn by dataset `seed`."""
    rng = np.random.default_rng([seed, 7919, index])
    base = _rgb(rng, 0.15, 0.85)
    table_rgb = (base, tuple(float(np.clip(c + rng.uniform(-0.25, 0.25), 0, 1)) for c in base))
    floor_base = _rgb(rng, 0.05, 0.6)
    floor_rgb = (floor_base, tuple(float(np.clip(c * rng.uniform(0.4, 0.9), 0, 1)) for c in floor_base))
    d = rng.normal(size=3)
    d[2] = -abs(d[2]) - 1.5  # always from above
    light_dir = tuple(float(round(v, 3)) for v in d / np.linalg.norm(d))
    warmth = rng.uniform(-0.15, 0.15)
    intensity = rng.uniform(0.55, 0.95)
    light_rgb = (intensity + warmth, intensity, intensity - warmth)
    cabinet_side = int(rng.choice([-1, 1]))
    distractors = []
    for _ in range(int(rng.integers(1, 4))):
        # the back strip of the table stays clear of the workspace; clear_of_fixtures keeps it off the fixtures
        distractors.append(
            Distractor(
                shape=str(rng.choice(DISTRACTOR_SHAPES)),
                pos=(float(rng.uniform(-0.5, 0.5)), float(rng.uniform(0.42, 0.52))),
                rgba=(*_rgb(rng), 1.0),
                scale=float(rng.uniform(0.8, 1.3)),
            )
        )
    return clear_of_fixtures(SceneSpec(
        name=f"scene_{index:02d}",
        table_tex=str(rng.choice(TEXTURES)),
        table_rgb=table_rgb,  # type: ignore[arg-type]
        floor_tex=str(rng.choice(TEXTURES)),
        floor_rgb=floor_rgb,  # type: ignore[arg-type]
        wall_rgb=_rgb(rng, 0.2, 0.95),
        light_dir=light_dir,  # type: ignore[arg-type]
        light_rgb=tuple(float(round(np.clip(c, 0, 1), 3)) for c in light_rgb),  # type: ignore[arg-type]
        ambient=float(round(rng.uniform(0.15, 0.4), 3)),
        cabinet_side=cabinet_side,
        cabinet_y=float(round(rng.uniform(0.22, 0.3), 3)),
        cabinet_rgb=_rgb(rng, 0.2, 0.8),
        distractors=tuple(distractors),
        exo_jitter=tuple(tuple(float(v) for v in rng.uniform(-0.06, 0.06, 3)) for _ in range(n_exo)),  # type: ignore[misc]
    ))


def split_scenes(seed: int, n_scenes: int, val_fraction: float) -> dict[str, str]:
    """scene name -> "train" | "val"; held-out scenes are disjoint from training scenes."""
    rng = np.random.default_rng([seed, 31337])
    order = rng.permutation(n_scenes)
    n_val = max(1, int(round(n_scenes * val_fraction))) if n_scenes > 1 else 0
    val = set(order[:n_val].tolist())
    return {f"scene_{i:02d}": ("val" if i in val else "train") for i in range(n_scenes)}
