"""A one-dimensional fake env for the rollout-loop tests: cheap, deterministic, counts its renders."""

from __future__ import annotations

import numpy as np


class LineEnv:
    """x moves by action[0] / 10 per step; success at x >= 1. Counts every camera frame it draws."""

    suite = "line"
    max_steps = 40
    instruction = "go right"

    def __init__(self, task_id: int = 0, render: bool = False) -> None:
        self.task_id, self.render_enabled = task_id, render
        self.drawn: list[tuple[int, str]] = []  # (step, camera) of every frame rendered

    @property
    def task_name(self) -> str:
        return "line"

    def reset(self, trial: int = 0, seed: int | None = 0) -> dict:
        self.x, self.t = 0.0, 0
        return {"proprio": np.array([self.x], np.float32)}

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, dict]:
        self.x += float(action[0]) / 10
        self.t += 1
        ok = self.x >= 1.0 - 1e-9
        return {"proprio": np.array([self.x], np.float32)}, float(ok), ok, {"success": ok}

    def render_frame(self, key: str = "agentview_rgb", size: int | None = None) -> np.ndarray:
        self.drawn.append((self.t, key))
        return np.full((8, 8, 3), self.t % 256, np.uint8)

    def close(self) -> None:
        pass
