"""`EncoderHeadPolicy`: a frozen encoder + a trained policy head, as a registered Policy ("policy_head").

Checkpoint directory (what policies/train.py exports; `build_policy(DIR)` / `--policy DIR` loads it):

    policy.json          {"policy_type": "policy_head", "env", "head": HeadConfig, "window": WindowConfig,
                          "frame_size", "encoder": "encoder", "encoder_spec", ...}
    head.safetensors     the head's weights (BatchNorm statistics included)
    encoder/             the frozen encoder (ActionEncoder.save_pretrained)

Online, `act` pushes this step's frame of every view into one `EncoderStream` (encoders/streaming.py),
the path training computed its features with (`episode_features` in policies/heads/data.py): `encode`
of each view's window at offsets `WindowConfig.offsets()` (`envs.episodes.frame_offsets`), clamped at
the episode start, all views in one batch, reusing the per-frame and per-pair encoder work of earlier
steps. The step head's feature history is the training dataset's too: the steps
`window_steps(t, history_offsets(history))`. Then obs["proprio"] is appended and the head runs.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from configs.runs import atomic_write, atomic_write_json
from encoders.streaming import EncoderStream
from envs.episodes import window_steps
from envs.policy_api import POLICIES, POLICY_FILE, Policy, PolicyInputs
from policies.heads.data import WindowConfig, history_offsets
from policies.heads.model import HeadConfig, HeadNetwork

HEAD_WEIGHTS = "head.safetensors"


@POLICIES.register("policy_head")
class EncoderHeadPolicy(Policy):
    gripper_convention = "env"

    def __init__(self, encoder: Any, head: HeadNetwork, window: WindowConfig, env: str = "kitchen",
                 frame_size: int = 0, meta: dict | None = None) -> None:
        self.encoder = encoder.freeze() if hasattr(encoder, "freeze") else encoder
        self.head = head.eval()
        self.window = window
        self.env = env
        self.frame_size = frame_size
        self.meta = meta or {}
        # every view, every step (chunk 1); the head's proprio; the window's span of env steps
        self.inputs = PolicyInputs(cameras=tuple(window.views), proprio_dim=int(head.cfg.proprio_dim) or None,
                                   history=window.span)
        self.feature_offsets = np.asarray(history_offsets(head.cfg.history))  # feature-history offsets, as in training
        self.stream = EncoderStream(self.encoder, self.window.frames, self.window.stride, len(self.window.views))
        self.reset()

    # -- episode --------------------------------------------------------------------------------
    def reset(self) -> None:
        self.stream.reset()
        self._feats: dict[int, np.ndarray] = {}  # episode step -> (V * D,) features, the history's steps only
        self._t = -1  # the episode step of the last act

    def _frame(self, img: np.ndarray, key: str) -> np.ndarray:
        img = np.asarray(img)
        if img.ndim != 3 or img.shape[-1] != 3:
            raise ValueError(f"policy_head: obs[{key!r}] must be (H, W, 3) uint8, got {img.shape}")
        if self.frame_size and img.shape[0] != self.frame_size:  # the demos' frame size
            t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float()
            t = torch.nn.functional.interpolate(t, size=(self.frame_size, self.frame_size), mode="area")
            img = t[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
        return img.astype(np.uint8, copy=False)

    def features(self, obs: dict) -> np.ndarray:
        """Push this step's frame of every view; returns the `(V * D,)` features of the current windows."""
        frames = []
        for v in self.window.views:
            if v not in obs:
                raise KeyError(f"policy_head needs obs[{v!r}] (render=True); got keys {sorted(obs)}")
            frames.append(self._frame(obs[v], v))
        return self.stream.push(frames).reshape(-1).astype(np.float32, copy=False)

    def act(self, obs: dict, instruction: str) -> np.ndarray:
        self._t += 1
        t = self._t
        self._feats[t] = self.features(obs)
        steps = window_steps(t, self.feature_offsets)
        for s in [s for s in self._feats if s < steps[0]]:
            del self._feats[s]
        feats = [self._feats[int(s)] for s in steps]
        proprio = np.asarray(obs["proprio"], np.float32).reshape(1, -1)
        if proprio.shape[1] != self.head.cfg.proprio_dim:
            raise ValueError(f"policy_head: obs['proprio'] has {proprio.shape[1]} dims, the head was trained on "
                             f"{self.head.cfg.proprio_dim} ({self.env} demos)")
        with torch.no_grad():
            a = self.head(torch.from_numpy(np.stack(feats))[None], torch.from_numpy(proprio))[0].numpy()
        return np.clip(a.astype(np.float64), -1.0, 1.0)

    # -- checkpoints ----------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path, encoder_spec: str = "", extra: dict | None = None) -> Path:
        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(d / "encoder")
        state = {k: v.detach().cpu().contiguous().clone() for k, v in self.head.state_dict().items()}
        atomic_write(d / HEAD_WEIGHTS, lambda p: save_file(state, str(p)))
        cfg = dataclasses.asdict(self.head.cfg)
        meta = {"policy_type": "policy_head", "env": self.env, "head": cfg, "window": dataclasses.asdict(self.window),
                "frame_size": self.frame_size, "encoder": "encoder", "encoder_spec": encoder_spec,
                **self.meta, **(extra or {})}
        atomic_write_json(d / POLICY_FILE, meta)
        return d

    @classmethod
    def from_pretrained(cls, path: str | Path, **kwargs: Any) -> EncoderHeadPolicy:
        from safetensors.torch import load_file

        from configs.loader import from_dict
        from encoders import build_encoder

        d = Path(path)
        meta = json.loads((d / POLICY_FILE).read_text())
        for key in ("head", "window", "encoder"):
            if key not in meta:
                raise ValueError(f"{d / POLICY_FILE}: missing field {key!r} (not a policy_head checkpoint)")
        head_cfg = from_dict(HeadConfig, meta["head"], source=str(d / POLICY_FILE))
        window = from_dict(WindowConfig, meta["window"], source=str(d / POLICY_FILE))
        head = HeadNetwork(head_cfg)
        w = d / HEAD_WEIGHTS
        if not w.is_file():
            raise FileNotFoundError(f"{d}: no {HEAD_WEIGHTS}")
        try:
            head.load_state_dict(load_file(str(w)))
        except RuntimeError as e:
            raise ValueError(f"{w}: weights do not fit the head in {d / POLICY_FILE}: {e}") from None
        encoder = build_encoder(str(d / meta["encoder"]))
        keep = {k: v for k, v in meta.items() if k not in ("policy_type", "env", "head", "window", "frame_size",
                                                          "encoder")}
        return cls(encoder, head, window, env=meta.get("env", "kitchen"), frame_size=int(meta.get("frame_size", 0)),
                   meta=keep)
