"""What an evaluator needs from a simulator (the `Env` protocol) and the `make_env` registry.

    env = make_env("libero", "libero_goal", 7, render=False)   # ENVS.get(name)(*args, **kwargs)
    obs = env.reset(trial=0, seed=0)
    obs, reward, done, info = env.step(action)                  # info["success"]: bool
    env.close()

An env wrapper registers a factory with `@ENVS.register("name")` in its own module and adds that
module to ENVS' built-ins below; the evaluator core (envs/evaluator.py) reaches it only through
this protocol, so LIBERO and Franka Kitchen share one evaluator.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from configs.registry import Registry

# Built-in env modules register their factories on import (lazily, on the first lookup that misses).
ENVS: Registry[Any] = Registry("env", modules=("envs.libero_env", "envs.kitchen"))


@runtime_checkable
class Env(Protocol):
    """One task of one benchmark suite, under that benchmark's evaluation protocol.

    Attributes:
    - `suite`, `task_id`, `task_name`, `instruction`: which task, and its language instruction;
    - `max_steps`: the protocol's step budget per episode (the evaluator may lower it);
    - `render_enabled`: whether `reset`/`step` observations carry camera frames (a factory takes
      `render=False` for blind policies; `render_frame` still renders on demand for videos).

    Observations are dicts with the project-wide keys (`agentview_rgb`, `eye_in_hand_rgb` as
    (H, W, 3) uint8 when rendering, `proprio` (P,) float32) plus env-specific extras.
    """

    suite: str
    task_id: int
    instruction: str
    max_steps: int
    render_enabled: bool

    @property
    def task_name(self) -> str: ...

    def reset(self, trial: int = 0, seed: int | None = 0) -> dict:
        """Start episode `trial` (its fixed initial state, where the benchmark has them), seeded."""
        ...

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, dict]:
        """(action_dim,) env action -> obs, reward, done, info with `info["success"]: bool`."""
        ...

    def render_frame(self, key: str = "agentview_rgb", size: int | None = None) -> np.ndarray:
        """Render camera `key` now -> (H, W, 3) uint8, oriented like the observations."""
        ...

    def close(self) -> None: ...


def make_env(name: str, *args: Any, **kwargs: Any) -> Env:
    """Build a registered env: `make_env("libero", suite, task_id, **kwargs)`."""
    return ENVS.get(name)(*args, **kwargs)
