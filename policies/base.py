"""The Policy interface every controller of the project implements, plus `random` and a registry.

    policy = build_policy("random")          # or "scripted", or a checkpoint directory
    policy.reset()
    action = policy.act(obs, instruction)    # (7,) float (or (K, 7) chunk)

obs keys (shared by all envs): `agentview_rgb`, `eye_in_hand_rgb` (H, W, 3) uint8, `proprio` (P,) float32.

Optional attributes the evaluator reads (with these defaults when absent):
- `needs_images: bool = True`  -- False lets the env skip rendering (scripted experts, random);
- `gripper_convention: str = "env"` -- "env" (-1 open/+1 close) or "openvla" ([0,1], 1 = open),
  converted by envs.protocol.to_env_action;
- `image_size: int | None = None`, `center_crop: bool = False` -- VLA preprocessing applied by the
  evaluator (envs.protocol.vla_image) before `act`;
- `bind_env(env)` -- privileged access to the simulator (scripted experts only).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Policy(Protocol):
    def reset(self) -> None: ...

    def act(self, obs: dict, instruction: str) -> np.ndarray: ...


class RandomPolicy:
    """Uniform actions in [-1, 1]^6 plus a random binary gripper; the floor row of every table."""

    needs_images = False
    gripper_convention = "env"

    def __init__(self, seed: int = 0, action_dim: int = 7, scale: float = 1.0, needs_images: bool = False) -> None:
        self.needs_images = needs_images  # True makes the env render as for a vision policy (benchmarks)
        self.seed = seed
        self.action_dim = action_dim
        self.scale = scale
        self.rng = np.random.default_rng(seed)

    def seed_episode(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        pass

    def act(self, obs: dict, instruction: str) -> np.ndarray:
        a = self.rng.uniform(-self.scale, self.scale, size=self.action_dim)
        a[-1] = self.rng.choice([-1.0, 1.0])
        return a


_REGISTRY: dict[str, Callable[..., Any]] = {}


def register_policy(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: `@register_policy("my_head")` on a factory `f(spec: str, **kwargs) -> Policy`."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        _REGISTRY[name] = fn
        return fn

    return deco


@register_policy("random")
def _random(spec: str, seed: int = 0, **_: Any) -> RandomPolicy:
    """`random`, or `random:images` (same actions, but asks the env to render like a VLA would)."""
    return RandomPolicy(seed=seed, needs_images=spec.endswith(":images"))


@register_policy("scripted")
def _scripted(spec: str, seed: int = 0, **kwargs: Any) -> Any:
    from envs.skills.programs import ScriptedPolicy

    return ScriptedPolicy(seed=seed, **{k: v for k, v in kwargs.items() if k in ("noise",)})


def _load_checkpoint(path: Path, **kwargs: Any) -> Any:
    """A checkpoint dir names its class in config.json: {"policy_class": "module:Class", ...};
    the class must provide `from_pretrained(path, **kwargs)` (VLA and policy-head checkpoints do)."""
    for name in ("policy.json", "config.json"):
        cfg_path = path / name
        if cfg_path.is_file():
            try:
                cfg = json.loads(cfg_path.read_text())
            except json.JSONDecodeError as e:
                raise ValueError(f"{cfg_path}: not valid JSON: {e}") from None
            target = cfg.get("policy_class")
            if target:
                if ":" not in target:
                    raise ValueError(f"{cfg_path}: policy_class {target!r} must be 'module:Class'")
                mod, cls = target.split(":", 1)
                klass = getattr(importlib.import_module(mod), cls, None)
                if klass is None or not hasattr(klass, "from_pretrained"):
                    raise ValueError(f"{cfg_path}: {target} has no from_pretrained(path)")
                return klass.from_pretrained(path, **kwargs)
    raise ValueError(
        f"{path}: not a policy checkpoint (no policy.json/config.json with a 'policy_class' key "
        f"'module:Class'); registered names: {', '.join(sorted(_REGISTRY))}"
    )


def build_policy(spec: str, **kwargs: Any) -> Any:
    """'random' | 'scripted' | any registered name | a checkpoint directory -> a Policy.

    Registered factories take precedence; a name of the form `name:arg` passes the whole spec to
    the factory `name` (e.g. a VLA registry could use `vla:path`)."""
    head = spec.split(":", 1)[0]
    if spec in _REGISTRY or head in _REGISTRY:
        return _REGISTRY[spec if spec in _REGISTRY else head](spec, **kwargs)
    path = Path(spec)
    if path.is_dir():
        return _load_checkpoint(path, **{k: v for k, v in kwargs.items() if k != "seed"})
    raise ValueError(
        f"unknown policy {spec!r}: not a registered name ({', '.join(sorted(_REGISTRY))}) "
        "and not an existing checkpoint directory"
    )
