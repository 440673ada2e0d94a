"""The pinned simulator stack: MuJoCo 3.3.2 with headless EGL rendering, and FrankaKitchen-v1 on it."""

from __future__ import annotations

import numpy as np
import pytest


def test_mujoco_pin_and_egl_default():
    import os

    import mujoco

    assert mujoco.__version__ == "3.3.2"
    assert os.environ["MUJOCO_GL"] in ("egl", "osmesa")


@pytest.mark.slow
def test_franka_kitchen_runs_and_renders_on_the_pin():
    import gymnasium as gym
    import gymnasium_robotics

    gym.register_envs(gymnasium_robotics)
    env = gym.make("FrankaKitchen-v1", tasks_to_complete=["microwave"], render_mode="rgb_array", width=48, height=48)
    try:
        obs, _ = env.reset(seed=0)
        q0 = obs["observation"].copy()
        for _ in range(5):
            obs, *_ = env.step(np.full(env.action_space.shape, 0.5, np.float32))
        img = env.render()
    finally:
        env.close()
    assert img.shape == (48, 48, 3) and img.std() > 5  # a real scene, not a blank buffer
    assert np.abs(obs["observation"][:7] - q0[:7]).max() > 1e-3  # the arm moved
