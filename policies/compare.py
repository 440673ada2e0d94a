"""Frozen encoders compared under one policy-head protocol: identical heads, seeds, demos and budgets.

The library behind scripts/compare_encoders.py (its docstring has the commands and the protocol):
`compare(CompareConfig)` trains one head per (encoder, task) with `policies.train.train`, adds the
reference rows (scripted expert, random actions) under the same evaluator, and writes results.json,
results.md (success per task with 95% Wilson intervals) and bar.png. Kitchen demos missing from
`demo_dir` are generated first (`envs.demo_tasks.make_kitchen_demos`). Everything resumes. Workers of
the evaluator unpickle names from this module, never from a script's `__main__`.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from configs.loader import save_config
from configs.runs import atomic_write_json, atomic_write_text


@dataclasses.dataclass
class CompareConfig:
    env: str = "kitchen"
    tasks: str = "all"  # kitchen: all | names | ids; libero: training task ids (T1-T4 = 0,5,6,7)
    suite: str = "libero_goal"
    heldout: str = "libero_10:7;libero_spatial:4"  # libero: T5/T6 evaluated, never trained on ("" = none)
    encoders: str = "invact,roboact_clip,backbone_mean,random"
    # a bare trainable name uses its trained export when that folder exists (else the untrained
    # registered network, flagged in the table); "" = never substitute
    exports: str = "invact=runs/demo/invact/encoder,roboact_clip=runs/demo/roboact_clip/encoder"
    demos: int = 25  # demos per task
    demo_dir: str = "runs/demos/kitchen"
    out: str = "runs/compare/kitchen"
    seed: int = 0
    steps: int = 2000
    batch_size: int = 32
    lr: float = 1e-3
    head: str = "mlp"
    frames: int = 8
    stride: int = 2
    views: tuple[str, ...] = ("agentview_rgb", "eye_in_hand_rgb")
    eval_every: int = 500
    eval_episodes: int = 10
    eval_max_steps: int = 0
    eval_workers: int = 1
    reference_rows: bool = True  # also evaluate the scripted expert and random actions
    demo_resolution: int = 96  # resolution of generated kitchen demos
    threads: int = 0
    cache_root: str = ""
    progress: bool = False

    def encoder_list(self) -> list[tuple[str, str]]:
        out = []
        for part in self.encoders.split(","):
            part = part.strip()
            if not part:
                continue
            label, sep, spec = part.partition("=")
            out.append((label.strip(), spec.strip() if sep else label.strip()))
        if not out:
            raise ValueError("encoders: name at least one encoder")
        subs = dict(p.split("=", 1) for p in self.exports.split(",") if "=" in p)
        out = [(lb, subs[sp] if sp == lb and sp in subs and Path(subs[sp]).is_dir() else sp) for lb, sp in out]
        labels = [lb for lb, _ in out]
        if len(set(labels)) != len(labels):
            raise ValueError(f"encoders: duplicate labels in {labels}")
        return out


def task_list(cfg: CompareConfig) -> list[int]:
    if cfg.env == "kitchen":
        from envs.kitchen import parse_kitchen_tasks

        return parse_kitchen_tasks(cfg.tasks)
    from envs.evaluator import parse_tasks

    return parse_tasks(cfg.tasks, 10**6)


def ensure_kitchen_demos(cfg: CompareConfig, tasks: list[int]) -> None:
    """Generate the missing (or too short) kitchen demo files with the scripted experts."""
    import h5py

    from envs.demo_tasks import KitchenDemoConfig, make_kitchen_demos
    from envs.kitchen import TASKS

    todo = []
    for t in tasks:
        f = Path(cfg.demo_dir) / "kitchen" / f"{TASKS[t].short}_demo.hdf5"
        n = 0
        if f.is_file():
            with h5py.File(f, "r") as h:
                n = int(h["data"].attrs.get("num_demos", 0))
        if n < cfg.demos:
            todo.append(TASKS[t].short)
    if todo:
        make_kitchen_demos(KitchenDemoConfig(task=",".join(todo), episodes=cfg.demos, out=cfg.demo_dir,
                                             resolution=cfg.demo_resolution))


def train_cfg(cfg: CompareConfig, spec: str, task: str, out: Path, eval_spec: str = ""):
    from policies.train import TrainHeadConfig

    return TrainHeadConfig(env=cfg.env, task=task, suite=cfg.suite, eval=eval_spec, encoder=spec,
                           demos=cfg.demo_dir, max_demos=cfg.demos, out=str(out), seed=cfg.seed, steps=cfg.steps,
                           batch_size=cfg.batch_size, lr=cfg.lr, head=cfg.head, frames=cfg.frames,
                           stride=cfg.stride, views=tuple(cfg.views), eval_every=cfg.eval_every,
                           eval_episodes=cfg.eval_episodes, eval_max_steps=cfg.eval_max_steps,
                           eval_workers=cfg.eval_workers, threads=cfg.threads, cache_root=cfg.cache_root,
                           resume=True, progress=cfg.progress)


def _cell(succ: int, n: int) -> dict:
    from envs.protocol import wilson_interval

    return {"successes": succ, "n": n, "success_rate": succ / n if n else 0.0, "ci95": list(wilson_interval(succ, n))}


def reference_row(cfg: CompareConfig, policy: str, out: Path, targets: list[tuple[str, str]]) -> dict:
    """Success per (suite, task) of a reference policy under the same evaluator and episodes."""
    cells = {}
    for suite, tasks in targets:
        if cfg.env == "kitchen":
            from envs.eval_kitchen import KitchenEvalConfig, evaluate

            res = evaluate(KitchenEvalConfig(task=tasks, policy=policy, episodes=cfg.eval_episodes, out=str(out / suite),
                                             seed=100, max_steps=cfg.eval_max_steps, video=False, progress=False,
                                             workers=cfg.eval_workers, resolution=cfg.demo_resolution))
        else:
            from envs.eval_libero import LiberoEvalConfig
            from envs.eval_libero import evaluate as evaluate_libero

            res = evaluate_libero(LiberoEvalConfig(suite=suite, tasks=tasks, policy=policy, trials=cfg.eval_episodes,
                                                   out=str(out / suite), seed=100, max_steps=cfg.eval_max_steps,
                                                   video=False, progress=False, workers=cfg.eval_workers))
        for t in res["tasks"]:
            cells[f"{suite}:{t['task_id']}"] = _cell(t["successes"], t["n"])
    return cells


def head_cells(summary: dict, which: str) -> dict:
    """Per-task cells of one training run's `max` (protocol) or `final` evaluation."""
    ev = summary.get(which)
    if not ev:
        return {}
    return {f"{t['suite']}:{t['task_id']}": _cell(t["successes"], t["n"]) for t in ev["tasks"]}


def overall(cells: dict, keys: list[str]) -> dict:
    s = sum(cells[k]["successes"] for k in keys if k in cells)
    n = sum(cells[k]["n"] for k in keys if k in cells)
    return _cell(s, n)


def column_names(cfg: CompareConfig, tasks: list[int]) -> list[tuple[str, str]]:
    """[(key, header)] of the table's task columns."""
    if cfg.env == "kitchen":
        from envs.kitchen import TASKS

        return [(f"kitchen:{t}", TASKS[t].short) for t in tasks]
    cols = [(f"{cfg.suite}:{t}", f"T{i + 1} ({cfg.suite} {t})") for i, t in enumerate(tasks)]
    for j, part in enumerate(p for p in cfg.heldout.split(";") if p.strip()):
        suite, _, ids = part.strip().partition(":")
        for t in ids.split(","):
            cols.append((f"{suite}:{int(t)}", f"T{len(tasks) + j + 1} ({suite} {int(t)}, held out)"))
    return cols


def markdown(cfg: CompareConfig, rows: list[dict], cols: list[tuple[str, str]], train_keys: list[str]) -> str:
    def pct(c: dict | None) -> str:
        if not c:
            return "-"
        return f"{100 * c['success_rate']:.0f} [{100 * c['ci95'][0]:.0f}, {100 * c['ci95'][1]:.0f}]"

    head = "| encoder / policy | " + " | ".join(h for _, h in cols) + " | overall | final (overall) |"
    lines = [f"# Encoder comparison: {cfg.env}, {cfg.demos} demos/task, identical {cfg.head} heads", "",
             f"Success % [95% Wilson CI]; heads: {cfg.steps} steps, batch {cfg.batch_size}, lr {cfg.lr}, seed {cfg.seed}, "
             f"window {cfg.frames} frames x stride {cfg.stride}, views {'+'.join(cfg.views)}; "
             f"{cfg.eval_episodes} rollouts/task every {cfg.eval_every} steps, max over evaluations "
             f"(final evaluation in the last column). Overall = the training tasks"
             + (" (held-out columns excluded)." if cfg.env == "libero" else "."), "",
             head, "|---|" + "---:|" * (len(cols) + 2)]
    for r in rows:
        cells = r["max"]
        lines.append(f"| {r['label']} | " + " | ".join(pct(cells.get(k)) for k, _ in cols)
                     + f" | **{pct(overall(cells, train_keys))}** | "
                     + (pct(overall(r['final'], train_keys)) if r.get("final") else "-") + " |")
    return "\n".join(lines) + "\n"


def bar_plot(rows: list[dict], cols: list[tuple[str, str]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(max(6.0, 2.0 + 0.35 * len(cols) * max(1, len(rows))), 3.6))
    w = 0.8 / max(1, len(rows))
    x = np.arange(len(cols))
    for i, r in enumerate(rows):
        vals = [100 * r["max"].get(k, {"success_rate": 0.0})["success_rate"] for k, _ in cols]
        ax.bar(x + i * w - 0.4 + w / 2, vals, w, label=r["label"])
    ax.set_xticks(x)
    ax.set_xticklabels([h.split(" (")[0] for _, h in cols])
    ax.set_ylabel("success %")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, ncol=min(3, len(rows)), loc="upper center", bbox_to_anchor=(0.5, -0.12))
    fig.tight_layout()
    from configs.runs import atomic_write

    atomic_write(path, lambda p: fig.savefig(p, dpi=120, format="png", bbox_inches="tight"))
    plt.close(fig)


def compare(cfg: CompareConfig) -> dict:
    from policies.train import build_frozen_encoder, train

    if cfg.env not in ("kitchen", "libero"):
        raise ValueError(f"unknown env {cfg.env!r}: use kitchen or libero")
    t0 = time.time()
    out = Path(cfg.out)
    tasks = task_list(cfg)
    encoders = cfg.encoder_list()
    for _, spec in encoders:  # fail before any long work if an encoder cannot be built
        build_frozen_encoder(spec)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    if cfg.env == "kitchen":
        ensure_kitchen_demos(cfg, tasks)
    cols = column_names(cfg, tasks)
    train_keys = [f"{'kitchen' if cfg.env == 'kitchen' else cfg.suite}:{t}" for t in tasks]
    rows = []
    if cfg.reference_rows:
        if cfg.env == "kitchen":
            targets = [("kitchen", ",".join(str(t) for t in tasks))]
            scripted = "kitchen_scripted"
        else:
            targets = [(cfg.suite, ",".join(str(t) for t in tasks))]
            targets += [tuple(p.strip().split(":", 1)) for p in cfg.heldout.split(";") if p.strip()]  # type: ignore[misc]
            scripted = "scripted"
        for label, pol in (("scripted expert (privileged)", scripted), ("random actions", "random")):
            cells = reference_row(cfg, pol, out / "reference" / pol, targets)
            rows.append({"label": label, "policy": pol, "max": cells, "final": None})
    for name, spec in encoders:
        label = f"{name} (untrained: no export found)" if spec in ("invact", "roboact_clip") else name
        if cfg.env == "kitchen":  # R3M: one head per task
            mx: dict = {}
            fin: dict = {}
            runs = {}
            for t in tasks:
                s = train(train_cfg(cfg, spec, str(t), out / "runs" / name / f"task{t}"))
                mx.update(head_cells(s, "max"))
                fin.update(head_cells(s, "final"))
                runs[t] = {"max_step": s["max"]["step"] if s["max"] else None, "wall_s": s["wall_s"],
                           "features_from_cache": s["features_from_cache"]}
        else:  # one head on T1-T4, evaluated there and on the held-out tasks
            ev = ";".join([f"{cfg.suite}:{','.join(str(t) for t in tasks)}",
                           *[p.strip() for p in cfg.heldout.split(";") if p.strip()]])
            s = train(train_cfg(cfg, spec, ",".join(str(t) for t in tasks), out / "runs" / name, eval_spec=ev))
            mx, fin = head_cells(s, "max"), head_cells(s, "final")
            runs = {"all": {"max_step": s["max"]["step"] if s["max"] else None, "wall_s": s["wall_s"]}}
        rows.append({"label": label, "encoder": spec, "max": mx, "final": fin, "runs": runs})
    res = {"config": dataclasses.asdict(cfg), "columns": cols, "train_columns": train_keys, "rows": rows,
           "wall_s": round(time.time() - t0, 1)}
    for r in rows:
        r["overall"] = overall(r["max"], train_keys)
    atomic_write_json(out / "results.json", res)
    atomic_write_text(out / "results.md", markdown(cfg, rows, cols, train_keys))
    bar_plot(rows, cols, out / "bar.png")
    return res
