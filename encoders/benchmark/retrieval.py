"""Video->video retrieval metrics (InvAct protocol, Sec. 4.3 / Table 1 / Fig. 14), pure numpy.

Given embeddings `(M, D)` and per-clip labels, every query ranks a gallery by cosine similarity.

Pairs (query view -> gallery view): g2g (ego->ego), x2x (exo->exo), g2x (ego->exo), x2g (exo->ego).
Settings, i.e. what the gallery of one query excludes:
  - cross_scene  (g2g, x2x): every clip from the query's scene (so also the query and its twins)
  - cross_view   (g2x, x2g): the query's time-synchronised twins (same take and clip, other view)
  - all_scenes   (all four pairs): only the query itself and its twins
  - cross_subject (h2r_g2g, h2r_x2x, r2h_g2g, r2h_x2x): human queries against the robot clips only
    (h2r) and robot queries against the human clips (r2h), same camera kind (ego->ego, exo->exo);
    the gallery also excludes every clip of the query's own take (so never the query or its twins),
    scenes may be shared. "h2r" / "r2h" are the means of their two camera pairs.
A query hits at k if any of its k nearest gallery items has the query's verb; hit@k is reported in
percent over the queries whose gallery is non-empty. "avg" is the mean over the setting's pairs.

Same-scene fraction@k: share of the top-k (all_scenes setting) that come from the query's scene,
in [0, 1], averaged over queries then over the four pairs.

Chance levels (`chance@k`) are what a random ranking of the same galleries scores: for a query whose
allowed gallery holds G items of which P share its verb, P(hit@k) = 1 - C(G-P, k) / C(G, k); for the
same-scene fraction, the share of the allowed gallery from the query's scene. They depend on the data
only, so a table can print them next to every encoder's figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

PAIRS = {"g2g": (True, True), "x2x": (False, False), "g2x": (True, False), "x2g": (False, True)}
# cross-subject pairs: (query subject, gallery subject, camera pair)
SUBJECT_PAIRS = {"h2r_g2g": ("human", "robot", "g2g"), "h2r_x2x": ("human", "robot", "x2x"),
                 "r2h_g2g": ("robot", "human", "g2g"), "r2h_x2x": ("robot", "human", "x2x")}
SUBJECT_GROUPS = {"h2r": ("h2r_g2g", "h2r_x2x"), "r2h": ("r2h_g2g", "r2h_x2x")}
SETTINGS = {"cross_scene": ("g2g", "x2x"), "cross_view": ("g2x", "x2g"), "all_scenes": ("g2g", "x2x", "g2x", "x2g"),
            "cross_subject": tuple(SUBJECT_PAIRS)}


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def ranked_gallery(
    q: np.ndarray, g: np.ndarray, exclude: np.ndarray, kmax: int, chunk: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Top-`kmax` gallery indices per query by cosine similarity, ignoring `exclude (Q, G)` True cells.

    Returns `order (Q, k)` and `valid (Q, k)`; valid is False where fewer than k items were allowed.
    Ties are broken by gallery position, so results are deterministic. Queries are processed in
    chunks so memory stays O(chunk x G) for large galleries.
    """
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise ValueError(f"embeddings must be (Q, D) and (G, D) with equal D, got {q.shape} and {g.shape}")
    if exclude.shape != (len(q), len(g)):
        raise ValueError(f"exclude mask must be {(len(q), len(g))}, got {exclude.shape}")
    qn, gn = l2_normalize(q), l2_normalize(g)
    k = min(kmax, len(g))
    order = np.zeros((len(q), k), dtype=np.int64)
    valid = np.zeros((len(q), k), dtype=bool)
    for s in range(0, len(q), chunk):
        sim = np.where(exclude[s : s + chunk], -np.inf, qn[s : s + chunk] @ gn.T)
        if k < sim.shape[1]:  # partial selection first: O(G) per query instead of a full sort
            cand = np.sort(np.argpartition(-sim, k - 1, axis=1)[:, :k], axis=1)
        else:
            cand = np.broadcast_to(np.arange(sim.shape[1]), sim.shape)
        csim = np.take_along_axis(sim, cand, axis=1)
        # stable sort on -similarity of candidates already in gallery order -> ties keep gallery order
        o = np.argsort(-csim, axis=1, kind="stable")
        order[s : s + chunk] = np.take_along_axis(cand, o, axis=1)
        valid[s : s + chunk] = np.isfinite(np.take_along_axis(csim, o, axis=1))
    return order, valid


def hit_rates(
    order: np.ndarray, valid: np.ndarray, q_labels: np.ndarray, g_labels: np.ndarray, ks: Sequence[int]
) -> tuple[dict[str, float], int]:
    """hit@k in percent over queries with at least one valid gallery item; also returns that count."""
    has = valid[:, 0] if valid.shape[1] else np.zeros(len(order), bool)
    match = (g_labels[order] == q_labels[:, None]) & valid
    out = {}
    for k in ks:
        hits = match[:, :k].any(1)[has]
        out[f"hit@{k}"] = float(100.0 * hits.mean()) if len(hits) else float("nan")
    return out, int(has.sum())


def chance_hit_rates(exclude: np.ndarray, q_labels: np.ndarray, g_labels: np.ndarray,
                     ks: Sequence[int]) -> dict[str, float]:
    """Expected hit@k in percent under a uniformly random ranking of each query's allowed gallery.

    P(no positive in k draws without replacement) = prod_{i<k} (G - P - i) / (G - i)."""
    allowed = ~exclude
    g = allowed.sum(1).astype(float)
    pos = (allowed & (g_labels[None, :] == q_labels[:, None])).sum(1).astype(float)
    has = g > 0
    out = {}
    for k in ks:
        miss = np.ones(len(g))
        for i in range(k):
            miss *= np.clip((g - pos - i) / np.maximum(g - i, 1.0), 0.0, 1.0)
        out[f"chance@{k}"] = float(100.0 * (1.0 - miss[has]).mean()) if has.any() else float("nan")
    return out


def same_scene_curve(order: np.ndarray, valid: np.ndarray, q_scene: np.ndarray, g_scene: np.ndarray) -> np.ndarray:
    """`(K,)`: mean over queries of the share of valid top-k items from the query's scene, k = 1..K."""
    same = ((g_scene[order] == q_scene[:, None]) & valid).cumsum(1)
    n = valid.cumsum(1)
    has = valid[:, 0] if valid.shape[1] else np.zeros(len(order), bool)
    frac = np.where(n > 0, same / np.maximum(n, 1), np.nan)[has]
    return np.nanmean(frac, axis=0) if len(frac) else np.full(order.shape[1], np.nan)


def setting_gallery(setting: str, pair: str, ego: np.ndarray, scene: np.ndarray, twin: np.ndarray,
                    subject: np.ndarray, take: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Queries, gallery and exclusion mask of one setting/pair: `(qi (Q,), gi (G,), exclude (Q, G))`.

    Arrays hold one label per item; `subject` compares against "human"/"robot" (cross_subject only).
    """
    if setting == "cross_subject":
        q_subj, g_subj, views = SUBJECT_PAIRS[pair]
        qv, gv = PAIRS[views]
        qi = np.flatnonzero((ego == qv) & (subject == q_subj))
        gi = np.flatnonzero((ego == gv) & (subject == g_subj))
        excl = take[qi][:, None] == take[gi][None, :]  # the query's own take is never its gallery
    else:
        qv, gv = PAIRS[pair]
        qi, gi = np.flatnonzero(ego == qv), np.flatnonzero(ego == gv)
        if setting == "cross_scene":
            excl = scene[qi][:, None] == scene[gi][None, :]
        else:  # twins include the query itself (same moment, same view)
            excl = twin[qi][:, None] == twin[gi][None, :]
    excl |= qi[:, None] == gi[None, :]
    return qi, gi, excl


def evaluate_retrieval(
    emb: np.ndarray,
    verbs: Sequence[Any],
    scenes: Sequence[Any],
    is_ego: Sequence[bool],
    twins: Sequence[Any],
    ks: Sequence[int] = (1, 5, 10),
    curve_k: int = 50,
    subjects: Sequence[Any] | None = None,
    takes: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """All settings/pairs for one set of items (clips or keysteps).

    emb `(M, D)`; verbs/scenes/twins: one label per item (twins: items sharing a value are
    time-synchronised views of the same moment); is_ego: ego vs exo view; subjects ("human" /
    "robot") and takes (episode ids) feed the cross_subject setting, which is empty without them.
    Returns `{setting: {pair|"avg": {"hit@k": %, "n_queries": n}}, "same_scene_fraction": {...}}`.
    """
    emb = np.asarray(emb, dtype=np.float32)
    m = len(emb)
    subjects = [""] * m if subjects is None else subjects
    takes = twins if takes is None else takes
    for name, arr in (("verbs", verbs), ("scenes", scenes), ("is_ego", is_ego), ("twins", twins),
                      ("subjects", subjects), ("takes", takes)):
        if len(arr) != m:
            raise ValueError(f"{name} has {len(arr)} entries but there are {m} embeddings")
    if emb.ndim != 2:
        raise ValueError(f"embeddings must be (M, D), got shape {emb.shape}")
    if not np.isfinite(emb).all():
        raise ValueError("embeddings contain NaN or inf")
    verb = pd.factorize(np.asarray(verbs, dtype=object))[0]
    scene = pd.factorize(np.asarray(scenes, dtype=object))[0]
    twin = pd.factorize(np.asarray(twins, dtype=object))[0]
    take = pd.factorize(np.asarray(takes, dtype=object))[0]
    subject = np.asarray([str(v) for v in subjects], dtype=object)
    ego = np.asarray(is_ego, dtype=bool)
    kmax = max(max(ks), curve_k)
    ks = sorted(set(int(k) for k in ks))

    results: dict[str, Any] = {}
    curves, scene_chance = {}, {}
    for setting, pairs in SETTINGS.items():
        res: dict[str, Any] = {}
        for pair in pairs:
            qi, gi, excl = setting_gallery(setting, pair, ego, scene, twin, subject, take)
            if len(qi) == 0 or len(gi) == 0:
                res[pair] = {**{f"{m}@{k}": float("nan") for k in ks for m in ("hit", "chance")}, "n_queries": 0}
                continue
            order, valid = ranked_gallery(emb[qi], emb[gi], excl, kmax)
            hits, n = hit_rates(order, valid, verb[qi], verb[gi], ks)
            res[pair] = {**hits, **chance_hit_rates(excl, verb[qi], verb[gi], ks), "n_queries": n}
            if setting == "all_scenes":
                curves[pair] = same_scene_curve(order, valid, scene[qi], scene[gi])
                allowed = ~excl
                same = (allowed & (scene[gi][None, :] == scene[qi][:, None])).sum(1) / np.maximum(allowed.sum(1), 1)
                scene_chance[pair] = float(same[allowed.any(1)].mean()) if allowed.any() else float("nan")
        groups = {**(SUBJECT_GROUPS if setting == "cross_subject" else {}), "avg": pairs}
        for name, members in groups.items():
            res[name] = {f"{m}@{k}": _nanmean([res[p][f"{m}@{k}"] for p in members]) for k in ks for m in ("hit", "chance")}
            res[name]["n_queries"] = int(sum(res[p]["n_queries"] for p in members))
        results[setting] = res

    ssf: dict[str, Any] = {}
    if curves:
        klen = min(len(c) for c in curves.values())
        curve = np.nanmean(np.stack([c[:klen] for c in curves.values()]), axis=0) if klen else np.zeros(0)
        # a gallery smaller than k: top-k is the whole gallery, so the last value applies
        for k in ks:
            ssf[f"@{k}"] = float(curve[min(k, klen) - 1]) if klen else float("nan")
        ssf["curve"] = [float(v) for v in curve]
        ssf["pairs"] = {p: {f"@{k}": float(c[min(k, len(c)) - 1]) if len(c) else float("nan") for k in ks}
                        for p, c in curves.items()}
        ssf["chance"] = _nanmean(list(scene_chance.values()))
    results["same_scene_fraction"] = ssf
    return results


def _nanmean(vals: list[float]) -> float:
    a = np.asarray(vals, dtype=float)
    return float(np.nanmean(a)) if np.isfinite(a).any() else float("nan")


def keystep_embeddings(index: pd.DataFrame, emb: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """Keystep instances = clips of one (take, keystep_id >= 0, view); embedding = mean of its clips' unit vectors.

    Returns a frame with columns take_id, keystep_id, view, scene, subject, keystep and embeddings `(K, D)`.
    """
    if len(index) != len(emb):
        raise ValueError(f"index has {len(index)} rows but there are {len(emb)} embeddings")
    mask = (index["keystep_id"].to_numpy() >= 0)
    sub = index[mask].reset_index(drop=True)
    e = l2_normalize(np.asarray(emb)[mask])
    cols = ["take_id", "keystep_id", "view"]
    if sub.empty:
        return pd.DataFrame(columns=[*cols, "scene", "subject", "keystep"]), np.zeros((0, emb.shape[1]), np.float32)
    groups = sub.groupby(cols, sort=True, observed=True).indices
    rows, out = [], []
    for key, idx in groups.items():
        first = sub.iloc[idx[0]]
        rows.append({"take_id": key[0], "keystep_id": key[1], "view": key[2], "scene": first["scene"],
                     "subject": first.get("subject", ""), "keystep": first["keystep"], "n_clips": len(idx)})
        out.append(e[idx].mean(0))
    return pd.DataFrame(rows), np.stack(out).astype(np.float32)


def evaluate_index(index: pd.DataFrame, emb: np.ndarray, is_ego_fn, ks: Sequence[int] = (1, 5, 10),
                   curve_k: int = 50) -> dict[str, Any]:
    """Atomic + keystep retrieval for a clip index (columns as envs.atomic_world.dataset) and its embeddings."""
    ego = index["view"].map(is_ego_fn).to_numpy(bool)
    twins = (index["take_id"].astype(str) + "/" + index["clip_id"].astype(str)).to_numpy()
    atomic = evaluate_retrieval(emb, index["action"].to_numpy(), index["scene"].to_numpy(), ego, twins, ks, curve_k,
                                _subjects(index), index["take_id"].to_numpy())
    kidx, kemb = keystep_embeddings(index, emb)
    if len(kidx):
        kego = kidx["view"].map(is_ego_fn).to_numpy(bool)
        ktw = (kidx["take_id"].astype(str) + "/" + kidx["keystep_id"].astype(str)).to_numpy()
        keystep = evaluate_retrieval(kemb, kidx["keystep"].to_numpy(), kidx["scene"].to_numpy(), kego, ktw, ks, curve_k,
                                     _subjects(kidx), kidx["take_id"].to_numpy())
    else:
        keystep = {}
    return {"atomic": atomic, "keystep": keystep, "n_keysteps": len(kidx)}


def _subjects(frame: pd.DataFrame) -> np.ndarray:
    """The subject column (missing: no subject, so no cross-subject queries)."""
    return frame["subject"].fillna("").astype(str).to_numpy() if "subject" in frame else np.full(len(frame), "")
