"""The Policy interface every controller of the project implements, plus `random` and the registry.

    policy = build_policy("random")          # a registered name, "name:arg", or a checkpoint directory
    policy.seed_episode(seed); policy.reset()
    action = policy.act(obs, instruction)    # (7,) float, or a (K, 7) chunk executed open loop

obs keys (shared by all envs): `agentview_rgb`, `eye_in_hand_rgb` (H, W, 3) uint8, `proprio` (P,) float32.

A checkpoint directory names its class by *registered name* in `policy.json`:
`{"policy_type": "vla", ...}`; the class registered under that name loads it with
`from_pretrained(dir, **kwargs)`. Nothing else is imported on a file's say-so: a checkpoint that
names an unregistered type, or a module path, is refused with an error naming the file.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from configs.registry import Registry
from configs.runs import read_json_fields

POLICY_FILE = "policy.json"

# Built-in modules register their policies on import (lazily, on the first lookup that misses);
# a package that adds a policy appends its module here.
POLICIES: Registry[type[Policy]] = Registry(
    "policy",
    modules=("policies.base", "envs.skills.programs", "envs.skills.kitchen", "vla.policy", "policies.heads",
             "real_robot.skills", "real_robot.bc_policy"),
    hint="or pass a checkpoint directory holding policy.json",
)


class Policy(abc.ABC):
    """Maps (obs, instruction) to an action. Evaluators call exactly these hooks, in this order:

    `seed_episode(seed)` -> `reset()` -> `bind_env(env)` -> `act(obs, instr)` x steps -> `episode_info()`.

    Class attributes the evaluator reads (override per class or instance):
    - `needs_images`: False lets the env skip rendering (scripted experts, random);
    - `gripper_convention`: "env" (-1 open / +1 close) or "openvla" ([0, 1], 1 = open), converted by
      envs.protocol.to_env_action;
    - `image_size` / `center_crop`: VLA preprocessing applied by the evaluator (envs.protocol.vla_image)
      before `act`; None keeps the env's frames.
    """

    needs_images: ClassVar[bool] = True
    gripper_convention: ClassVar[str] = "env"
    image_size: ClassVar[int | None] = None
    center_crop: ClassVar[bool] = False

    @classmethod
    def from_spec(cls, spec: str, seed: int = 0, **kwargs: Any) -> Policy:
        """Build from a registry spec (`name` or `name:arg`); classes loaded from a checkpoint
        directory implement `from_pretrained` instead."""
        raise TypeError(f"policy {spec!r} cannot be built from a name; pass its checkpoint directory")

    @classmethod
    def from_pretrained(cls, path: str | Path, **kwargs: Any) -> Policy:
        raise TypeError(f"{cls.__name__} has no checkpoint format")

    def seed_episode(self, seed: int) -> None:
        """Seed the policy's own randomness for one episode (default: nothing to seed)."""
        return None

    @abc.abstractmethod
    def reset(self) -> None:
        """Forget the previous episode (action chunks, histories)."""

    def bind_env(self, env: Any) -> None:
        """Privileged access to the simulator; only scripted experts use it (default: ignore)."""
        return None

    @abc.abstractmethod
    def act(self, obs: dict, instruction: str) -> np.ndarray:
        """`obs` as above -> `(action_dim,)` float (or a `(K, action_dim)` chunk)."""

    def episode_info(self) -> dict[str, Any]:
        """Extra fields merged into the evaluator's episode record (default: none)."""
        return {}


@POLICIES.register("random")
class RandomPolicy(Policy):
    """Uniform actions in [-1, 1]^6 plus a random binary gripper; the floor row of every table.

    `random:images` asks the env to render as for a vision policy (benchmarks)."""

    needs_images = False

    def __init__(self, seed: int = 0, action_dim: int = 7, scale: float = 1.0, needs_images: bool = False) -> None:
        self.needs_images = needs_images  # type: ignore[misc]  # per-instance override of the class default
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
