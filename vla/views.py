"""What a stage-3 VLA reads and how its chunks run: camera views and chunk execution (issue 22).

    cameras    demo / observation camera keys (envs.protocol.CAMERA_KEYS), e.g.
               [agentview_rgb, eye_in_hand_rgb]. Every view goes through the same protocol transform
               (envs.protocol.vla_image) and the same vision tower + projector; the V views' visual
               tokens are concatenated in camera order before the text (OpenVLA-OFT's wrist image),
               so a model with N tokens per image sees V * N image tokens.
    execution  `open_loop`: the K actions of a chunk run in order, then the policy acts again
               (OpenVLA-OFT; the rollout loop's "receding"); `ensemble`: the policy acts at every
               step and the rollout loop averages the overlapping chunks with
               envs.rollout.TemporalEnsemble (ACT), as the policy heads run.

Both are recorded in the stage-3 checkpoint (policy.json `cameras`, `execution`); a checkpoint
written before they existed reads as [agentview_rgb] and open_loop (`checkpoint_views`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from envs import protocol

DEFAULT_CAMERAS: tuple[str, ...] = ("agentview_rgb",)  # what stage 3 read before `cameras` existed
DEFAULT_EXECUTION = "open_loop"
# config / policy.json name -> envs.policy_api.PolicyInputs.execution (what run_loop understands)
EXECUTIONS: dict[str, str] = {"open_loop": "receding", "ensemble": "ensemble"}
# the evaluators' `execution=` override speaks the rollout loop's names
_ALIASES = {"receding": "open_loop"}


def check_cameras(cameras: Sequence[str], where: str = "cameras") -> tuple[str, ...]:
    """The camera keys as a tuple; empty, repeated or unknown keys are one error naming `where`."""
    cams = tuple(str(c) for c in cameras)
    if not cams:
        raise ValueError(f"{where}: give at least one camera ({', '.join(protocol.CAMERA_KEYS)})")
    bad = [c for c in cams if c not in protocol.CAMERA_KEYS]
    if bad:
        raise ValueError(f"{where}: unknown camera {bad[0]!r}; known: {', '.join(protocol.CAMERA_KEYS)}")
    if len(set(cams)) != len(cams):
        raise ValueError(f"{where}: camera listed twice in {list(cams)}")
    return cams


def execution_name(value: str, where: str = "execution") -> str:
    """`open_loop` | `ensemble` (the rollout loop's `receding` is accepted for open_loop)."""
    name = _ALIASES.get(str(value), str(value))
    if name not in EXECUTIONS:
        raise ValueError(f"{where}: {value!r} is not one of {', '.join(EXECUTIONS)}")
    return name


def checkpoint_views(meta: Mapping[str, Any], source: str = "policy.json") -> tuple[tuple[str, ...], str]:
    """(cameras, execution) of a stage-3 export; keys absent (an older export): agentview, open_loop."""
    cams = check_cameras(meta.get("cameras") or DEFAULT_CAMERAS, f"{source}: cameras")
    return cams, execution_name(meta.get("execution") or DEFAULT_EXECUTION, f"{source}: execution")


def stack_views(obs: Mapping[str, Any], cameras: Sequence[str]) -> np.ndarray:
    """obs {camera: (H, W, 3) uint8} -> (V, H, W, 3) uint8 in camera order; a missing camera is one error."""
    missing = [c for c in cameras if c not in obs]
    if missing:
        raise ValueError(f"this VLA policy reads cameras {list(cameras)}; obs has no {missing[0]!r} "
                         f"(obs keys: {sorted(obs)})")
    return np.stack([np.asarray(obs[c]) for c in cameras])


def view_pixels(vla: Any, images: Any) -> torch.Tensor:
    """images (B, H, W, 3) or (B, V, H, W, 3) uint8 -> pixel values (B, 3, S, S) or (B, V, 3, S, S)
    through the model's own preprocessing (`PrismaticVLA.preprocess`), every view alike."""
    x = images if isinstance(images, torch.Tensor) else np.asarray(images)
    if x.ndim != 5:
        return vla.preprocess(x)
    b, v = x.shape[:2]
    px = vla.preprocess(x.reshape(b * v, *x.shape[2:]))  # all views in one tower batch
    return px.reshape(b, v, *px.shape[1:])
