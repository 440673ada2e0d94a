"""A one-dimensional fake env for the rollout-loop tests: cheap, deterministic, counts its renders."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class LineEvalConfig:
    """The evaluator's settings (`envs.evaluator.EvalSettings`) for the tests' fake envs, cheap defaults."""

    policy: str
    out: str
    trials: int = 3
    workers: int = 1
    seed: int = 0
    seed_per_trial: bool = True
    max_steps: int = 12
    video: bool = False
    video_stride: int = 1
    wrist_video: bool = False
    retry_errors: bool = False
    progress: bool = False
    threads: int = 1
    execution: str = ""
    policy_server: bool = False
    policy_server_crash: str = "restart"
    policy_timeout_s: float = 60.0


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
