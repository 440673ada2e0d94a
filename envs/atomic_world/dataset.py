"""Reading and writing the clip index: `DIR/meta.json`, `DIR/index.parquet`, and one video file per clip-view.

Every video dataset in the project (generated here, or a real one indexed by a script) is read
through this module. A clip-view's frames are stored as `(T, H, W, 3) uint8` in a compressed .npz
(lossless, so labels checked on rendered pixels stay true and reruns are byte-identical).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from configs.runs import DamagedFileError, atomic_write, damaged

INDEX_COLUMNS = (
    "take_id", "clip_id", "view", "split", "scene", "subject", "action", "object", "caption",
    "keystep_id", "keystep", "segment_index", "start_frame", "end_frame", "path",
)  # fmt: skip
EGO_VIEWS = ("ego",)


def is_ego(view: str) -> bool:
    """Ego ("g") vs exo ("x") for the retrieval pairs g2g/x2x/g2x/x2g."""
    return view in EGO_VIEWS


def save_clip(path: str | Path, frames: np.ndarray) -> Path:
    """Atomically write `frames (T, H, W, 3) uint8`."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{path}: frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, frames=frames)

    return atomic_write(path, write)


def load_clip(path: str | Path) -> np.ndarray:
    """`(T, H, W, 3) uint8` frames of one clip-view file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"clip file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "frames" not in z.files:
                raise damaged(path, "clip file (.npz)", reason=f"no 'frames' array (has {z.files})")
            frames = z["frames"]
    except DamagedFileError:
        raise
    except Exception as e:  # BadZipFile, EOFError, zlib.error, OSError, ValueError: all mean a damaged file
        raise damaged(path, "clip file (.npz)", e) from None
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise damaged(path, "clip file (.npz)", reason=f"expected (T, H, W, 3) uint8 frames, got "
                                                      f"{frames.shape} {frames.dtype}")
    return frames


def read_meta(root: str | Path) -> dict[str, Any]:
    p = Path(root) / "meta.json"
    if not Path(root).is_dir():
        raise FileNotFoundError(f"{root}: dataset folder does not exist (make one with scripts/make_atomic_videos.py)")
    if not p.is_file():
        raise FileNotFoundError(f"{root}: no meta.json (is this a dataset made by scripts/make_atomic_videos.py?)")
    try:
        return json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise damaged(p, "dataset meta (JSON)", e) from None


def read_index(root: str | Path, split: str | None = None, views: tuple[str, ...] | None = None) -> pd.DataFrame:
    """The clip-view index, optionally filtered; `path` stays relative to `root`."""
    p = Path(root) / "index.parquet"
    if not Path(root).is_dir():
        raise FileNotFoundError(f"{root}: dataset folder does not exist (make one with scripts/make_atomic_videos.py)")
    if not p.is_file():
        raise FileNotFoundError(f"{root}: no index.parquet (is this a dataset made by scripts/make_atomic_videos.py?)")
    try:
        df = pd.read_parquet(p)
    except Exception as e:  # pyarrow raises its own error types for a torn file
        raise damaged(p, "clip index (parquet)", e) from None
    missing = [c for c in INDEX_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{p}: index is missing columns {missing}")
    if split is not None:
        if split not in set(df["split"]):
            raise ValueError(f"{p}: no rows with split={split!r}; splits present: {sorted(set(df['split']))}")
        df = df[df["split"] == split]
    if views is not None:
        df = df[df["view"].isin(views)]
    return df.reset_index(drop=True)


def write_index(root: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Atomically write index.parquet with exactly INDEX_COLUMNS, sorted for determinism."""
    df = pd.DataFrame(rows, columns=list(INDEX_COLUMNS))
    df = df.sort_values(["take_id", "clip_id", "view"], kind="stable").reset_index(drop=True)
    return atomic_write(Path(root) / "index.parquet", lambda tmp: df.to_parquet(tmp, index=False))


class AtomicClipDataset:
    """torch-style Dataset over an index: item = dict with `video (T, C, H, W) uint8` + the row's labels.

    Also carries integer ids (`action_id`, `subject_id`, `object_id`, `scene_id`) taken from the
    vocabularies in meta.json, so ids agree across splits.
    """

    def __init__(self, root: str | Path, split: str | None = None, views: tuple[str, ...] | None = None):
        self.root = Path(root)
        self.meta = read_meta(self.root)
        self.index = read_index(self.root, split, views)
        vocab = self.meta["vocab"]
        self.vocab = {k: {name: i for i, name in enumerate(vocab[k])} for k in ("action", "subject", "object", "scene")}

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        row = self.index.iloc[i].to_dict()
        frames = load_clip(self.root / row["path"])
        item: dict[str, Any] = {"video": torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous()}
        item.update(row)
        for k in ("action", "subject", "object", "scene"):
            item[f"{k}_id"] = self.vocab[k][row[k]]
        return item
