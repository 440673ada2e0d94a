"""Streaming encoders: embed a window that slides by one frame per step without redoing shared work.

A policy embeds, at every control step t and for every camera, the window of the last `frames`
frames `stride` steps apart, with steps before the episode start clamped to frame 0: the offsets
`envs.episodes.frame_offsets(frames, stride)` read by the project's one window sampler
`envs.episodes.window_steps`, i.e. the camera windows of the demo `EpisodeDataset` that training
reads (policies/heads/data.py computes its features with `episode_features`). Consecutive windows
share all but one frame, so re-encoding each window repeats nearly all of the frozen work (for
InvAct: 8 backbone passes and 7 optical-flow pairs per camera per step, where 1 of each is new).

    stream = EncoderStream(encoder, frames=8, stride=2, views=2)
    stream.reset()                               # at each episode start
    emb = stream.push(images)                    # images (V, H, W, 3) uint8 -> (V, D) float32

    episode_features(encoder, [video_cam0, video_cam1], frames=8, stride=2)   # (T, V*D), row t = push t

Both go through the encoder's streaming hooks (`ActionEncoder.stream_positions / frame_work /
pair_work / encode_from_work`, documented in encoders/base.py): the work of each frame (backbone
features, resized frames) and of each frame pair (optical flow) is computed once, keyed by the
frame's episode step and the pair's two steps, and computed lazily when a window asks for one that
is missing, so the result never depends on the window length matching the encoder's own frame
count. All cameras go through each hook in one batch. Equality with `encoder.encode(window)` to
1e-5 is tested in tests/test_streaming.py. An encoder without hooks is re-encoded per window.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from envs import episodes

Work = dict[str, torch.Tensor]


def window_steps(t: int, frames: int, stride: int) -> np.ndarray:
    """(frames,) episode steps of the window ending at step `t`: `frames` steps `stride` apart,
    clamped at 0. The dataset's sampler over `frame_offsets`; no upper clip, as the window ends at t."""
    return episodes.window_steps(t, episodes.frame_offsets(frames, stride))


def window_span(frames: int, stride: int) -> int:
    """Env steps one window covers: the frames of a camera a stream must keep."""
    return int(-episodes.frame_offsets(frames, stride)[0]) + 1


def _rows(work: Work, m: int) -> list[Work]:
    """`{name: (M, ...)}` -> M per-row dicts `{name: (...)}` (views, no copy)."""
    return [{k: v[i] for k, v in work.items()} for i in range(m)]


def _stack(rows: Sequence[Work]) -> Work:
    return {k: torch.stack([r[k] for r in rows]) for k in rows[0]}


def _to_chw(images: Sequence[np.ndarray]) -> torch.Tensor:
    """Equal-shaped `(H, W, 3) uint8` frames -> `(M, 3, H, W) uint8`."""
    return torch.from_numpy(np.ascontiguousarray(np.stack(images))).permute(0, 3, 1, 2).contiguous()


class _WorkCache:
    """Per-camera frame work `{step: Work}` and pair work `{(step_a, step_b): Work}` of one episode."""

    def __init__(self, encoder: Any, views: int, chunk: int):
        self.encoder, self.views, self.chunk = encoder, views, chunk
        self.frame: list[dict[int, Work]] = [{} for _ in range(views)]
        self.pair: list[dict[tuple[int, int], Work]] = [{} for _ in range(views)]

    def ensure(self, steps: Sequence[Sequence[np.ndarray]], image: Callable[[int, int], np.ndarray]) -> None:
        """Compute the missing work for the windows `steps[v][r]` (sampled episode steps of row r of
        camera v); `image(v, step)` gives the `(H, W, 3) uint8` frame. Each hook runs once over all
        cameras' missing items (in chunks of `chunk`; frames of different sizes in separate calls)."""
        need_f = sorted({(v, int(s)) for v in range(self.views) for row in steps[v] for s in row
                         if int(s) not in self.frame[v]})
        by_shape: dict[tuple[int, ...], list[tuple[int, int]]] = {}
        for v, s in need_f:
            by_shape.setdefault(image(v, s).shape, []).append((v, s))
        for keys in by_shape.values():
            for c in range(0, len(keys), self.chunk):
                part = keys[c : c + self.chunk]
                work = self.encoder.frame_work(_to_chw([image(v, s) for v, s in part]))
                for (v, s), row in zip(part, _rows(work, len(part))):
                    self.frame[v][s] = row
        if not self.encoder.stream_pairs:
            return
        need_p = sorted({(v, int(a), int(b)) for v in range(self.views) for row in steps[v]
                         for a, b in zip(row[:-1], row[1:]) if (int(a), int(b)) not in self.pair[v]})
        for c in range(0, len(need_p), self.chunk):
            part = need_p[c : c + self.chunk]
            first = _stack([self.frame[v][a] for v, a, _ in part])
            second = _stack([self.frame[v][b] for v, _, b in part])
            work = self.encoder.pair_work(first, second)
            for (v, a, b), row in zip(part, _rows(work, len(part))):
                self.pair[v][(a, b)] = row

    def gather(self, rows: Sequence[tuple[int, np.ndarray]]) -> tuple[Work, Work | None]:
        """Rows `(camera, sampled steps (n,))` -> frame work `(R, n, ...)`, pair work `(R, n-1, ...)`."""
        frames = _stack([_stack([self.frame[v][int(s)] for s in st]) for v, st in rows])
        if not self.encoder.stream_pairs:
            return frames, None
        if len(rows[0][1]) < 2:
            raise ValueError("streaming: an encoder with pair work needs at least 2 sampled frames per window")
        pairs = _stack([_stack([self.pair[v][(int(a), int(b))] for a, b in zip(st[:-1], st[1:])]) for v, st in rows])
        return frames, pairs

    def prune(self, first_step: int) -> None:
        """Drop work of steps before `first_step` (no later window reads them)."""
        for v in range(self.views):
            self.frame[v] = {s: w for s, w in self.frame[v].items() if s >= first_step}
            self.pair[v] = {k: w for k, w in self.pair[v].items() if k[0] >= first_step}


def has_stream_hooks(encoder: Any, frames: int) -> bool:
    """True when `encoder` implements the streaming hooks (else streams fall back to `encode`)."""
    fn = getattr(encoder, "stream_positions", None)
    return callable(fn) and fn(frames) is not None


class EncoderStream:
    """Embeddings of each camera's sliding window, one frame per camera per `push`.

    `push(images (V, H, W, 3) uint8)` (or a list of V `(H, W, 3)` frames) -> `(V, D)` float32: row v is
    `encoder.encode` of camera v's window ending at the pushed frame (`window_steps`). `reset()`
    starts a new episode. Keeps the last `(frames - 1) * stride + 1` frames of each camera and the
    work computed for them.
    """

    def __init__(self, encoder: Any, frames: int, stride: int, views: int, chunk: int = 64):
        if frames < 1 or stride < 1 or views < 1:
            raise ValueError(f"EncoderStream: frames, stride and views must be >= 1, got {frames}, {stride}, {views}")
        self.encoder, self.frames, self.stride, self.views, self.chunk = encoder, frames, stride, views, chunk
        self.span = window_span(frames, stride)
        self.streaming = has_stream_hooks(encoder, frames)
        self.positions = encoder.stream_positions(frames) if self.streaming else np.arange(frames)
        self.reset()

    def reset(self) -> None:
        """Forget the episode: the next push is step 0."""
        self.t = -1
        self._images: list[dict[int, np.ndarray]] = [{} for _ in range(self.views)]
        self._cache = _WorkCache(self.encoder, self.views, self.chunk)

    def _check(self, images: Any) -> list[np.ndarray]:
        imgs = list(images) if not isinstance(images, np.ndarray) or images.ndim == 4 else None
        if imgs is None or len(imgs) != self.views:
            shape = getattr(images, "shape", None)
            raise ValueError(f"EncoderStream.push: expected {self.views} frames (V, H, W, 3) uint8, got "
                             f"{shape if shape is not None else type(images).__name__}")
        for v, im in enumerate(imgs):
            if not isinstance(im, np.ndarray) or im.dtype != np.uint8 or im.ndim != 3 or im.shape[-1] != 3:
                raise ValueError(f"EncoderStream.push: camera {v} frame must be (H, W, 3) uint8, got "
                                 f"{getattr(im, 'shape', type(im).__name__)} {getattr(im, 'dtype', '')}")
        return imgs

    @torch.no_grad()
    def push(self, images: np.ndarray | Sequence[np.ndarray], step: int | None = None) -> np.ndarray:
        """Add one frame per camera at episode step `step` (None: the step after the last push);
        returns the `(V, D)` float32 embeddings of the windows ending there.

        Steps may be skipped (a receding-horizon policy only sees the frames its windows read);
        a window step that was never pushed is an error."""
        imgs = self._check(images)
        if step is not None and step <= self.t:
            raise ValueError(f"EncoderStream.push: step {step} is not after the last pushed step {self.t}")
        self.t = self.t + 1 if step is None else int(step)
        first = max(0, self.t - self.span + 1)  # the current window's first step; older ones are never read again
        for v, im in enumerate(imgs):
            self._images[v][self.t] = np.array(im, copy=True)  # env renderers may reuse their buffers
            for s in [s for s in self._images[v] if s < first]:
                del self._images[v][s]
        steps = window_steps(self.t, self.frames, self.stride)
        missing = sorted({int(x) for x in steps} - set(self._images[0]))
        if missing:
            raise ValueError(f"EncoderStream.push: the window ending at step {self.t} reads step(s) {missing}, "
                             "which were never pushed")
        if not self.streaming:
            return _encode_windows(self.encoder, [[self._images[v][int(s)] for s in steps] for v in range(self.views)])
        sampled = steps[self.positions]
        self._cache.prune(first)
        self._cache.ensure([[sampled]] * self.views, lambda v, s: self._images[v][s])
        out = self.encoder.encode_from_work(*self._cache.gather([(v, sampled) for v in range(self.views)]))
        return out.float().cpu().numpy()


def _encode_windows(encoder: Any, windows: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
    """Fallback: `encoder.encode` of windows (lists of `(H, W, 3)` frames), equal-shaped ones in one batch
    -> `(len(windows), D)` float32 in the given order."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, w in enumerate(windows):
        groups.setdefault((len(w), *w[0].shape), []).append(i)
    out: list[np.ndarray | None] = [None] * len(windows)
    with torch.no_grad():
        for idx in groups.values():
            video = torch.stack([_to_chw(windows[i]) for i in idx])  # (B, T, 3, H, W)
            for i, e in zip(idx, encoder.encode(video).float().cpu().numpy()):
                out[i] = e
    return np.stack(out).astype(np.float32)  # type: ignore[arg-type]


@torch.no_grad()
def episode_features(encoder: Any, videos: Sequence[np.ndarray], frames: int, stride: int,
                     batch: int = 32, chunk: int = 64) -> np.ndarray:
    """`videos`: one `(T, H, W, 3) uint8` array per camera (same T) -> `(T, V*D)` float32.

    Row t is the concatenation over cameras of the embeddings of the windows ending at step t, i.e.
    what `EncoderStream.push` returns after frame t. The same hooks as the stream, batched over
    `batch` steps at a time (frame and pair work in chunks of `chunk`), each frame's and pair's work
    computed once; without hooks, `encode` of every window.
    """
    if not videos:
        raise ValueError("episode_features: no camera videos given")
    lengths = {len(v) for v in videos}
    if len(lengths) != 1 or 0 in lengths:
        raise ValueError(f"episode_features: every camera needs the same, non-zero number of frames, got {sorted(lengths)}")
    for i, v in enumerate(videos):
        if not isinstance(v, np.ndarray) or v.dtype != np.uint8 or v.ndim != 4 or v.shape[-1] != 3:
            raise ValueError(f"episode_features: camera {i} must be (T, H, W, 3) uint8, got "
                             f"{getattr(v, 'shape', type(v).__name__)} {getattr(v, 'dtype', '')}")
    n_t, n_v = lengths.pop(), len(videos)
    span = window_span(frames, stride)
    streaming = has_stream_hooks(encoder, frames)
    positions = encoder.stream_positions(frames) if streaming else None
    cache = _WorkCache(encoder, n_v, chunk)
    out = []
    for s in range(0, n_t, batch):
        ts = range(s, min(s + batch, n_t))
        steps = [window_steps(t, frames, stride) for t in ts]
        if not streaming:
            wins = [[videos[v][int(i)] for i in st] for st in steps for v in range(n_v)]
            out.append(_encode_windows(encoder, wins).reshape(len(ts), -1))
            continue
        cache.prune(max(0, s - span + 1))
        sampled = [st[positions] for st in steps]
        cache.ensure([sampled] * n_v, lambda v, i: videos[v][i])
        emb = encoder.encode_from_work(*cache.gather([(v, st) for st in sampled for v in range(n_v)]))
        out.append(emb.float().cpu().numpy().reshape(len(ts), -1))  # rows are (step, camera): camera-major per step
    return np.concatenate(out).astype(np.float32)
