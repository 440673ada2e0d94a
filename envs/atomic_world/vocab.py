"""The atomic world's factor vocabularies: verbs, objects, subjects, views and keystep programs.

Coordinates used throughout the atomic world: the agent stands at -y looking towards +y, the table
top is z = 0, "left" is -x (as seen by the agent), "away" is +y, yaw is counter-clockwise seen
from above.
"""

from __future__ import annotations

from dataclasses import dataclass

# Verb -> the caption verb phrase; "{o}" is the object's noun phrase.
ACTIONS: dict[str, str] = {
    "pick up": "picks up {o}",
    "put down": "puts down {o}",
    "push": "pushes {o} away",
    "pull": "pulls {o} closer",
    "slide left": "slides {o} to the left",
    "slide right": "slides {o} to the right",
    "rotate clockwise": "rotates {o} clockwise",
    "rotate counterclockwise": "rotates {o} counterclockwise",
    "open": "opens {o}",
    "close": "closes {o}",
    "turn on": "turns on {o}",
    "turn off": "turns off {o}",
}

# Nearly-symmetric pairs: each member is (close to) the time reversal of the other, which is
# what order-sensitivity probes (STEP) need.
SYMMETRIC_PAIRS: tuple[tuple[str, str], ...] = (
    ("pick up", "put down"),
    ("push", "pull"),
    ("slide left", "slide right"),
    ("rotate clockwise", "rotate counterclockwise"),
    ("open", "close"),
    ("turn on", "turn off"),
)

FIXTURE_ACTIONS = {"open": "drawer", "close": "drawer", "turn on": "knob", "turn off": "knob"}


@dataclass(frozen=True)
class ObjectSpec:
    """A movable object. `parts` are MJCF geoms relative to the body origin (its centre)."""

    name: str  # noun phrase used in captions, e.g. "red cube"
    rgba: tuple[float, float, float, float]
    parts: tuple[str, ...]  # geom attribute strings (type/size/pos), colour is added
    half_height: float  # body origin above the table when resting upright
    radius: float  # horizontal bounding radius, for approach offsets
    rotatable: bool  # yaw changes are visible (not rotationally symmetric about z)
    fits_drawer: bool
    grasp_yaw: float = 0.0  # effector yaw relative to the object's so the fingers straddle its narrow side

    @property
    def rolls(self) -> bool:
        """Spheres have no meaningful upright orientation."""
        return any('"sphere"' in p for p in self.parts)


OBJECTS: tuple[ObjectSpec, ...] = (
    ObjectSpec("red cube", (0.85, 0.1, 0.1, 1), ('type="box" size=".025 .025 .025"',), 0.025, 0.035, True, True),
    ObjectSpec("blue cylinder", (0.15, 0.3, 0.9, 1), ('type="cylinder" size=".022 .035"',), 0.035, 0.022, False, True),
    ObjectSpec(
        "green ball", (0.15, 0.75, 0.2, 1), ('type="sphere" size=".028"',), 0.028, 0.028, False, True
    ),
    ObjectSpec(
        "yellow block", (0.95, 0.8, 0.1, 1), ('type="box" size=".055 .022 .02"',), 0.02, 0.06, True, False, 1.5708
    ),
    ObjectSpec(
        "purple bottle",
        (0.55, 0.2, 0.7, 1),
        ('type="cylinder" size=".02 .032"', 'type="cylinder" size=".009 .014" pos="0 0 .045"'),
        0.032,
        0.02,
        False,
        False,
    ),
    ObjectSpec(
        "orange mug",
        (0.95, 0.5, 0.1, 1),
        ('type="cylinder" size=".026 .03"', 'type="box" size=".012 .005 .018" pos=".034 0 0"'),
        0.03,
        0.046,
        True,
        True,
        1.5708,
    ),
    ObjectSpec(
        "white carton", (0.92, 0.92, 0.88, 1), ('type="box" size=".02 .035 .04"',), 0.04, 0.04, True, False
    ),
)
OBJECTS_BY_NAME = {o.name: o for o in OBJECTS}
FIXTURES = ("drawer", "knob")

# subject -> caption noun phrase
SUBJECTS: dict[str, str] = {"robot": "the robot", "human": "the person"}

VIEWS: tuple[str, ...] = ("ego", "exo_left", "exo_right")

# Keystep programs: each a chain of 2-4 atomic actions in one scene. Names go into the index's
# `keystep` column; "{o}" is the movable object.
KEYSTEPS: dict[str, tuple[str, ...]] = {
    "store the object in the drawer": ("open", "pick up", "put down", "close"),
    "relocate the object": ("pick up", "put down"),
    "cycle the stove knob": ("turn on", "turn off"),
    "push the object back and forth": ("push", "pull"),
    "shuffle the object sideways": ("slide left", "slide right"),
    "straighten the object": ("rotate clockwise", "push"),
}


def caption(subject: str, action: str, obj: str) -> str:
    """Atomic sentence, e.g. "the robot pushes the red cube away"."""
    return SUBJECTS[subject] + " " + ACTIONS[action].format(o=f"the {obj}")


def object_for(action: str, movable: str) -> str:
    """The object an action acts on: a fixture for drawer/knob verbs, else the movable object."""
    return FIXTURE_ACTIONS.get(action, movable)


def valid_for(action: str, spec: ObjectSpec) -> bool:
    """Whether `action` gives a visible, checkable change on this movable object."""
    if action in FIXTURE_ACTIONS:
        return True
    if action.startswith("rotate"):
        return spec.rotatable
    return True
