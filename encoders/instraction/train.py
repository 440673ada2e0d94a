"""Train InstrAction on a clip index's takes (frozen per-frame features) and evaluate it.

Evaluation on the held-out split: the InstrAct-style benchmark (benchmark.py) on every take, and
segmentation of every keystep take (clips randomly cropped, see takes.py) from the DTW path of the
action tokens against the take's verb phrases, as mean boundary error in frames, next to the
uniform-split baseline. Training batches hold takes with the same number of steps; each take is
cropped per clip at random and resampled to `frames_per_step * steps` frames.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from encoders.instraction.benchmark import run_benchmark
from encoders.instraction.mam import WordVocab
from encoders.instraction.model import InstrActionConfig, InstrActionModel
from encoders.instraction.negatives import order_swapped, render_caption, verb_altered, verb_phrases
from encoders.instraction.segment import boundary_error, segment, uniform_boundaries
from encoders.instraction.takes import TakeItem, take_items, take_video
from envs.atomic_world.vocab import ACTIONS


@dataclasses.dataclass
class InstrActionRunConfig:
    data: str = "runs/demo/atomic_world"
    backbone: str = "efficientnet_lite0"
    text_encoder: str = "minilm"
    views: list[str] = dataclasses.field(default_factory=list)  # empty: every view
    model: InstrActionConfig = dataclasses.field(default_factory=InstrActionConfig)
    epochs: int = 20
    batch_size: int = 16
    lr: float = 1e-3
    frames_per_step: int = 12  # training (and evaluation) frames per step after resampling
    seed: int = 0
    cache_dir: str = ""


def mask_words(actions: list[str]) -> set[str]:
    """Caption words that carry the verb (templates minus the object slot and function words)."""
    words = set()
    for a in actions:
        words |= {w for w in ACTIONS[a].replace("{o}", "").split() if w not in ("the", "to")}
    return words


class TextBank:
    """Frozen text embeddings of every string needed, computed once: `get(list[str]) -> (n, D_text)`."""

    def __init__(self, encoder, texts: list[str]):
        uniq = sorted(set(texts))
        emb = encoder.encode(uniq)
        self.dim = emb.shape[1]
        self.table = {t: emb[i] for i, t in enumerate(uniq)}
        self.encoder = encoder

    def get(self, texts: list[str]) -> torch.Tensor:
        missing = sorted({t for t in texts if t not in self.table})
        if missing:
            for t, e in zip(missing, self.encoder.encode(missing)):
                self.table[t] = e
        return torch.stack([self.table[t] for t in texts])


def _resample(video: np.ndarray, frames: int) -> np.ndarray:
    return video[np.round(np.linspace(0, len(video) - 1, frames)).astype(int)]


def _batch(items: list[TakeItem], feats: np.ndarray, bank: TextBank, actions: list[str], vocab: WordVocab,
           cfg: InstrActionRunConfig, rng: np.random.Generator, masks: set[str]):
    k = len(items[0].steps)
    vids = [_resample(take_video(feats, it, crop=True, seed=int(rng.integers(1 << 30)))[0], cfg.frames_per_step * k)
            for it in items]
    caps = [render_caption(it.subject, it.steps) for it in items]
    negs = [(verb_altered(it.subject, it.steps, actions, 2, int(rng.integers(1 << 30)))
             + order_swapped(it.subject, it.steps, 1, int(rng.integers(1 << 30)))) for it in items]
    h = min(len(n) for n in negs)
    neg = torch.stack([bank.get(n[:h]) for n in negs]) if h else None
    phr = torch.stack([bank.get(verb_phrases(it.steps)) for it in items])
    n_ph = torch.full((len(items),), k, dtype=torch.long)
    return (torch.from_numpy(np.stack(vids)).float(), bank.get(caps), neg, phr, n_ph, vocab.batch(caps, masks))


def train_instraction(cfg: InstrActionRunConfig, feats_tr: np.ndarray, items: list[TakeItem], bank: TextBank,
                      actions: list[str], log=print) -> tuple[InstrActionModel, list[dict]]:
    # Not configs.training.fit, deliberately: (1) fit resumes and shards by deriving batch `step` from
    # (seed, step, rank, world) alone, but here every batch comes from one sequential generator `rng`
    # (epoch permutations, random crops, sampled negatives), so batch k depends on all earlier draws;
    # (2) an epoch is a variable number of batches grouped by the takes' step count, and batches of one
    # take are skipped (the contrastive losses need two), so steps per epoch are not fixed; (3) it runs
    # in-process without a run folder (probe_results trains five variants in one process), while fit
    # always writes metrics.jsonl and checkpoints/. Re-deriving the batches from (seed, step) would change
    # the data order and so every number in docs/results/probes.md: a change of its own, not a refactor.
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    vocab = WordVocab([render_caption(it.subject, it.steps) for it in items])
    masks = mask_words(actions)
    model = InstrActionModel(cfg.model, feats_tr.shape[-1], bank.dim, len(vocab), max_frames=256)
    model.vocab = vocab
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    groups: dict[int, list[TakeItem]] = {}
    for it in items:
        groups.setdefault(len(it.steps), []).append(it)
    history = []
    for epoch in range(cfg.epochs):
        model.train()
        batches = []
        for g in groups.values():
            order = rng.permutation(len(g))
            batches += [[g[i] for i in order[s : s + cfg.batch_size]] for s in range(0, len(g), cfg.batch_size)]
        sums: dict[str, float] = {}
        t0 = time.perf_counter()
        for bi in rng.permutation(len(batches)):
            b = batches[bi]
            if len(b) < 2:
                continue
            v, cap, neg, phr, n_ph, mam = _batch(b, feats_tr, bank, actions, vocab, cfg, rng, masks)
            out = model.losses(v, cap, neg, phr, n_ph, mam)
            opt.zero_grad(set_to_none=True)
            out["total"].backward()
            opt.step()
            for key, val in out.items():
                sums[key] = sums.get(key, 0.0) + float(val.detach()) / len(batches)
        history.append({"epoch": epoch + 1, **{k: round(v, 4) for k, v in sums.items()},
                        "sec": round(time.perf_counter() - t0, 2)})
        if (epoch + 1) % max(1, cfg.epochs // 4) == 0 or epoch + 1 == cfg.epochs:
            log(f"  instraction epoch {epoch + 1}/{cfg.epochs}: " + ", ".join(f"{k} {v:.3f}" for k, v in sums.items()))
    return model.eval(), history


@torch.no_grad()
def evaluate_instraction(model: InstrActionModel, feats: np.ndarray, items: list[TakeItem], bank: TextBank,
                         actions: list[str], frames_per_step: int, seed: int = 0) -> dict:
    """Benchmark on all takes + segmentation of keystep takes (cropped clips).

    Videos are resampled to `frames_per_step * steps` frames as in training (the temporal embeddings
    only know those positions); token positions are mapped back to native frames for the boundaries.
    """
    vids = [torch.from_numpy(_resample(take_video(feats, it)[0], frames_per_step * len(it.steps))).float()[None]
            for it in items]
    emb = torch.cat([model.embed_video(v) for v in vids])
    res = run_benchmark(items, emb, lambda t: model.embed_text(bank.get(t)), actions, seed)
    errs, rel, base = [], [], []
    for q, it in enumerate(items):
        if len(it.steps) < 2:
            continue
        video, truth = take_video(feats, it, crop=True, seed=seed + 7919 * q)
        t_fix = frames_per_step * len(it.steps)
        s = model.tokens(torch.from_numpy(_resample(video, t_fix)).float()[None])[0]
        pos = model.token_positions(t_fix).double() * (len(video) - 1) / max(1, t_fix - 1)
        phr = model.embed_text(bank.get(verb_phrases(it.steps)))
        errs.append(boundary_error(segment(s, phr, positions=pos), truth))
        rel.append(boundary_error(segment(s, phr, positions=pos, center=True), truth))
        base.append(boundary_error(uniform_boundaries(len(video), len(it.steps)), truth))
    if errs:
        res["segmentation"] = {"n_takes": len(errs), "mean_boundary_error": float(np.mean(errs)),
                               "mean_boundary_error_centered": float(np.mean(rel)),
                               "uniform_baseline": float(np.mean(base)),
                               "mean_take_frames": float(np.mean([len(take_video(feats, it, True, seed + 7919 * q)[0])
                                                                  for q, it in enumerate(items) if len(it.steps) > 1]))}
    return res


def load_split(cfg: InstrActionRunConfig, split: str, backbone=None):
    """Pooled per-frame features `(M, T, C)` of a split (shared cache) and its take items."""
    from encoders import build_backbone
    from encoders.features import backbone_features

    bb = backbone or build_backbone(cfg.backbone)
    res = backbone_features(bb, cfg.data, split=split, views=tuple(cfg.views) or None, tokens=False,
                            cache_root=cfg.cache_dir or None)
    return np.asarray(res.arrays["pooled"]), take_items(res.index)


def run_instraction(cfg: InstrActionRunConfig, log=print, backbone=None, text_encoder=None) -> dict:
    """Train on `train`, evaluate on `val`; returns metrics + history."""
    from encoders import build_text_encoder
    from envs.atomic_world.dataset import read_meta

    actions = list(read_meta(cfg.data)["vocab"]["action"])
    t0 = time.perf_counter()
    f_tr, it_tr = load_split(cfg, "train", backbone)
    f_ev, it_ev = load_split(cfg, "val", backbone)
    enc = text_encoder or build_text_encoder(cfg.text_encoder)
    texts = [p for it in it_tr + it_ev for p in verb_phrases(it.steps) + [render_caption(it.subject, it.steps)]]
    # every training negative in one encoder pass (batches draw from these)
    texts += [t for it in it_tr for t in verb_altered(it.subject, it.steps, actions, 10**6)
              + order_swapped(it.subject, it.steps, 10**6)]
    bank = TextBank(enc, texts)
    log(f"instraction: {len(it_tr)} train / {len(it_ev)} val takes, features {f_tr.shape[1:]}, "
        f"{time.perf_counter() - t0:.0f}s inputs")
    model, history = train_instraction(cfg, f_tr, it_tr, bank, actions, log)
    res = evaluate_instraction(model, f_ev, it_ev, bank, actions, cfg.frames_per_step, cfg.seed)
    res["history"] = history
    res["n_params"] = int(sum(p.numel() for p in model.parameters()))
    res["seconds"] = round(time.perf_counter() - t0, 1)
    return res
