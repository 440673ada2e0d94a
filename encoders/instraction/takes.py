"""Take-level items of a clip index: one long video per (take, view) with its ordered steps.

A keystep take is 2-4 atomic clips; the clips are concatenated in `segment_index` order. The
generator resamples every clip to the same length, so the true boundaries would sit at exact
multiples of the clip length (a uniform split would be perfect). `crop` therefore keeps a seeded
random contiguous part of each clip, `[min_keep, 1]` of its frames, so segment lengths vary and
boundaries have to be found from the video.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class TakeItem:
    """One take seen from one view. `rows`: index rows of its clips in order; `steps`: (action, object)."""

    take_id: int
    view: str
    subject: str
    steps: list[tuple[str, str]]
    rows: list[int]  # row numbers into the split's index / feature arrays, in segment order
    keystep: str

    @property
    def main_object(self) -> str:
        """The pool key of InstrAct-Dynamics: the first movable (non-fixture) object, else the first object."""
        for _, o in self.steps:
            if o not in ("drawer", "knob"):
                return o
        return self.steps[0][1]


def take_items(index, views: tuple[str, ...] | None = None, min_steps: int = 1) -> list[TakeItem]:
    """Group an index (one split) into take items; `min_steps=2` keeps keystep takes only."""
    df = index.reset_index(drop=True)
    if views is not None:
        df = df[df["view"].isin(views)]
    items = []
    for (take, view), g in df.groupby(["take_id", "view"], sort=True):
        g = g.sort_values("segment_index")
        if len(g) < min_steps:
            continue
        items.append(TakeItem(int(take), str(view), str(g["subject"].iloc[0]),
                              [(str(a), str(o)) for a, o in zip(g["action"], g["object"])],
                              [int(i) for i in g.index], str(g["keystep"].iloc[0])))
    return items


def crop_lengths(n_clips: int, frames: int, seed: int, min_keep: float = 0.5) -> list[tuple[int, int]]:
    """Per clip a seeded `(start, stop)` frame range covering `[min_keep, 1]` of the clip."""
    rng = np.random.default_rng(seed)
    out = []
    lo = max(1, int(np.ceil(min_keep * frames)))
    for _ in range(n_clips):
        n = int(rng.integers(lo, frames + 1))
        s = int(rng.integers(0, frames - n + 1))
        out.append((s, s + n))
    return out


def take_video(features: np.ndarray, item: TakeItem, crop: bool = False, seed: int = 0,
               min_keep: float = 0.5) -> tuple[np.ndarray, list[int]]:
    """Concatenate the item's clips: `features (M, T, ...)` -> `(sum T_k, ...)`, true boundaries.

    Boundaries are the first frame of segments 2..K (K-1 values) in the concatenated video.
    """
    parts = []
    frames = features.shape[1]
    ranges = crop_lengths(len(item.rows), frames, seed, min_keep) if crop else [(0, frames)] * len(item.rows)
    for r, (s, e) in zip(item.rows, ranges):
        parts.append(np.asarray(features[r, s:e]))
    lengths = [len(p) for p in parts]
    return np.concatenate(parts), [int(x) for x in np.cumsum(lengths)[:-1]]
