"""RoboAct-CLIP results on held-out scenes: accuracy table, frame-count study, A1-A6 ablations,
recombination of never-seen triplets, and video retrieval next to InvAct and the baselines.

The library behind scripts/roboact_results.py (its docstring has the command and what each number
means): `roboact_results(ResultsConfig)` trains every variant on the train split (reusing
`<runs>/<variant>/encoder` when it exists), scores the val split and writes `<doc>.{json,md}`.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from pathlib import Path

import numpy as np
import torch

from configs.runs import atomic_write_json, atomic_write_text
from configs.threads import apply_threads
from configs.training import logged_seconds
from encoders.roboact.report import markdown

ABL = "configs/encoder/roboact_ablations"
VARIANTS = [  # (name, config, what it is)
    ("full_n16", "configs/encoder/roboact_clip.yaml", "RoboAct-CLIP (full)"),
    ("frames8", f"{ABL}/frames8.yaml", "n=8"),
    ("a5_frames2", f"{ABL}/a5_frames2.yaml", "A5: n=2"),
    ("frames32", f"{ABL}/frames32.yaml", "n=32"),
    ("a1_no_diff_transformer", f"{ABL}/a1_no_diff_transformer.yaml", "A1: no diff-transformer (F_1, F_n only)"),
    ("a2_no_disentanglement", f"{ABL}/a2_no_disentanglement.yaml", "A2: no disentanglement"),
    ("a3_no_recombination", f"{ABL}/a3_no_recombination.yaml", "A3: no recombination loss"),
    ("a4_no_aux", f"{ABL}/a4_no_aux.yaml", "A4: no auxiliary classification loss"),
    ("a6_raw_features", f"{ABL}/a6_raw_features.yaml", "A6: raw frame features only"),
    # not in the paper (issue 23 §2): a trainable pixel-difference stem into Eq. 7
    ("motion_diff", f"{ABL}/motion_diff.yaml", "motion stem (pixel differences into Eq. 7)"),
    ("motion_temporal_action", f"{ABL}/motion_temporal_action.yaml",
     "motion stem + action read from Tem_vn only"),
    ("object_pixels", f"{ABL}/object_pixels.yaml",
     "motion stem + action from Tem_vn + object from a pixel stem"),
    ("object_pixels_a3", f"{ABL}/object_pixels_a3.yaml",
     "the same, object loss x3 (alpha_o), no colour tint"),
    ("object_pixels_a3_moments", f"{ABL}/object_pixels_a3_moments.yaml",
     "the same, motion stem pooled with x/y moments"),
    ("object_pixels_a3_moments_attn", f"{ABL}/object_pixels_a3_moments_attn.yaml",
     "the same, object stem pooled by learned attention over its grid"),
    ("object_pixels_a3_moments_frame", f"{ABL}/object_pixels_a3_moments_frame.yaml",
     "moments, and each motion step also sees its frame"),
    ("object_pixels_a3_moments_w48", f"{ABL}/object_pixels_a3_moments_w48.yaml",
     "moments, and the object stem twice as wide"),
    ("object_pixels_a3_moments_m96", f"{ABL}/object_pixels_a3_moments_m96.yaml",
     "moments, and the motion stem at 96 px"),
]
FACTORS = ("subject", "action", "object")


@dataclasses.dataclass
class ResultsConfig:
    data: str = "runs/demo/atomic_world"
    runs: str = "runs/roboact_results"  # one training run folder per variant
    steps: int = 0  # 0: the config's steps
    variants: list[str] = dataclasses.field(default_factory=list)  # empty: all
    invact: str = "runs/encoder/invact_default/encoder"  # exported InvAct, compared if present
    baselines: list[str] = dataclasses.field(default_factory=lambda: ["backbone_mean", "flow_mean", "random"])
    retrieval: bool = True
    doc: str = "docs/results/roboact_clip"  # writes <doc>.json and <doc>.md
    cache_dir: str = ""
    threads: int = 0  # torch threads; 0: the cores free to this process (configs/threads.py)
    overrides: list[str] = dataclasses.field(default_factory=list)  # extra key=value for every training run
    seeds: list[int] = dataclasses.field(default_factory=lambda: [1, 2])  # extra seeds (noise band) of ...
    seeded: list[str] = dataclasses.field(default_factory=lambda: ["full_n16"])  # ... these variants
    # frame-count study 2/8/16/32 on a dataset rendered with >= 32 frames per clip ("" = skip)
    frame_study_data: str = ""
    frame_study_overrides: list[str] = dataclasses.field(default_factory=lambda: ["model.backbone_size=64"])
    # > 0: also score this share of the training clip-views, a seeded random draw (the index lists a clip's
    # views in a row, so a stride would pick one view): seen clips tell under- from over-fitting
    train_share: float = 0.0


def variant_config(cfg: ResultsConfig, name: str, yaml: str, extra: tuple[str, ...] = ()):
    from configs.loader import load_config
    from encoders.train import TrainConfig

    over = [f"data={cfg.data}", f"out={Path(cfg.runs) / name}", f"threads={cfg.threads}"]
    if cfg.steps:
        over.append(f"steps={cfg.steps}")
    if cfg.cache_dir:
        over.append(f"cache_dir={cfg.cache_dir}")
    return load_config(TrainConfig, yaml, over + list(cfg.overrides) + list(extra))


def train_variant(tc) -> tuple[Path, float | None]:
    from encoders.train import train

    out = Path(tc.out)
    if (out / "encoder" / "config.json").is_file():  # reuse; the training time is the logged one
        return out / "encoder", logged_seconds(out / "metrics.jsonl")
    t0 = time.time()
    train(tc, progress=False)
    return out / "encoder", time.time() - t0


def all_triplets(model) -> list[tuple[str, str, str]]:
    c = model.cfg
    return list(itertools.product(c.subjects, c.actions, c.objects))


@torch.no_grad()
def accuracies(model, index, feats, texts: torch.Tensor, trip: list[tuple[str, str, str]],
               rows: np.ndarray | None = None) -> dict:
    """Head and zero-shot text accuracy (%) per factor on frame rows `feats (M, n, C)` (`FrameRows` or an
    array; only `rows` of them and of `index` when given), read 256 rows at a time; head accuracy also
    per true class (and per class and view: a sense of motion can be clear in the ego view only) and per view;
    on a whole split also per clip with its views fused (`views_fused`)."""
    whole = rows is None  # a drawn share of the clip-views splits clips: views are fused on whole splits only
    rows = np.arange(len(feats)) if rows is None else np.asarray(rows)
    index = index.iloc[rows]
    parts = [model.forward_features(torch.from_numpy(feats[rows[s : s + 256]])) for s in range(0, len(rows), 256)]
    out = {k: torch.cat([p[k] for p in parts]) for k in ("embedding", *(f"logits_{f}" for f in FACTORS))}
    res: dict = {"head": {}, "text": {}, "per_class": {}, "per_view": {}}
    views = index["view"].to_numpy() if "view" in index else np.full(len(index), "all")
    for f in FACTORS:
        names = getattr(model.cfg, f + "s")
        y = np.array([names.index(v) for v in index[f]])
        ok = out[f"logits_{f}"].argmax(-1).numpy() == y
        res["head"][f] = float(ok.mean() * 100)
        # where the errors are: head accuracy per true class (n rows) and per camera view
        res["per_class"][f] = {names[c]: {"acc": float(ok[y == c].mean() * 100), "n": int((y == c).sum()),
                                          "views": {v: float(ok[(y == c) & (views == v)].mean() * 100)
                                                    for v in sorted(set(views[y == c].tolist()))}}
                               for c in sorted(set(y.tolist()))}  # fmt: skip
        for v in sorted(set(views.tolist())):
            res["per_view"].setdefault(v, {})[f] = float(ok[views == v].mean() * 100)
    if whole and "clip_id" in index and index["clip_id"].duplicated().any():
        res["views_fused"] = views_fused(model, index, out)
    sim = torch.nn.functional.normalize(out["embedding"], dim=-1) @ torch.nn.functional.normalize(texts, dim=-1).T
    best = sim.argmax(-1).numpy()
    for i, f in enumerate(FACTORS):
        pred = np.array([trip[b][i] for b in best])
        res["text"][f] = float((pred == index[f].to_numpy()).mean() * 100)
    truth = list(zip(index["subject"], index["action"], index["object"]))
    res["text"]["triplet"] = float(np.mean([trip[b] == t for b, t in zip(best, truth)]) * 100)
    return res


def views_fused(model, index, out: dict[str, torch.Tensor]) -> dict:
    """Head accuracy (%) per clip with the class probabilities averaged over the clip's synchronised views
    (rows sharing a `clip_id`), per factor and per true class: what the clip-view errors cost once the
    views that see the motion and the object large vote with the ones that see them a few pixels wide.
    A reading beside the per-clip-view protocol, not a replacement (the paper scores single videos)."""
    clips, inv = np.unique(index["clip_id"].to_numpy(), return_inverse=True)
    res: dict = {"clips": int(len(clips)), "head": {}, "per_class": {}}
    for f in FACTORS:
        names = getattr(model.cfg, f + "s")
        prob = out[f"logits_{f}"].float().softmax(-1).numpy()
        fused = np.zeros((len(clips), prob.shape[1]))
        np.add.at(fused, inv, prob)
        y = np.zeros(len(clips), int)
        y[inv] = [names.index(v) for v in index[f]]
        ok = fused.argmax(-1) == y
        res["head"][f] = float(ok.mean() * 100)
        res["per_class"][f] = {names[c]: {"acc": float(ok[y == c].mean() * 100), "n": int((y == c).sum())}
                               for c in sorted(set(y.tolist()))}
    return res


def share_rows(n: int, share: float, seed: int = 0) -> np.ndarray:
    """A seeded random `share` of `range(n)`, sorted (at least one row)."""
    k = max(1, round(n * min(share, 1.0)))
    return np.sort(np.random.default_rng(seed).choice(n, k, replace=False))


@torch.no_grad()
def recombination(model, train_index, val_index, rec_texts: torch.Tensor, trip: list[tuple[str, str, str]]) -> dict:
    """Rates (%) at which recombine(s, a, o) ranks its own Eq. 19 text first / in the top 5 among all
    vocabulary triplets, for triplets unseen in train (in val; and all of the vocabulary product)."""
    seen = set(zip(train_index["subject"], train_index["action"], train_index["object"]))
    in_val = sorted(set(zip(val_index["subject"], val_index["action"], val_index["object"])))
    banks_ok = {f: set(np.flatnonzero(getattr(model, f"bank_{f}_filled").numpy())) for f in FACTORS}

    def usable(t):
        return all(getattr(model.cfg, f + "s").index(t[i]) in banks_ok[f] for i, f in enumerate(FACTORS))

    groups = {"val_unseen": [t for t in in_val if t not in seen],
              "product_unseen": [t for t in trip if t not in seen],
              "train_seen": sorted(seen)}  # fmt: skip
    tn = torch.nn.functional.normalize(rec_texts, dim=-1)
    pos = {t: i for i, t in enumerate(trip)}
    res = {"candidates": len(trip), "chance_top1": 100 / len(trip), "chance_top5": 500 / len(trip)}
    for g, ts in groups.items():
        ts = [t for t in ts if usable(t)]
        if not ts:
            res[g] = {"n": 0}
            continue
        f = model.recombine([t[0] for t in ts], [t[1] for t in ts], [t[2] for t in ts])
        sim = torch.nn.functional.normalize(f, dim=-1) @ tn.T
        target = torch.tensor([pos[t] for t in ts])
        rank = (sim > sim.gather(1, target[:, None])).sum(1)
        res[g] = {"n": len(ts), "top1": float((rank == 0).float().mean() * 100),
                  "top5": float((rank < 5).float().mean() * 100)}  # fmt: skip
        if g == "val_unseen":
            res[g]["triplets"] = [" / ".join(t) for t in ts]
            res[g]["rank"] = rank.tolist()
    return res


def evaluate_variant(row: dict, enc_dir: Path, data: str, train_index, val_index, cache_dir: str = "",
                     train_share: float = 0.0) -> list:
    """Fill row["accuracy"] (and row["recombination"]) for the encoder in `enc_dir` on `data`'s val split,
    and row["accuracy_train"] on a seeded random `train_share` of the training clip-views when > 0."""
    from encoders.base import build_encoder
    from envs.datasets.annotations import compose_description, recombination_text

    model = build_encoder(str(enc_dir))
    index, feats = model.dataset_features(data, "val", cache_root=cache_dir or None)
    trip = all_triplets(model)
    with torch.no_grad():
        texts = model.text_embed([compose_description(*t) for t in trip])
        row["accuracy"] = accuracies(model, index, feats, texts, trip)
        if train_share > 0:  # the clips it trained on: under-fitting (low here too) or over-fitting
            tr_index, tr_feats = model.dataset_features(data, "train", cache_root=cache_dir or None)
            rows = share_rows(len(tr_index), train_share)
            row["accuracy_train"] = accuracies(model, tr_index, tr_feats, texts, trip, rows)
            row["accuracy_train"]["rows"] = len(rows)
        if model.cfg.disentangle:
            rec = model.text_embed([recombination_text(*t) for t in trip])
            row["recombination"] = recombination(model, train_index, val_index, rec, trip)
    return trip


def frame_study(cfg: ResultsConfig) -> dict:
    """Full model at n = 2 / 8 / 16 / 32 on `cfg.frame_study_data` (a dataset with >= 32 frames per clip)."""
    from envs.atomic_world.dataset import load_clip, read_index

    data = cfg.frame_study_data
    tr, va = read_index(data, "train"), read_index(data, "val")
    t_clip = load_clip(Path(data) / va["path"].iloc[0]).shape[0]
    out = {"data": data, "frames_per_clip": int(t_clip), "n_train": len(tr), "n_val": len(va),
           "overrides": list(cfg.frame_study_overrides), "rows": []}  # fmt: skip
    for n in (2, 8, 16, 32):
        row: dict = {"frames": n}
        if n > t_clip:
            row["skipped"] = f"clips have {t_clip} frames"
            out["rows"].append(row)
            continue
        tc = variant_config(cfg, f"framestudy_n{n}", VARIANTS[0][1],
                            (f"model.frames={n}", f"data={data}", *cfg.frame_study_overrides))  # fmt: skip
        enc_dir, row["train_seconds"] = train_variant(tc)
        evaluate_variant(row, enc_dir, data, tr, va, cfg.cache_dir)
        a = row["accuracy"]["head"]
        print(f"[frame study n={n}] head acc a/s/o {a['action']:.2f}/{a['subject']:.2f}/{a['object']:.2f}", flush=True)
        out["rows"].append(row)
    return out


def retrieval(cfg: ResultsConfig, main_dir: Path) -> list[dict]:
    from encoders.base import build_encoder
    from encoders.evaluate import RetrievalEvalConfig, evaluate_encoder
    from encoders.roboact import RoboActEncoder

    ec = RetrievalEvalConfig(data=cfg.data, split="val", plots=False, cache_dir=cfg.cache_dir)
    rows = []
    enc = build_encoder(str(main_dir))
    rows.append(evaluate_encoder(enc, ec, "roboact_clip (concat, Eq. 24)")[0])
    act = RoboActEncoder(dataclasses.replace(enc.cfg, output="action"))
    act.load_state_dict(enc.state_dict())
    rows.append(evaluate_encoder(act.freeze(), ec, "roboact_clip (action branch)")[0])
    if cfg.invact and Path(cfg.invact, "config.json").is_file():
        rows.append(evaluate_encoder(build_encoder(cfg.invact), ec, f"invact ({cfg.invact})")[0])
    for b in cfg.baselines:
        # backbone_mean at the same 96 px as RoboAct's frozen features (shares their cache)
        e = build_encoder(b, image_size=enc.cfg.backbone_size) if b == "backbone_mean" else build_encoder(b)
        rows.append(evaluate_encoder(e, ec, b)[0])
    return rows


def roboact_results(cfg: ResultsConfig, command: str = "") -> dict:
    """Train (or reuse) every variant, score the val split, write `<doc>.json` and `<doc>.md` (`command`
    quoted in both); returns the JSON payload."""
    from encoders.roboact.method import dataset_vocab  # noqa: F401 (validates the vocab early)
    from envs.atomic_world.dataset import read_index

    apply_threads(cfg.threads)
    dataset_vocab(cfg.data)
    train_index, val_index = read_index(cfg.data, "train"), read_index(cfg.data, "val")
    from envs.atomic_world.dataset import load_clip

    t_clip = load_clip(Path(cfg.data) / val_index["path"].iloc[0]).shape[0]
    res: dict = {"command": command, "data": cfg.data, "n_train": len(train_index), "n_val": len(val_index),
                 "val_scenes": sorted(set(val_index["scene"])), "frames_per_clip": int(t_clip), "variants": [],
                 "train_share": cfg.train_share,
                 "notes": []}  # fmt: skip
    wanted = set(cfg.variants) if cfg.variants else None
    main_dir = None
    variants = []
    for n, y, lab in VARIANTS:
        variants.append((n, y, lab, ()))
        if n in cfg.seeded:
            variants += [(f"{n}_seed{s}", y, f"{lab}, seed {s}", (f"seed={s}",)) for s in cfg.seeds]
    for name, yaml, label, extra in variants:
        if wanted and name.split("_seed")[0] not in wanted:
            continue
        tc = variant_config(cfg, name, yaml, extra)
        frames = int(tc.model.get("frames", 16))
        row: dict = {"name": name, "label": label, "config": yaml, "frames": frames}
        if frames > t_clip:
            row["skipped"] = f"clips have {t_clip} frames"
            res["variants"].append(row)
            print(f"[{name}] skipped: {frames} frames asked, clips have {t_clip}", flush=True)
            continue
        enc_dir, secs = train_variant(tc)
        row["encoder"] = str(enc_dir)
        row["train_seconds"] = secs
        trip = evaluate_variant(row, enc_dir, cfg.data, train_index, val_index, cfg.cache_dir, cfg.train_share)
        res["n_vocab_triplets"] = len(trip)
        a = row["accuracy"]
        print(f"[{name}] head acc a/s/o {a['head']['action']:.2f}/{a['head']['subject']:.2f}/{a['head']['object']:.2f}"
              f"  text a/s/o/triplet {a['text']['action']:.2f}/{a['text']['subject']:.2f}/{a['text']['object']:.2f}/"
              f"{a['text']['triplet']:.2f}" + (f"  recomb val-unseen top1 {row['recombination']['val_unseen'].get('top1')}"
                                             if "recombination" in row else ""), flush=True)  # fmt: skip
        res["variants"].append(row)
        if name == "full_n16":
            main_dir = enc_dir
    for n in cfg.seeded:  # the seed band of every seeded variant (res["full_seed_band"]: the full model's)
        rows = [v for v in res["variants"] if (v["name"] == n or v["name"].startswith(n + "_seed")) and "accuracy" in v]
        if len(rows) < 2:
            continue
        band = {f: (float(np.mean([v["accuracy"]["head"][f] for v in rows])),
                    float(np.std([v["accuracy"]["head"][f] for v in rows]))) for f in ("action", "subject", "object")}  # fmt: skip
        key = "full_seed_band" if n == "full_n16" else f"{n}_seed_band"
        res[key] = {"seeds": len(rows), **{f: {"mean": m, "std": sd} for f, (m, sd) in band.items()}}
        what = "the full model" if n == "full_n16" else f"`{n}`"
        res["notes"].append(f"Seed noise of {what} over {len(rows)} training seeds (head accuracy, mean ± std): "
                            + ", ".join(f"{f} {m:.2f} ± {sd:.2f}" for f, (m, sd) in band.items())
                            + "; differences between variants smaller than ~2 std are not significant (one seed each).")
    n_scenes = len(set(train_index["scene"]))
    res["notes"].append(f"Trained on {n_scenes} training scenes ({len(train_index)} clip-views) with frozen ImageNet "
                        "EfficientNet-Lite0 features at 96 px (the paper: CLIP on ~200k videos); not a paper reproduction. "
                        "On the default world the held-out gap is mostly too few training clips, not too few scenes "
                        "(roboact_diagnosis.md, data scale).")
    for v in res["variants"]:
        tr, va = v.get("accuracy_train"), v.get("accuracy")
        if tr and va:
            res["notes"].append(f"`{v['name']}` on {tr['rows']} of its own training clip-views vs the held-out ones, "
                                "head action / object: " + " vs ".join(
                                    f"{a['head']['action']:.1f} / {a['head']['object']:.1f}" for a in (tr, va)))
    res["notes"].append("A4 trains no classifier, so its *head* columns are an untrained classifier (chance level); "
                        "its *text* columns are the comparable reading.")
    res["notes"].append("The paper's ablations A1-A6 are LIBERO policy success rates (Table II); here they are "
                        "measured as offline accuracy on held-out scenes, like Sec. IV-A.")
    if cfg.frame_study_data:
        res["frame_study"] = frame_study(cfg)
        from envs.atomic_world.dataset import read_meta

        g = read_meta(cfg.frame_study_data).get("config", {})
        w = g.get("world", {})
        res["notes"].append(f"Frame-study dataset made with `python scripts/make_atomic_videos.py --out {cfg.frame_study_data} "
                            f"--takes {g.get('takes')} --seed {g.get('seed')} --frames {w.get('frames')} --size {w.get('size')} "
                            "--workers 1` (a third of the main dataset's takes at 64 px to fit the CPU budget; its numbers "
                            "are comparable with each other, not with the main table).")
    if cfg.retrieval and main_dir is not None:
        res["retrieval"] = retrieval(cfg, main_dir)
        if not (cfg.invact and Path(cfg.invact, "config.json").is_file()):
            res["notes"].append(f"InvAct: no exported encoder at {cfg.invact} when this ran; not compared.")
    doc = Path(cfg.doc)
    atomic_write_json(doc.with_suffix(".json"), res)
    md = markdown(res, command)
    atomic_write_text(doc.with_suffix(".md"), md)
    print(md)
    return res
