"""BDDL parsing and BDDL-derived scripted programs (quick: reads task files, no simulator)."""

from __future__ import annotations

import pytest

from policies.scripted.bddl import derive_program, parse_bddl, resolve_target, skill_names

pytest.importorskip("libero")

SYNTHETIC = """
(define (problem Toy) ; a comment
  (:domain robosuite)
  (:language put the cup on the plate)
  (:regions
    (front_region (:target main_table) (:ranges ((0 0 0.1 0.1))))
    (contain_region (:target basket_1))
  )
  (:fixtures main_table - table)
  (:objects cup_1 cup_2 - porcelain_mug plate_1 - plate basket_1 - basket)
  (:obj_of_interest cup_1 plate_1)
  (:init (On cup_1 main_table_front_region))
  (:goal (And (On cup_1 plate_1) (In cup_2 basket_1_contain_region)))
)
"""


def _bddl(suite: str, task_id: int) -> str:
    from policies.scripted.programs import task_bddl

    return task_bddl(suite, task_id)


def test_parser_on_synthetic_text():
    p = parse_bddl(SYNTHETIC)
    assert p.name == "Toy" and p.language == "put the cup on the plate"
    assert p.objects == {"cup_1": "porcelain_mug", "cup_2": "porcelain_mug", "plate_1": "plate", "basket_1": "basket"}
    assert p.fixtures == {"main_table": "table"}
    assert p.regions == {"main_table_front_region": "main_table", "basket_1_contain_region": "basket_1"}
    assert p.obj_of_interest == ["cup_1", "plate_1"]
    assert p.goal == [("on", "cup_1", "plate_1"), ("in", "cup_2", "basket_1_contain_region")]
    assert resolve_target(p, "plate_1") == {"target": "plate_1"}
    assert resolve_target(p, "basket_1_contain_region") == {"target": "basket_1", "region": "basket_1_contain_region"}
    assert resolve_target(p, "main_table_front_region") == {"target": "main_table_front_region", "site": True}
    with pytest.raises(ValueError, match="unbalanced"):
        parse_bddl("(define (problem X)")


@pytest.mark.parametrize(
    "suite, task_id, goal",
    [
        ("libero_object", 0, [("in", "alphabet_soup_1", "basket_1_contain_region")]),
        ("libero_object", 7, [("in", "milk_1", "basket_1_contain_region")]),
        ("libero_spatial", 0, [("on", "akita_black_bowl_1", "plate_1")]),
        ("libero_10", 2, [("turnon", "flat_stove_1"), ("on", "moka_pot_1", "flat_stove_1_cook_region")]),
    ],
)
def test_goal_parser_on_real_bddl(suite, task_id, goal):
    p = parse_bddl(_bddl(suite, task_id))
    assert p.goal == goal
    assert all(a in p.names() for atom in goal for a in atom[1:])


def test_derived_pick_and_place_templates():
    obj = derive_program(parse_bddl(_bddl("libero_object", 0)))
    assert [s.label for s in obj] == ["grasp", "lift", "place"]
    place = obj[-1]
    assert (place.obj, place.target, place.region, place.predicate) == (
        "alphabet_soup_1", "basket_1", "basket_1_contain_region", "in")
    spatial = derive_program(parse_bddl(_bddl("libero_spatial", 3)))
    assert type(spatial[0]).__name__ == "GraspRim"  # bowls are pinched by the rim
    assert (spatial[-1].obj, spatial[-1].target, spatial[-1].predicate) == ("akita_black_bowl_1", "plate_1", "on")
    with pytest.raises(ValueError, match="no pick-and-place template"):
        derive_program(parse_bddl(_bddl("libero_goal", 0)))  # (Open ...)


def test_every_registered_program_names_objects_of_its_bddl():
    from policies.scripted.programs import DERIVED_SUITES, PROGRAMS, supported_tasks

    for suite, n in DERIVED_SUITES.items():
        assert supported_tasks(suite) == list(range(n))
    for (suite, task_id), factory in sorted(PROGRAMS.items()):
        prob = parse_bddl(_bddl(suite, task_id))
        known = prob.names()
        skills = factory()
        assert skills, (suite, task_id)
        for skill in skills:
            for name in skill_names(skill):
                assert name in known, f"{suite} {task_id}: {type(skill).__name__} refers to {name!r}, not in its bddl"
        # every movable object of the goal is handled by some skill
        touched = {n for s in skills for n in skill_names(s)}
        for atom in prob.goal:
            if atom[0] in ("on", "in") and atom[1] in prob.objects:
                assert atom[1] in touched, (suite, task_id, atom)


def test_every_skill_names_an_object_its_instruction_names():
    """`Skill.acts_on` is what the demo writer logs per step (data/demo_i/skill_objects) and the clip
    adapter names through `sim_noun`: for every program, that noun shares a word with the task's
    instruction, so a new program whose object would be labelled by a name no instruction uses fails."""
    from envs.datasets.demo_clips import sim_noun
    from envs.libero_env import get_task
    from policies.scripted.programs import PROGRAMS

    for (suite, task_id), factory in sorted(PROGRAMS.items()):
        words = set(get_task(suite, task_id).instruction.lower().replace("pots", "pot").split())
        for skill in factory():
            if skill.acts_on:  # "" only for a skill that moves the hand alone (TurnDown)
                noun = sim_noun(skill.acts_on)
                assert set(noun.split()) & words, f"{suite} {task_id}: {type(skill).__name__} acts on {noun!r}"


def test_articulated_skills_name_joints_of_bddl_objects():
    """Skills driving a joint (CloseHingedDoor) name it after an object or fixture of the task's BDDL
    (LIBERO prefixes every joint with its object's name)."""
    from policies.scripted.programs import PROGRAMS

    for (suite, task_id), factory in sorted(PROGRAMS.items()):
        known = parse_bddl(_bddl(suite, task_id)).names()
        for skill in factory():
            joint = getattr(skill, "joint", None)
            if isinstance(joint, str) and not callable(joint):
                assert any(joint.startswith(n + "_") for n in known), (suite, task_id, joint)


def test_hand_rotations_for_side_grasps_and_turning_down():
    """Quick geometry checks (no simulator) of the rotations the wrist-aware skills command."""
    import numpy as np

    from policies.scripted.articulated import side_rotation
    from policies.scripted.core import R_DOWN, hand_yaw
    from policies.scripted.library import horizontal_grasp
    from policies.scripted.wrist import pitched_down

    # the drawer hand of libero_goal 3 (pointing -y, finger_sign -1) pitches down onto the home yaw
    R = pitched_down(horizontal_grasp(np.array([0.0, -1.0, 0.0]), finger_sign=-1.0))
    assert np.allclose(R[:, 2], [0.0, 0.0, -1.0]) and abs(hand_yaw(R)) < 1e-6
    assert np.allclose(R, R_DOWN)
    # the other roll lands on yaw pi: the 180-degree unwinding that ran the wrist into its limit
    R = pitched_down(horizontal_grasp(np.array([0.0, -1.0, 0.0]), finger_sign=1.0))
    assert abs(abs(hand_yaw(R)) - np.pi) < 1e-6
    for approach, tilt in [((0.0, 1.0), 0.0), ((1.0, -1.0), 0.5), ((-0.2, 0.94), 0.4)]:
        R = side_rotation(np.array(approach), finger_sign=-1.0, tilt=tilt)
        assert np.allclose(R.T @ R, np.eye(3)) and np.isclose(np.linalg.det(R), 1.0)
        assert abs(R[2, 0]) < 1e-9  # fingers close horizontally
        assert np.isclose(R[2, 2], -np.sin(tilt))  # pointing tipped `tilt` down


def test_lying_bottle_rotations():
    """The hand rotation that lays a neck-pinched bottle along x (libero_goal 9), and the levelling
    correction (no simulator)."""
    import numpy as np

    from policies.scripted.lying import aligning_rotation, pointing_rotation

    R = pointing_rotation((-1.0, 0.0, 0.06), (0.0, 1.0, 0.0))
    assert np.allclose(R.T @ R, np.eye(3)) and np.isclose(np.linalg.det(R), 1.0)
    assert np.allclose(R[:, 0], [0.0, 1.0, 0.0])  # fingers still close along world y
    assert R[0, 2] < -0.99 and R[2, 2] > 0.0  # pointing at the robot, tipped up
    u, v = np.array([1.0, 0.02, -0.05]), np.array([1.0, 0.0, 0.03])
    A = aligning_rotation(u, v)
    assert np.allclose(A @ (u / np.linalg.norm(u)), v / np.linalg.norm(v))
    assert np.allclose(aligning_rotation(v, v), np.eye(3))
