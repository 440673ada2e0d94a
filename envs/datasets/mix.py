"""Several clip indexes as one, with sampling weights: `data=[A, B] data_weights=[0.7, 0.3]`.

    folder = mix_datasets(["runs/demo/atomic_world", "runs/demos/libero_atomic"], [0.7, 0.3], cache)

`mix_datasets` writes a *mix folder* (index.parquet + meta.json, no clips of its own) that every
reader of the clip index accepts unchanged (`read_index`, `AtomicClipDataset`, the feature caches):

- each row's `path` is the absolute path of the source clip; `clip_id` becomes `d<k>:<take>:<clip>`
  and `take_id` is renumbered per source, so ids stay unique across the sources; an extra column `dataset`
  (int, position in `data`) says where a row came from;
- meta.json: the vocabularies joined in order (the first source's ids stay as they are), the splits,
  symmetric pairs, and `mix: {"datasets": [...], "weights": [...] (normalised)}`.

Samplers that draw training batches (`encoders/invact/data.py`, RoboAct-CLIP, LAQ) read the
weights with `row_weights` / `draw_sources`: the share of each source in the drawn items follows
its weight, whatever the sources' sizes.

A source whose verbs are outside the vocabulary (the atomic world's verbs and the first source's)
must declare them as its own extension (`meta.json` `new_verbs`, written by the demo-clip adapter, envs/datasets/demo_clips.py);
otherwise mixing stops with one line naming the source and the verbs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from configs.runs import atomic_write, atomic_write_json

MIX_FORMAT = 1


def check_weights(roots: Sequence[str], weights: Sequence[float]) -> list[float]:
    """Normalised weights of `roots` (equal when `weights` is empty); one-line ValueError otherwise."""
    if not roots:
        raise ValueError("data: no dataset given")
    if not weights:
        return [1.0 / len(roots)] * len(roots)
    if len(weights) != len(roots):
        raise ValueError(f"data_weights: {len(weights)} weights for {len(roots)} datasets in data; give one per dataset")
    w = [float(x) for x in weights]
    if any(not np.isfinite(x) or x < 0 for x in w) or sum(w) <= 0:
        raise ValueError(f"data_weights: {w} must be non-negative and sum to a positive number")
    return [x / sum(w) for x in w]


def _vocab_union(metas: list[dict], key: str) -> list[str]:
    out: list[str] = []
    for m in metas:
        out += [v for v in m.get("vocab", {}).get(key, []) if v not in out]
    return out


def check_verbs(roots: Sequence[str], metas: list[dict], indexes: list[pd.DataFrame]) -> None:
    """Every source's verbs are atomic-world verbs, verbs of data[0], or declared in its `new_verbs`."""
    from envs.atomic_world.vocab import ACTIONS

    base = set(ACTIONS) | set(metas[0].get("vocab", {}).get("action", []))
    for k in range(1, len(roots)):
        declared = set(metas[k].get("new_verbs", []))
        bad = sorted(set(indexes[k]["action"]) - base - declared)
        if bad:
            raise ValueError(f"data[{k}] {roots[k]}: verbs {bad} are outside the vocabulary (atomic world + data[0] "
                             f"{roots[0]}) and {roots[k]}/meta.json maps none of them (no 'new_verbs'); map them in "
                             "the dataset's adapter (as envs/datasets/demo_clips.py VERBS does) or list them in its "
                             "meta.json 'new_verbs'")


def clip_shape(root: str | Path, index: pd.DataFrame) -> tuple[int, ...]:
    """`(T, H, W, 3)` of a dataset's first clip (every clip of a dataset shares it)."""
    from envs.atomic_world.dataset import load_clip

    return tuple(load_clip(Path(root) / index["path"].iloc[0]).shape) if len(index) else ()


def mix_key(roots: Sequence[str], weights: Sequence[float]) -> str:
    """Content key of a mix: the sources' index.parquet bytes and the weights."""
    h = hashlib.sha1()
    for r, w in zip(roots, weights):
        h.update(str(Path(r).resolve()).encode())
        h.update(hashlib.sha1((Path(r) / "index.parquet").read_bytes()).digest())
        h.update(f"{w:.6f}".encode())
    return h.hexdigest()[:12]


def mix_datasets(roots: Sequence[str], weights: Sequence[float], cache_root: str | Path) -> Path:
    """Write (or reuse) the mix folder of `roots` under `<cache_root>/mixes/`; returns its path."""
    from envs.atomic_world.dataset import INDEX_COLUMNS, read_index, read_meta

    w = check_weights(roots, weights)
    metas = [read_meta(r) for r in roots]
    indexes = [read_index(r) for r in roots]
    check_verbs(roots, metas, indexes)
    shapes = [clip_shape(r, df) for r, df in zip(roots, indexes)]
    if len(set(shapes)) > 1:
        got = ", ".join(f"{r}: {s}" for r, s in zip(roots, shapes))
        raise ValueError(f"data: the datasets' clips differ in (T, H, W, 3) ({got}); write them with the same "
                         "frames and size")
    out = Path(cache_root) / "mixes" / f"mix-{mix_key(roots, w)}"
    if (out / "meta.json").is_file() and (out / "index.parquet").is_file():
        return out
    parts, offset = [], 0
    scene_owner: dict[str, int] = {}
    for k, (root, df) in enumerate(zip(roots, indexes)):
        df = df.copy()
        for s in set(df["scene"]):
            if scene_owner.setdefault(s, k) != k:
                raise ValueError(f"data[{k}] {root}: scene {s!r} also appears in data[{scene_owner[s]}] "
                                 f"{roots[scene_owner[s]]}; scenes of different datasets must have different names")
        df["path"] = [str((Path(root) / p).resolve()) for p in df["path"]]
        df["clip_id"] = [f"d{k}:{t}:{c}" for t, c in zip(df["take_id"], df["clip_id"])]
        df["take_id"] = pd.factorize(df["take_id"], sort=True)[0].astype(np.int64) + offset
        df["dataset"] = k
        offset = int(df["take_id"].max()) + 1 if len(df) else offset
        parts.append(df[[*INDEX_COLUMNS, "dataset"]])
    index = pd.concat(parts, ignore_index=True)
    index = index.sort_values(["take_id", "clip_id", "view"], kind="stable").reset_index(drop=True)
    pairs = [p for m in metas for p in m.get("symmetric_pairs", [])]
    splits: dict[str, str] = {}
    for m in metas:
        splits.update(m.get("splits", {}))
    meta = {
        "format_version": MIX_FORMAT,
        "generator": "envs.datasets.mix",
        "dataset": "mix",
        "vocab": {key: _vocab_union(metas, key) for key in ("action", "object", "subject", "scene", "view", "keystep")},
        "symmetric_pairs": [list(p) for i, p in enumerate(pairs) if list(p) not in [list(q) for q in pairs[:i]]],
        "splits": splits,
        "frames": shapes[0][0] if shapes[0] else None,
        "size": shapes[0][1] if shapes[0] else None,
        "mix": {"datasets": [str(Path(r).resolve()) for r in roots], "weights": w,
                "rows": [int((index["dataset"] == k).sum()) for k in range(len(roots))]},
        "n_takes": int(index["take_id"].nunique()),
        "n_clips": int(index[["take_id", "clip_id"]].drop_duplicates().shape[0]),
    }
    atomic_write(out / "index.parquet", lambda tmp: index.to_parquet(tmp, index=False))
    atomic_write_json(out / "meta.json", meta)  # last: a folder with meta.json is complete
    return out


def mix_weights(root: str | Path) -> list[float] | None:
    """The normalised source weights of a mix folder; None for an ordinary dataset."""
    p = Path(root) / "meta.json"
    if not p.is_file():
        return None
    mix = json.loads(p.read_text()).get("mix")
    return [float(x) for x in mix["weights"]] if mix else None


def draw_sources(rng: np.random.Generator, weights: Sequence[float], n: int) -> np.ndarray:
    """`(n,)` source ids drawn i.i.d. with probabilities `weights`."""
    return rng.choice(len(weights), size=n, p=np.asarray(weights, float))


def draw_rows(rng: np.random.Generator, sources: np.ndarray, weights: Sequence[float], n: int,
              replace: bool = False) -> np.ndarray:
    """`(n,)` row ids with a source per slot drawn by `weights`, then rows uniformly within it.

    `sources (M,)` is each row's source id. Without replacement inside a source unless it holds
    fewer rows than its slots. A source with weight > 0 and no rows raises naming it.
    """
    by_src = {k: np.flatnonzero(sources == k) for k in range(len(weights))}
    empty = [k for k, w in enumerate(weights) if w > 0 and len(by_src[k]) == 0]
    if empty:
        raise ValueError(f"data[{empty[0]}]: weight {weights[empty[0]]:.3g} but no clips of it in this split")
    slots = draw_sources(rng, weights, n)
    out = np.empty(n, np.int64)
    for k in np.unique(slots):
        where = np.flatnonzero(slots == k)
        rows = by_src[int(k)]
        out[where] = rng.choice(rows, size=len(where), replace=replace or len(rows) < len(where))
    return out
