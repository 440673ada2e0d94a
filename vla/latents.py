"""Stage 1: label clips (and robot-demo windows) with a frozen action encoder's latent actions.

    python vla/latents.py --encoder runs/demo/invact/encoder --data runs/demo/atomic_world --out runs/vla/latents
    python vla/latents.py --encoder backbone_mean --data /tmp/aw --demos runs/demos/goal --out /tmp/lat split=
    python vla/latents.py --config configs/vla/latents.yaml encoder=invact      # any build_encoder name/dir

LAPA's stage 1 (invact.txt A.3): "learn a latent action space" -- here any frozen ActionEncoder
(`enc.encode(video (B, T, C, H, W) uint8) -> (B, D)`) provides it. An encoder that also has
`codes(video) -> (B, G) int` and `codebook_size` (a LAQ-style quantiser) gets its codes stored too,
and stage 2 then trains with cross-entropy.

Output folder (`--out`):
    latents.npz    frames (N, H, W, 3) uint8 (each clip's first frame / each window's first frame),
                   captions (N,) str, latents (N, D) float32, source (N,) str, [codes (N, G) int64]
    latents.json   encoder id, encoder hash (config + weights), dim, n, mean/std (D,) over all rows,
                   the job hash, per-source counts -- written last: its presence marks a complete run
Cached: a rerun whose job hash (encoder hash + rows + options) matches latents.json does nothing.
Resumable: the clips are one unit (`chunks/<job>/clips.npz`, through the encoder's `embed_dataset`,
which reuses the flow/feature caches of its training), demo windows are encoded in chunks
(`chunks/<job>/part_NNNNN.npz`); every file is written atomically and a killed run restarts at the
first missing one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from configs.loader import parse_cli, save_config
from configs.runs import atomic_write, atomic_write_json
from vla.data import LATENTS_ARRAYS, LATENTS_MANIFEST

FORMAT_VERSION = 1


@dataclasses.dataclass
class LatentsConfig:
    encoder: str = ""  # registry name (build_encoder) or an exported encoder directory
    encoder_args: dict[str, Any] = dataclasses.field(default_factory=dict)  # config overrides (names only)
    data: str = ""  # clip index folder (index.parquet + meta.json); "" = none
    demos: str = ""  # robot demo hdf5 file(s)/folder(s) or LeRobot folder to label with windows; "" = none
    out: str = ""
    split: str = "train"  # clip-index split to label ("" = every split)
    views: list[str] = dataclasses.field(default_factory=list)  # [] = every view
    batch: int = 16  # clips per encoder call
    chunk: int = 128  # rows per resumable chunk file
    window: int = 16  # demo window length in steps (the encoder resamples to its own T)
    stride: int = 16  # demo window stride in steps
    demo_size: int = 96  # demo windows are resized to this (the clip resolution); 0 = keep
    frame_size: int = 0  # stored first frames are resized to this; 0 = keep
    threads: int = 0  # torch threads; 0 = the free cores (configs/threads.py)
    progress: bool = True

    def validate(self) -> None:
        if not self.encoder:
            raise ValueError("encoder: required (a build_encoder name or an exported encoder directory)")
        if not self.data and not self.demos:
            raise ValueError("data / demos: give a clip index (--data) and/or robot demos (--demos)")
        if not self.out:
            raise ValueError("out: required (the latents folder)")
        if min(self.batch, self.chunk, self.window, self.stride) < 1:
            raise ValueError("batch, chunk, window and stride must be >= 1")


def encoder_hash(enc: Any) -> str:
    """sha256 over the encoder's config (registry name + constructor config) and every weight tensor."""
    h = hashlib.sha256(json.dumps(enc.config_dict(), sort_keys=True, default=str).encode())
    for k, v in sorted(enc.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# -- rows: what gets a latent ---------------------------------------------------------------------
def clip_rows(cfg: LatentsConfig) -> list[dict[str, Any]]:
    """One row per clip-view of the index: {"source": "clip", "key": path, "caption": str}."""
    from envs.atomic_world.dataset import read_index

    df = read_index(cfg.data, split=cfg.split or None, views=tuple(cfg.views) or None)
    if len(df) == 0:
        raise ValueError(f"{cfg.data}: no clips for split={cfg.split!r} views={cfg.views}")
    return [{"source": "clip", "key": str(p), "caption": str(c)} for p, c in zip(df["path"], df["caption"])]


def demo_rows(cfg: LatentsConfig) -> list[dict[str, Any]]:
    """One row per demo window [t, t + window), t in range(0, max(1, T - window + 1), stride):
    {"source": "demo", "key": "file:i:t" (i = the demo's index in its file), "caption": instruction}.
    Only the actions are read here (envs.episodes), to count the steps."""
    from envs.episodes import episode_files, read_episodes

    rows = []
    for f in episode_files(cfg.demos):
        for i, e in enumerate(read_episodes(f, keys=("action",))):
            for t in range(0, max(1, len(e) - cfg.window + 1), cfg.stride):
                rows.append({"source": "demo", "key": f"{f}:{i}:{t}", "caption": e.instruction})
    return rows


def load_video(row: dict[str, Any], cfg: LatentsConfig, cache: dict[str, Any]) -> np.ndarray:
    """The (T, H, W, 3) uint8 frames of one row: a clip, or a demo window of cfg.window frames (steps
    t + range(window) through envs.episodes.window_steps: a demo shorter than the window repeats its
    last frame). `cache` holds the episodes of the last demo file read; rows come file by file, so at
    most one file's full-resolution frames are in memory."""
    from envs import protocol
    from envs.atomic_world.dataset import load_clip
    from envs.episodes import check_episode, read_episodes, window_steps

    if row["source"] == "clip":
        return load_clip(Path(cfg.data) / row["key"])
    f, i, t = row["key"].rsplit(":", 2)
    if f not in cache:
        cache.clear()
        cache[f] = read_episodes(f, keys=("agentview_rgb", "action"))
        for e in cache[f]:  # a demo without the camera: one error naming file:demo and its keys
            check_episode(e, {"agentview_rgb": np.zeros(1, np.int64)})
    e = cache[f][int(i)]
    frames = e.data["agentview_rgb"][window_steps(int(t), range(cfg.window), len(e))]
    if cfg.demo_size:
        frames = np.stack([protocol.resize_image(x, cfg.demo_size) for x in frames])
    return frames


def encode_rows(enc: Any, rows: list[dict[str, Any]], cfg: LatentsConfig, cache: dict) -> dict[str, np.ndarray]:
    """Encode `rows` in batches of cfg.batch (grouping equal shapes) -> the arrays of one chunk
    (`cache`: see `load_video`)."""
    import torch

    from envs import protocol

    videos = [load_video(r, cfg, cache) for r in rows]
    lat = np.zeros((len(rows), enc.dim), np.float32)
    has_codes = callable(getattr(enc, "codes", None))
    codes: list[Any] = [None] * len(rows)
    for s in range(0, len(rows), cfg.batch):
        groups: dict[tuple, list[int]] = {}
        for j in range(s, min(s + cfg.batch, len(rows))):
            groups.setdefault(videos[j].shape, []).append(j)
        for idx in groups.values():
            v = torch.from_numpy(np.stack([videos[j] for j in idx])).permute(0, 1, 4, 2, 3).contiguous()
            with torch.no_grad():
                lat[idx] = enc.encode(v).cpu().numpy()
                if has_codes:
                    c = enc.codes(v).cpu().numpy().astype(np.int64)
                    for k, j in enumerate(idx):
                        codes[j] = c[k]
    frames = [v[0] for v in videos]
    if cfg.frame_size:
        frames = [protocol.resize_image(f, cfg.frame_size) for f in frames]
    if len({f.shape for f in frames}) > 1:
        raise ValueError("first frames differ in size across rows; set frame_size=N to store them at one size")
    out = {"latents": lat, "frames": np.stack(frames), "captions": np.array([r["caption"] for r in rows]),
           "source": np.array([r["source"] for r in rows])}
    if has_codes:
        out["codes"] = np.stack(codes)
    if not np.all(np.isfinite(lat)):
        raise ValueError(f"encoder {cfg.encoder} returned non-finite latents for rows {rows[0]['key']}...")
    return out


def encode_clips(enc: Any, cfg: LatentsConfig, rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Every clip row of the index in one go, through the encoder's `embed_dataset` (which reuses
    the prepared-input caches its training filled: flow and frozen features are not recomputed)."""
    from envs import protocol
    from envs.atomic_world.dataset import load_clip

    if callable(getattr(enc, "codes", None)):  # discrete codes come from encode/codes on the clips
        return encode_rows(enc, rows, cfg, {})
    index, lat = enc.embed_dataset(cfg.data, split=cfg.split or None, views=tuple(cfg.views) or None,
                                   batch_size=cfg.batch)
    if [str(p) for p in index["path"]] != [r["key"] for r in rows]:
        raise RuntimeError(f"{cfg.encoder}.embed_dataset returned clips in another order than the index")
    frames = [load_clip(Path(cfg.data) / r["key"])[0] for r in rows]
    if cfg.frame_size:
        frames = [protocol.resize_image(f, cfg.frame_size) for f in frames]
    lat = np.asarray(lat, np.float32)
    if not np.all(np.isfinite(lat)):
        raise ValueError(f"encoder {cfg.encoder} returned non-finite latents on {cfg.data}")
    return {"latents": lat, "frames": np.stack(frames), "captions": np.array([r["caption"] for r in rows]),
            "source": np.array(["clip"] * len(rows))}


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write)


def run(cfg: LatentsConfig) -> Path:
    """Label every row (cached, resumable); returns the output folder."""
    from tqdm import tqdm

    from configs.threads import apply_threads
    from encoders import build_encoder

    cfg.validate()
    apply_threads(cfg.threads)
    enc = build_encoder(cfg.encoder, **cfg.encoder_args).freeze()
    ehash = encoder_hash(enc)
    crows = clip_rows(cfg) if cfg.data else []
    drows = demo_rows(cfg) if cfg.demos else []
    rows = crows + drows
    opts = {k: getattr(cfg, k) for k in ("data", "split", "views", "window", "stride", "demo_size", "frame_size")}
    job = hashlib.sha256(json.dumps([ehash, opts, [r["key"] for r in rows]], default=str).encode()).hexdigest()[:16]
    out = Path(cfg.out)
    man = out / LATENTS_MANIFEST
    if man.is_file() and (out / LATENTS_ARRAYS).is_file():
        try:
            old = json.loads(man.read_text())
        except json.JSONDecodeError:
            old = {}
        if old.get("job") == job:
            print(f"latents: cached ({old['n']} rows, encoder {old['encoder_id']} {ehash}) -> {out}")
            return out
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    cdir = out / "chunks" / job
    parts = []
    cache: dict[str, Any] = {}  # the episodes of the demo file being encoded
    t0 = time.perf_counter()
    if crows:  # one resumable unit: embed_dataset batches and caches internally
        p = cdir / "clips.npz"
        if not p.is_file():
            print(f"stage 1: {len(crows)} clips of {cfg.data} through {cfg.encoder}", flush=True)
            _save_npz(p, encode_clips(enc, cfg, crows))
        parts.append(p)
    bar = tqdm(total=len(drows), desc="stage 1 demo windows", unit="window", disable=not (cfg.progress and drows))
    try:
        for c, s in enumerate(range(0, len(drows), cfg.chunk)):
            p = cdir / f"part_{c:05d}.npz"
            if not p.is_file():  # resume: finished chunks are kept
                _save_npz(p, encode_rows(enc, drows[s: s + cfg.chunk], cfg, cache))
            parts.append(p)
            bar.update(min(cfg.chunk, len(drows) - s))
    finally:
        bar.close()
    arrays: dict[str, list[np.ndarray]] = {}
    for p in parts:
        with np.load(p) as z:
            for k in z.files:
                arrays.setdefault(k, []).append(z[k])
    full = {k: np.concatenate(v) for k, v in arrays.items()}
    lat = full["latents"]
    meta = {
        "format_version": FORMAT_VERSION,
        "encoder_id": str(cfg.encoder), "encoder": enc.registry_name, "encoder_hash": ehash,
        "encoder_config": enc.config_dict(), "dim": int(lat.shape[1]), "n": int(len(lat)),
        "mean": lat.mean(0).tolist(), "std": (lat.std(0) + 1e-6).tolist(),
        "codebook_size": int(getattr(enc, "codebook_size", 0)) if "codes" in full else 0,
        "sources": {s: int((full["source"] == s).sum()) for s in ("clip", "demo")},
        "job": job, "options": opts, "wall_s": round(time.perf_counter() - t0, 2),
    }
    _save_npz(out / LATENTS_ARRAYS, full)
    atomic_write_json(man, meta)  # last: marks the folder complete
    shutil.rmtree(out / "chunks", ignore_errors=True)
    print(f"latents: {meta['n']} rows x {meta['dim']} dims from {cfg.encoder} ({ehash}) in {meta['wall_s']}s -> {out}")
    return out


FLAGS = {
    "--encoder": ("encoder", "encoder registry name or exported encoder directory"),
    "--data": ("data", "clip index folder"),
    "--demos": ("demos", "robot demo hdf5 file(s), folder or LeRobot folder (labelled in windows)"),
    "--out": ("out", "output folder"),
}


def main(argv: list[str] | None = None) -> int:
    cfg = parse_cli(LatentsConfig, argv, description=__doc__, flags=FLAGS, prog="vla/latents.py")
    run(cfg)
    return 0


if __name__ == "__main__":
    from configs.cli import run_cli

    sys.exit(run_cli(main))  # bad input: one line `error: ...`, exit status 2
