"""One probe experiment end to end: tokens -> train -> evaluate per order -> results.json + results.md.

    from encoders.probes import ProbeConfig, run_probe
    result = run_probe(ProbeConfig(probe="step", backbone="pixels", data="/tmp/aw", frames=8))
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from configs.loader import save_config, to_dict
from configs.runs import atomic_write_json, atomic_write_text, seed_everything
from configs.threads import apply_threads
from encoders.probes.data import backbone_tokens, channel_stats, encoder_tokens, label_ids
from encoders.probes.train import (
    ProbeConfig,
    backbone_order_fn,
    evaluate_orders,
    markdown_report,
    out_dir,
    train_probe,
)


def load_inputs(cfg: ProbeConfig, backbone=None):
    """`(x_train, y_train, eval_fn(order), y_eval, classes, pairs, meta)` for `cfg`.

    `backbone` may be passed in to reuse one instance across experiments.
    """
    from envs.atomic_world.dataset import read_index, read_meta

    meta = read_meta(cfg.data)
    if cfg.label not in meta["vocab"]:
        raise ValueError(f"label: {cfg.label!r} is not a vocabulary of {cfg.data}/meta.json "
                         f"({sorted(meta['vocab'])})")
    views = tuple(cfg.views) or None
    clip_frames = int(meta.get("frames", 0)) or None
    if clip_frames is not None and cfg.frames > clip_frames:
        raise ValueError(f"frames: asked for {cfg.frames} frames but the clips of {cfg.data} have only "
                         f"{clip_frames}; use frames <= {clip_frames}")
    if cfg.encoder:
        from encoders import build_encoder

        enc = build_encoder(cfg.encoder)
        if not callable(getattr(enc, "tokens", None)):
            raise ValueError(f"encoder: {cfg.encoder!r} ({type(enc).__name__}) has no tokens(video) -> (B, N, D); "
                             "probes need token outputs")
        idx_tr = read_index(cfg.data, cfg.train_split, views)
        idx_ev = read_index(cfg.data, cfg.eval_split, views)
        x_tr = encoder_tokens(enc, cfg.data, idx_tr, cfg.frames, "correct", cfg.seed)

        def eval_fn(order: str) -> torch.Tensor:
            return encoder_tokens(enc, cfg.data, idx_ev, cfg.frames, order, cfg.seed + 1)
    else:
        from encoders import build_backbone

        bb = backbone or build_backbone(cfg.backbone, image_size=cfg.image_size or None)
        cache = cfg.cache_dir or None
        tr, idx_tr = backbone_tokens(bb, cfg.data, cfg.train_split, cfg.frames, views, cache, cfg.token_grid)
        ev, idx_ev = backbone_tokens(bb, cfg.data, cfg.eval_split, cfg.frames, views, cache, cfg.token_grid)
        x_tr = torch.from_numpy(tr)
        eval_fn = backbone_order_fn(torch.from_numpy(ev), cfg.seed + 1)
    if cfg.standardize:  # one z-scoring for every probe: train statistics, applied to every eval order
        mean, std = channel_stats(x_tr)
        x_tr = (x_tr.float() - mean) / std
        raw_fn = eval_fn

        def eval_fn(order: str) -> torch.Tensor:
            return (raw_fn(order).float() - mean) / std
    y_tr, classes = label_ids(idx_tr, meta, cfg.label)
    y_ev, _ = label_ids(idx_ev, meta, cfg.label)
    pairs = [list(p) for p in meta.get("symmetric_pairs", [])] if cfg.label == "action" else []
    return x_tr, torch.from_numpy(y_tr), eval_fn, y_ev, classes, pairs, meta


def run_probe(cfg: ProbeConfig, log=print, backbone=None, write: bool = True) -> dict:
    """Train + evaluate; writes `config.yaml`, `results.json`, `results.md` under the output folder."""
    cfg.validate()
    threads = apply_threads(cfg.threads)
    seed_everything(cfg.seed)
    t0 = time.perf_counter()
    x_tr, y_tr, eval_fn, y_ev, classes, pairs, _ = load_inputs(cfg, backbone)
    t_feat = time.perf_counter() - t0
    log(f"probe {cfg.probe}: train {tuple(x_tr.shape)}, eval {len(y_ev)} clips, {len(classes)} classes "
        f"({t_feat:.1f}s inputs, {threads} thread(s))")
    model, history = train_probe(cfg, x_tr, y_tr, len(classes), log=log)
    t_train = time.perf_counter() - t0 - t_feat
    orders = evaluate_orders(cfg, model, eval_fn, y_ev, classes, pairs)
    for o, r in orders.items():
        log(f"  {cfg.probe} [{o}] acc {r['accuracy']:.3f}  symmetric {r['symmetric']['accuracy']}  "
            f"to-partner {r['symmetric']['to_partner']}")
    result = {
        "probe": cfg.probe,
        "source": cfg.encoder or cfg.backbone,
        "n_params": int(model.n_params()),
        "n_train": int(len(y_tr)),
        "n_eval": int(len(y_ev)),
        "classes": classes,
        "symmetric_pairs": pairs,
        "chance": float(np.bincount(y_ev, minlength=len(classes)).max() / max(1, len(y_ev))),
        "orders": orders,
        "history": history,
        "seconds": {"inputs": round(t_feat, 1), "train": round(t_train, 1),
                    "total": round(time.perf_counter() - t0, 1)},
        "threads": threads,
        "config": to_dict(cfg),
    }
    if write:
        d = out_dir(cfg)
        d.mkdir(parents=True, exist_ok=True)
        save_config(cfg, Path(d) / "config.yaml")
        atomic_write_json(Path(d) / "results.json", result)
        atomic_write_text(Path(d) / "results.md", markdown_report(cfg, result))
        result["out"] = str(d)
        log(f"wrote {d}/results.json, results.md, config.yaml")
    return result
