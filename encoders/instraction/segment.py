"""Split a long video into its atomic segments, in order, from the hard DTW path (Sec. 4.2, Eq. 10).

    boundaries = segment(video_tokens, verb_phrases, embed_text=model.embed_text)

`video_tokens (L, D)` is any temporally ordered embedding sequence in the text space: per-frame
embeddings (positions = frame indices) or the Action Perceiver's K tokens (positions = their
window centres, in frames). The cost is the cosine distance to the phrase embeddings; the path
uses steps (1,0)/(1,1), so each token belongs to exactly one phrase and phrases come in order.
Optionally (`center`) both sides are mean-centred first (a choice of ours, see `segment`).
A boundary is placed half-way between the last token of one phrase and the first of the next.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from encoders.instraction.soft_dtw import cosine_cost, dtw_path


def check_phrases(verb_phrases, n_tokens: int) -> None:
    """Empty phrase lists, empty strings, or more phrases than tokens: a ValueError naming `verb_phrases`."""
    n = len(verb_phrases) if verb_phrases is not None else 0
    if n == 0:
        raise ValueError("verb_phrases: empty; segmentation needs at least one verb phrase")
    if isinstance(verb_phrases, (list, tuple)) and any(not isinstance(p, str) or not p.strip() for p in verb_phrases):
        raise ValueError(f"verb_phrases: every phrase must be a non-empty string, got {list(verb_phrases)!r}")
    if n > n_tokens:
        raise ValueError(f"verb_phrases: {n} phrases but the video has only {n_tokens} time steps; "
                         "need at most one phrase per time step")


def segment(video_tokens: torch.Tensor, verb_phrases: list[str] | torch.Tensor,
            embed_text: Callable[[list[str]], torch.Tensor] | None = None,
            positions: torch.Tensor | np.ndarray | None = None, center: bool = False) -> list[int]:
    """Boundaries (first frame of segments 2..M, M-1 ints) of `video_tokens (L, D)` vs M phrases.

    `verb_phrases` is a list of strings (then `embed_text` maps them to `(M, D)`) or an `(M, D)` tensor.
    `positions (L,)` gives each token's frame index (default 0..L-1). `center=True` subtracts the
    mean token and the mean phrase embedding before the cosine: when every token is close to every
    phrase (a collapsed alignment space), only the part that differs along the video is compared.
    (A per-row offset of the cost, e.g. a softmax over phrases, would change nothing: every path
    visits each token exactly once.)
    """
    if not isinstance(video_tokens, torch.Tensor) or video_tokens.ndim != 2:
        raise ValueError(f"video_tokens: expected (L, D) tensor, got {getattr(video_tokens, 'shape', type(video_tokens))}")
    n = video_tokens.shape[0]
    check_phrases(verb_phrases, n)
    if isinstance(verb_phrases, torch.Tensor):
        phrases = verb_phrases
    else:
        if embed_text is None:
            raise ValueError("embed_text: needed to embed string verb_phrases")
        phrases = embed_text(list(verb_phrases))
    if phrases.ndim != 2 or phrases.shape[1] != video_tokens.shape[1]:
        raise ValueError(f"verb_phrases: embeddings {tuple(phrases.shape)} do not match video_tokens "
                         f"{tuple(video_tokens.shape)}")
    pos = np.arange(n, dtype=float) if positions is None else np.asarray(positions, dtype=float)
    v, p = video_tokens.float(), phrases.float()
    if center:
        v, p = v - v.mean(0), p - p.mean(0)
    cost = cosine_cost(v[None], p[None])[0]
    path, _ = dtw_path(cost, frame_steps=True)
    owner = np.zeros(n, dtype=int)
    for i, j in path:
        owner[i] = j
    bounds = []
    for j in range(1, phrases.shape[0]):
        k = int(np.flatnonzero(owner == j)[0])  # first token of phrase j
        bounds.append(int(np.ceil((pos[k - 1] + pos[k]) / 2)))
    return bounds


def boundary_error(pred: list[int], truth: list[int]) -> float:
    """Mean absolute distance in frames between matched (same-order) boundaries."""
    if len(pred) != len(truth):
        raise ValueError(f"boundary_error: {len(pred)} predicted vs {len(truth)} true boundaries")
    if not truth:
        return 0.0
    return float(np.mean(np.abs(np.asarray(pred) - np.asarray(truth))))


def uniform_boundaries(n_frames: int, n_segments: int) -> list[int]:
    """Baseline: equal-length segments."""
    return [int(round(k * n_frames / n_segments)) for k in range(1, n_segments)]


def boundary_metrics(pred: list[int], truth: list[int], n_frames: int, tol: int = 2) -> dict[str, float]:
    """Boundary error of one sequence of `n_frames`: `mae` (mean |pred - truth| in frames, boundaries
    matched in order), `mae_frac` (the same / n_frames) and `f1` at `tol` frames (each true boundary
    matched at most once to a predicted one within `tol`; 1.0 when both are empty)."""
    if n_frames <= 0:
        raise ValueError(f"n_frames: must be positive, got {n_frames}")
    mae = boundary_error(pred, truth)
    free = list(pred)
    hits = 0
    for t in truth:
        d = [abs(p - t) for p in free]
        if d and min(d) <= tol:
            free.pop(int(np.argmin(d)))
            hits += 1
    if not truth and not pred:
        f1 = 1.0
    else:
        prec, rec = hits / max(len(pred), 1), hits / max(len(truth), 1)
        f1 = 0.0 if hits == 0 else 2 * prec * rec / (prec + rec)
    return {"mae": mae, "mae_frac": mae / n_frames, "f1": f1}
