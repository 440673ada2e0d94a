"""On-disk cache of frozen per-clip features and flow, so a dataset is pushed through a backbone once.

Layout (default root `.cache/atomvla`, or `$ATOMVLA_CACHE`, or `cache_root=`):

    <root>/features/<backbone key>/<dataset name>-<index hash>/<S>px/<split>.pooled.npy   (M, T, C) float32
                                                                   /<split>.tokens.npy   (M, T, N, C) float16
                                                                   /<split>.json         rows + shapes (written last)
    <root>/flow/<method>/<dataset name>-<index hash>/<S>px/<split>.flow.npy              (M, T-1, S, S, 3) float16

The key is (backbone, dataset, frame size): the dataset part hashes index.parquet, so regenerating
a dataset in the same folder invalidates its entries. Arrays are written atomically and opened
memory-mapped on reuse; the json marker is written after the arrays, so a killed run leaves no
entry that looks complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from configs.runs import atomic_write, atomic_write_json
from envs.atomic_world.dataset import load_clip, read_index


def default_cache_root() -> Path:
    return Path(os.environ.get("ATOMVLA_CACHE", ".cache/atomvla"))


def dataset_key(root: str | Path) -> str:
    """`<folder name>-<sha1 of index.parquet, 10 hex>`: same data -> same key, regenerated -> new key."""
    p = Path(root) / "index.parquet"
    if not p.is_file():
        raise FileNotFoundError(f"{root}: no index.parquet (not a dataset folder)")
    h = hashlib.sha1(p.read_bytes()).hexdigest()[:10]
    return f"{Path(root).resolve().name}-{h}"


def iter_clip_batches(
    root: str | Path, index: pd.DataFrame, batch_size: int = 16, desc: str | None = None
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield `(start_row, video (B, T, C, H, W) uint8)` over `index` in order.

    All clips of one dataset must share T, H, W (the generator guarantees it); a clip that does
    not raises a ValueError naming its file.
    """
    root = Path(root)
    shape = None
    bar = tqdm(total=len(index), desc=desc, unit="clip", disable=desc is None, leave=False)
    try:
        for start in range(0, len(index), batch_size):
            clips = []
            for path in index["path"].iloc[start : start + batch_size]:
                f = load_clip(root / path)
                if shape is None:
                    shape = f.shape
                elif f.shape != shape:
                    raise ValueError(f"{root / path}: clip shape {f.shape} differs from the dataset's {shape}; "
                                     "all clips must share (T, H, W, 3)")
                clips.append(f)
            video = torch.from_numpy(np.stack(clips)).permute(0, 1, 4, 2, 3).contiguous()
            bar.update(len(clips))
            yield start, video
    finally:
        bar.close()


@dataclasses.dataclass
class CachedArrays:
    """One cache entry: arrays aligned with `index` rows (memory-mapped when read from disk)."""

    index: pd.DataFrame
    arrays: dict[str, np.ndarray]
    cache_dir: Path
    from_cache: bool


def _split_name(split: str | None) -> str:
    return split if split is not None else "all"


def cached_arrays(
    cache_dir: Path,
    split: str | None,
    index: pd.DataFrame,
    names: tuple[str, ...],
    compute: Callable[[], dict[str, np.ndarray]],
    info: dict,
) -> CachedArrays:
    """Load arrays `names` for this split if a complete, matching entry exists; else compute + store."""
    s = _split_name(split)
    marker = cache_dir / f"{s}.json"
    rows = index["path"].tolist()
    if marker.is_file():
        try:
            meta = json.loads(marker.read_text())
        except json.JSONDecodeError:
            meta = {}
        files = {n: cache_dir / f"{s}.{n}.npy" for n in names}
        if meta.get("rows") == rows and all(n in meta.get("arrays", {}) and files[n].is_file() for n in names):
            try:
                arrays = {n: np.load(files[n], mmap_mode="r") for n in names}
                if all(list(a.shape) == meta["arrays"][n]["shape"] for n, a in arrays.items()):
                    return CachedArrays(index, arrays, cache_dir, True)
            except (OSError, ValueError, EOFError):
                pass
            # a damaged entry is a cache miss: say so, then recompute and overwrite it
            print(f"feature cache {cache_dir} ({s}): damaged entry, recomputing", flush=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    arrays = compute()
    for n, a in arrays.items():
        final = cache_dir / f"{s}.{n}.npy"
        src = Path(getattr(a, "filename", None) or "")
        if isinstance(a, np.memmap) and src.parent == cache_dir.resolve():
            # already streamed to a partial file next to its final name: publish it by rename (atomic)
            a.flush()
            os.replace(src, final)
        else:
            atomic_write(final, lambda p, a=a: np.save(p, a))
    atomic_write_json(marker, {**info, "split": s, "rows": rows,
                               "arrays": {n: {"shape": list(a.shape), "dtype": str(a.dtype)} for n, a in arrays.items()}})
    arrays = {n: np.load(cache_dir / f"{s}.{n}.npy", mmap_mode="r") for n in arrays}
    return CachedArrays(index, arrays, cache_dir, False)


def stream_arrays(cache_dir: Path, split: str | None, n_rows: int,
                  parts: Iterator[tuple[int, dict[str, np.ndarray]]]) -> dict[str, np.ndarray]:
    """Write `(start, {name: (B, ...)})` batches into memory-mapped partial files of `n_rows` rows
    (a cache entry's arrays of real datasets can exceed RAM); `cached_arrays` publishes them by rename."""
    out: dict[str, np.ndarray] = {}
    s = _split_name(split)
    # one partial file per process: two runs filling the same entry at once must not share one
    tag = f"{os.getpid()}.partial"
    try:
        for start, batch in parts:
            for n, a in batch.items():
                if n not in out:
                    out[n] = np.lib.format.open_memmap(cache_dir / f".{s}.{n}.{tag}.npy", mode="w+",
                                                       dtype=a.dtype, shape=(n_rows, *a.shape[1:]))
                out[n][start : start + len(a)] = a
    except BaseException:
        for n in out:
            (cache_dir / f".{s}.{n}.{tag}.npy").unlink(missing_ok=True)
        raise
    return out


def backbone_features(
    backbone,
    root: str | Path,
    split: str | None = None,
    views: tuple[str, ...] | None = None,
    tokens: bool = False,
    cache_root: str | Path | None = None,
    batch_size: int = 8,
    frame_batch: int = 64,
) -> CachedArrays:
    """Frozen features of every clip of `split`: arrays `pooled (M, T, C)` (+ `tokens (M, T, N, C)`).

    Computed once per (backbone, dataset, frame size, split) and memory-mapped afterwards.
    `views` filters the returned rows only; the cache always covers the whole split.
    """
    root = Path(root)
    full = read_index(root, split)
    cache_dir = Path(cache_root or default_cache_root()) / "features" / backbone.cache_key() / dataset_key(root) / f"{backbone.image_size}px"
    names = ("pooled", "tokens") if tokens else ("pooled",)

    def parts():
        for start, video in iter_clip_batches(root, full, batch_size, desc=f"features {backbone.spec}"):
            tk, pl = backbone.extract(video, batch_size=frame_batch, tokens=tokens)
            # float16 tokens halve disk/RAM for the largest array; they are frozen inputs, not targets
            out = {"pooled": pl.numpy().astype(np.float32)}
            if tokens:
                out["tokens"] = tk.numpy().astype(np.float16)
            yield start, out

    def compute() -> dict[str, np.ndarray]:
        return stream_arrays(cache_dir, split, len(full), parts())

    info = {"backbone": backbone.spec, "dataset": str(root.resolve()), "image_size": backbone.image_size}
    res = cached_arrays(cache_dir, split, full, names, compute, info)
    return _select_views(res, views)


def flow_maps(
    root: str | Path,
    split: str | None = None,
    views: tuple[str, ...] | None = None,
    method: str = "dis",
    size: int = 64,
    cache_root: str | Path | None = None,
) -> CachedArrays:
    """Cached flow of every clip of `split`: array `flow (M, T-1, size, size, 3)` float16 (dx, dy, |d|)."""
    from encoders.flow import compute_flow

    root = Path(root)
    full = read_index(root, split)
    cache_dir = Path(cache_root or default_cache_root()) / "flow" / method / dataset_key(root) / f"{size}px"

    def compute() -> dict[str, np.ndarray]:
        out = []
        for path in tqdm(full["path"], desc=f"flow {method}", unit="clip", leave=False):
            out.append(compute_flow(load_clip(root / path), method, size).astype(np.float16))
        return {"flow": np.stack(out)}

    info = {"method": method, "dataset": str(root.resolve()), "size": size}
    res = cached_arrays(cache_dir, split, full, ("flow",), compute, info)
    return _select_views(res, views)


def small_frames(
    root: str | Path,
    split: str | None = None,
    views: tuple[str, ...] | None = None,
    size: int = 48,
    cache_root: str | Path | None = None,
) -> CachedArrays:
    """Cached area-resized frames of every clip of `split`: array `frames (M, T, 3, size, size)` uint8
    (`encoders.pixel_motion.shrink`, the resize a live stream uses too)."""
    from encoders.pixel_motion import shrink

    root = Path(root)
    full = read_index(root, split)
    cache_dir = Path(cache_root or default_cache_root()) / "small_frames" / dataset_key(root) / f"{size}px"

    def compute() -> dict[str, np.ndarray]:
        return stream_arrays(cache_dir, split, len(full),
                             ((i, {"frames": shrink(v, size).numpy()}) for i, v in iter_clip_batches(root, full, 64)))

    info = {"dataset": str(root.resolve()), "size": size}
    return _select_views(cached_arrays(cache_dir, split, full, ("frames",), compute, info), views)


def _select_views(res: CachedArrays, views: tuple[str, ...] | None) -> CachedArrays:
    if views is None:
        return res
    keep = res.index["view"].isin(views).to_numpy()
    idx = np.flatnonzero(keep)
    return CachedArrays(res.index[keep].reset_index(drop=True), {n: a[idx] for n, a in res.arrays.items()},
                        res.cache_dir, res.from_cache)
