"""Boundary error of the segmenters vs the uniform split on held-out atomic-world keysteps and LIBERO demos.

    python scripts/segment_results.py out=docs/results/segmentation.json [dtw=true]

Atomic world (`runs/demo/atomic_world`): keystep takes (2-4 clips) concatenated from the per-frame
pooled backbone features, every clip cropped to a seeded 50-100 % (takes.py; the seeds of
train.evaluate_instraction, so "uniform" equals its baseline); tuning = the `train` split, held-out =
the `val` split (other scenes). LIBERO (`runs/demos/libero`): ground truth = the steps where the
logged per-step skill label changes (reach / grasp / lift / place / open / push / turn, as logged:
the atomic skills the clip adapter cuts, not merged into coarser instruction steps); tuning = demos
0..tune_demos-1 of `tune_tasks`, held-out = demos tune_demos.. of every task (so the other tasks
are never seen in tuning). Also: the LIBERO demos at instruction-step granularity
(`instruction_steps`: reach + grasp + lift = "pick up", the steps teleop ingestion gets from
real_robot.decompose; only task 6 has 2+ such steps) and the Kitchen demos (`kitchen`), each scored
with the LIBERO-tuned config and with one tuned on its own tuning demos (never the held-out ones).
Every method is given the true number of steps M.

Methods: "uniform" (equal parts); "dtw" (segment.py, the InstrAction DTW path of action tokens vs
verb phrases, from a "+ HN + DTW-Align" model trained on the world's train split, `--dtw`);
"changepoint" (changepoint.py; its duration_weight / smooth picked on the tuning set only).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import time
from pathlib import Path

import numpy as np

from configs.runs import atomic_write_json
from encoders.instraction.changepoint import (
    SegmenterConfig,
    changepoint_boundaries,
    label_runs,
    robot_features,
    uniform_split,
)
from encoders.instraction.segment import boundary_metrics


@dataclasses.dataclass
class Seq:
    """One sequence: `x (T, D)` features, true boundaries, step names, its group (task / split)."""

    x: np.ndarray | dict  # (T, D) features, or a LIBERO demo's obs {key: (T, ...)}
    truth: list[int]
    steps: list[str]
    group: str
    frames: np.ndarray | None = None  # (T, H, W, 3) uint8, only for dtw on LIBERO

    @property
    def n(self) -> int:
        """Length T in steps."""
        return len(next(iter(self.x.values()))) if isinstance(self.x, dict) else len(self.x)


@dataclasses.dataclass
class EvalConfig:
    world: str = "runs/demo/atomic_world"  # empty: skip the world rows
    libero: str = "runs/demos/libero"  # empty: skip the LIBERO and Kitchen sets
    kitchen: str = "runs/demos/kitchen_wrist"  # a second robot domain (empty: skip)
    kitchen_tune_demos: int = 13
    out: str = ""  # write the results JSON here (empty: only return them)
    tune_tasks: list[int] = dataclasses.field(default_factory=lambda: [0, 5])
    tune_demos: int = 25
    tol_frac: float = 0.05  # F1 tolerance as a fraction of the sequence length (at least 1 step)
    dtw: bool = False
    dtw_epochs: int = 15
    dtw_libero_demos: int = 5  # held-out demos per task the (slow) dtw path is run on
    seed: int = 0
    cache_dir: str = ""
    # worlds never used in tuning (other generator seeds): every keystep take of both splits is
    # scored with the config picked on `world`'s train split, for a tighter held-out interval
    extra_worlds: list[str] = dataclasses.field(default_factory=list)
    # demo folders never used for tuning (e.g. other LIBERO suites): all their demos scored with the
    # config file below as it is (empty `world` / `libero`: skip those sets)
    transfer: list[str] = dataclasses.field(default_factory=list)
    transfer_config: str = "configs/segment/changepoint.yaml"


def instruction_steps(skills: list[str]) -> list[str]:
    """Atomic skill labels -> coarser instruction-step labels, the granularity real_robot.decompose gives
    ("pick up the cheese" = reach + grasp + lift, "put it in the bowl" = place): lift joins grasp and
    reach joins whatever follows it."""
    out = ["grasp" if s == "lift" else s for s in skills]
    for t in range(len(out) - 2, -1, -1):
        if out[t] == "reach":
            out[t] = out[t + 1]
    return out


def demo_sets(root: str, tune_tasks: list[int], tune_demos: int, frames_for: int = 0,
              coarse: bool = False) -> tuple[list[Seq], list[Seq]]:
    """(tuning, held-out) sequences of every demo file under `root`, obs = proprio: tuning = demos
    0..tune_demos-1 of `tune_tasks`, held-out = demos tune_demos.. of every task (`tune_demos=0`: all);
    agentview frames on the first `frames_for` held-out demos of each task (for dtw); `coarse`:
    instruction steps instead of atomic skills, only demos with at least 2 of them."""
    from envs.demos import DemoReader

    tune, held = [], []
    files = sorted(Path(root).rglob("*.hdf5"))
    if not files:
        raise FileNotFoundError(f"demos: no demo files under {root}")
    for f in files:
        with DemoReader(f) as r:
            task = int(r.env_args.get("task_id", -1))
            group = f"{r.env_args.get('suite', '')}/{task if task >= 0 else f.stem.removesuffix('_demo')}"
            for i in range(len(r)):
                is_tune = task in tune_tasks and i < tune_demos
                if i < tune_demos and not is_tune:
                    continue
                want = {"ee_pos", "gripper_states"}
                if not is_tune and i - tune_demos < frames_for:
                    want.add("agentview_rgb")
                d = r.read(i, want)
                if d.skills is None:
                    raise ValueError(f"{f}: demo {i} has no skill labels")
                names, truth = label_runs(instruction_steps(d.skills) if coarse else d.skills)
                if coarse and len(names) < 2:
                    continue
                seq = Seq(d.obs, truth, names, group, d.obs.pop("agentview_rgb", None))
                (tune if is_tune else held).append(seq)
    return tune, held


def world_sets(cfg: EvalConfig, backbone=None, root: str = "") -> dict:
    """Train / val keystep takes of the world `root` (default `cfg.world`): features, cropped videos, items."""
    from encoders.instraction.takes import take_video
    from encoders.instraction.train import InstrActionRunConfig, load_split

    rc = InstrActionRunConfig(data=root or cfg.world, cache_dir=cfg.cache_dir)
    out = {}
    for split in ("train", "val"):
        feats, items = load_split(rc, split, backbone)
        seqs = []
        for q, it in enumerate(items):
            if len(it.steps) < 2:
                continue
            video, truth = take_video(feats, it, crop=True, seed=cfg.seed + 7919 * q)
            seqs.append(Seq(video, truth, [f"{a} {o}" for a, o in it.steps], f"{Path(rc.data).name}/{split}"))
        out[split] = {"seqs": seqs, "feats": feats, "items": items}
    return out


def score(pred: list[list[int]], seqs: list[Seq], tol_frac: float) -> dict[str, float]:
    """Mean boundary metrics over sequences (`tol` = max(1, round(tol_frac * T)) per sequence)."""
    ms = [boundary_metrics(p, s.truth, s.n, max(1, round(tol_frac * s.n))) for p, s in zip(pred, seqs)]
    return {k: float(np.mean([m[k] for m in ms])) for k in ("mae", "mae_frac", "f1")} | {"n": len(seqs)}


def paired(pred: list[list[int]], base: list[list[int]], seqs: list[Seq], seed: int = 0) -> dict[str, float]:
    """Per-sequence MAE of `pred` minus `base` (negative = pred better): mean, 95 % bootstrap interval
    (2000 resamples of sequences), and the share of sequences where pred is better / worse."""
    d = np.array([boundary_metrics(p, s.truth, s.n)["mae"] - boundary_metrics(b, s.truth, s.n)["mae"]
                  for p, b, s in zip(pred, base, seqs)])
    boot = np.random.default_rng(seed).choice(d, (2000, len(d))).mean(1)
    return {"mean_diff": float(d.mean()), "ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
            "better": float((d < 0).mean()), "worse": float((d > 0).mean())}


def cp_predict(seqs: list[Seq], cfg: SegmenterConfig, robot: bool) -> list[list[int]]:
    """Change-point boundaries of every sequence (robot: proprio features, else the given features)."""
    out = []
    for s in seqs:
        x = robot_features(s.x, cfg.smooth, cfg.pos_weight) if robot else s.x
        zs = cfg.zscore and not robot  # robot_features are z-scored per block already
        out.append(changepoint_boundaries(x, len(s.steps), cfg.duration_weight, cfg.min_len, zs, cfg.jump_weight))
    return out


def tune(seqs: list[Seq], robot: bool, tol_frac: float) -> tuple[SegmenterConfig, list[dict]]:
    """Grid over duration_weight and jump_weight (robots: smooth, pos_weight; frames: zscore) on the
    tuning sequences; the best mean mae_frac wins (ties: the first in grid order)."""
    grid = []
    for w, jw, sm, pw, z in itertools.product((0.0, 0.03, 0.1, 0.3, 1.0, 3.0), (0.0, 0.1, 0.3, 1.0),
                                              (1, 5, 9) if robot else (1,), (0.0, 1.0, 2.0, 3.0) if robot else (0.0,),
                                              (True,) if robot else (True, False)):
        c = SegmenterConfig(duration_weight=w, smooth=sm, pos_weight=pw, zscore=z, jump_weight=jw)
        grid.append({"config": dataclasses.asdict(c), **score(cp_predict(seqs, c, robot), seqs, tol_frac)})
    best = min(grid, key=lambda r: r["mae_frac"])
    return SegmenterConfig(**best["config"]), grid


def dtw_world(cfg: EvalConfig, world: dict, backbone, text_encoder, log) -> tuple[object, object, dict]:
    """Train the "+ HN + DTW-Align" InstrAction model on the train split; dtw boundaries on val takes."""
    import torch

    from encoders.instraction.model import InstrActionConfig
    from encoders.instraction.negatives import order_swapped, render_caption, verb_altered, verb_phrases
    from encoders.instraction.segment import segment
    from encoders.instraction.train import InstrActionRunConfig, TextBank, _resample, train_instraction
    from envs.atomic_world.dataset import read_meta

    rc = InstrActionRunConfig(data=cfg.world, model=InstrActionConfig(w_distill=0.0, w_mam=0.0),
                              epochs=cfg.dtw_epochs, seed=cfg.seed, cache_dir=cfg.cache_dir)
    actions = list(read_meta(cfg.world)["vocab"]["action"])
    tr, ev = world["train"], world["val"]
    texts = [p for it in tr["items"] + ev["items"] for p in verb_phrases(it.steps) + [render_caption(it.subject, it.steps)]]
    texts += [t for it in tr["items"] for t in verb_altered(it.subject, it.steps, actions, 10**6)
              + order_swapped(it.subject, it.steps, 10**6)]
    bank = TextBank(text_encoder, texts)
    torch.manual_seed(cfg.seed)
    model, _ = train_instraction(rc, tr["feats"], tr["items"], bank, actions, log)
    fps = rc.frames_per_step
    keyed = [it for it in ev["items"] if len(it.steps) >= 2]
    pred = {"dtw": [], "dtw_centered": []}
    with torch.no_grad():
        for it, s in zip(keyed, ev["seqs"]):
            t_fix = fps * len(it.steps)
            tok = model.tokens(torch.from_numpy(_resample(s.x, t_fix)).float()[None])[0]
            pos = model.token_positions(t_fix).double() * (len(s.x) - 1) / max(1, t_fix - 1)
            phr = model.embed_text(bank.get(verb_phrases(it.steps)))
            pred["dtw"].append(segment(tok, phr, positions=pos))
            pred["dtw_centered"].append(segment(tok, phr, positions=pos, center=True))
    return model, bank, pred


def dtw_libero(seqs: list[Seq], model, text_encoder, backbone, fps: int) -> list[list[int]]:
    """dtw boundaries of LIBERO demos: pooled backbone features of agentview frames -> action tokens,
    against the skill names as verb phrases (the world-trained model; no LIBERO training)."""
    import torch

    from encoders.instraction.segment import segment
    from encoders.instraction.train import _resample

    out = []
    with torch.no_grad():
        for s in seqs:
            vid = torch.from_numpy(np.ascontiguousarray(s.frames)).permute(0, 3, 1, 2)[None]
            feats = backbone.extract(vid, tokens=False)[1][0].float().numpy()
            t_fix = fps * len(s.steps)
            tok = model.tokens(torch.from_numpy(_resample(feats, t_fix)).float()[None])[0]
            pos = model.token_positions(t_fix).double() * (len(feats) - 1) / max(1, t_fix - 1)
            phr = model.embed_text(torch.as_tensor(text_encoder.encode(list(s.steps))).float())
            out.append(segment(tok, phr, positions=pos, center=True))
    return out


def per_task_scores(seqs: list[Seq], uni: list[list[int]], cp: list[list[int]], tol_frac: float) -> dict:
    """Uniform and changepoint scores of the predictions `uni` / `cp` (one per sequence) per group
    (task), with the group's mean number of steps and frames."""
    out = {}
    for g in sorted({s.group for s in seqs}):
        k = [i for i, s in enumerate(seqs) if s.group == g]
        sub = [seqs[i] for i in k]
        out[g] = {"uniform": score([uni[i] for i in k], sub, tol_frac), "changepoint": score([cp[i] for i in k], sub, tol_frac),
                  "steps": float(np.mean([len(s.steps) for s in sub])), "frames": float(np.mean([s.n for s in sub]))}
    return out


def no_jump_choice(grid: list[dict]) -> SegmenterConfig:
    """The best tuning-grid config without the jump reward (`jump_weight=0`): the ablation of that term."""
    return SegmenterConfig(**min((r for r in grid if r["config"]["jump_weight"] == 0.0),
                                 key=lambda r: r["mae_frac"])["config"])


def world_scores(seqs: list[Seq], picked: dict[str, SegmenterConfig], tol_frac: float, seed: int) -> dict:
    """Uniform and each picked changepoint config on `seqs`, each with its paired difference to uniform."""
    uni = [uniform_split(s.n, len(s.steps)) for s in seqs]
    out: dict = {"uniform": score(uni, seqs, tol_frac), "mean_frames": float(np.mean([s.n for s in seqs]))}
    for name, c in picked.items():
        cp = cp_predict(seqs, c, False)
        out[name] = score(cp, seqs, tol_frac)
        out[f"{name}_minus_uniform"] = paired(cp, uni, seqs, seed)
    return out


def extra_world_scores(cfg: EvalConfig, backbone, picked: dict[str, SegmenterConfig], log=print) -> dict:
    """`world_scores` on every keystep take of each world in `cfg.extra_worlds` (both splits: none
    was used for tuning; the configs were picked on the main world's train split), and pooled."""
    out: dict = {}
    pooled: list[Seq] = []
    for root in cfg.extra_worlds:
        w = world_sets(cfg, backbone, root)
        seqs = w["train"]["seqs"] + w["val"]["seqs"]
        out[root] = world_scores(seqs, picked, cfg.tol_frac, cfg.seed)
        log(f"{root}: {len(seqs)} keystep takes; uniform {out[root]['uniform']['mae']:.2f}, "
            + ", ".join(f"{n} {out[root][n]['mae']:.2f}" for n in picked))
        pooled += seqs
    out["pooled"] = world_scores(pooled, picked, cfg.tol_frac, cfg.seed)
    return out


def world_rows(cfg: EvalConfig, res: dict, lh: list[Seq], best: SegmenterConfig | None, log=print) -> None:
    """The atomic-world rows into `res` (tuned on its train split, scored on val, + `extra_worlds`);
    with `dtw`, also the dtw subset of the LIBERO held-out demos `lh` (scored against `best`)."""
    from encoders import build_backbone, build_text_encoder

    bb = build_backbone("efficientnet_lite0")
    world = world_sets(cfg, bb)
    wt, wh = world["train"]["seqs"], world["val"]["seqs"]
    wbest, wgrid = tune(wt, False, cfg.tol_frac)
    log(f"world: {len(wt)} tuning / {len(wh)} held-out keystep takes; picked {wbest}")
    wres = world_scores(wh, {"changepoint": wbest}, cfg.tol_frac, cfg.seed)
    if cfg.dtw:
        te = build_text_encoder("minilm")
        model, _, pred = dtw_world(cfg, world, bb, te, log)
        wres["dtw"] = score(pred["dtw"], wh, cfg.tol_frac)
        wres["dtw_centered"] = score(pred["dtw_centered"], wh, cfg.tol_frac)
    if cfg.dtw and cfg.libero:
        sub = [s for s in lh if s.frames is not None]
        res["libero"]["dtw_subset"] = {
            "dtw_centered": score(dtw_libero(sub, model, te, bb, 12), sub, cfg.tol_frac),
            "uniform": score([uniform_split(len(s.frames), len(s.steps)) for s in sub], sub, cfg.tol_frac),
            "changepoint": score(cp_predict(sub, best, True), sub, cfg.tol_frac)}
    res["world"] = {"held_out": wres, "tuned": dataclasses.asdict(wbest), "grid": wgrid,
                    "mean_frames": float(np.mean([s.n for s in wh]))}
    if cfg.extra_worlds:  # + the ablation of the jump reward, which the world's cropped joins favour
        picked = {"changepoint": wbest, "changepoint_no_jump": no_jump_choice(wgrid)}
        res["world"]["held_out_no_jump"] = world_scores(wh, {"changepoint_no_jump": picked["changepoint_no_jump"]},
                                                        cfg.tol_frac, cfg.seed)
        res["extra_worlds"] = extra_world_scores(cfg, bb, picked, log)


def transfer_scores(cfg: EvalConfig, log=print) -> dict:
    """Every demo under each folder of `cfg.transfer` (none used for tuning), scored with the
    config file `cfg.transfer_config` as it is: uniform vs changepoint, overall and per task."""
    from configs.loader import load_config

    picked = load_config(SegmenterConfig, cfg.transfer_config)
    out: dict = {"config": cfg.transfer_config, "picked": dataclasses.asdict(picked)}
    for root in cfg.transfer:
        _, seqs = demo_sets(root, [], 0)
        uni, cp = [uniform_split(s.n, len(s.steps)) for s in seqs], cp_predict(seqs, picked, True)
        out[root] = {"uniform": score(uni, seqs, cfg.tol_frac), "changepoint": score(cp, seqs, cfg.tol_frac),
                     "changepoint_minus_uniform": paired(cp, uni, seqs, cfg.seed),
                     "per_task": per_task_scores(seqs, uni, cp, cfg.tol_frac)}
        log(f"{root}: {len(seqs)} demos; uniform {out[root]['uniform']['mae']:.2f}, "
            f"changepoint {out[root]['changepoint']['mae']:.2f} ({cfg.transfer_config})")
    return out


def run_segmentation_eval(cfg: EvalConfig, log=print) -> dict:
    """Every table row of docs/results/segmentation.md: {set: {method: metrics}} + tuning + seconds."""
    t0 = time.perf_counter()
    res: dict = {"config": dataclasses.asdict(cfg)}
    lh: list[Seq] = []
    if cfg.libero:  # LIBERO (empty: skip it and the sets below, e.g. for the world rows alone)
        lt, lh = demo_sets(cfg.libero, cfg.tune_tasks, cfg.tune_demos, cfg.dtw_libero_demos if cfg.dtw else 0)
        best, grid = tune(lt, True, cfg.tol_frac)
        log(f"libero: {len(lt)} tuning / {len(lh)} held-out demos; picked {best}")
        uni, cp = [uniform_split(s.n, len(s.steps)) for s in lh], cp_predict(lh, best, True)
        lib = {"uniform": score(uni, lh, cfg.tol_frac), "changepoint": score(cp, lh, cfg.tol_frac),
               "changepoint_minus_uniform": paired(cp, uni, lh, cfg.seed)}
        per_task = per_task_scores(lh, uni, cp, cfg.tol_frac)
        res["libero"] = {"held_out": lib, "per_task": per_task, "tuned": dataclasses.asdict(best), "grid": grid}
        # the same demos at instruction-step granularity (tuning: task 6 demos 0..tune_demos-1, the only task
        # with 2+ instruction steps), and Kitchen (tuning: its demos 0..kitchen_tune_demos-1 of every task);
        # each held-out set scored with the LIBERO choice ("changepoint_libero") and its own ("changepoint")
        extra = {"libero_instruction_steps": demo_sets(cfg.libero, [6], cfg.tune_demos, coarse=True)}
        if cfg.kitchen:
            extra["kitchen"] = demo_sets(cfg.kitchen, list(range(1000)), cfg.kitchen_tune_demos)
        for name, (et, eh) in extra.items():
            own, _ = tune(et, True, cfg.tol_frac)
            uni, cp = [uniform_split(s.n, len(s.steps)) for s in eh], cp_predict(eh, own, True)
            res[name] = {"held_out": {"uniform": score(uni, eh, cfg.tol_frac),
                                      "changepoint_libero": score(cp_predict(eh, best, True), eh, cfg.tol_frac),
                                      "changepoint": score(cp, eh, cfg.tol_frac),
                                      "changepoint_minus_uniform": paired(cp, uni, eh, cfg.seed)},
                         "tuned": dataclasses.asdict(own), "n_tuning": len(et)}
            log(f"{name}: {len(et)} tuning / {len(eh)} held-out demos; picked {own}")
    if cfg.world:
        world_rows(cfg, res, lh, best if cfg.libero else None, log)
    if cfg.transfer:
        res["transfer"] = transfer_scores(cfg, log)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    res["load_avg"] = list(os.getloadavg())
    if cfg.out:
        atomic_write_json(Path(cfg.out), res)
    return res
