"""Shared machinery of the real-dataset adapters: clip specs, PyAV decoding, the resumable index writer.

An adapter (one module per dataset) only *reads annotations*: `scan()` returns `Item`s (one unit of
resumable work: a take, an episode, a video), each holding `ClipSpec`s (one atomic-action clip with
its labels and, per view, where its frames are: a video file + a time window, or an image sequence).
Everything after that is shared and dataset-blind:

- each clip-view is decoded once with PyAV (no torchvision), `frames` frames sampled uniformly over
  its window, resized on the short side and centre-cropped to `size` x `size`, and saved as the
  project's .npz clip (`envs.atomic_world.dataset.save_clip`), so every encoder, probe and benchmark
  reads real data exactly like the generated benchmark;
- the item's rows are written to `items/<key>.json` (atomically, after its clips): the per-item
  completion record. `resume=True` skips items that have one, so a killed run on a large root
  continues where it stopped;
- at the end `index.parquet` (INDEX_COLUMNS) and `meta.json` (the atomic world's keys: vocab,
  symmetric_pairs, splits, frames, size, ... plus `dataset`, `retrieval_only`, `take_keys`) and
  `report.json` (kept / dropped counts with reasons, malformed annotations, missing videos).

`start_frame` / `end_frame` are frame numbers in the *source* video (end exclusive), from the clip's
window and the stream's frame rate; `segment_index` is the clip's order within its take.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from configs.runs import atomic_write_json

FORMAT_VERSION = 1
NO_OBJECT = "none"  # the object of a clip whose annotation names none (vocab lookups need a value)
CLIP_FIELDS = ("split", "scene", "subject", "action", "object", "caption", "keystep_id", "keystep")


# ------------------------------------------------------------------------------------ specs + report
@dataclasses.dataclass
class Source:
    """Where one clip-view's frames are: a video + window [start_s, end_s), or an image sequence."""

    path: str = ""  # video file (absolute or relative to the dataset root)
    start_s: float = 0.0
    end_s: float | None = None  # None: to the end of the video
    images: list[str] = dataclasses.field(default_factory=list)  # image files, in order (instead of path)
    fps: float = 0.0  # frame rate of `images` (for start/end frame numbers)


@dataclasses.dataclass
class ClipSpec:
    clip_id: str
    labels: dict[str, Any]  # CLIP_FIELDS
    views: dict[str, Source]  # view name -> source ("ego" is the egocentric view; any other is exo)


@dataclasses.dataclass
class Item:
    key: str  # stable, file-name-safe id of the unit of work (take uid, video id, episode path)
    clips: list[ClipSpec]


@dataclasses.dataclass
class Report:
    """Kept / dropped counts with reasons, and one-line problems naming paths."""

    scanned: int = 0  # annotation units seen (clips or episodes, per adapter)
    layout: str = ""  # the published layout the adapter recognised (`detect_layout`), one line
    dropped: Counter = dataclasses.field(default_factory=Counter)
    problems: list[str] = dataclasses.field(default_factory=list)

    def drop(self, reason: str, n: int = 1) -> None:
        self.dropped[reason] += n

    def malformed(self, path: str | Path, what: str) -> None:
        self.problems.append(f"MALFORMED {path}: {what}")

    def missing(self, path: str | Path, what: str) -> None:
        self.problems.append(f"MISSING {path}: {what}")


@dataclasses.dataclass(frozen=True)
class Layout:
    """One published arrangement of a dataset's annotation files.

    `files` maps a role ("labels", "train", ...) to a path relative to the dataset root; `source` says
    who published it and where (it is printed, so a user can tell which download they hold).
    """

    name: str
    source: str
    files: dict[str, str]

    def path(self, root: Path, role: str) -> Path:
        return root / self.files[role]

    def describe(self) -> str:
        return f"{self.name} ({self.source})"


class LayoutError(ValueError):
    """No known layout matches a dataset root; the message lists the layouts and the files looked for."""


def detect_layout(kind: str, root: Path, layouts: Iterable[Layout]) -> Layout:
    """The layout of `root`: the one with the most of its files present (ties: the first listed).

    Raises LayoutError (one line: every known layout with its source and files) when none is present.
    """
    layouts = list(layouts)
    found = [(sum((root / f).is_file() for f in lay.files.values()), -i, lay) for i, lay in enumerate(layouts)]
    best = max(found, key=lambda t: (t[0], t[1]))
    if best[0] == 0:
        known = "; ".join(f"{lay.describe()}: {', '.join(lay.files.values())}" for lay in layouts)
        raise LayoutError(f"{kind}: {root} matches no known layout; looked for {known}")
    return best[2]


def check_splits(name: str, splits: Iterable[str], note: str = "") -> None:
    """`<name>.splits` may name only train and val; anything else is one error naming the field."""
    bad = [s for s in splits if s not in ("train", "val")]
    if bad:
        raise ValueError(f"{name}.splits: {bad} not in ['train', 'val']{note}")


def safe_key(text: str) -> str:
    """A file-name-safe form of an item key."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "item"


def load_json(path: Path, report: Report, what: str) -> Any:
    """JSON of `path`, or None after a one-line MISSING / MALFORMED report."""
    if not path.is_file():
        report.missing(path, f"{what} not found")
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        report.malformed(path, f"{what} is not valid JSON ({e})")
        return None


# ------------------------------------------------------------------------------------------- frames
def _square(img, size: int) -> np.ndarray:
    """PIL image -> (size, size, 3) uint8: short side to `size`, centre crop."""
    from PIL import Image

    w, h = img.size
    s = size / min(w, h)
    nw, nh = max(size, round(w * s)), max(size, round(h * s))
    img = img.convert("RGB").resize((nw, nh), Image.BILINEAR)
    left, top = (nw - size) // 2, (nh - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


def sample_times(start: float, end: float, n: int) -> np.ndarray:
    """`n` instants at the centres of `n` equal parts of [start, end)."""
    return start + (np.arange(n) + 0.5) * (end - start) / n


def video_info(path: str | Path) -> tuple[float, float]:
    """(frame rate, duration in seconds) of a video's first stream."""
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        fps = float(s.average_rate or s.guessed_rate or 0) or 30.0
        if s.duration is not None and s.time_base is not None:
            dur = float(s.duration * s.time_base)
        elif c.duration is not None:
            dur = c.duration / 1e6
        else:
            dur = (s.frames or 0) / fps
    return fps, dur


def decode_windows(path: str | Path, windows: list[tuple[float, float | None]], n: int, size: int,
                   threads: int = 1) -> tuple[list[np.ndarray | None], float, float]:
    """Decode a video once; for each window [start, end) the `n` frames nearest its sample instants.

    Returns (list of (n, size, size, 3) uint8, or None for a window that starts past the video's
    end, fps, duration); a window running past the end is cut there. A video without decodable
    frames raises ValueError naming the file.
    """
    import av

    fps, dur = video_info(path)
    targets: list[tuple[float, int, int]] = []  # (time, window, slot)
    for w, (a, b) in enumerate(windows):
        b = dur if b is None else b
        if a >= dur or b <= a:
            continue
        for k, t in enumerate(sample_times(a, min(b, dur), n)):
            targets.append((float(t), w, k))
    targets.sort()
    out = [np.zeros((n, size, size, 3), np.uint8) for _ in windows]
    filled = [np.zeros(n, bool) for _ in windows]
    half = 0.5 / fps
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        stream.codec_context.thread_count = max(1, threads)
        stream.thread_type = "AUTO" if threads > 1 else "SLICE"
        first = targets[0][0] if targets else 0.0
        if first > 2.0 and stream.time_base is not None:
            c.seek(int((first - 1.0) / stream.time_base), stream=stream, backward=True, any_frame=False)
        i, prev = 0, None  # prev = (time, image)
        for frame in c.decode(stream):
            if i >= len(targets):
                break
            t = float(frame.time) if frame.time is not None else 0.0
            while i < len(targets) and targets[i][0] <= t + half:
                tt, w, k = targets[i]
                pick = frame if prev is None or abs(t - tt) <= abs(prev[0] - tt) else prev[1]
                out[w][k] = _square(pick.to_image(), size)
                filled[w][k] = True
                i += 1
            prev = (t, frame)
        while i < len(targets) and prev is not None:  # instants after the last frame: the last frame
            _, w, k = targets[i]
            out[w][k] = _square(prev[1].to_image(), size)
            filled[w][k] = True
            i += 1
    if prev is None and targets:
        raise ValueError(f"{path}: no decodable video frames")
    return [o if f.all() else None for o, f in zip(out, filled)], fps, dur


def load_images(paths: list[str], n: int, size: int) -> np.ndarray:
    """`n` images sampled uniformly from an image sequence -> (n, size, size, 3) uint8."""
    from PIL import Image

    idx = np.minimum((sample_times(0, len(paths), n)).astype(int), len(paths) - 1)
    frames = []
    for i in idx:
        with Image.open(paths[i]) as im:
            frames.append(_square(im, size))
    return np.stack(frames)


# ------------------------------------------------------------------------------------------- writer
def process_item(item: Item, take_id: int, root: Path, out: Path, frames: int, size: int, threads: int = 1) -> dict:
    """Decode and save every clip-view of an item; returns its completion record (rows + drops)."""
    import av

    from envs.atomic_world.dataset import save_clip

    rows: list[dict] = []
    dropped: Counter = Counter()
    problems: list[str] = []
    # group windows by video so each file is decoded once
    by_video: dict[str, list[tuple[int, str]]] = {}
    for ci, clip in enumerate(item.clips):
        for view, src in clip.views.items():
            if src.path:
                by_video.setdefault(src.path, []).append((ci, view))
    decoded: dict[tuple[int, str], tuple[np.ndarray, int, int]] = {}
    failed: dict[tuple[int, str], str] = {}  # clip-view -> why it could not be read
    for vpath, users in by_video.items():
        full = Path(vpath) if Path(vpath).is_absolute() else root / vpath
        wins = [(item.clips[ci].views[v].start_s, item.clips[ci].views[v].end_s) for ci, v in users]
        try:
            arrs, fps, dur = decode_windows(full, wins, frames, size, threads)
        except FileNotFoundError:
            problems.append(f"MISSING {full}: video not found")
            failed.update({u: "missing video" for u in users})
            continue
        except (ValueError, OSError, IndexError, av.error.FFmpegError) as e:
            problems.append(f"UNREADABLE {full}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
            failed.update({u: "unreadable video" for u in users})
            continue
        for (ci, v), arr, (a, b) in zip(users, arrs, wins):
            if arr is None:
                problems.append(f"WINDOW {full}: [{a:.2f}, {b if b is not None else dur:.2f}) s starts past "
                                f"the video's end ({dur:.2f} s); clip {item.clips[ci].clip_id} dropped")
                failed[(ci, v)] = "window outside the video"
                continue
            b = dur if b is None else min(b, dur)
            decoded[(ci, v)] = (arr, int(round(a * fps)), max(int(round(b * fps)), int(round(a * fps)) + 1))
    for ci, clip in enumerate(item.clips):
        for view, src in clip.views.items():
            if src.images:
                try:
                    arr = load_images(src.images, frames, size)
                except OSError as e:
                    problems.append(f"UNREADABLE {src.images[0]}: {e}")
                    failed[(ci, view)] = "unreadable images"
                    continue
                decoded[(ci, view)] = (arr, 0, len(src.images))
    for ci, clip in enumerate(item.clips):
        views = [v for v in clip.views if (ci, v) in decoded]
        if len(views) < len(clip.views):
            dropped[next(failed[(ci, v)] for v in clip.views if (ci, v) in failed)] += 1
            continue  # all views or none: ego/exo pairs stay complete
        for view in views:
            arr, s, e = decoded[(ci, view)]
            rel = f"clips/{safe_key(item.key)}/{safe_key(clip.clip_id)}_{safe_key(view)}.npz"
            save_clip(out / rel, arr)
            labels = {**clip.labels, "object": clip.labels.get("object") or NO_OBJECT}
            rows.append({"take_id": take_id, "clip_id": clip.clip_id, "view": view, **labels,
                         "segment_index": ci, "start_frame": s, "end_frame": e, "path": rel})  # fmt: skip
    return {"key": item.key, "take_id": take_id, "rows": rows, "dropped": dict(dropped), "problems": problems}


def _record_path(out: Path, key: str) -> Path:
    return out / "items" / f"{safe_key(key)}.json"


def build_meta(kind: str, rows: list[dict], keys: list[str], frames: int, size: int, config: dict,
               symmetric_pairs: Iterable[Iterable[str]], retrieval_only: bool, extra: dict) -> dict:
    """meta.json with the atomic world's keys (vocab, symmetric_pairs, splits, frames, size, ...)."""

    def vocab(col: str) -> list[str]:  # every value (AtomicClipDataset maps each to an id); "" only for keystep
        return sorted({str(r[col]) for r in rows if r[col] != "" or col != "keystep"})

    actions = set(vocab("action"))
    scene_splits: dict[str, set[str]] = {}
    for r in rows:
        scene_splits.setdefault(str(r["scene"]), set()).add(str(r["split"]))
    return {
        "format_version": FORMAT_VERSION,
        "generator": f"envs.datasets.{kind}",
        "dataset": kind,
        "config": config,
        "vocab": {"action": vocab("action"), "object": vocab("object"), "subject": vocab("subject"),
                  "scene": vocab("scene"), "view": vocab("view"), "keystep": vocab("keystep")},
        "symmetric_pairs": [list(p) for p in symmetric_pairs if all(a in actions for a in p)],
        # scene -> split (the split of its clips; "train,val" when a scene's takes are in both)
        "splits": {s: ",".join(sorted(v)) for s, v in sorted(scene_splits.items())},
        "split_clips": dict(Counter(s for s in {(r["take_id"], r["clip_id"]): str(r["split"]) for r in rows}.values())),
        "frames": frames,
        "size": size,
        "retrieval_only": retrieval_only,
        "take_keys": keys,  # take_id -> the dataset's own id of the take / video / episode
        "conventions": "start_frame/end_frame are frame numbers in the source video (end exclusive); "
        "each clip-view holds `frames` frames sampled uniformly over its window, short side resized and "
        "centre-cropped to size x size",
        "n_takes": len({r["take_id"] for r in rows}),
        "n_clips": len({(r["take_id"], r["clip_id"]) for r in rows}),
        **extra,
    }


def write_dataset(kind: str, items: list[Item], report: Report, root: Path, out: Path, frames: int,
                  size: int, config: dict, resume: bool, progress: bool, symmetric_pairs=(),
                  retrieval_only: bool = False, extra: dict | None = None, threads: int = 1) -> dict:
    """Process every item (skipping completed ones on resume), then write index, meta and report."""
    from tqdm import tqdm

    from envs.atomic_world.dataset import write_index

    out.mkdir(parents=True, exist_ok=True)
    for stray in out.glob("**/.*.tmp*"):  # leftovers of a killed writer
        stray.unlink()
    keys = [it.key for it in items]
    if len(set(map(safe_key, keys))) != len(keys):
        raise ValueError(f"{kind}: two items share a file-name-safe key; keys must be unique")
    todo = [(i, it) for i, it in enumerate(items) if not (resume and _record_path(out, it.key).is_file())]
    bar = tqdm(total=len(items), initial=len(items) - len(todo), desc=f"{kind} items", unit="item",
               disable=not progress)
    for take_id, it in todo:
        rec = process_item(it, take_id, root, out, frames, size, threads)
        atomic_write_json(_record_path(out, it.key), rec)  # last: marks the item complete
        for p in rec["problems"]:
            tqdm.write(p)
        bar.update()
    bar.close()
    rows: list[dict] = []
    for take_id, it in enumerate(items):
        rec = json.loads(_record_path(out, it.key).read_text())
        # take ids are positions in this scan (a root that grew between runs shifts them; paths do not)
        rows.extend({**r, "take_id": take_id} for r in rec["rows"])
        for reason, n in rec["dropped"].items():
            report.drop(reason, n)
        report.problems.extend(rec["problems"])
    write_index(out, rows)
    meta = build_meta(kind, rows, keys, frames, size, config, symmetric_pairs, retrieval_only, extra or {})
    atomic_write_json(out / "meta.json", meta)
    clip_split = {(r["take_id"], r["clip_id"]): r["split"] for r in rows}
    summary = {
        "dataset": kind, "root": str(root), "out": str(out), "layout": report.layout, "scanned": report.scanned,
        "items": len(items), "kept_clips": len({(r["take_id"], r["clip_id"]) for r in rows}),
        "kept_clip_views": len(rows),
        "kept_by_split": dict(Counter(clip_split.values())),
        "dropped": dict(report.dropped.most_common()), "problems": report.problems,
    }  # fmt: skip
    atomic_write_json(out / "report.json", summary)
    return summary
