"""VLAPolicy: a stage-3 export (vla/posttrain.py) behind the project's Policy interface.

    policy = build_policy("runs/vla/posttrain-x/policy")     # policy.json: {"policy_type": "vla", ...}
    python envs/eval_libero.py --suite libero_goal --tasks 0,5,6,7 --policy runs/vla/posttrain-x/policy

`act(obs, instruction)` returns a chunk of K actions `(K, 7)` (un-normalised with the checkpoint's
q01/q99, gripper in the "env" convention of the demos), which the rollout loop executes in order
before calling `act` again (OpenVLA-OFT's chunked execution). The rollout loop resizes (and optionally
centre-crops) the agentview frame to `image_size` before `act` (envs.protocol.vla_image), the same
transform the training images went through.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from envs.policy_api import POLICIES, Policy, PolicyInputs


@POLICIES.register("vla")
class VLAPolicy(Policy):
    """A VLA with an action-chunk head. `execute` (<= K) actions of each chunk are returned."""

    def __init__(self, model: torch.nn.Module, meta: dict[str, Any], execute: int = 0, device: str = "cpu") -> None:
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
        # one camera, read once per chunk: the rollout loop renders it only on the steps where act runs
        self.inputs = PolicyInputs(cameras=("agentview_rgb",), image_size=self.image_size,
                                   proprio_dim=int(meta["proprio_dim"]) if self.use_proprio else None,
                                   chunk=self.execute)
        self.calls = 0

    @classmethod
    def from_pretrained(cls, path: str | Path, execute: int = 0, device: str = "cpu", threads: int = 0,
                        **kwargs: Any) -> VLAPolicy:
        from configs.threads import apply_threads
        from vla.posttrain import load_action_vla

        if threads:
            apply_threads(threads)
        model, meta = load_action_vla(path)
        return cls(model, meta, execute=execute, device=device)

    def reset(self) -> None:
        self.calls = 0

    @torch.no_grad()
    def predict(self, image: np.ndarray, instruction: str, proprio: np.ndarray | None = None) -> np.ndarray:
        """image (S, S, 3) uint8 (already at image_size), proprio (P,) -> raw actions (K, 7) float64."""
        from envs import protocol

        if image.shape[0] != self.image_size or image.shape[1] != self.image_size:
            image = protocol.vla_image(image, size=self.image_size, crop=self.center_crop)
        p = None
        if self.use_proprio:
            if proprio is None:
                raise ValueError("this VLA policy was trained with proprio input; obs['proprio'] is missing")
            p = torch.from_numpy(((np.asarray(proprio, np.float32) - self.proprio_mean) / self.proprio_std)[None])
            p = p.to(self.device)
        pred = self.model(image[None], [instruction], p)[0].float().cpu().numpy()  # (K, 7) normalised
        return self.stats.unnormalize(pred)

    def act(self, obs: dict, instruction: str) -> np.ndarray:
        self.calls += 1
        return self.predict(obs["agentview_rgb"], instruction, obs.get("proprio"))[: self.execute]

    def episode_info(self) -> dict[str, Any]:
        return {"vla_calls": self.calls}
