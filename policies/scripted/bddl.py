"""LIBERO task files (BDDL) -> scripted-expert programs.

libero_object and libero_spatial are one pick-and-place template with different objects and
targets, so their programs are derived from the task's goal rather than written one by one:

    problem = parse_bddl(path)            # objects, fixtures, regions, obj_of_interest, goal
    skills = derive_program(problem)      # [Grasp/GraspRim, Lift, PlaceInRegion] per goal atom

Grammar handled (the subset of PDDL/BDDL that LIBERO's task files use), as S-expressions:

    file     := "(" "define" "(" "problem" NAME ")" section* ")"
    section  := "(" ":objects"  (NAME+ "-" TYPE)* ")"
              | "(" ":fixtures" (NAME+ "-" TYPE)* ")"
              | "(" ":obj_of_interest" NAME* ")"
              | "(" ":regions" ("(" NAME ("(" ":target" NAME ")" | "(" KEY ANY* ")")* ")")* ")"
              | "(" ":goal" "(" "And" atom* ")" ")"      (a single atom without And is accepted)
              | "(" KEY ANY* ")"                           (:domain, :language, :init: kept raw)
    atom     := "(" PREDICATE ARG* ")"                    e.g. (In alphabet_soup_1 basket_1_contain_region)
    ";" starts a comment to the end of the line.

A region is referred to in atoms as "<target>_<region name>" (e.g. basket_1_contain_region,
main_table_stove_front_region, wooden_cabinet_1_top_side). Predicates are lower-cased.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from policies.scripted.core import Scene, Skill, hand_clearance, wrap_yaw
from policies.scripted.library import Grasp, GraspRim, Lift, PlaceInRegion

Sexp = str | list  # an atom or a nested list of S-expressions


def tokenize(text: str) -> list[str]:
    """Parentheses and whitespace-separated atoms; ';' comments dropped."""
    text = re.sub(r";[^\n]*", "", text)
    return re.findall(r"[()]|[^\s()]+", text)


def parse_sexp(text: str) -> Sexp:
    """The first complete S-expression in `text` as nested lists of strings."""
    tokens = tokenize(text)
    stack: list[list] = [[]]
    for tok in tokens:
        if tok == "(":
            stack.append([])
        elif tok == ")":
            if len(stack) == 1:
                raise ValueError("unbalanced ')' in BDDL")
            done = stack.pop()
            stack[-1].append(done)
            if len(stack) == 1:
                return done
        else:
            stack[-1].append(tok)
    raise ValueError("unbalanced '(' in BDDL (unterminated expression)")


def _typed_names(items: list[Sexp]) -> dict[str, str]:
    """["a", "b", "-", "t", "c", "-", "u"] -> {"a": "t", "b": "t", "c": "u"}."""
    out: dict[str, str] = {}
    pending: list[str] = []
    it = iter(items)
    for tok in it:
        if tok == "-":
            typ = next(it)
            out.update({n: str(typ) for n in pending})
            pending = []
        else:
            pending.append(str(tok))
    if pending:
        raise ValueError(f"BDDL names without a type: {pending}")
    return out


@dataclass
class Problem:
    """What the derivation needs from a task file. goal: (predicate, *args) atoms, predicate
    lower-cased; regions: full region name (<target>_<name>) -> its target."""

    name: str
    objects: dict[str, str] = field(default_factory=dict)  # movable object -> type
    fixtures: dict[str, str] = field(default_factory=dict)
    regions: dict[str, str] = field(default_factory=dict)
    obj_of_interest: list[str] = field(default_factory=list)
    goal: list[tuple[str, ...]] = field(default_factory=list)
    language: str = ""

    def names(self) -> set[str]:
        """Every name an atom may use: objects, fixtures and regions."""
        return set(self.objects) | set(self.fixtures) | set(self.regions)


def parse_bddl(path_or_text: str | Path) -> Problem:
    """Parse a LIBERO .bddl file (a path, or the text itself if it starts with '(')."""
    text = str(path_or_text)
    if not text.lstrip().startswith("("):
        text = Path(path_or_text).read_text()
    tree = parse_sexp(text)
    if not (isinstance(tree, list) and tree and tree[0] == "define"):
        raise ValueError("not a BDDL problem: expected (define (problem NAME) ...)")
    head = tree[1] if len(tree) > 1 and isinstance(tree[1], list) else []
    prob = Problem(name=str(head[1]) if len(head) > 1 else "")
    for sec in tree[2:]:
        if not (isinstance(sec, list) and sec and isinstance(sec[0], str)):
            continue
        key, body = sec[0].lower(), sec[1:]
        if key == ":objects":
            prob.objects = _typed_names(body)
        elif key == ":fixtures":
            prob.fixtures = _typed_names(body)
        elif key == ":obj_of_interest":
            prob.obj_of_interest = [str(b) for b in body]
        elif key == ":language":
            prob.language = " ".join(str(b) for b in body)
        elif key == ":regions":
            for reg in body:
                target = next((str(p[1]) for p in reg[1:] if isinstance(p, list) and p[:1] == [":target"]), None)
                if target is not None:
                    prob.regions[f"{target}_{reg[0]}"] = target
        elif key == ":goal":
            g = body[0] if body else []
            atoms = g[1:] if g and isinstance(g[0], str) and g[0].lower() == "and" else [g]
            prob.goal = [(str(a[0]).lower(), *map(str, a[1:])) for a in atoms if a]
    return prob


# ----------------------------------------------------------------------------------------------
# program derivation

BOWL_TYPES = ("bowl",)  # substrings of a BDDL type
MUG_TYPES = ("mug",)
BOX_TYPES = ("cream_cheese", "butter", "chocolate_pudding")  # low boxes: grasp near the bottom


def towards_base(obj: str) -> Callable[[Scene], np.ndarray]:
    """Horizontal direction from `obj` to the robot's base: a rim pinched on that side keeps the
    wrist near its natural yaw wherever the object stands (a fixed -x side turns the hand ~2 rad
    against the arm for a bowl 31 cm to the robot's left, and the reach stalls at the joint limit)."""

    def direction(scene: Scene) -> np.ndarray:
        base = scene.sim.data.body_xpos[scene.sim.model.body_name2id("robot0_base")]
        d = np.array(base[:2]) - scene.pos(obj)[:2]
        return np.array([d[0], d[1], 0.0])

    return direction


def clear_rim_side(obj: str, radius: float = 0.035, grasp_dz: float = 0.03, clear: float = 0.015,
                   turn: float = np.pi / 2, max_twist: float = 1.9) -> Callable[[Scene], np.ndarray]:
    """Direction for GraspRim: the side of `obj` facing the robot's base, turned by up to `turn`
    rad (or taken on the far side) when the open hand would come down on a neighbour there (a
    ramekin or a second bowl a few cm away). The hand's footprint (fingers spread along the
    direction, the palm's long axis with them) is scored against the other objects' geometry that
    stands above the fingertips (policies.scripted.core.hand_clearance); the least turn among the
    poses at least `clear` m clear wins, else the clearest.

    Poses whose hand yaw (as GraspRim sets it, within (-pi/2, pi/2]) is more than `max_twist` rad
    from the arm's azimuth towards the grasp point are skipped: the wrist runs into its joint limit
    and the reach stalls (measured: a bowl 31 cm to the robot's left taken from the -x side)."""
    base_dir = towards_base(obj)

    def direction(scene: Scene) -> np.ndarray:
        b = base_dir(scene)
        phi0 = float(np.arctan2(b[1], b[0]))
        lo, _ = scene.bbox_z(obj)
        pts = scene.obstacle_points(obj, lo + grasp_dz - 0.005)
        centre = scene.pos(obj)[:2]
        best, best_score = phi0, -np.inf
        for d in [*np.linspace(-turn, turn, 7), np.pi]:
            phi = phi0 + d
            u = np.array([np.cos(phi), np.sin(phi)])
            grasp = centre + radius * u
            azimuth = float(np.arctan2(*(grasp - (centre + b[:2]))[::-1]))
            if abs(wrap_yaw(phi - np.pi / 2) - azimuth) > max_twist:
                continue
            c = hand_clearance(pts, grasp, phi - np.pi / 2)
            score = min(c, clear) - 0.002 * abs(d)
            if score > best_score:
                best, best_score = phi, score
        return np.array([np.cos(best), np.sin(best), 0.0])

    return direction


def grasp_for(obj: str, obj_type: str) -> list[Skill]:
    """Grasp + Lift for one object, chosen by its BDDL type: bowls and mugs by the rim facing the
    robot's base, low boxes near their bottom, everything else (cans, bottles) with the default top-down
    grasp, turning/sliding away from tall neighbours."""
    if any(t in obj_type for t in BOWL_TYPES):
        return [GraspRim(obj, clear_rim_side(obj), radius=0.035), Lift(obj, height=0.12)]
    if any(t in obj_type for t in MUG_TYPES):
        return [GraspRim(obj, towards_base(obj), radius="fit", grasp_dz=0.085), Lift(obj)]
    dz = 0.012 if any(t in obj_type for t in BOX_TYPES) else 0.02
    return [Grasp(obj, grasp_dz=dz, avoid_yaw=0.35, avoid_shift=0.02), Lift(obj)]


def resolve_target(prob: Problem, name: str) -> dict:
    """PlaceInRegion keywords for a goal atom's second argument: an object itself (target=name),
    a region of an object (target=its object, region=name, e.g. basket_1_contain_region) or a
    region of a fixture (target=name as a site, e.g. main_table_stove_front_region)."""
    if name in prob.objects or name in prob.fixtures:
        return {"target": name}
    owner = prob.regions.get(name)
    if owner is None:
        raise ValueError(f"{name!r} is neither an object, a fixture nor a region of {prob.name}")
    if owner in prob.objects:
        return {"target": owner, "region": name}
    return {"target": name, "site": True}


def derive_program(prob: Problem) -> list[Skill]:
    """One pick-and-place per goal atom (On a b) / (In a b). Raises ValueError for a goal the
    template cannot express (Open, Close, Turnon, or a first argument that is not movable)."""
    skills: list[Skill] = []
    for atom in prob.goal:
        pred = atom[0]
        if pred not in ("on", "in") or len(atom) != 3:
            raise ValueError(f"no pick-and-place template for goal atom {atom} in {prob.name}")
        obj, tgt = atom[1], atom[2]
        if obj not in prob.objects:
            raise ValueError(f"goal atom {atom}: {obj!r} is not a movable object of {prob.name}")
        skills += grasp_for(obj, prob.objects[obj])
        skills.append(PlaceInRegion(obj, predicate=pred, **resolve_target(prob, tgt)))
    return skills


def skill_names(skill: Skill) -> list[str]:
    """The scene names a skill refers to (objects, sites, regions, cabinets, stoves)."""
    out = []
    for attr in ("obj", "target", "region", "goal", "cabinet", "stove"):
        v = getattr(skill, attr, None)
        if isinstance(v, str):
            out.append(v)
    return out
