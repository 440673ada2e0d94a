"""Dense optical flow between consecutive frames: `(T, H, W, 3) uint8` -> `(T-1, H, W, 3) float32`.

This is the flow video an InvAct-style tubelet embedder consumes (one flow map per consecutive
frame pair, three channels per pixel, same H x W as the frames). The three channels are:

    [..., 0] = dx   horizontal displacement in pixels from frame t to t+1 (+ = moves right)
    [..., 1] = dy   vertical displacement in pixels (+ = moves down, image rows grow downward)
    [..., 2] = |d|  magnitude sqrt(dx^2 + dy^2), so a 3-channel (RGB-like) input carries speed directly

Methods: "dis" (OpenCV DIS, default: fast and robust on small frames), "farneback" (OpenCV), and
"raft" (torchvision RAFT-small with local weights from $ATOMVLA_RAFT_WEIGHTS; only when
torchvision imports, which it does not in the default environment).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

FLOW_METHODS = ("dis", "farneback", "raft")


def _check_frames(frames: Any, name: str = "frames") -> np.ndarray:
    if not isinstance(frames, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array (T, H, W, 3) uint8, got {type(frames).__name__}")
    if frames.dtype != np.uint8:
        raise TypeError(f"{name}: expected dtype uint8, got {frames.dtype}")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        hint = " (channels-first? use (T, H, W, 3))" if frames.ndim == 4 and frames.shape[1] == 3 else ""
        raise ValueError(f"{name}: expected shape (T, H, W, 3), got {frames.shape}{hint}")
    if frames.shape[0] < 2:
        raise ValueError(f"{name}: flow needs at least 2 frames, got T={frames.shape[0]}")
    return frames


def _with_magnitude(uv: np.ndarray) -> np.ndarray:
    mag = np.sqrt((uv.astype(np.float32) ** 2).sum(-1, keepdims=True))
    return np.concatenate([uv.astype(np.float32), mag], axis=-1)


def compute_flow(frames: np.ndarray, method: str = "dis", size: int | None = None) -> np.ndarray:
    """`frames (T, H, W, 3) uint8` -> flow `(T-1, H', W', 3) float32` (dx, dy, magnitude in pixels).

    `size`: resize frames to `size x size` first (flow is then in pixels of the resized frames).
    """
    import cv2

    frames = _check_frames(frames)
    if method not in FLOW_METHODS:
        raise ValueError(f"unknown flow method {method!r}; available: {', '.join(FLOW_METHODS)}")
    if size is not None and frames.shape[1:3] != (size, size):
        frames = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames])
    if method == "raft":
        return _raft(frames)
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    out = np.empty((len(gray) - 1, *gray[0].shape, 3), np.float32)
    if method == "dis":
        # MEDIUM preset: FAST loses the small displacements of 64 px renders; ULTRAFAST more so
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        for i in range(len(gray) - 1):
            out[i] = _with_magnitude(dis.calc(gray[i], gray[i + 1], None))
    else:
        for i in range(len(gray) - 1):
            uv = cv2.calcOpticalFlowFarneback(gray[i], gray[i + 1], None, pyr_scale=0.5, levels=3, winsize=9,
                                              iterations=3, poly_n=5, poly_sigma=1.1, flags=0)
            out[i] = _with_magnitude(uv)
    return out


def raft_available() -> bool:
    try:
        import torchvision.models.optical_flow  # noqa: F401
    except Exception:
        return False
    return True


def _raft(frames: np.ndarray) -> np.ndarray:
    if not raft_available():
        raise ImportError("flow method 'raft' needs torchvision (not installed here); use 'dis' or 'farneback'")
    import torch
    from torchvision.models.optical_flow import raft_small

    # weights=None: nothing may be downloaded at run time. Point $ATOMVLA_RAFT_WEIGHTS at a local
    # raft_small state dict; without it the network is random-init and its flow is meaningless.
    model = raft_small(weights=None).eval()
    weights = os.environ.get("ATOMVLA_RAFT_WEIGHTS")
    if not weights:
        raise FileNotFoundError("flow method 'raft' needs local weights: set ATOMVLA_RAFT_WEIGHTS to a raft_small "
                                "state-dict file (nothing is downloaded at run time)")
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    h, w = frames.shape[1:3]
    if h % 8 or w % 8:
        raise ValueError(f"raft needs H and W divisible by 8, got {h}x{w}; pass size=")
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    with torch.no_grad():
        uv = model(x[:-1], x[1:])[-1].permute(0, 2, 3, 1).numpy()
    return _with_magnitude(uv)


def compute_flow_batch(video: Any, method: str = "dis", size: int | None = None) -> np.ndarray:
    """`video (B, T, C, H, W) uint8` torch tensor or numpy -> `(B, T-1, H', W', 3) float32`."""
    import torch

    if isinstance(video, torch.Tensor):
        from encoders.video import check_video

        check_video(video, name="flow input")
        video = video.permute(0, 1, 3, 4, 2).contiguous().numpy()
    return np.stack([compute_flow(v, method, size) for v in video])
