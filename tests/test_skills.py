"""Scripted atomic skills: geometry helpers (quick) and real skill runs with their success predicates (`slow`)."""

from __future__ import annotations

import numpy as np
import pytest

from policies.scripted.core import R_DOWN, rot_z, rotvec, wrap_yaw


def test_rotation_helpers():
    assert np.allclose(rotvec(np.eye(3)), 0)
    np.testing.assert_allclose(rotvec(rot_z(0.3)), [0, 0, 0.3], atol=1e-9)
    np.testing.assert_allclose(np.abs(rotvec(rot_z(np.pi))), [0, 0, np.pi], atol=1e-6)
    assert abs(wrap_yaw(np.pi * 0.75) - (-np.pi / 4)) < 1e-9
    assert np.allclose(R_DOWN @ R_DOWN.T, np.eye(3)) and np.isclose(np.linalg.det(R_DOWN), 1.0)


def test_program_registry_covers_roboact_tasks():
    from envs import protocol
    from policies.scripted.programs import program_for, supported_tasks

    for tid in ("T1", "T2", "T3", "T4"):
        suite, idx, _ = protocol.ROBOACT_TASKS[tid]
        assert idx in supported_tasks(suite)
        assert program_for(suite, idx)
    # the issue asks for >= 5 libero_10 task programs, T5 (libero_10 7) among them
    assert len(supported_tasks("libero_10")) >= 5 and 7 in supported_tasks("libero_10")
    for task in supported_tasks("libero_10"):
        assert program_for("libero_10", task)
    with pytest.raises(KeyError, match="no scripted program"):
        program_for("libero_90", 89)


@pytest.mark.slow
def test_turn_knob_skill_success_predicate_through_simulator():
    """T4 (turn on the stove): the predicate is False at the start, the expert makes it True and
    the benchmark's own goal check agrees."""
    from envs.libero_env import LiberoEnv
    from policies.scripted.core import Scene
    from policies.scripted.library import TurnKnob
    from policies.scripted.programs import ScriptedPolicy

    with LiberoEnv("libero_goal", 7, render=False) as env:
        policy = ScriptedPolicy(seed=0)
        policy.seed_episode(0)
        policy.bind_env(env)
        obs = env.reset(trial=0)
        skill = TurnKnob("flat_stove_1")
        scene = Scene(env)
        assert not skill.success(scene) and not env.success()
        labels, objects = [], []
        for _ in range(150):
            a = policy.act(obs, env.instruction)
            labels.append(policy.label())
            objects.append(policy.label_object())  # what the demo writer logs as data/demo_i/skill_objects
            assert a.shape == (7,) and np.all(np.abs(a) <= 1.0)
            obs, _, _, info = env.step(a)
            if info["success"]:
                break
        assert skill.success(scene) and env.success()
        assert labels[0] == "reach" and "turn" in labels
        assert set(objects) == {"flat_stove_1"}  # the reach phase belongs to the turn skill's object too


@pytest.mark.slow
def test_open_then_close_drawer_predicates():
    """The drawer skills drive LIBERO's own is_open/is_close states (T1's middle drawer)."""
    from envs.libero_env import LiberoEnv
    from policies.scripted.core import Scene, SkillRunner
    from policies.scripted.library import CloseDrawer, OpenDrawer

    with LiberoEnv("libero_goal", 0, render=False) as env:
        env.reset(trial=1)
        scene = Scene(env)
        opener, closer = OpenDrawer("wooden_cabinet_1", "middle"), CloseDrawer("wooden_cabinet_1", "middle")
        # (LIBERO's is_close needs qpos > 0, so the freshly reset drawer at exactly 0 is neither)
        assert not opener.success(scene)
        runner = SkillRunner([opener, closer], scene, np.random.default_rng(1))
        labels = set()
        for _ in range(400):
            env.step(runner.act())
            labels.add(runner.label)
            if runner.done:
                break
        assert runner.log == [{"skill": "open", "success": True}, {"skill": "close", "success": True}]
        assert closer.success(scene) and {"reach", "open", "close"} <= labels


def test_hand_clearance_footprint():
    from policies.scripted.core import HAND_HALF_ACROSS, HAND_HALF_ALONG, hand_clearance

    c = np.zeros(2)
    # at yaw 0 the palm is long along world y (the finger axis) and thin along x
    assert hand_clearance(np.array([[0.0, HAND_HALF_ALONG + 0.02]]), c, 0.0) == pytest.approx(0.02)
    assert hand_clearance(np.array([[HAND_HALF_ACROSS + 0.03, 0.0]]), c, 0.0) == pytest.approx(0.03)
    # a point inside the footprint is negative: depth to the nearest edge
    assert hand_clearance(np.array([[0.0, HAND_HALF_ALONG - 0.01]]), c, 0.0) == pytest.approx(-0.01)
    # turning the hand by 90 degrees swaps the axes
    assert hand_clearance(np.array([[HAND_HALF_ALONG + 0.02, 0.0]]), c, np.pi / 2) == pytest.approx(0.02)
    assert hand_clearance(np.zeros((0, 2)), c, 0.0) == float("inf")


@pytest.mark.slow
def test_grasp_geometry_in_real_scenes():
    """Mug walls are found off the body origin; a cluttered grasp turns/slides clear of the milk."""
    from envs.libero_env import LiberoEnv
    from policies.scripted.core import Scene
    from policies.scripted.library import Grasp

    with LiberoEnv("libero_10", 4, render=False) as env:
        env.reset(trial=0)
        scene = Scene(env)
        for mug in ("porcelain_mug_1", "white_yellow_mug_1"):
            centre, r = scene.rim_circle(mug)
            # LIBERO's mug meshes put the body origin ~1.5-2 cm off the cup's axis
            assert 0.01 < np.linalg.norm(centre - scene.pos(mug)[:2]) < 0.03
            assert 0.035 < r < 0.05

    with LiberoEnv("libero_10", 1, render=False) as env:
        env.reset(trial=1)  # the milk carton stands within a palm's length of the cream cheese
        scene = Scene(env)
        rng = np.random.default_rng(0)
        plain = Grasp("cream_cheese_1", grasp_dz=0.012)
        plain.phases(scene, rng)
        avoiding = Grasp("cream_cheese_1", grasp_dz=0.012, avoid_yaw=0.35, avoid_shift=0.02)
        phases = avoiding.phases(scene, rng)
        assert plain.clearance < 0 < avoiding.clearance
        assert abs(phases[1].ori) <= 0.35 + 1e-9 and phases[1].ori != 0.0


@pytest.mark.slow
def test_tilted_close_puts_bowl_drawer_home():
    """libero_10 task 3 starts with the bottom drawer open: its exposed floor lies inside LIBERO's
    drawer region, and the tilted push closes it (LIBERO's is_close)."""
    from envs.libero_env import LiberoEnv
    from policies.scripted.core import Scene, SkillRunner
    from policies.scripted.library import CloseDrawer

    with LiberoEnv("libero_10", 3, render=False) as env:
        env.reset(trial=0)
        scene = Scene(env)
        closer = CloseDrawer("white_cabinet_1", "bottom", style="tilted")
        region = env.raw.object_sites_dict[closer.region]
        floor = closer.exposed_floor(scene, fit=0.06)
        site = closer.region
        lifted = floor + np.array([0.0, 0.0, 0.03])  # a point just above the floor, as an object centre
        assert region.in_box(scene.site(site), scene.sim.data.get_site_xmat(site), lifted)
        assert scene.state(closer.region).is_open() and not closer.success(scene)
        runner = SkillRunner([closer], scene, np.random.default_rng(0))
        for _ in range(300):
            env.step(runner.act())
            if runner.done:
                break
        assert runner.log[0] == {"skill": "close", "success": True}
    with pytest.raises(ValueError, match="style"):
        CloseDrawer("white_cabinet_1", "bottom", style="sideways")
