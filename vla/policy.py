"""VLAPolicy: a stage-3 export (vla/posttrain.py) behind the project's Policy interface.

    policy = build_policy("runs/vla/posttrain-x/policy")     # policy.json: {"policy_type": "vla", ...}
    python envs/eval_libero.py --suite libero_goal --tasks 0,5,6,7 --policy runs/vla/posttrain-x/policy

`act(obs, instruction)` returns a chunk of K actions `(K, 7)` (un-normalised with the checkpoint's
q01/q99, gripper in the "env" convention of the demos). The checkpoint's `execution` (vla/views.py)
says how the rollout loop runs it: `open_loop`, the chunk in order before `act` runs again
(OpenVLA-OFT), or `ensemble`, `act` at every step with the overlapping chunks averaged by
envs.rollout.TemporalEnsemble (ACT, as the policy heads run); `execution=` at load overrides it
(the evaluators' `execution=receding|ensemble`). The policy reads the checkpoint's `cameras` (an older
export: agentview only), declared in `inputs`, so the evaluator renders exactly those; the rollout loop
resizes (and optionally centre-crops) each to `image_size` before `act` (envs.protocol.vla_image),
the same transform the training images went through.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from envs.policy_api import POLICIES, Policy, PolicyInputs
from vla.views import EXECUTIONS, checkpoint_views, execution_name, stack_views


@POLICIES.register("vla")
class VLAPolicy(Policy):
    """A VLA with an action-chunk head. `execute` (<= K) actions of each chunk are returned;
    `execution` "" = the checkpoint's (open_loop | ensemble; receding = open_loop)."""

    def __init__(self, model: torch.nn.Module, meta: dict[str, Any], execute: int = 0, device: str = "cpu",
                 execution: str = "") -> None:
        from vla.data import ActionStats

        self.model = model.to(device).eval()
        self.meta = meta
        self.device = torch.device(device)
        self.chunk = int(meta["chunk"])
        self.execute = min(self.chunk, execute) if execute > 0 else self.chunk
        self.stats = ActionStats.from_dict(meta["action_stats"])
        ps = meta.get("proprio_stats") or {}
        self.proprio_mean = np.asarray(ps.get("mean", []), np.float32)
        self.proprio_std = np.asarray(ps.get("std", []), np.float32)
        self.use_proprio = int(meta.get("proprio_dim", 0)) > 0
        self.image_size = int(meta["image_size"])
        self.center_crop = bool(meta.get("center_crop", False))  # type: ignore[misc]
        self.gripper_convention = str(meta.get("gripper_convention", "env"))  # type: ignore[misc]
        self.cameras, own = checkpoint_views(meta)
        self.execution = execution_name(execution) if execution else own
        # the cameras are rendered only on the steps where act runs: once per chunk open loop, every
        # step ensembled (the rollout loop's TemporalEnsemble then averages the overlapping chunks)
        self.inputs = PolicyInputs(cameras=self.cameras, image_size=self.image_size,
                                   proprio_dim=int(meta["proprio_dim"]) if self.use_proprio else None,
                                   chunk=self.execute, execution=EXECUTIONS[self.execution])
        self.calls = 0

    @classmethod
    def from_pretrained(cls, path: str | Path, execute: int = 0, device: str = "auto", threads: int = 0,
                        execution: str = "", **kwargs: Any) -> VLAPolicy:
        """`device` "auto": CUDA where there is one (a GPU evaluation acts on the GPU), else the CPU."""
        from configs.threads import apply_threads
        from vla.posttrain import load_action_vla

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if threads:
            apply_threads(threads)
        model, meta = load_action_vla(path)
        return cls(model, meta, execute=execute, device=device, execution=execution)

    def reset(self) -> None:
        self.calls = 0

    @torch.no_grad()
    def predict(self, image: np.ndarray, instruction: str, proprio: np.ndarray | None = None) -> np.ndarray:
        """image (V, S, S, 3) uint8, the views in `cameras` order (one camera: (S, S, 3) too), proprio
        (P,) -> raw actions (K, 7) float64."""
        return self.predict_batch([image], [instruction], [proprio])[0]

    @torch.no_grad()
    def predict_batch(self, images: Sequence[np.ndarray], instructions: Sequence[str],
                      proprios: Sequence[np.ndarray | None]) -> np.ndarray:
        """B images (V, H, W, 3) uint8 (views in `cameras` order; (H, W, 3) for one camera), B
        instructions, B proprio (P,) -> raw actions (B, K, 7) float64, in one forward pass (the
        instructions are right-padded to the longest: rows equal their one-at-a-time `predict` only
        when the instructions tokenize to the same length). Frames not at image_size are resized."""
        from envs import protocol

        def fit(im: np.ndarray) -> np.ndarray:
            return im if im.shape[:2] == (self.image_size, self.image_size) else protocol.vla_image(
                im, size=self.image_size, crop=self.center_crop)

        views = [np.asarray(im) for im in images]
        views = [v[None] if v.ndim == 3 else v for v in views]
        if any(v.shape[0] != len(self.cameras) for v in views):
            raise ValueError(f"this VLA policy reads {len(self.cameras)} camera(s) {list(self.cameras)}; "
                             f"got images of shape {[v.shape for v in views][:2]}")
        imgs = np.stack([np.stack([fit(im) for im in v]) for v in views])  # (B, V, S, S, 3)
        p = None
        if self.use_proprio:
            if any(x is None for x in proprios):
                raise ValueError("this VLA policy was trained with proprio input; obs['proprio'] is missing")
            norm = [(np.asarray(x, np.float32) - self.proprio_mean) / self.proprio_std for x in proprios]
            p = torch.from_numpy(np.stack(norm)).to(self.device)
        pred = self.model(imgs, list(instructions), p).float().cpu().numpy()  # (B, K, 7) normalised
        return np.stack([self.stats.unnormalize(row) for row in pred])

    def act(self, obs: dict, instruction: str) -> np.ndarray:
        """-> (execute, 7) actions."""
        self.calls += 1
        return self.predict(stack_views(obs, self.cameras), instruction, obs.get("proprio"))[: self.execute]

    def session(self) -> VLAPolicy:
        """A policy sharing this one's model, with its own episode counters (a policy server's worker)."""
        s = copy.copy(self)
        s.reset()
        return s

    def act_batch(self, calls: Sequence[tuple[VLAPolicy, dict, str]]) -> list[np.ndarray]:
        """`act` of several sessions: [(session, obs, instruction)] -> B chunks (execute, 7), each equal
        to `session.act(obs, instruction)`. One forward pass per distinct instruction (padding
        differs between instruction lengths, so only equal instructions share a batch)."""
        out: list[np.ndarray | None] = [None] * len(calls)
        groups: dict[str, list[int]] = {}
        for k, (_, _, instruction) in enumerate(calls):
            groups.setdefault(instruction, []).append(k)
        for instruction, ks in groups.items():
            obs = [calls[k][1] for k in ks]
            pred = self.predict_batch([stack_views(o, self.cameras) for o in obs], [instruction] * len(ks),
                                      [o.get("proprio") for o in obs])
            for k, row in zip(ks, pred):
                calls[k][0].calls += 1
                out[k] = row[: self.execute]
        return out  # type: ignore[return-value]

    def episode_info(self) -> dict[str, Any]:
        return {"vla_calls": self.calls}
