"""The one step loop: evaluation (envs/evaluator.py), demo recording (envs/demos.py) and the real-arm
executor (real_robot/executor.py) all run a policy through `run_loop`.

    stepper = EnvStepper(env)                        # or a Robot behind the same two calls
    stepper.reset(trial=0, seed=0)
    res = run_loop(stepper, policy, env.instruction, max_steps=300, seed=7, bind=env)
    res.success, res.steps, res.acts, stepper.rendered

Per step: if the chunk queue is empty the policy acts (a policy declaring `execution="ensemble"`
acts at every step and its overlapping chunks are averaged, ACT's temporal ensembling), on an observation that carries exactly the
cameras it declared (`policy.inputs.cameras`, rendered now, resized to `inputs.image_size`); the
next queued action is applied. So a policy with chunk 8 renders its one camera once per 8 steps,
and a blind scripted expert renders nothing. A receding-horizon policy with a frame window
(`inputs.frame_offsets`) also gets its cameras, through `policy.observe(obs, t)`, on the non-acting
steps a coming act's window reads (every other step for offsets -14..0 at stride 2). Callers that need frames on every step (the demo
writer) name them in `every_step`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from envs import protocol
from envs.policy_api import Policy


class ChunkQueue:
    """The actions of the last `act` call, executed in order; the policy acts again only when empty.

    `push` takes an `(A,)` action or a `(K, A)` chunk (OpenVLA-OFT's chunked execution)."""

    def __init__(self) -> None:
        self._rows: deque[np.ndarray] = deque()

    def __len__(self) -> int:
        return len(self._rows)

    def push(self, action: Any) -> None:
        a = np.asarray(action, dtype=np.float64)
        if a.ndim not in (1, 2) or a.shape[0] == 0:
            raise ValueError(f"a policy must return an (A,) action or a (K, A) chunk, got shape {a.shape}")
        self._rows.extend(a if a.ndim == 2 else a[None])

    def pop(self) -> np.ndarray:
        return self._rows.popleft()

    def clear(self) -> None:
        self._rows.clear()


class TemporalEnsemble:
    """ACT's temporal ensembling (Zhao et al. 2023, Sec. 3.3): the policy acts at *every* step, each
    act returning a (K, A) chunk; the action applied at step t is the weighted mean of every chunk
    prediction made for t, weights w_i = exp(-m * i) with i = 0 the *oldest* prediction (m = `decay`;
    ACT uses 0.01: a small m weighs new predictions almost as much as old ones).

    Interface as ChunkQueue's, for the loop: `push` once per step, then `pop` once per step."""

    def __init__(self, decay: float = 0.01) -> None:
        if decay < 0:
            raise ValueError(f"temporal ensembling decay m must be >= 0, got {decay}")
        self.decay = decay
        self._chunks: deque[tuple[int, np.ndarray]] = deque()  # (step it was predicted at, (K, A))
        self._t = 0

    def __len__(self) -> int:
        return 0  # empty after every pop: the policy acts at every step

    def push(self, action: Any) -> None:
        a = np.asarray(action, dtype=np.float64)
        self._chunks.append((self._t, a if a.ndim == 2 else a[None]))

    def pop(self) -> np.ndarray:
        t = self._t
        while self._chunks and self._chunks[0][0] + len(self._chunks[0][1]) <= t:
            self._chunks.popleft()  # chunks that end before t predict nothing for it any more
        rows = [c[t - s] for s, c in self._chunks]  # oldest first
        w = np.exp(-self.decay * np.arange(len(rows)))
        self._t += 1
        return (w[:, None] * np.stack(rows)).sum(0) / w.sum()

    def clear(self) -> None:
        self._chunks.clear()
        self._t = 0


class Stepper(Protocol):
    """What the loop drives: one simulator episode (`EnvStepper`) or a robot (real_robot/executor.py)."""

    def observe(self, cameras: Sequence[str]) -> dict:
        """The current observation: low-dim keys, plus the named cameras rendered now (H, W, 3) uint8."""
        ...

    def step(self, action: np.ndarray) -> bool:
        """Apply one action; True when the task's success condition holds (the episode ends)."""
        ...


class EnvStepper:
    """An `envs.env_api.Env` built with `render=False` as a Stepper: step() never renders, observe()
    renders only the cameras asked for (counted in `rendered`, the frames this episode drew)."""

    def __init__(self, env: Any) -> None:
        self.env = env
        self.obs: dict = {}
        self.rendered = 0

    def reset(self, trial: int = 0, **kwargs: Any) -> dict:
        """`env.reset(trial=trial, **kwargs)` (e.g. seed=...; without it the env's protocol default)."""
        self.obs = self.env.reset(trial=trial, **kwargs)
        self.rendered = 0
        return self.obs

    def observe(self, cameras: Sequence[str]) -> dict:
        obs = dict(self.obs)
        for k in cameras:
            if k not in obs:  # an env that renders on its own (render=True) has them already
                obs[k] = self.env.render_frame(k)
                self.rendered += 1
        return obs

    def step(self, action: np.ndarray) -> bool:
        self.obs, _, _, info = self.env.step(action)
        return bool(info["success"])


def policy_view(obs: dict, policy: Policy) -> dict:
    """`obs` with the policy's cameras resized (and centre-cropped) to `policy.inputs.image_size`."""
    size = policy.inputs.image_size
    if not size:
        return obs
    out = dict(obs)
    for k in policy.inputs.cameras:
        if k in out:
            out[k] = protocol.vla_image(out[k], size=size, crop=policy.center_crop)
    return out


@dataclass
class LoopResult:
    success: bool
    steps: int  # actions applied
    acts: int  # policy.act calls (steps / chunk for a chunked policy)
    stopped: str  # "success" | "done" (policy.done()) | "stop" (the caller's stop) | "max_steps"


StepHook = Callable[[int, dict, np.ndarray], None]


def frame_steps_ahead(inputs: Any) -> frozenset[int]:
    """How many steps before an act the policy needs frames: {-o for o in inputs.frame_offsets}."""
    return frozenset(-int(o) for o in inputs.frame_offsets)


def run_loop(stepper: Stepper, policy: Policy, instruction: str, max_steps: int, *, seed: int | None = None,
             bind: Any = None, every_step: Sequence[str] = (), to_action: Callable[[np.ndarray], Any] | None = None,
             before_step: StepHook | None = None, after_step: StepHook | None = None,
             stop: Callable[[int], bool] | None = None) -> LoopResult:
    """Run `policy` for at most `max_steps` steps of `stepper` (already reset).

    Hooks, in order: `policy.seed_episode(seed)` (when given), `reset()`, `bind_env(bind)` (when
    given), then per step: `act` when the chunk queue is empty, `before_step(t, obs, action)`, the
    step, `after_step(t, obs, action)`. `obs` is the observation the action was chosen from, with
    the policy's cameras on acting steps and `every_step` cameras always. `to_action` converts a
    policy action to the stepper's (default: the env convention, protocol.to_env_action). At the
    end of each chunk the loop stops when `policy.done()` is True or `stop(steps)` is True."""
    if seed is not None:
        policy.seed_episode(seed)
    policy.reset()
    if bind is not None:
        policy.bind_env(bind)
    convert = to_action or (lambda a: protocol.to_env_action(a, policy.gripper_convention))
    cams = tuple(policy.inputs.cameras)
    extra = tuple(k for k in every_step if k not in cams)
    queue: ChunkQueue | TemporalEnsemble = (TemporalEnsemble(policy.inputs.ensemble_decay)
                                             if policy.inputs.execution == "ensemble" else ChunkQueue())
    ahead = frame_steps_ahead(policy.inputs)
    steps = acts = 0
    while steps < max_steps:
        acting = not queue
        # a receding policy reads frames on the steps its coming acts' windows cover, not only when it acts
        wanted = acting or (bool(cams) and any((len(queue) + k * policy.inputs.chunk) in ahead
                                               for k in range(max(ahead) // policy.inputs.chunk + 1)))
        obs = stepper.observe(cams + extra if wanted else tuple(every_step))
        if wanted:
            view = policy_view(obs, policy)
            policy.observe(view, steps)
        if acting:
            queue.push(policy.act(view, instruction))
            acts += 1
        a = queue.pop()
        if before_step is not None:
            before_step(steps, obs, a)
        success = stepper.step(convert(a))
        if after_step is not None:
            after_step(steps, obs, a)
        steps += 1
        if success:
            return LoopResult(True, steps, acts, "success")
        if not queue:
            if policy.done():
                return LoopResult(False, steps, acts, "done")
            if stop is not None and stop(steps):
                return LoopResult(False, steps, acts, "stop")
    return LoopResult(False, steps, acts, "max_steps")
