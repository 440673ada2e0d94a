"""Scripted atomic skills: geometry helpers and a real skill run with its success predicate."""

from __future__ import annotations

import numpy as np
import pytest

from envs.skills.core import R_DOWN, rot_z, rotvec, wrap_yaw


def test_rotation_helpers():
    assert np.allclose(rotvec(np.eye(3)), 0)
    np.testing.assert_allclose(rotvec(rot_z(0.3)), [0, 0, 0.3], atol=1e-9)
    np.testing.assert_allclose(np.abs(rotvec(rot_z(np.pi))), [0, 0, np.pi], atol=1e-6)
    assert abs(wrap_yaw(np.pi * 0.75) - (-np.pi / 4)) < 1e-9
    assert np.allclose(R_DOWN @ R_DOWN.T, np.eye(3)) and np.isclose(np.linalg.det(R_DOWN), 1.0)


def test_program_registry_covers_roboact_tasks():
    from envs import protocol
    from envs.skills.programs import program_for, supported_tasks

    for tid in ("T1", "T2", "T3", "T4"):
        suite, idx, _ = protocol.ROBOACT_TASKS[tid]
        assert idx in supported_tasks(suite)
        assert program_for(suite, idx)
    with pytest.raises(KeyError, match="no scripted program"):
        program_for("libero_90", 89)


def test_turn_knob_skill_success_predicate_through_simulator():
    """T4 (turn on the stove): the predicate is False at the start, the expert makes it True and
    the benchmark's own goal check agrees."""
    from envs.libero import LiberoEnv
    from envs.skills.core import Scene
    from envs.skills.library import TurnKnob
    from envs.skills.programs import ScriptedPolicy

    with LiberoEnv("libero_goal", 7, render=False) as env:
        policy = ScriptedPolicy(seed=0)
        policy.seed_episode(0)
        policy.bind_env(env)
        obs = env.reset(trial=0)
        skill = TurnKnob("flat_stove_1")
        scene = Scene(env)
        assert not skill.success(scene) and not env.success()
        labels = []
        for _ in range(150):
            a = policy.act(obs, env.instruction)
            labels.append(policy.label)
            assert a.shape == (7,) and np.all(np.abs(a) <= 1.0)
            obs, _, _, info = env.step(a)
            if info["success"]:
                break
        assert skill.success(scene) and env.success()
        assert labels[0] == "reach" and "turn" in labels


def test_open_then_close_drawer_predicates():
    """The drawer skills drive LIBERO's own is_open/is_close states (T1's middle drawer)."""
    from envs.libero import LiberoEnv
    from envs.skills.core import Scene, SkillRunner
    from envs.skills.library import CloseDrawer, OpenDrawer

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
