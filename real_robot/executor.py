"""Run a decomposed task step by step on a (safety-wrapped) Robot, with retries and per-subtask logs.

    ex = Executor(SafeRobot(robot), policy, PredicateChecker(), retries=1)
    result = ex.run("open the middle drawer, pick up the tape, place it on the table, close the drawer")
    result.steps[0].success, result.steps[0].attempts

Each atomic step (real_robot/decompose.py) is given to the policy as its own one-step instruction
(`step.instruction`, e.g. "open the middle drawer"): the policy is reset at every attempt and conditioned
on that step only. An attempt runs through the shared rollout loop (envs/rollout.py) and ends when the policy says it
is done (`policy.done()`: scripted skills, learned heads with a done output), when the checker already passes (polled every `check_every` frames, for policies
whose `done()` is None), or after `max_frames`; then the arm settles for `settle_frames` and the checker decides completion. A
failed step is retried up to `retries` more times; a step that still fails ends the episode (later
steps are not reached), so per-subtask success is conditional on reaching the step, as in Table V.

Checkers: `PredicateChecker` (the outcome in the observation: drawer opening, tape height...) and
`ClassifierChecker` (RoboAct-CLIP's action classifier on the step's front-camera frames, plus the
recombination signal: the clip embedding must be closer to recombine(robot, action, object) than to any
other action's recombination; optionally AND-ed with a predicate).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from envs.rollout import run_loop
from real_robot.decompose import AtomicStep, decompose
from real_robot.robot import Robot, action_dict
from real_robot.skills import GRIP_FORCE, PREDICATES

# step verb -> the RoboAct-CLIP action class name (envs/atomic_world vocabulary)
CLASSIFIER_ACTION = {"open": "open", "close": "close", "pick": "pick up", "place": "put down",
                     "push": "push", "pull": "pull"}  # fmt: skip


class PredicateChecker:
    """Completion from the observation (real_robot.skills.PREDICATES)."""

    def __init__(self, predicates: dict[str, Callable[[dict, AtomicStep], bool]] | None = None) -> None:
        self.predicates = predicates or PREDICATES

    def __call__(self, obs: dict[str, Any], step: AtomicStep, frames: Sequence[np.ndarray]) -> bool:
        if step.verb not in self.predicates:
            raise KeyError(f"no completion predicate for {step.verb!r} (have {sorted(self.predicates)})")
        return bool(self.predicates[step.verb](obs, step))


class ClassifierChecker:
    """Completion from a RoboAct-CLIP export: `classify(video)` and `recombine(s, a, o)` (see docstring).

    `encoder`: an object with `.cfg.actions`, `classify`, and optionally `encode` + `recombine`;
    `frames` are the step's camera frames (T, H, W, 3) uint8, subsampled to `clip_len`."""

    def __init__(self, encoder: Any, clip_len: int = 16, min_prob: float = 0.5, use_recombination: bool = True,
                 predicate: PredicateChecker | None = None) -> None:
        self.encoder, self.clip_len, self.min_prob = encoder, clip_len, min_prob
        self.use_recombination, self.predicate = use_recombination, predicate

    def __call__(self, obs: dict[str, Any], step: AtomicStep, frames: Sequence[np.ndarray]) -> bool:
        import torch

        if self.predicate is not None and not self.predicate(obs, step, frames):
            return False
        if len(frames) == 0:
            return False
        idx = np.linspace(0, len(frames) - 1, self.clip_len).round().astype(int)
        video = torch.from_numpy(np.stack([frames[i] for i in idx])).permute(0, 3, 1, 2)[None].contiguous()
        actions = list(self.encoder.cfg.actions)
        want = CLASSIFIER_ACTION.get(step.verb, step.verb)
        if want not in actions:
            raise KeyError(f"classifier has no action {want!r} (has {actions})")
        with torch.no_grad():
            probs = self.encoder.classify(video)["action"][0]
            ok = int(probs.argmax()) == actions.index(want) and float(probs[actions.index(want)]) >= self.min_prob
            if ok and self.use_recombination and hasattr(self.encoder, "recombine"):
                emb = torch.nn.functional.normalize(self.encoder.encode(video), dim=-1)
                objects = list(self.encoder.cfg.objects)
                obj = step.object.split()[-1] if step.object.split()[-1] in objects else objects[0]
                recs = torch.cat([self.encoder.recombine("robot", a, obj) for a in actions])
                sims = emb @ torch.nn.functional.normalize(recs, dim=-1).T
                ok = int(sims[0].argmax()) == actions.index(want)
        return bool(ok)


@dataclass
class StepResult:
    instruction: str
    verb: str
    success: bool
    attempts: int
    frames: int
    seconds: float


@dataclass
class EpisodeResult:
    task: str
    steps: list[StepResult] = field(default_factory=list)
    planned: list[str] = field(default_factory=list)
    estop: str | None = None  # why the safety layer stopped the episode, if it did

    @property
    def success(self) -> bool:
        return len(self.steps) == len(self.planned) and all(s.success for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "planned": self.planned, "success": self.success, "estop": self.estop,
                "steps": [asdict(s) for s in self.steps]}


def to_action(a: np.ndarray) -> dict[str, float]:
    """A policy's (9,) [q, gripper, force] or (8,) [q, gripper] vector -> an action dict."""
    a = np.asarray(a, float).reshape(-1)
    if a.shape[0] not in (8, 9):
        raise ValueError(f"policy action must be (8,) or (9,) [7 joint targets, gripper(, force)], got {a.shape}")
    return action_dict(a[:7], float(a[7]), float(a[8]) if a.shape[0] == 9 else GRIP_FORCE)


class Executor:
    """Runs atomic steps with a step-conditioned policy (see module docstring).

    `on_frame(obs, action, step)` is called for every control frame (recording, teleop markers)."""

    def __init__(self, robot: Robot, policy: Any, checker: Callable[..., bool] | None = None, retries: int = 1,
                 max_frames: int = 400, settle_frames: int = 10, frame_key: str = "front", check_every: int = 5,
                 pace_hz: float = 0.0,
                 on_frame: Callable[[dict, dict, AtomicStep], None] | None = None) -> None:
        self.robot, self.policy = robot, policy
        self.checker = checker or PredicateChecker()
        self.retries, self.max_frames, self.settle_frames = retries, max_frames, settle_frames
        self.frame_key, self.on_frame, self.check_every = frame_key, on_frame, check_every
        # a robot that moves in (scaled) real time gets commands at its control rate, not as fast as
        # the CPU allows (0 = no pacing: a stepped simulator advances one period per command)
        self.period = 1.0 / pace_hz if pace_hz > 0 else 0.0
        self._next = 0.0

    def _send(self, action: dict[str, float]) -> dict[str, Any]:
        if self.period:
            now = time.monotonic()
            if self._next > now:
                time.sleep(self._next - now)
            self._next = max(now, self._next) + self.period
        return self.robot.send_action(action)

    def run(self, task: str, steps: list[AtomicStep] | None = None) -> EpisodeResult:
        steps = steps if steps is not None else decompose(task)
        result = EpisodeResult(task, planned=[s.instruction for s in steps])
        for step in steps:
            t0, frames_total, ok, attempts = time.monotonic(), 0, False, 0
            while not ok and attempts <= self.retries and not getattr(self.robot, "estopped", None):
                attempts += 1
                ok, n = self._attempt(step)
                frames_total += n
            result.steps.append(StepResult(step.instruction, step.verb, ok, attempts, frames_total,
                                           round(time.monotonic() - t0, 3)))
            if not ok:
                result.estop = getattr(self.robot, "estopped", None)  # an e-stop ends the episode
                break
        return result

    def _attempt(self, step: AtomicStep) -> tuple[bool, int]:
        """One attempt at `step` through the shared rollout loop (envs/rollout.py), then the settle."""
        stepper = _RobotStepper(self)
        policy = self.policy

        def frame(t: int, obs: dict, action: np.ndarray) -> None:
            if self.on_frame is not None:
                self.on_frame(obs, stepper.sent, step)

        def stop(n: int) -> bool:
            if getattr(self.robot, "estopped", None):
                return True
            # a policy that cannot say it is done stops when the outcome holds
            return policy.done() is None and n % self.check_every == 0 and \
                self.checker(stepper.obs, step, stepper.frames)

        res = run_loop(stepper, policy, step.instruction, self.max_frames, to_action=lambda a: a,
                       after_step=frame, stop=stop)
        n = res.steps
        # the arm settles under the last command (no policy involved), then the checker decides
        for _ in range(self.settle_frames if stepper.sent is not None else 0):
            obs = stepper.obs
            stepper.hold()
            if self.on_frame is not None:
                self.on_frame(obs, stepper.sent, step)
            n += 1
        return self.checker(stepper.obs, step, stepper.frames), n


class _RobotStepper:
    """A (safety-wrapped) Robot as a rollout-loop Stepper: observe() returns the robot's last
    observation (it reads all its cameras itself), step() sends one paced command; success is the
    checker's call, never the step's."""

    def __init__(self, ex: Executor) -> None:
        self.ex = ex
        self.obs = ex.robot.get_observation()
        self.frames: list[np.ndarray] = []  # the front camera over the attempt, for the checker
        self.sent: dict[str, float] | None = None

    def observe(self, cameras: Sequence[str]) -> dict:
        return self.obs

    def _after(self) -> None:
        self.obs = self.ex.robot.get_observation()
        if self.ex.frame_key in self.obs:
            self.frames.append(self.obs[self.ex.frame_key])

    def step(self, action: np.ndarray) -> bool:
        self.sent = self.ex._send(to_action(action))
        self._after()
        return False

    def hold(self) -> None:
        assert self.sent is not None
        self.sent = self.ex._send(self.sent)
        self._after()


def table_v(episodes: Sequence[EpisodeResult], verbs: Sequence[str] = ("open", "pick", "place", "close")) -> dict:
    """Per-subtask success like the paper's Table V: successes / episodes that reached the step (%),
    their average, and full-task success."""
    rows: dict[str, Any] = {}
    for i, v in enumerate(verbs):
        reached = [e.steps[i] for e in episodes if len(e.steps) > i and e.steps[i].verb == v]
        succ = sum(s.success for s in reached)
        rows[v] = {"reached": len(reached), "success": succ,
                   "rate": round(100.0 * succ / len(reached), 1) if reached else None,
                   "retries_used": sum(s.attempts - 1 for s in reached)}
    rates = [r["rate"] for r in rows.values() if r["rate"] is not None]
    return {"subtasks": rows, "avg_subtask_rate": round(float(np.mean(rates)), 1) if rates else None,
            "task_success_rate": round(100.0 * sum(e.success for e in episodes) / max(1, len(episodes)), 1),
            "episodes": len(episodes)}
