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

import copy
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from encoders.streaming import EncoderStream
from envs.episodes import window_steps
from envs.policy_api import POLICIES, POLICY_FILE, Policy, PolicyInputs
from policies.heads.checkpoint import load_head_weights, read_head_meta, save_head
from policies.heads.data import WindowConfig, history_offsets
from policies.heads.model import HeadNetwork


def demo_frame(img: np.ndarray, frame_size: int, what: str = "frame") -> np.ndarray:
    """A camera frame (H, W, 3) -> (frame_size, frame_size, 3) uint8, area-resized when its height differs
    from the demos' `frame_size` (0: kept as is); another shape is one error naming `what`."""
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"{what} must be (H, W, 3) uint8, got {img.shape}")
    if frame_size and img.shape[0] != frame_size:  # the demos' frame size
        t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float()
        t = torch.nn.functional.interpolate(t, size=(frame_size, frame_size), mode="area")
        img = t[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    return img.astype(np.uint8, copy=False)


@POLICIES.register("policy_head")
class EncoderHeadPolicy(Policy):
    gripper_convention = "env"

    def __init__(self, encoder: Any, head: HeadNetwork, window: WindowConfig, env: str = "kitchen",
                 frame_size: int = 0, meta: dict | None = None, text_encoder: str = "",
                 execution: str = "receding", ensemble_decay: float = 0.01) -> None:
        # encoder None: a blind head (no views), the no-vision control of the comparisons
        self.encoder = encoder.freeze() if hasattr(encoder, "freeze") else encoder
        self.head = head.eval()
        self.window = window
        self.env = env
        self.frame_size = frame_size
        self.meta = meta or {}
        if head.cfg.text_dim and not text_encoder:
            raise ValueError("this head is instruction-conditioned: give the text encoder spec it was trained with")
        self.text_encoder_spec = text_encoder
        self._text_encoder: Any = None
        self._texts: dict[str, np.ndarray] = {}
        self.feature_offsets = np.asarray(history_offsets(head.cfg.history))  # feature-history offsets, as in training
        # the frames one act reads: each history step's window (a receding chunk acts every `chunk` steps,
        # so the loop renders these on the steps between acts too)
        reads = sorted({int(w + h) for w in window.offsets() for h in self.feature_offsets})
        self.inputs = PolicyInputs(cameras=tuple(window.views), proprio_dim=int(head.cfg.proprio_dim) or None,
                                   history=window.span + len(self.feature_offsets) - 1, chunk=head.cfg.chunk,
                                   execution=execution, ensemble_decay=ensemble_decay, frame_offsets=tuple(reads))
        self.stream = (EncoderStream(self.encoder, self.window.frames, self.window.stride, len(self.window.views))
                       if self.window.views else None)
        self.reset()

    # -- episode --------------------------------------------------------------------------------
    def reset(self) -> None:
        if self.stream is not None:
            self.stream.reset()
        self._feats: dict[int, np.ndarray] = {}  # episode step -> (V * D,) features, the history's steps only
        self._t = -1  # the episode step of the last observed frames
        self._fresh = False  # observe() ran for the coming act

    def _frame(self, img: np.ndarray, key: str) -> np.ndarray:
        return demo_frame(img, self.frame_size, f"policy_head: obs[{key!r}]")

    def features(self, obs: dict, step: int | None = None) -> np.ndarray:
        """Push this step's frame of every view; returns the `(V * D,)` features of the current windows."""
        frames = []
        for v in self.window.views:
            if v not in obs:
                raise KeyError(f"policy_head needs obs[{v!r}] (render=True); got keys {sorted(obs)}")
            frames.append(self._frame(obs[v], v))
        if self.stream is None:
            return np.zeros(0, np.float32)
        return self.stream.push(frames, step).reshape(-1).astype(np.float32, copy=False)

    def observe(self, obs: dict, step: int) -> None:
        """Frames of episode step `step` (the rollout loop calls this on the steps the windows read)."""
        self._feats[step] = self.features(obs, step)
        self._t, self._fresh = step, True

    def instruction_embedding(self, instruction: str) -> np.ndarray | None:
        """(text_dim,) float32 embedding of `instruction` (cached per string); None for an unconditioned head."""
        if not self.head.cfg.text_dim:
            return None
        if instruction not in self._texts:
            if not str(instruction).strip():
                raise ValueError("policy_head: this head is instruction-conditioned and the instruction is empty")
            if self._text_encoder is None:
                from encoders.text import build_text_encoder

                self._text_encoder = build_text_encoder(self.text_encoder_spec)
            self._texts[instruction] = self._text_encoder.encode([instruction])[0].float().numpy()
        return self._texts[instruction]

    def act(self, obs: dict, instruction: str) -> np.ndarray:
        """-> (A,) action, or a (chunk, A) chunk, clipped to [-1, 1]."""
        return self.act_batch([(self, obs, instruction)])[0]

    def session(self) -> EncoderHeadPolicy:
        """A policy sharing this one's encoder, head and instruction cache, with its own episode state
        (feature stream, feature history): one per worker of a policy server (envs/policy_server.py)."""
        s = copy.copy(self)
        s.stream = (EncoderStream(self.encoder, self.window.frames, self.window.stride, len(self.window.views))
                    if self.window.views else None)
        s.reset()
        return s

    def act_batch(self, calls: Sequence[tuple[EncoderHeadPolicy, dict, str]]) -> list[np.ndarray]:
        """`act` of several sessions (this policy or its `session()`s, each at most once) in one head
        forward pass: [(session, obs, instruction)] -> B actions (A,) or chunks (chunk, A), each equal
        to `session.act(obs, instruction)` (each session's state advances the same way). The
        encoder's streaming work stays per session (each stream caches its own frames)."""
        feats, proprio, texts = [], [], []
        for s, obs, instruction in calls:
            f, p = s._act_inputs(obs)
            feats.append(f)
            proprio.append(p)
            texts.append(self.instruction_embedding(instruction))
        text = None if texts[0] is None else torch.from_numpy(np.stack(texts))
        with torch.no_grad():
            a = self.head(torch.from_numpy(np.stack(feats)), torch.from_numpy(np.stack(proprio)), text).numpy()
        return [np.clip(row.astype(np.float64), -1.0, 1.0) for row in a]

    def _act_inputs(self, obs: dict) -> tuple[np.ndarray, np.ndarray]:
        """This episode's head inputs for an act on `obs`: features (history, V * D), proprio (P,)."""
        if not self._fresh:  # called directly (not through the rollout loop): this obs is the next step
            self.observe(obs, self._t + 1)
        self._fresh = False
        t = self._t
        steps = window_steps(t, self.feature_offsets)
        for s in [s for s in self._feats if s < steps[0]]:
            del self._feats[s]
        missing = [int(s) for s in steps if int(s) not in self._feats]
        if missing:
            raise ValueError(f"policy_head: features of step(s) {missing} were never observed (history {steps.tolist()})")
        proprio = np.asarray(obs["proprio"], np.float32).reshape(-1)
        if proprio.shape[0] != self.head.cfg.proprio_dim:
            raise ValueError(f"policy_head: obs['proprio'] has {proprio.shape[0]} dims, the head was trained on "
                             f"{self.head.cfg.proprio_dim} ({self.env} demos)")
        return np.stack([self._feats[int(s)] for s in steps]), proprio

    # -- checkpoints ----------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path, encoder_spec: str = "", extra: dict | None = None) -> Path:
        d = Path(directory)
        if self.encoder is not None:
            self.encoder.save_pretrained(d / "encoder")
        meta = {"policy_type": "policy_head", "env": self.env, "window": dataclasses.asdict(self.window),
                "frame_size": self.frame_size, "encoder": "encoder" if self.encoder is not None else "",
                "encoder_spec": encoder_spec, "text_encoder": self.text_encoder_spec,
                "execution": self.inputs.execution, "ensemble_decay": self.inputs.ensemble_decay,
                **self.meta, **(extra or {})}
        return save_head(self.head, d, meta)

    @classmethod
    def from_pretrained(cls, path: str | Path, **kwargs: Any) -> EncoderHeadPolicy:
        from configs.loader import from_dict
        from encoders import build_encoder

        d = Path(path)
        meta, head_cfg = read_head_meta(d, "policy_head", ("window", "encoder"))
        window = from_dict(WindowConfig, meta["window"], source=str(d / POLICY_FILE))
        encoder = build_encoder(str(d / meta["encoder"])) if meta["encoder"] else None
        want = head_cfg.feature_dim
        got = int(getattr(encoder, "dim", 0)) * len(window.views) if encoder is not None else 0
        if got != want:
            raise ValueError(f"{d}: the encoder gives {len(window.views)} x {getattr(encoder, 'dim', '?')} = {got} "
                             f"feature dims, the head in {d / POLICY_FILE} was trained on {want}")
        head = load_head_weights(HeadNetwork(head_cfg), d)
        own = ("policy_type", "env", "head", "window", "frame_size", "encoder", "text_encoder", "execution",
               "ensemble_decay")
        keep = {k: v for k, v in meta.items() if k not in own}
        # execution may be overridden at load time (the same head evaluated receding vs ensembled)
        return cls(encoder, head, window, env=meta.get("env", "kitchen"), frame_size=int(meta.get("frame_size", 0)),
                   meta=keep, text_encoder=str(meta.get("text_encoder", "")),
                   execution=str(kwargs.get("execution") or meta.get("execution", "receding")),
                   ensemble_decay=float(kwargs.get("ensemble_decay") or meta.get("ensemble_decay", 0.01)))
