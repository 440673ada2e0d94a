"""InstrAct-style benchmark (instraction.txt Sec. 5) on the atomic world's takes.

- Semantic MCQ: a video vs its caption + up to 9 verb-altered captions: R@1, R@5, mean and median rank.
- Logic MCQ: a keystep video vs its caption + 2-3 order-swapped captions: accuracy.
- Pool retrieval (InstrAct-Dynamics): videos pooled by their main object; text-to-video and
  video-to-text R@1/5/10 inside each pool, weighted by the pool's clip count. Captions repeat
  across views and scenes, so a hit is any candidate whose caption text equals the query's.

Scores are cosine similarities between `embed_video` and `embed_text` outputs; the benchmark is
model-agnostic.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
import torch.nn.functional as F

from encoders.instraction.negatives import order_swapped, render_caption, verb_altered
from encoders.instraction.takes import TakeItem


def rank_of_first(scores: np.ndarray) -> int:
    """1-based rank of candidate 0 (the positive) among `scores`; ties count against it."""
    return int(1 + (scores[1:] >= scores[0]).sum())


def mcq_ranks(video: torch.Tensor, candidates: list[torch.Tensor]) -> np.ndarray:
    """`video (Q, D)`, candidates[q] `(n_q, D)` with the positive first -> ranks `(Q,)`."""
    v = F.normalize(video.float(), dim=-1)
    return np.array([rank_of_first((F.normalize(c.float(), dim=-1) @ v[q]).numpy())
                     for q, c in enumerate(candidates)])


def recall_summary(ranks: np.ndarray, ks: tuple[int, ...] = (1, 5)) -> dict:
    out = {f"R@{k}": float((ranks <= k).mean()) for k in ks}
    out.update({"mean_rank": float(ranks.mean()), "median_rank": float(np.median(ranks)), "n": int(len(ranks))})
    return out


def pool_retrieval(video: torch.Tensor, captions: list[str], text: dict[str, torch.Tensor],
                   pools: list[str], ks: tuple[int, ...] = (1, 5, 10)) -> dict:
    """T2V and V2T recall@k inside pools, weighted by the number of videos in each pool."""
    v = F.normalize(video.float(), dim=-1)
    members = defaultdict(list)
    for i, p in enumerate(pools):
        members[p].append(i)
    hits = {d: {k: 0.0 for k in ks} for d in ("t2v", "v2t")}
    total = 0
    for idx in members.values():
        caps = sorted({captions[i] for i in idx})
        t = F.normalize(torch.stack([text[c] for c in caps]).float(), dim=-1)
        sim = v[idx] @ t.T  # (n_videos, n_captions)
        truth = np.array([[captions[i] == c for c in caps] for i in idx])
        v2t = _best_rank(sim.numpy(), truth)
        t2v = _best_rank(sim.T.numpy(), truth.T)
        for k in ks:
            hits["v2t"][k] += float((v2t <= k).mean()) * len(idx)
            hits["t2v"][k] += float((t2v <= k).mean()) * len(idx)
        total += len(idx)
    return {d: {f"R@{k}": hits[d][k] / max(1, total) for k in ks} for d in hits} | {
        "pools": len(members), "n": total}


def _best_rank(sim: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per row, the 1-based rank of its best-scored positive (ties count against it)."""
    out = []
    for s, t in zip(sim, truth):
        best = s[t].max()
        out.append(int((s > best).sum() + (s[~t] == best).sum() + 1))
    return np.array(out)


def run_benchmark(items: list[TakeItem], video_emb: torch.Tensor, embed_text, actions: list[str],
                  seed: int = 0) -> dict:
    """All three tasks for take items with video embeddings `(len(items), D)`.

    `embed_text(list[str]) -> (n, D)`; `actions` is the verb vocabulary for verb-altered negatives.
    """
    captions = [render_caption(it.subject, it.steps) for it in items]
    sem = [[captions[q]] + verb_altered(it.subject, it.steps, actions, 9, seed + q) for q, it in enumerate(items)]
    multi = [q for q, it in enumerate(items) if len(it.steps) > 1]
    logic = {q: [captions[q]] + order_swapped(items[q].subject, items[q].steps, 3, seed + q) for q in multi}
    logic = {q: c for q, c in logic.items() if len(c) > 1}
    texts = sorted({t for c in sem for t in c} | {t for c in logic.values() for t in c})
    emb = embed_text(texts)
    lookup = {t: emb[i] for i, t in enumerate(texts)}
    result = {"semantic": recall_summary(mcq_ranks(video_emb, [torch.stack([lookup[t] for t in c]) for c in sem])),
              "n_items": len(items)}
    if logic:
        qs = sorted(logic)
        r = mcq_ranks(video_emb[qs], [torch.stack([lookup[t] for t in logic[q]]) for q in qs])
        result["logic"] = {"accuracy": float((r == 1).mean()), "n": len(qs),
                           "chance": float(np.mean([1 / len(logic[q]) for q in qs]))}
    result["dynamics"] = pool_retrieval(video_emb, captions, lookup, [it.main_object for it in items])
    return result
