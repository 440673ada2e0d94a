"""Contact sheet of a generated dataset: one row per take, its views side by side (the library behind
scripts/preview_dataset.py). Each view shows `frames` frames (first, ..., last) of the take's first
clip; the row is labelled with the take's scene, split, subject and the caption (or keystep) of its clips.
`where` ({index column: value}) keeps the clips that match, e.g. one object class in one split, and
each row then shows its take's first matching clip.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from envs.atomic_world.dataset import load_clip, read_index


def contact_sheet(root: str | Path, takes: int = 12, frames: int = 3, gap: int = 4,
                  where: dict[str, str] | None = None) -> Image.Image:
    """RGB image: rows = the first `takes` takes (with a clip matching `where`), columns = views x
    `frames` frames, with a label strip."""
    df = read_index(root)
    views = list(dict.fromkeys(df["view"]))
    match = df
    for col, value in (where or {}).items():
        if col not in df.columns:
            raise ValueError(f"{Path(root) / 'index.parquet'}: no column {col!r} to select on; columns: {list(df.columns)}")
        match = match[match[col].astype(str) == str(value)]
    if match.empty:
        raise ValueError(f"{Path(root) / 'index.parquet'}: no clip has {where}")
    rows = []
    for take_id in sorted(set(match["take_id"]))[:takes]:
        t = df[df["take_id"] == take_id]
        seg = match[match["take_id"] == take_id]["segment_index"].min()
        first = t[t["segment_index"] == seg]
        tiles = []
        for v in views:
            clip = load_clip(Path(root) / first[first["view"] == v]["path"].iloc[0])
            idx = np.round(np.linspace(0, len(clip) - 1, frames)).astype(int)
            tiles.append(np.concatenate(list(clip[idx]), axis=1))
            tiles.append(np.full((clip.shape[1], gap, 3), 255, np.uint8))
        strip = np.concatenate(tiles[:-1], axis=1)
        r = first.iloc[0]
        what = r["keystep"] or r["caption"]
        label = f"take {take_id} | {r['scene']} ({r['split']}) | {r['subject']} | {what}"
        if r["keystep"]:
            label += " = " + " > ".join(t.drop_duplicates("clip_id")["action"])
        band = Image.new("RGB", (strip.shape[1], 14), (30, 30, 30))
        ImageDraw.Draw(band).text((3, 1), label, fill=(255, 255, 255))
        rows.append(np.concatenate([np.asarray(band), strip], axis=0))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, gap), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    header = Image.new("RGB", (width, 16), (255, 255, 255))
    per_view = (width + gap) // max(1, len(views))
    for i, v in enumerate(views):
        ImageDraw.Draw(header).text((i * per_view + 3, 2), v, fill=(0, 0, 0))
    return Image.fromarray(np.concatenate([np.asarray(header), *rows], axis=0))
