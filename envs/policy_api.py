"""The Policy contract, beside the Env contract (envs/env_api.py): the abstract class, what a policy
declares it consumes, and the policy registry.

Dependency inversion, as gymnasium keeps its agent-environment contract at the bottom: `policies/`,
`vla/` and `real_robot/` implement `Policy`; `envs/` (the rollout loop, the evaluators, the demo
writers) builds policies only by *registered name*, so it never imports them.

    policy = build_policy("random")          # a registered name, "name:arg", or a checkpoint directory
    check_inputs(policy, env_spec)           # declared inputs vs what the env provides: one line if not
    policy.seed_episode(seed); policy.reset(); policy.bind_env(env)
    action = policy.act(obs, instruction)    # (A,) float, or a (K, A) chunk executed in order

obs keys (shared by all envs): the camera keys the policy declared (`agentview_rgb`,
`eye_in_hand_rgb` (H, W, 3) uint8; rendered only for policies that read them, only on steps where
they act), `proprio` (P,) float32, and env-specific low-dim extras.

A checkpoint directory names its class by *registered name* in `policy.json`:
`{"policy_type": "vla", ...}`; the class registered under that name loads it with
`from_pretrained(dir, **kwargs)`. Nothing else is imported on a file's say-so: a checkpoint that
names an unregistered type, or a module path, is refused with an error naming the file.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from configs.registry import Registry
from configs.runs import read_json_fields

POLICY_FILE = "policy.json"

# Built-in modules register their policies on import (lazily, on the first lookup that misses). They
# are named as strings and resolved here only when a name is looked up: envs/ never imports them.
POLICIES: Registry[type[Policy]] = Registry(
    "policy",
    modules=("policies.random_actions", "policies.scripted.programs", "policies.scripted.kitchen", "vla.policy",
             "policies.heads", "policies.heads.twin", "real_robot.skills"),
    hint="or pass a checkpoint directory holding policy.json",
)


@dataclass(frozen=True)
class PolicyInputs:
    """What a policy consumes; checked against the env before any episode runs (`check_inputs`).

    - `cameras`: obs keys of the camera frames `act` reads; the rollout loop renders exactly these,
      and only on steps where the policy acts (a blind policy declares none);
    - `image_size`: frames are resized to this square size before `act` (None: the env's size);
    - `proprio_dim`: length of obs["proprio"] it was trained on (None: does not read it);
    - `history`: frames of each camera it keeps (window span in env steps; 1 = the current frame);
    - `chunk`: actions returned per `act` call (a (chunk, A) array);
    - `execution`: "receding" (the chunk is executed in order, then the policy acts again;
      OpenVLA-OFT) or "ensemble" (it acts at every step and the overlapping chunks' predictions for
      a step are averaged with weights exp(-m i), i = 0 the oldest; ACT), m = `ensemble_decay`;
    - `frame_offsets`: steps, relative to an acting step, whose camera frames the policy needs (a
      frame-window policy: its window offsets, e.g. -14, -12, ..., 0). A receding-horizon policy
      acts once per chunk; the loop also renders its cameras on the non-acting steps a coming act
      will read and hands them to `observe`. (0,) = only the acting step's frames.
    """

    cameras: tuple[str, ...] = ()
    image_size: int | None = None
    proprio_dim: int | None = None
    history: int = 1
    chunk: int = 1
    execution: str = "receding"
    ensemble_decay: float = 0.01
    frame_offsets: tuple[int, ...] = (0,)


@dataclass(frozen=True)
class EnvSpec:
    """What an env provides, known without building it (eval CLIs fill it in for their benchmark)."""

    name: str  # e.g. "libero libero_goal", "kitchen"
    cameras: tuple[str, ...]
    proprio_dim: int
    action_dim: int


def check_inputs(policy: Policy, env: EnvSpec, policy_name: str = "") -> None:
    """Raise one ValueError line naming both sides unless `env` provides what `policy` declares."""
    need = policy.inputs
    who = f"policy {policy_name or type(policy).__name__}"
    missing = [c for c in need.cameras if c not in env.cameras]
    if missing:
        raise ValueError(f"{who} reads camera(s) {missing}, env {env.name} provides {list(env.cameras)}")
    if need.proprio_dim is not None and need.proprio_dim != env.proprio_dim:
        raise ValueError(f"{who} reads proprio of {need.proprio_dim} dims, env {env.name} provides "
                         f"{env.proprio_dim}")
    if need.execution not in ("receding", "ensemble"):
        raise ValueError(f"{who} declares execution={need.execution!r}; use 'receding' or 'ensemble'")
    if need.chunk < 1 or need.history < 1:
        raise ValueError(f"{who} declares chunk={need.chunk}, history={need.history}; both must be >= 1")
    if not need.frame_offsets or max(need.frame_offsets) > 0:
        raise ValueError(f"{who} declares frame_offsets={need.frame_offsets}; give offsets <= 0 (0 = the acting step)")


class Policy(abc.ABC):
    """Maps (obs, instruction) to an action. The rollout loop (envs/rollout.py) calls exactly these
    hooks, in this order:

    `seed_episode(seed)` -> `reset()` -> `bind_env(env)` -> (`observe(obs, t)` on steps whose frames
    it declared, `act(obs, instr)` when its chunk is used up, then `label()` / `label_object()` / `done()`) x steps ->
    `episode_info()`.

    Declared, per class or instance:
    - `inputs` (PolicyInputs): cameras, image size, proprio dims, history, chunk length;
    - `gripper_convention`: "env" (-1 open / +1 close) or "openvla" ([0, 1], 1 = open), converted by
      envs.protocol.to_env_action;
    - `center_crop`: the VLA centre crop applied with the `image_size` resize (envs.protocol.vla_image).
    """

    inputs: PolicyInputs = PolicyInputs()
    gripper_convention: ClassVar[str] = "env"
    center_crop: ClassVar[bool] = False

    @property
    def needs_images(self) -> bool:
        return bool(self.inputs.cameras)

    @classmethod
    def from_spec(cls, spec: str, seed: int = 0, **kwargs: Any) -> Policy:
        """Build from a registry spec (`name` or `name:arg`); classes loaded from a checkpoint
        directory implement `from_pretrained` instead."""
        raise TypeError(f"policy {spec!r} cannot be built from a name; pass its checkpoint directory")

    @classmethod
    def from_pretrained(cls, path: str | Path, **kwargs: Any) -> Policy:
        raise TypeError(f"{cls.__name__} has no checkpoint format")

    @classmethod
    def supported_tasks(cls, suite: str) -> list[int] | None:
        """Task ids of `suite` this policy can run (scripted experts: those with a program); None: any."""
        return None

    def seed_episode(self, seed: int) -> None:
        """Seed the policy's own randomness for one episode (default: nothing to seed)."""
        return None

    @abc.abstractmethod
    def reset(self) -> None:
        """Forget the previous episode (action chunks, histories, streaming caches)."""

    def bind_env(self, env: Any) -> None:
        """Privileged access to the simulator; only scripted experts use it (default: ignore)."""
        return None

    @abc.abstractmethod
    def act(self, obs: dict, instruction: str) -> np.ndarray:
        """`obs` as above -> `(action_dim,)` float (or a `(K, action_dim)` chunk)."""

    def observe(self, obs: dict, step: int) -> None:
        """The policy's cameras at episode step `step`: every step it acts at (just before `act`) and
        the non-acting steps its `inputs.frame_offsets` ask for (default: ignore)."""
        return None

    def label(self) -> str | None:
        """The atomic skill the last action belongs to (scripted experts; demo labels), or None."""
        return None

    def label_object(self) -> str | None:
        """The sim name of the object that skill acts on (scripted experts; demo labels), or None."""
        return None

    def done(self) -> bool | None:
        """True once the policy considers its (step) instruction finished; None: it cannot say, and
        the caller decides by other means (the real-arm executor's checker)."""
        return None

    def episode_info(self) -> dict[str, Any]:
        """Extra fields merged into the evaluator's episode record (default: none)."""
        return {}


def read_policy_file(path: Path) -> dict[str, Any]:
    """`path/policy.json` as a dict with a `policy_type`; one error naming the file otherwise."""
    f = path / POLICY_FILE
    if not f.is_file():
        raise ValueError(f"{path}: not a policy checkpoint (no {POLICY_FILE}); registered policies: "
                         f"{', '.join(POLICIES.names())}")
    meta = read_json_fields(f, ("policy_type",), "policy checkpoint (JSON)")
    if not isinstance(meta["policy_type"], str):
        raise ValueError(f"{f}: field 'policy_type' must be a registered policy name (a string)")
    return meta


def load_policy(path: str | Path, **kwargs: Any) -> Policy:
    """Load a checkpoint directory through the registry (never by importing a named module)."""
    path = Path(path)
    meta = read_policy_file(path)
    name = meta["policy_type"]
    if name not in POLICIES:
        raise ValueError(f"{path / POLICY_FILE}: policy_type {name!r} is not a registered policy "
                         f"({', '.join(POLICIES.names())}); refusing to load it")
    return POLICIES.get(name).from_pretrained(path, **kwargs)


def spec_float(spec: str, default: float, meaning: str) -> float:
    """The float argument of a `name:arg` policy spec (`default` without one); a bad one is an error
    naming the spec and what the argument means, e.g. `spec_float("scripted:0.02", 0.0, "action noise")`."""
    name, sep, arg = spec.partition(":")
    if not sep:
        return default
    try:
        return float(arg)
    except ValueError:
        raise ValueError(f"policy {spec!r}: the argument of {name} is its {meaning} (a float, e.g. {name}:0.02)") \
            from None


def build_policy(spec: str, **kwargs: Any) -> Policy:
    """'random' | 'scripted' | any registered name (or `name:arg`) | a checkpoint directory -> a Policy."""
    head = spec.split(":", 1)[0]
    if head and head in POLICIES:
        return POLICIES.get(head).from_spec(spec, **kwargs)
    path = Path(spec)
    if path.is_dir():
        return load_policy(path, **{k: v for k, v in kwargs.items() if k != "seed"})
    raise ValueError(f"unknown policy {spec!r}: not a registered name ({', '.join(POLICIES.names())}) "
                     "and not an existing checkpoint directory")
