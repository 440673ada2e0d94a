"""Change-point segmentation into a known number of ordered steps, with a duration prior.

    bounds = changepoint_boundaries(features, n_segments)          # features (T, D) -> M-1 ints
    seg = Segmenter(SegmenterConfig(method="changepoint"))          # the callable teleop ingestion takes
    bounds = seg(frames, ["pick up the cube", "put it in the drawer"], obs={"joint_states": ...})

Not from the paper: InstrAction aligns action tokens to verb phrases with DTW (Sec. 4.2, Eq. 4-5;
`segment.py` keeps that as method "dtw"), which needs an encoder whose tokens match the phrases.
Method "changepoint" needs no model: the sequence is cut into exactly M contiguous segments that
minimise, by dynamic programming over all cut positions,

    sum_k SSE(segment k) / (T * D)  +  duration_weight * M * sum_k (len_k / T - 1 / M)^2

(minus `jump_weight / M` times the z-scored feature jump at each cut), where SSE is the squared deviation of the (per-dimension z-scored) features from the segment's
mean: each step is modelled as roughly constant in the features (a robot's motion direction and
gripper opening; a camera's pooled appearance), and the second term pulls segment lengths towards
equal parts (the uniform split is its limit for a large weight). Segments are at least `min_len`
steps. Robot features (`robot_features`, every dimension z-scored): end-effector / joint velocity,
speed, position (weighted by `pos_weight`) and the gripper opening; frame features (`frame_features`): down-sampled grey pixels and their change.
"""

from __future__ import annotations

import dataclasses

import numpy as np

METHODS = ("changepoint", "uniform", "dtw")


@dataclasses.dataclass
class SegmenterConfig:
    """`method`: "changepoint" (this module), "uniform" (equal parts) or "dtw" (segment.py, needs
    text-space embeddings, so not usable on raw frames / proprio)."""

    method: str = "changepoint"
    duration_weight: float = 1.0  # weight of the equal-length prior (tuned on the tuning sets)
    min_len: int = 2  # shortest segment, in steps
    smooth: int = 1  # moving-average window for velocities, in steps
    pos_weight: float = 3.0  # weight of the (z-scored) position block among the robot features
    zscore: bool = True  # z-score every feature dimension over the sequence
    jump_weight: float = 0.0  # reward for cutting where the features jump


def changepoint_boundaries(features: np.ndarray, n_segments: int, duration_weight: float = 0.3,
                           min_len: int = 2, zscore: bool = True, jump_weight: float = 0.0) -> list[int]:
    """First step of segments 2..M (M-1 increasing ints) of `features (T, D)` cut into `n_segments`.
    `jump_weight` rewards cuts where the features jump (|x_t - x_t-1|, z-scored over the sequence)."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or not np.isfinite(x).all():
        raise ValueError(f"features: expected a finite (T, D) array, got shape {np.shape(features)}")
    T, D = x.shape
    M = int(n_segments)
    if M < 1 or M > T:
        raise ValueError(f"n_segments: need 1 <= n_segments <= T={T}, got {n_segments}")
    if M == 1:
        return []
    min_len = max(1, min(int(min_len), T // M))
    if zscore:
        x = _z(x)
    # prefix sums: SSE(a, b) = sum |x|^2 - |sum x|^2 / n over rows a..b-1
    c1 = np.concatenate([np.zeros((1, D)), np.cumsum(x, 0)])
    c2 = np.concatenate([[0.0], np.cumsum((x * x).sum(1))])
    scale = 1.0 / (T * max(D, 1))
    a_idx = np.arange(T + 1)
    jump = np.zeros(T + 1)
    if jump_weight and T > 2:
        jump[1:T] = _z(np.linalg.norm(np.diff(x, axis=0), axis=1)[:, None])[:, 0]

    def seg_cost(a: np.ndarray, b: int) -> np.ndarray:
        n = b - a
        s = c1[b] - c1[a]
        sse = c2[b] - c2[a] - (s * s).sum(1) / np.maximum(n, 1)
        return sse * scale + duration_weight * M * (n / T - 1.0 / M) ** 2 - jump_weight * jump[a] / M

    inf = np.inf
    best = np.full((M + 1, T + 1), inf)
    arg = np.zeros((M + 1, T + 1), dtype=int)
    best[0, 0] = 0.0
    for k in range(1, M + 1):
        for b in range(k * min_len, T - (M - k) * min_len + 1):
            a = a_idx[(k - 1) * min_len: b - min_len + 1]
            tot = best[k - 1, a] + seg_cost(a, b)
            j = int(np.argmin(tot))
            best[k, b], arg[k, b] = tot[j], a[j]
    bounds, b = [], T
    for k in range(M, 1, -1):
        b = int(arg[k, b])
        bounds.append(b)
    return bounds[::-1]


def _smooth(x: np.ndarray, w: int) -> np.ndarray:
    """Centred moving average along axis 0 (edges repeat), `x (T, D)` -> `(T, D)`."""
    if w <= 1:
        return x
    pad = np.concatenate([np.repeat(x[:1], w // 2, 0), x, np.repeat(x[-1:], w - 1 - w // 2, 0)])
    c = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(pad, 0)])
    return (c[w:] - c[:-w]) / w


def _z(x: np.ndarray) -> np.ndarray:
    sd = x.std(0)
    return (x - x.mean(0)) / np.where(sd > 1e-8, sd, 1.0)


def robot_features(obs: dict[str, np.ndarray], smooth: int = 1, pos_weight: float = 3.0) -> np.ndarray:
    """Per-step z-scored features `(T, D)` from proprio: smoothed velocity of the end effector
    (`ee_pos`, else `joint_states`), its speed, its position (times `pos_weight`), and the gripper
    opening (`gripper_states` / `gripper_state`). Every dimension is z-scored over the sequence."""
    pos_key = next((k for k in ("ee_pos", "joint_states") if k in obs), None)
    grip_key = next((k for k in ("gripper_states", "gripper_state") if k in obs), None)
    if pos_key is None and grip_key is None:
        raise ValueError(f"obs: needs ee_pos or joint_states or gripper_states, has {sorted(obs)}")
    parts = []
    if pos_key is not None:
        p = np.asarray(obs[pos_key], dtype=np.float64).reshape(len(obs[pos_key]), -1)
        v = _smooth(np.diff(p, axis=0, prepend=p[:1]), smooth)
        parts += [_z(v), _z(np.linalg.norm(v, axis=1, keepdims=True))]
        if pos_weight > 0:
            parts.append(pos_weight * _z(p))
    if grip_key is not None:
        g = np.asarray(obs[grip_key], dtype=np.float64).reshape(len(obs[grip_key]), -1)
        parts.append(_z(np.abs(g).sum(1, keepdims=True)))  # opening (LIBERO: two fingers, +/-)
    return np.concatenate(parts, axis=1)


def frame_features(frames: np.ndarray, size: int = 8) -> np.ndarray:
    """`frames (T, H, W, 3) uint8` -> `(T, size*size + 1)`: block-averaged grey image + its change."""
    f = np.asarray(frames, dtype=np.float64)
    if f.ndim != 4:
        raise ValueError(f"frames: expected (T, H, W, 3), got shape {f.shape}")
    g = f.mean(-1)
    T, H, W = g.shape
    hs, ws = max(1, H // size), max(1, W // size)
    g = g[:, : hs * size, : ws * size].reshape(T, size, hs, size, ws).mean((2, 4)).reshape(T, -1) / 255.0
    d = np.linalg.norm(np.diff(g, axis=0, prepend=g[:1]), axis=1, keepdims=True)
    return np.concatenate([g, d], axis=1)


def label_runs(labels: list[str]) -> tuple[list[str], list[int]]:
    """Per-step labels `(T,)` -> (the label of each run, first step of runs 2..M): ground-truth steps."""
    names, bounds = [], []
    for t, lab in enumerate(labels):
        if t == 0 or lab != labels[t - 1]:
            if t:
                bounds.append(t)
            names.append(lab)
    return names, bounds


def uniform_split(n_frames: int, n_segments: int) -> list[int]:
    """Equal-length segments' boundaries (the baseline)."""
    return [int(round(k * n_frames / n_segments)) for k in range(1, n_segments)]


class Segmenter:
    """`seg(frames (T, H, W, 3), steps [M str], obs={key: (T, ...)} or None) -> M-1 boundaries`.

    With proprio in `obs` the change points are found on `robot_features`, else on `frame_features`.
    This is the `segmenter` real_robot/ingest.py takes (`uses_obs` tells it to pass the aligned obs).
    """

    uses_obs = True

    def __init__(self, cfg: SegmenterConfig | None = None) -> None:
        self.cfg = cfg or SegmenterConfig()
        if self.cfg.method not in ("changepoint", "uniform"):
            raise ValueError(f"method: {self.cfg.method!r} cannot segment frames/proprio; use changepoint or uniform")
        self.__qualname__ = f"Segmenter[{self.cfg.method}]"

    @staticmethod
    def _robot(obs: dict) -> bool:
        return any(k in obs for k in ("ee_pos", "joint_states", "gripper_states", "gripper_state"))

    def features(self, frames: np.ndarray | None, obs: dict | None) -> np.ndarray:
        """The `(T, D)` sequence the change points are found on."""
        if obs and self._robot(obs):
            return robot_features(obs, self.cfg.smooth, self.cfg.pos_weight)
        if frames is None:
            raise ValueError("segmenter: needs frames or proprio obs")
        return frame_features(frames)

    def __call__(self, frames: np.ndarray | None, steps: list[str], obs: dict | None = None) -> list[int]:
        x = self.features(frames, obs)
        if self.cfg.method == "uniform":
            return uniform_split(len(x), len(steps))
        robot = x is not None and obs is not None and self._robot(obs)
        return changepoint_boundaries(x, len(steps), self.cfg.duration_weight, self.cfg.min_len,
                                      self.cfg.zscore and not robot, self.cfg.jump_weight)
