"""Frame rows of a dataset: frozen features plus the small frames, kept apart until a batch asks.

RoboAct-CLIP's pixel options (`motion: diff`, `object_input: pixels`) give every frame row its small
frames after the frozen features, `(C + P)` wide (`RoboActEncoder.with_pixels`). Held as one float32
array that is 4 bytes per pixel: about 2.3 MB a clip-view at n = 16 with both blocks, 20 GB for the
9000 training clip-views of `configs/world/large.yaml`. `FrameRows` keeps the pixels as the uint8 they
are and concatenates only the rows a batch indexes, so memory stays at the cached arrays' size.
"""

from __future__ import annotations

import numpy as np


class FrameRows:
    """`(M, n, C + P)` frame rows, read by row: `rows[i]`, `rows[a:b]`, `rows[int_array]` -> float32 ndarray.

    `frozen (M, n, C)` float32 are the backbone features; `pixels` are uint8 blocks `(M, n, P_k)`
    appended in order (empty without pixel options: then every read is `frozen` itself).
    """

    def __init__(self, frozen: np.ndarray, pixels: list[np.ndarray] | tuple[np.ndarray, ...] = ()) -> None:
        self.frozen = np.asarray(frozen, dtype=np.float32)
        self.pixels = [np.asarray(p) for p in pixels]
        for p in self.pixels:
            if p.shape[:2] != self.frozen.shape[:2]:
                raise ValueError(f"frame rows: pixel block {p.shape} does not match the features {self.frozen.shape}")

    @property
    def shape(self) -> tuple[int, int, int]:
        m, n, c = self.frozen.shape
        return m, n, c + sum(p.shape[-1] for p in self.pixels)

    def __len__(self) -> int:
        return len(self.frozen)

    def __getitem__(self, rows) -> np.ndarray:
        if not self.pixels:
            return self.frozen[rows]
        return np.concatenate([self.frozen[rows], *(p[rows].astype(np.float32) for p in self.pixels)], -1)

    def parts(self, rows) -> tuple[np.ndarray, list[np.ndarray]]:
        """(frozen `(N, n, C)` float32, pixel blocks `(N, n, P_k)` uint8) of `rows`, not joined: for a
        reader that changes the pixels first (the training jitter) and joins once."""
        return self.frozen[rows], [p[rows] for p in self.pixels]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)
