"""A tiny synthetic clip dataset on disk (the format of scripts/make_atomic_videos.py) for tests and benches.

Scene = background colour + texture, verb = motion of a textured square (direction/pattern), so
appearance features retrieve by scene and motion features retrieve by verb. Every take is seen from
an ego view and one or two exo views (mirrored / shifted renders of the same motion).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from configs.runs import atomic_write_json
from envs.atomic_world.dataset import save_clip, write_index

VERBS = {"push": (1, 0), "pull": (-1, 0), "lift": (0, -1), "lower": (0, 1), "wave": (0, 0)}


def _render(rng: np.random.Generator, bg: np.ndarray, obj: np.ndarray, verb: str, t: int, size: int,
            view: str) -> np.ndarray:
    """`(T, size, size, 3) uint8`."""
    dx, dy = VERBS[verb]
    frames = np.empty((t, size, size, 3), np.uint8)
    s = size // 4
    x0, y0 = size // 2 - s // 2 + int(rng.integers(-2, 3)), size // 2 - s // 2 + int(rng.integers(-2, 3))
    step = max(1, size // 32)
    for i in range(t):
        f = bg.copy()
        if verb == "wave":  # back and forth: mean displacement ~0, large spread
            ox, oy = (step * 2 if i % 2 else -step * 2), 0
        else:
            ox, oy = dx * step * i, dy * step * i
        if view == "exo_left":  # mirrored view: horizontal motion flips
            ox = -ox
        x, y = int(np.clip(x0 + ox, 0, size - s)), int(np.clip(y0 + oy, 0, size - s))
        f[y : y + s, x : x + s] = obj[:s, :s]
        frames[i] = f
    return frames


def make_toy_dataset(
    root: str | Path,
    scenes: int = 3,
    takes_per_scene: int = 2,
    frames: int = 6,
    size: int = 32,
    views: tuple[str, ...] = ("ego", "exo_left"),
    seed: int = 0,
    split: str = "val",
) -> Path:
    """Write index.parquet + meta.json + clips; each take holds one clip per verb; clips 0-1 and 2-3 form two keysteps."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    rows = []
    scene_names = [f"scene{i}" for i in range(scenes)]
    verbs = list(VERBS)
    for si, scene in enumerate(scene_names):
        bg = np.broadcast_to(rng.integers(0, 256, 3, dtype=np.uint8), (size, size, 3)).copy()
        bg = np.clip(bg.astype(int) + rng.integers(-20, 21, (size, size, 3)), 0, 255).astype(np.uint8)
        for ti in range(takes_per_scene):
            take = f"take{si}_{ti}"
            for ci, verb in enumerate(verbs):
                obj = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                ks_id = ci // 2 if ci < 4 else -1  # two keystep types per take, the last clip stands alone
                for view in views:
                    clip = _render(np.random.default_rng([seed, si, ti, ci]), bg, obj, verb, frames, size, view)
                    path = f"clips/{take}/{ci:03d}_{view}.npz"
                    save_clip(root / path, clip)
                    rows.append({
                        "take_id": take, "clip_id": ci, "view": view, "split": split, "scene": scene,
                        "subject": "arm", "action": verb, "object": "cube", "caption": f"arm {verb}es the cube",
                        "keystep_id": ks_id, "keystep": ("push_then_pull", "lift_then_lower")[ks_id] if ks_id >= 0 else "",
                        "segment_index": ci, "start_frame": 0, "end_frame": frames, "path": path,
                    })
    write_index(root, rows)
    atomic_write_json(root / "meta.json", {"vocab": {"action": verbs, "subject": ["arm"], "object": ["cube"],
                                                      "scene": scene_names}, "toy": True, "seed": seed})
    return root
