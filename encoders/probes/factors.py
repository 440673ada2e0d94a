"""Linear probes of action / object / subject on frozen frame features, train-scene vs held-out-scene.

The diagnosis of RoboAct-CLIP's held-out-scene gap (issue 23 §2): what a linear read-out of the
frozen EfficientNet features can recover, per feature form and input size, on clips of the
training scenes it was not fitted on vs clips of scenes never seen.

    python encoders/probe.py factors --config configs/probe/factors.yaml

Rows: every clip-view of `data` (train split: a seeded random 1/`test_every` of the takes is the
train-scene test set, the rest are fitted; val split = held-out scenes). Each source `DATA@PX` is a
dataset with the same rows (the same world rendered at another size) and a backbone input size.
Per clip, `frames` uniformly spaced frames go through the backbone once (cached). Feature forms:

    pooled_mean   mean over frames of the pooled vector (what RoboAct-CLIP's A6 variant reads)  C
    pooled_ends   pooled first frame, pooled (last - first)                                     2C
    tokens_mean   mean over frames of the flattened token grid (where things are)               N*C
    tokens_ends   token grid of the first frame, token grid of (last - first)                  2*N*C
    spatial_ends  spatial-softmax keypoints (encoders.baselines) of the first frame and (last - first)  4C

Probes are closed-form ridge classifiers (encoders/probes/ridge.py), the ridge picked by
leave-one-scene-out over the fitted scenes. With `roboact` set, the same probes run on that export's
own branch embeddings (subject / action / object, Eq. 10-12, the concatenation and F_v), and its
auxiliary heads (Eq. 22) are scored as they are.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import torch

from configs.loader import save_config, to_dict
from configs.runs import atomic_write_json, atomic_write_text
from encoders.probes.data import frame_indices
from encoders.probes.factors_report import markdown_report
from encoders.probes.ridge import ALPHAS, accuracy, chance, kernel_probe, zscored_kernel

FEATURES = ("pooled_mean", "pooled_ends", "tokens_mean", "tokens_ends", "spatial_ends")
ROWS_KEY = ("take_id", "clip_id", "view", "split", "scene", "subject", "action", "object")


@dataclasses.dataclass
class FactorProbeConfig:
    """`python encoders/probe.py factors --config configs/probe/factors.yaml`."""

    data: str = "runs/demo/atomic_world"  # the rows and labels
    sources: list[str] = dataclasses.field(default_factory=lambda: ["runs/demo/atomic_world@96"])  # DATA@INPUT_PX
    backbone: str = "efficientnet_lite0"
    frames: int = 4  # frames per clip through the backbone (uniformly spaced, first and last included)
    labels: list[str] = dataclasses.field(default_factory=lambda: ["action", "object", "subject"])
    features: list[str] = dataclasses.field(default_factory=lambda: list(FEATURES))
    test_every: int = 3  # a random 1/test_every of the train-split takes: the train-scene test set
    train_take_stride: int = 1  # keep a random 1/k of the train-split takes (1 = all; a CPU concession)
    scene_counts: list[int] = dataclasses.field(default_factory=lambda: [3, 6, 9])  # fitted-scene curve
    scene_draws: int = 3  # random scene subsets per count below the full set
    curve_features: list[str] = dataclasses.field(default_factory=lambda: ["pooled_mean", "tokens_ends"])
    alphas: list[float] = dataclasses.field(default_factory=lambda: list(ALPHAS))
    roboact: str = ""  # a RoboAct-CLIP export folder whose embeddings are probed too; empty: none
    seed: int = 0
    threads: int = 1
    batch_size: int = 16  # clips per backbone batch
    out: str = "runs/probe/roboact_diagnosis"
    cache_dir: str = ""  # empty: $ATOMVLA_CACHE or .cache/atomvla

    def validate(self) -> None:
        bad = [f for f in self.features + self.curve_features if f not in FEATURES]
        if bad:
            raise ValueError(f"features: {bad} not in {list(FEATURES)}")
        for s in self.sources:
            d, sep, px = s.rpartition("@")
            if not sep or not d or not px.isdigit():
                raise ValueError(f"sources: {s!r} is not DATA@INPUT_PX (e.g. runs/demo/atomic_world@96)")
        if self.frames < 2:
            raise ValueError(f"frames: need >= 2 (first and last), got {self.frames}")
        if self.test_every < 2 or self.train_take_stride < 1:
            raise ValueError("test_every must be >= 2 and train_take_stride >= 1")
        if not self.labels or not self.alphas:
            raise ValueError("labels and alphas must be non-empty")


def select_rows(index, test_every: int, take_stride: int, seed: int = 0) -> tuple[object, dict[str, np.ndarray]]:
    """The probed rows of a clip index and their roles: `fit`, `train_scene_test`, `heldout_scene`.

    Train-split takes are drawn at random (seeded), never by `take_id` modulo: the generator cycles the
    verbs by take id (`plan_take`), so a modulo would hold out a few verbs, not a few takes.
    """
    train_takes = np.array(sorted(set(index.loc[index["split"] == "train", "take_id"])))
    perm = np.random.default_rng([seed, 23]).permutation(train_takes)
    kept = perm[: -(-len(perm) // take_stride)]
    test_takes = kept[: len(kept) // test_every]
    keep = (index["split"] != "train") | index["take_id"].isin(kept)
    rows = index[keep].sort_values(["split", "take_id", "clip_id", "view"]).reset_index(drop=True)
    tr = (rows["split"] == "train").to_numpy()
    test = tr & rows["take_id"].isin(test_takes).to_numpy()
    roles = {"fit": np.flatnonzero(tr & ~test), "train_scene_test": np.flatnonzero(test),
             "heldout_scene": np.flatnonzero(~tr)}
    if any(len(v) == 0 for v in roles.values()):
        raise ValueError(f"rows: a probe set is empty ({ {k: len(v) for k, v in roles.items()} }); "
                         "need enough train-split takes for test_every and a val split")
    return rows, roles


def thin_fit(rows, roles: dict[str, np.ndarray], take_stride: int = 1, scenes: int = 0, seed: int = 0
             ) -> dict[str, np.ndarray]:
    """`roles` with only the `fit` rows thinned, the test sets untouched, for data-scale curves.

    `scenes > 0` keeps the fit takes of that many training scenes (a seeded draw); `take_stride > 1`
    then keeps every `take_stride`-th of the remaining fit takes in a seeded order (1/stride of them).
    """
    fit = roles["fit"]
    if scenes > 0:
        names = np.array(sorted(set(rows["scene"].to_numpy()[fit])))
        if scenes > len(names):
            raise ValueError(f"fit_scenes: {scenes} > the {len(names)} training scenes of the fit rows")
        keep = np.random.default_rng([seed, 24]).permutation(names)[:scenes]
        fit = fit[np.isin(rows["scene"].to_numpy()[fit], keep)]
    if take_stride > 1:
        takes = np.array(sorted(set(rows["take_id"].to_numpy()[fit])))
        kept = np.random.default_rng([seed, 25]).permutation(takes)[:: take_stride]
        fit = fit[np.isin(rows["take_id"].to_numpy()[fit], kept)]
    if len(fit) == 0:
        raise ValueError(f"fit rows: none left after fit_scenes={scenes}, fit_take_stride={take_stride}")
    return {**roles, "fit": fit}


def frame_tokens(backbone, root: str | Path, rows, frames: int, batch_size: int = 16,
                 cache_root: str | None = None, log=print) -> np.ndarray:
    """Tokens `(M, frames, N, C)` float16 of `rows`' clips at `frames` uniform frames (cached per rows)."""
    from encoders.features import cached_arrays, dataset_key, default_cache_root, iter_clip_batches

    cache_dir = (Path(cache_root or default_cache_root()) / "factor_probes" / backbone.cache_key()
                 / dataset_key(root) / f"{backbone.image_size}px-{frames}f")

    def compute() -> dict[str, np.ndarray]:
        out, idx, t0 = [], None, time.perf_counter()
        for start, video in iter_clip_batches(root, rows, batch_size):
            if idx is None:
                idx = torch.from_numpy(frame_indices(video.shape[1], frames))
            tk, _ = backbone.extract(video[:, idx], tokens=True)
            out.append(tk.numpy().astype(np.float16))
            done = start + len(video)
            if done % (batch_size * 20) < batch_size or done == len(rows):
                log(f"  {root} @{backbone.image_size}px: {done}/{len(rows)} clips, {time.perf_counter() - t0:.0f}s")
        return {"tokens": np.concatenate(out)}

    info = {"backbone": backbone.spec, "dataset": str(Path(root).resolve()), "image_size": backbone.image_size,
            "frames": frames}
    return np.asarray(cached_arrays(cache_dir, "probe", rows, ("tokens",), compute, info).arrays["tokens"])


def feature_set(name: str, tok: np.ndarray) -> np.ndarray:
    """Feature form `name` (see the module docstring) of tokens `(M, F, N, C)` -> `(M, D)` float32."""
    m, _, n, c = tok.shape
    first, last = tok[:, 0].astype(np.float32), tok[:, -1].astype(np.float32)
    if name == "pooled_mean":
        return tok.astype(np.float32).mean((1, 2))
    if name == "pooled_ends":
        return np.concatenate([first.mean(1), last.mean(1) - first.mean(1)], 1)
    if name == "tokens_mean":
        return tok.astype(np.float32).mean(1).reshape(m, n * c)
    if name == "tokens_ends":
        return np.concatenate([first.reshape(m, -1), (last - first).reshape(m, -1)], 1)
    if name == "spatial_ends":
        from encoders.baselines import spatial_softmax

        k0 = spatial_softmax(torch.from_numpy(first)).numpy()
        k1 = spatial_softmax(torch.from_numpy(last)).numpy()
        return np.concatenate([k0, k1 - k0], 1)
    raise ValueError(f"features: {name!r} not in {list(FEATURES)}")


def pair_errors(pred: np.ndarray, y: np.ndarray, partner: dict[int, int]) -> dict[str, float]:
    """`to_partner`: share of the errors that name the true class's symmetric partner (pick up <-> put
    down, ...); `pair_level`: accuracy when a pair counts as one class."""
    pred, y = np.asarray(pred), np.asarray(y)
    wrong = np.flatnonzero(pred != y)
    hit_pair = [p == t or partner.get(int(t)) == p for p, t in zip(pred, y, strict=True)]
    return {"to_partner": float(np.mean([partner.get(int(y[i])) == pred[i] for i in wrong])) if len(wrong) else 0.0,
            "pair_level": float(np.mean(hit_pair)) if len(y) else float("nan")}


def probe_all(x: np.ndarray, rows, roles: dict[str, np.ndarray], labels: dict[str, tuple[np.ndarray, int]],
              alphas, partners: dict[str, dict[int, int]] | None = None) -> dict[str, dict]:
    """Every label's probe on features `x (M, D)`: accuracy per role and per held-out view, ridge, LOSO,
    and for a label with `partners` (class id -> its symmetric partner) the held-out pair errors."""
    k = zscored_kernel(x, roles["fit"])
    groups = rows["scene"].to_numpy()[roles["fit"]]
    evals = {r: v for r, v in roles.items() if r != "fit"}
    views = rows["view"].to_numpy()
    out = {}
    for label, (y, n_classes) in labels.items():
        p = kernel_probe(k, y, n_classes, roles["fit"], groups, evals, alphas)
        res = {r: accuracy(p.predictions[r], y[v]) for r, v in roles.items()}
        held = roles["heldout_scene"]
        res["heldout_by_view"] = {str(v): accuracy(p.predictions["heldout_scene"][views[held] == v],
                                                   y[held][views[held] == v]) for v in sorted(set(views[held]))}
        res.update(alpha=p.alpha, loso_fit_scenes=p.cv_accuracy.get(p.alpha), dim=int(x.shape[1]))
        if (partners or {}).get(label):
            res["heldout_pairs"] = pair_errors(p.predictions["heldout_scene"], y[held], partners[label])
        out[label] = res
    return out


def scene_curve(x: np.ndarray, rows, roles: dict[str, np.ndarray], labels: dict[str, tuple[np.ndarray, int]],
                counts: list[int], draws: int, alphas, seed: int) -> dict[str, dict[int, dict]]:
    """Held-out-scene accuracy when only `count` of the fitted scenes are used (mean, min, max over draws),
    and (`matched_*`) when as many fit clips are drawn from every fitted scene: fewer scenes vs fewer clips."""
    k = zscored_kernel(x, roles["fit"])
    scenes = rows["scene"].to_numpy()
    fit_scenes = sorted(set(scenes[roles["fit"]]))
    rng = np.random.default_rng(seed)
    held = roles["heldout_scene"]
    out: dict[str, dict[int, dict]] = {lab: {} for lab in labels}
    for n in counts:
        if n > len(fit_scenes) or n < 2:
            continue
        subsets = [fit_scenes] if n == len(fit_scenes) else [
            sorted(rng.choice(fit_scenes, n, replace=False)) for _ in range(draws)]
        fits = [roles["fit"][np.isin(scenes[roles["fit"]], sub)] for sub in subsets]
        matched = [np.sort(rng.choice(roles["fit"], len(f), replace=False)) for f in fits]
        for lab, (y, n_classes) in labels.items():
            accs, macc = [], []
            for fit, mfit in zip(fits, matched, strict=True):
                p = kernel_probe(k, y, n_classes, fit, scenes[fit], {"h": held}, alphas)
                accs.append(accuracy(p.predictions["h"], y[held]))
                q = kernel_probe(k, y, n_classes, mfit, scenes[mfit], {"h": held}, alphas)
                macc.append(accuracy(q.predictions["h"], y[held]))
            out[lab][n] = {"mean": float(np.mean(accs)), "min": float(np.min(accs)), "max": float(np.max(accs)),
                           "draws": len(subsets), "fit_rows": float(np.mean([len(f) for f in fits])),
                           "matched_mean": float(np.mean(macc)), "matched_min": float(np.min(macc)),
                           "matched_max": float(np.max(macc))}
    return out


@torch.no_grad()
def roboact_embeddings(directory: str, data: str, rows, cache_root: str | None = None) -> dict[str, np.ndarray]:
    """A RoboAct-CLIP export's branch embeddings and head predictions (class names) for `rows`."""
    from encoders import build_encoder

    enc = build_encoder(directory).eval()
    parts: dict[str, list] = {}
    paths: list[str] = []
    for split in sorted(set(rows["split"])):
        idx, feats = enc.dataset_features(data, split, cache_root=cache_root)
        for s in range(0, len(idx), 64):
            o = enc.forward_features(torch.from_numpy(feats[s : s + 64]))
            for f in ("subject", "action", "object", "embedding", "fv"):
                parts.setdefault(f, []).append(o[f].float().numpy())
            for f, names in (("subject", enc.cfg.subjects), ("action", enc.cfg.actions), ("object", enc.cfg.objects)):
                parts.setdefault(f"head_{f}", []).append(np.array(names, dtype=object)[o[f"logits_{f}"].argmax(1).numpy()])
        paths += idx["path"].tolist()
    where = {p: i for i, p in enumerate(paths)}
    take = np.array([where[p] for p in rows["path"]])
    return {k: np.concatenate(v)[take] for k, v in parts.items()}


def probe_rows(data: str, labels: list[str], test_every: int, take_stride: int = 1, seed: int = 0
               ) -> tuple[dict, object, dict[str, np.ndarray]]:
    """`(meta, rows, roles)` of a dataset for the factor probes; a label the dataset has no
    vocabulary for is one error naming meta.json."""
    from envs.atomic_world.dataset import read_index, read_meta

    meta = read_meta(data)
    bad = [lab for lab in labels if lab not in meta["vocab"]]
    if bad:
        raise ValueError(f"labels: {bad} not vocabularies of {data}/meta.json ({sorted(meta['vocab'])})")
    rows, roles = select_rows(read_index(data), test_every, take_stride, seed)
    return meta, rows, roles


def write_probe_outputs(cfg: object, result: dict, report: str, t0: float, load0: tuple, log=print) -> None:
    """Stamp `result` with seconds, load and config; write config.yaml, results.json, results.md to `cfg.out`."""
    result["seconds"] = {**result.get("seconds", {}), "total": round(time.perf_counter() - t0, 1)}
    result["load_average"] = {"start": [round(v, 2) for v in load0], "end": [round(v, 2) for v in os.getloadavg()]}
    result["config"] = to_dict(cfg)
    d = Path(cfg.out)
    d.mkdir(parents=True, exist_ok=True)
    save_config(cfg, d / "config.yaml")
    atomic_write_json(d / "results.json", result)
    atomic_write_text(d / "results.md", report(result) if callable(report) else report)
    log(f"wrote {d}/results.json, results.md, config.yaml ({result['seconds']['total']:.0f}s)")


def run_factor_probes(cfg: FactorProbeConfig, log=print) -> dict:
    """Extract (cached), probe, write `results.json`, `results.md`, `config.yaml` into `cfg.out`."""
    from encoders import build_backbone
    from envs.atomic_world.dataset import read_index, read_meta

    cfg.validate()
    torch.set_num_threads(max(1, cfg.threads))
    t0, load0 = time.perf_counter(), os.getloadavg()
    meta, rows, roles = probe_rows(cfg.data, cfg.labels, cfg.test_every, cfg.train_take_stride, cfg.seed)
    labels = {}
    for lab in cfg.labels:
        lookup = {c: i for i, c in enumerate(meta["vocab"][lab])}
        labels[lab] = (np.array([lookup[v] for v in rows[lab]], np.int64), len(lookup))
    partners = {"action": {}}
    for a, b in meta.get("symmetric_pairs", []):
        ids = {c: i for i, c in enumerate(meta["vocab"]["action"])}
        partners["action"].update({ids[a]: ids[b], ids[b]: ids[a]})
    log(f"rows: {len(rows)} clip-views; " + ", ".join(f"{r} {len(v)}" for r, v in roles.items()))
    result: dict = {"rows": {r: int(len(v)) for r, v in roles.items()},
                    "scenes": {r: sorted(set(rows["scene"].iloc[v])) for r, v in roles.items()},
                    "chance": {lab: {r: chance(y[v], k) for r, v in roles.items() if r != "fit"}
                               for lab, (y, k) in labels.items()},
                    "backbone": {}, "roboact": None, "scene_curve": {}, "seconds": {}}
    for src in cfg.sources:
        data, _, px = src.rpartition("@")
        other = read_index(data)
        merged = rows[list(ROWS_KEY) + ["path"]].merge(other[list(ROWS_KEY) + ["path"]], how="left",
                                                      on=["path", *ROWS_KEY], indicator=True)
        if (merged["_merge"] != "both").any():
            raise ValueError(f"sources: {data} lacks {int((merged['_merge'] != 'both').sum())} of the rows of "
                             f"{cfg.data} (same world, seed and takes needed)")
        t1 = time.perf_counter()
        bb = build_backbone(cfg.backbone, image_size=int(px))
        tok = frame_tokens(bb, data, rows, cfg.frames, cfg.batch_size, cfg.cache_dir or None, log)
        frame_px = int(read_meta(data).get("size", 0))
        name = f"{frame_px} px frames -> {px} px input ({tok.shape[2]} tokens)"
        result["seconds"][f"extract {name}"] = round(time.perf_counter() - t1, 1)
        result["backbone"][name] = {}
        for feat in cfg.features:
            t2 = time.perf_counter()
            x = feature_set(feat, tok)
            result["backbone"][name][feat] = probe_all(x, rows, roles, labels, cfg.alphas, partners)
            log(f"{name} {feat} (D={x.shape[1]}, {time.perf_counter() - t2:.0f}s): " + "  ".join(
                f"{lab} {r['fit']:.2f}/{r['train_scene_test']:.2f}/{r['heldout_scene']:.2f}"
                for lab, r in result["backbone"][name][feat].items()))
            if src == cfg.sources[0] and feat in cfg.curve_features:
                curve_labels = {lab: v for lab, v in labels.items() if lab != "subject"}
                result["scene_curve"][f"{name} {feat}"] = scene_curve(
                    x, rows, roles, curve_labels, cfg.scene_counts, cfg.scene_draws, cfg.alphas, cfg.seed)
        del tok
    if cfg.roboact:
        t1 = time.perf_counter()
        emb = roboact_embeddings(cfg.roboact, cfg.data, rows, cfg.cache_dir or None)
        rr: dict = {"export": cfg.roboact, "heads": {}, "probes": {}}
        for lab, (y, _) in labels.items():
            if f"head_{lab}" in emb:
                lookup = {c: i for i, c in enumerate(meta["vocab"][lab])}
                pred = np.array([lookup.get(v, -1) for v in emb[f"head_{lab}"]])
                rr["heads"][lab] = {r: accuracy(pred[v], y[v]) for r, v in roles.items()}
                if partners.get(lab):
                    held = roles["heldout_scene"]
                    rr["heads"][lab]["heldout_pairs"] = pair_errors(pred[held], y[held], partners[lab])
        for f in ("subject", "action", "object", "embedding", "fv"):
            rr["probes"][f] = probe_all(emb[f], rows, roles, labels, cfg.alphas, partners)
        result["roboact"] = rr
        result["seconds"]["roboact"] = round(time.perf_counter() - t1, 1)
        log("roboact heads: " + "  ".join(f"{lab} {r['train_scene_test']:.2f}/{r['heldout_scene']:.2f}"
                                          for lab, r in rr["heads"].items()))
    write_probe_outputs(cfg, result, markdown_report, t0, load0, log)
    return result
