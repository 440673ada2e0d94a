"""Task programs (skill sequences) for LIBERO tasks, and the scripted-expert Policy that runs them.

    policy = ScriptedPolicy(seed=0)   # or build_policy("scripted"), registered in policies.POLICIES
    policy.bind_env(env)              # picks the program for env.suite/env.task_id; privileged state
    a = policy.act(obs, instr)        # (7,) env action; policy.label() is the current atomic skill

Perturbations (for demo diversity, also active when evaluating so the measured success is that of
the demo generator): waypoint jitter of a few mm, random lift/pull lengths, optional action noise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from envs.policy_api import POLICIES, Policy
from policies.scripted.core import Scene, Skill, SkillRunner
from policies.scripted.library import (
    CloseDrawer,
    Grasp,
    GraspRim,
    Lift,
    OpenDrawer,
    PlaceInRegion,
    Push,
    TurnKnob,
)


def _pick_place(obj: str, target: str, predicate: str = "on", region: str | None = None, site: bool = False,
                **grasp_kw: object) -> list[Skill]:
    return [Grasp(obj, **grasp_kw), Lift(obj),
            PlaceInRegion(obj, target, predicate=predicate, region=region, site=site)]


def _top_drawer_out(scene: Scene) -> np.ndarray:
    return OpenDrawer("wooden_cabinet_1", "top").open_dir(scene)


def _towards_robot(scene: Scene) -> np.ndarray:
    return np.array([-1.0, 0.0, 0.0])


def _drawer_side(scene: Scene) -> np.ndarray:
    """Horizontal direction along the drawer front, on the robot's side (x < 0 is towards the robot)."""
    u = _top_drawer_out(scene)
    w = np.array([-u[1], u[0], 0.0])
    return w if w[0] < 0 else -w


def _behind_front_wall(cabinet: str, level: str, obj: str, margin: float = 0.006) -> Callable[[Scene], np.ndarray]:
    drawer = OpenDrawer(cabinet, level)
    return lambda scene: drawer.exposed_floor(scene, fit=scene.footprint_radius(obj) + margin)


# (suite, task id) -> program factory. Names follow the task's bddl objects.
PROGRAMS: dict[tuple[str, int], Callable[[], list[Skill]]] = {
    # RoboAct-CLIP T1-T4 (libero_goal)
    ("libero_goal", 0): lambda: [OpenDrawer("wooden_cabinet_1", "middle")],
    ("libero_goal", 5): lambda: [Push("plate_1", "main_table_stove_front_region", rim=0.05, push_z=0.012)],
    ("libero_goal", 6): lambda: _pick_place("cream_cheese_1", "akita_black_bowl_1", predicate="in", grasp_dz=0.015),
    ("libero_goal", 7): lambda: [TurnKnob("flat_stove_1")],
    # T6 (libero_spatial): the bowl sits in the open top drawer; take it by the rim nearest the robot
    ("libero_spatial", 4): lambda: [
        GraspRim("akita_black_bowl_1", _drawer_side, radius=0.035),
        Lift("akita_black_bowl_1", height=0.10, direction=_top_drawer_out, slide=0.06),
        PlaceInRegion("akita_black_bowl_1", "plate_1", predicate="on"),
    ],
    # libero_10 (LIVING_ROOM_SCENE1/2, KITCHEN_SCENE3)
    ("libero_10", 0): lambda: [
        *_pick_place("alphabet_soup_1", "basket_1", predicate="in", region="basket_1_contain_region"),
        *_pick_place("tomato_sauce_1", "basket_1", predicate="in", region="basket_1_contain_region"),
    ],
    ("libero_10", 3): lambda: [
        GraspRim("akita_black_bowl_1", _towards_robot, radius=0.035),
        Lift("akita_black_bowl_1", height=0.12),
        # set the bowl down just behind the drawer's front wall: a bowl leaning on the cabinet face
        # jams the drawer when it is pushed home
        PlaceInRegion("akita_black_bowl_1", _behind_front_wall("white_cabinet_1", "bottom", "akita_black_bowl_1"),
                      region="white_cabinet_1_bottom_region", predicate="in", release_dz=0.02),
        # the bottom drawer opens away from the robot, under the middle one: push it home from above
        CloseDrawer("white_cabinet_1", "bottom", style="tilted"),
    ],
    ("libero_10", 4): lambda: [
        GraspRim("porcelain_mug_1", _towards_robot, radius="fit", grasp_dz=0.085),
        Lift("porcelain_mug_1"),
        PlaceInRegion("porcelain_mug_1", "plate_1", predicate="on"),
        GraspRim("white_yellow_mug_1", _towards_robot, radius="fit", grasp_dz=0.085),
        Lift("white_yellow_mug_1"),
        PlaceInRegion("white_yellow_mug_1", "plate_2", predicate="on"),
    ],
    ("libero_10", 1): lambda: [
        *_pick_place("butter_1", "basket_1", predicate="in", region="basket_1_contain_region", grasp_dz=0.012),
        # the milk carton often stands within a palm's length of the box: turn/slide the grasp clear
        *_pick_place("cream_cheese_1", "basket_1", predicate="in", region="basket_1_contain_region",
                     grasp_dz=0.012, avoid_yaw=0.35, avoid_shift=0.02),
    ],
    ("libero_10", 6): lambda: [
        GraspRim("porcelain_mug_1", _towards_robot, radius="fit", grasp_dz=0.085),
        Lift("porcelain_mug_1"),
        PlaceInRegion("porcelain_mug_1", "plate_1", predicate="on"),
        *_pick_place("chocolate_pudding_1", "living_room_table_plate_right_region", site=True, grasp_dz=0.012),
    ],
    # T5 (libero_10): two pick-and-places into the basket
    ("libero_10", 7): lambda: [
        *_pick_place("alphabet_soup_1", "basket_1", predicate="in", region="basket_1_contain_region"),
        *_pick_place("cream_cheese_1", "basket_1", predicate="in", region="basket_1_contain_region",
                     grasp_dz=0.012),
    ],
}


def supported_tasks(suite: str) -> list[int]:
    return sorted(t for s, t in PROGRAMS if s == suite)


def program_for(suite: str, task_id: int) -> list[Skill]:
    if (suite, task_id) not in PROGRAMS:
        raise KeyError(
            f"no scripted program for {suite} task {task_id}; available: "
            + ", ".join(f"{s}:{t}" for s, t in sorted(PROGRAMS))
        )
    return PROGRAMS[(suite, task_id)]()


@POLICIES.register("scripted")
class ScriptedPolicy(Policy):
    """The scripted expert as a Policy: blind (declares no camera) but privileged (bind_env).

    `build_policy("scripted")`, or `"scripted:0.02"` for Gaussian action noise of std 0.02."""

    gripper_convention = "env"

    def __init__(self, seed: int = 0, noise: float = 0.0) -> None:
        self.seed = seed
        self.noise = noise
        self.rng = np.random.default_rng(seed)
        self.runner: SkillRunner | None = None
        self._env: Any = None
        self._skills: list[Skill] = []

    @classmethod
    def from_spec(cls, spec: str, seed: int = 0, noise: float = 0.0, **kwargs: Any) -> ScriptedPolicy:
        from envs.policy_api import spec_float

        return cls(seed=seed, noise=spec_float(spec, noise, "action noise"))

    @classmethod
    def supported_tasks(cls, suite: str) -> list[int]:
        return supported_tasks(suite)

    def seed_episode(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        self.runner = None

    def bind_env(self, env: Any) -> None:
        self._env = env
        self._skills = program_for(env.suite, env.task_id)
        self.runner = None  # phases are built from the first observation after the reset

    def label(self) -> str:
        return self.runner.label if self.runner is not None else "idle"

    def episode_info(self) -> dict[str, Any]:
        """Extra fields for the evaluator's episode record: each skill attempt and its outcome."""
        return {"skills": list(self.runner.log) if self.runner is not None else []}

    def act(self, obs: dict, instruction: str) -> np.ndarray:
        if self.runner is None:
            if self._env is None:
                raise RuntimeError("ScriptedPolicy needs bind_env(env) before act(): it uses privileged state")
            self.runner = SkillRunner(self._skills, Scene(self._env), self.rng, action_noise=self.noise)
        return self.runner.act()
