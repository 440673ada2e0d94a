"""Throughput of the encoder stack (backbone features and flow, cache miss and hit; encode() of each
baseline): the benchmark behind scripts/bench_encoders.py.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from pathlib import Path

from configs.loader import save_config
from configs.runs import atomic_write_json, seed_everything
from configs.threads import apply_threads


@dataclasses.dataclass
class BenchConfig:
    data: str = ""  # dataset folder; empty: a synthetic toy dataset in a temp folder
    split: str = "val"
    takes_per_scene: int = 2  # toy dataset size: 4 scenes x this x 5 verbs x 2 views clips
    frames: int = 8
    size: int = 64
    backbone: str = "efficientnet_lite0"
    image_size: int = 0  # 0: backbone default
    flow_method: str = "dis"
    flow_size: int = 64
    batch_size: int = 8  # clips per call
    encoders: list[str] = dataclasses.field(default_factory=lambda: ["backbone_mean", "flow_mean", "random"])
    threads: int = 0  # torch threads; 0: the cores free to this process (configs/threads.py)
    seed: int = 0
    out: str = ""  # optional JSON path (resolved config is written next to it)


def _rate(n: int, seconds: float) -> float:
    return round(n / max(seconds, 1e-9), 2)


def bench_encoders(cfg: BenchConfig) -> dict:
    """What scripts/bench_encoders.py measures, for `cfg` (see its docstring)."""
    import torch

    from encoders.backbones import build_backbone
    from encoders.base import build_encoder
    from encoders.features import backbone_features, flow_maps, iter_clip_batches
    from envs.atomic_world.dataset import read_index
    from envs.atomic_world.toy import make_toy_dataset

    apply_threads(cfg.threads)
    seed_everything(cfg.seed)
    if cfg.out:
        save_config(cfg, Path(cfg.out).with_name(Path(cfg.out).stem + ".config.yaml"))
    with tempfile.TemporaryDirectory(prefix="bench_encoders_") as tmp:
        data = Path(cfg.data) if cfg.data else make_toy_dataset(
            Path(tmp) / "toy", scenes=4, takes_per_scene=cfg.takes_per_scene, frames=cfg.frames, size=cfg.size,
            seed=cfg.seed, split=cfg.split)
        cache = Path(tmp) / "cache"  # always cold: the first pass measures computation, the second reuse
        index = read_index(data, cfg.split)
        n = len(index)
        first = next(iter_clip_batches(data, index, 1))[1]
        result: dict = {"clips": n, "clip_shape_TCHW": list(first.shape[1:]), "threads": cfg.threads,
                        "batch_size": cfg.batch_size}

        bb = build_backbone(cfg.backbone, image_size=cfg.image_size or None)
        t = time.perf_counter()
        backbone_features(bb, data, cfg.split, cache_root=cache, batch_size=cfg.batch_size)
        miss = time.perf_counter() - t
        t = time.perf_counter()
        hit = backbone_features(bb, data, cfg.split, cache_root=cache)
        _ = float(hit.arrays["pooled"].sum())  # touch the memmap so the read is measured
        hit_s = time.perf_counter() - t
        result["features"] = {"backbone": cfg.backbone, "image_size": bb.image_size,
                              "clips_per_s": _rate(n, miss), "cached_clips_per_s": _rate(n, hit_s)}

        t = time.perf_counter()
        flow_maps(data, cfg.split, method=cfg.flow_method, size=cfg.flow_size, cache_root=cache)
        miss = time.perf_counter() - t
        t = time.perf_counter()
        hit = flow_maps(data, cfg.split, method=cfg.flow_method, size=cfg.flow_size, cache_root=cache)
        _ = float(hit.arrays["flow"][:, :, :, :, 2].astype("float32").sum())
        hit_s = time.perf_counter() - t
        result["flow"] = {"method": cfg.flow_method, "size": cfg.flow_size, "clips_per_s": _rate(n, miss),
                          "cached_clips_per_s": _rate(n, hit_s)}

        batches = [v for _, v in iter_clip_batches(data, index, cfg.batch_size)]
        result["encode"] = {}
        for name in cfg.encoders:
            enc = build_encoder(name)
            with torch.inference_mode():
                enc.encode(batches[0][:1])  # warm-up (lazy init, allocator)
                t = time.perf_counter()
                for v in batches:
                    enc.encode(v)
                dt = time.perf_counter() - t
            result["encode"][name] = {"clips_per_s": _rate(n, dt), "dim": enc.dim}
    if cfg.out:
        atomic_write_json(cfg.out, result)
    print(json.dumps(result, indent=2))
    return result
