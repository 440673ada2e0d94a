"""`random`: uniform actions, the floor row of every table."""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.policy_api import POLICIES, Policy, PolicyInputs


@POLICIES.register("random")
class RandomPolicy(Policy):
    """Uniform actions in [-1, 1]^6 plus a random binary gripper.

    `random:images` declares both cameras as inputs, so the env renders as for a vision policy
    (benchmarks)."""

    def __init__(self, seed: int = 0, action_dim: int = 7, scale: float = 1.0, needs_images: bool = False) -> None:
        self.inputs = PolicyInputs(cameras=("agentview_rgb", "eye_in_hand_rgb") if needs_images else ())
        self.seed = seed
        self.action_dim = action_dim
        self.scale = scale
        self.rng = np.random.default_rng(seed)

    @classmethod
    def from_spec(cls, spec: str, seed: int = 0, **kwargs: Any) -> RandomPolicy:
        return cls(seed=seed, needs_images=spec.endswith(":images"))

    def seed_episode(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        pass

    def act(self, obs: dict, instruction: str) -> np.ndarray:
        a = self.rng.uniform(-self.scale, self.scale, size=self.action_dim)
        a[-1] = self.rng.choice([-1.0, 1.0])
        return a
