"""Frozen encoders compared under one policy-head recipe: one table, resumable per encoder, task and episode.

The library behind scripts/compare_encoders.py (its docstring has the commands). `compare(CompareConfig)`
runs each *row* of the table: an encoder (or the blind control, or an already trained policy)
gets a head trained from the same recipe (a `policies/train.py` YAML: demos, tasks, head options,
steps, seed), and the final head is rolled out `trials` times on every evaluation task (the recipe's
`eval`: for LIBERO the training tasks T1-T4 and the held-out T5/T6 of roboact_clip Table III).
Reference rows (the scripted expert that wrote the demos, random actions) go through the same
evaluator, init states and env seed. The table reports the *final* head of each row (no selection
over evaluations on the test episodes).

Resume: every unit leaves its mark on disk and is skipped when present: a row's head (rows/<row>/
trained.json, written after training, holding the resolved training config; a changed config is an
error, not a silent mix), each episode (the evaluator's per-episode records under rows/<row>/eval/).
The table is always built from the episode records on disk (rows/<row>/row.json is its summary), so
a table killed at any point shows every row with its n so far and continues where it stopped when
the same command is run again; `only=` runs a subset of rows now (a table in parts); `run=false`
only rebuilds the table.

CPU time (user + system of this process and its evaluation workers) and wall time are kept per
row and part in row.json and reported beside the table. `publish=` copies the table, the configs
and every episode record (no videos, no weights) to a folder that is committed (docs/results/...).
"""

from __future__ import annotations

import dataclasses
import json
import resource
import shutil
import time
from pathlib import Path
from typing import Any

from configs.loader import load_config, parse_override, save_config, to_dict
from configs.runs import atomic_write_json, atomic_write_text

LIBERO_ROWS = {
    "backbone_mean": "backbone_mean",
    "random features": "random",
    "invact": "runs/demo/invact/encoder frames=8 stride=2",
    "roboact_clip": "runs/demo/roboact_clip/encoder frames=8 stride=2",
    "laq": "runs/demo/laq/encoder frames=2 stride=4",
    "blind (proprio + instruction)": "none",
}

# training-config fields that do not change the trained head (a rerun may change them)
RUN_ONLY = frozenset({"progress", "threads", "resume", "eval_workers", "video", "log_every", "cache_root"})
REFERENCE_LABELS = {"scripted": "scripted expert (privileged)", "random": "random actions"}


@dataclasses.dataclass
class CompareConfig:
    recipe: str = "configs/policy/head_libero.yaml"  # the policies/train.py YAML every head starts from
    head: dict[str, str] = dataclasses.field(default_factory=dict)  # recipe overrides for every row (key: value)
    # label -> "<encoder> [key=value ...]": a registered encoder, an exported encoder dir, "none" (the blind
    # control), or "policy:<dir>" (evaluate an already trained policy; key=value: evaluator options);
    # key=value are recipe overrides, plus `per_task=true|false` (this row's choice of per_task)
    rows: dict[str, str] = dataclasses.field(default_factory=lambda: dict(LIBERO_ROWS))
    references: tuple[str, ...] = ("scripted", "random")  # privileged expert and random actions
    # [row label, label of the row it is compared with] pairs: the table adds each difference per task and
    # overall, with Newcombe's 95 % interval (envs.protocol.newcombe_difference); references go by their label
    differences: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    # label -> [row labels]: one more line summing the rollouts of rows that differ only in their seed (head
    # seeds); a member joins once every training task has `trials` rollouts. `differences` may name a pool
    pools: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    per_task: bool = False  # one head per training task (R3M) instead of one instruction-conditioned head
    trials: int = 50  # rollouts per task (roboact_clip Table II: 50)
    workers: int = 2  # evaluation worker processes
    only: str = ""  # one row label, or a comma list of labels (or reference names) to run now; "" = all
    run: bool = True  # false: only (re)build the table from the records on disk
    out: str = "runs/tables/libero"
    publish: str = ""  # also copy table, configs and episode records here (e.g. docs/results/<table>)
    video: bool = False
    threads: int = 0
    progress: bool = True

    def validate(self) -> None:
        if self.trials < 1 or self.workers < 1:
            raise ValueError(f"trials and workers must be >= 1, got trials={self.trials} workers={self.workers}")
        if not Path(self.recipe).is_file():
            raise FileNotFoundError(f"recipe: {self.recipe} does not exist (a policies/train.py YAML)")
        if not self.rows and not self.references:
            raise ValueError("rows: name at least one row (label: encoder) or a reference policy")
        for ref in self.references:
            if ref not in ("scripted", "random"):
                raise ValueError(f"references: {ref!r} is not scripted or random")
        known = {*self.rows, *self.references}
        labels = {*self.rows, *(REFERENCE_LABELS[r] for r in self.references)}
        for name, members in self.pools.items():
            if name in labels:
                raise ValueError(f"pools: {name!r} is already a row label")
            missing = [m for m in members if m not in labels]
            if not members or missing:
                raise ValueError(f"pools.{name}: {missing or 'an empty list'} names no row (rows: {sorted(labels)})")
        labels |= set(self.pools)
        for a, b in self.differences:
            if a not in labels or b not in labels:
                raise ValueError(f"differences: {a!r} - {b!r} names no row (rows: {sorted(labels)})")
        unknown = sorted(self.selected() - known)
        if unknown:
            raise ValueError(f"only: {unknown} name no row or reference (rows: {sorted(known)})")


    def selected(self) -> set[str]:
        """The labels `only` names: the whole string when it is one label (labels may hold commas),
        else its comma-separated parts; empty = every row."""
        whole = self.only.strip()
        if whole in {*self.rows, *self.references}:
            return {whole}
        return {s.strip() for s in self.only.split(",") if s.strip()}


def slug(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in label).strip("_") or "row"


def parse_row(spec: str) -> tuple[str, list[str]]:
    """'<encoder> k=v ...' -> (encoder, ['k=v', ...]); every override must be key=value."""
    parts = spec.split()
    if not parts:
        raise ValueError("rows: an empty row spec (give an encoder name or dir, 'none' or 'policy:<dir>')")
    for p in parts[1:]:
        parse_override(p)
    return parts[0], parts[1:]


def recipe(cfg: CompareConfig, overrides: list[str] = ()) -> Any:
    """The recipe's TrainHeadConfig with the table's and the row's overrides."""
    from policies.train import TrainHeadConfig

    return load_config(TrainHeadConfig, cfg.recipe, [f"{k}={v}" for k, v in cfg.head.items()] + list(overrides))


def targets(base: Any) -> list[tuple[str, list[int]]]:
    """[(suite, task ids)] the table evaluates: the recipe's `eval` (default: its training tasks)."""
    from envs.evaluator import parse_tasks
    from envs.kitchen import parse_kitchen_tasks
    from policies.train import eval_targets

    out = []
    for suite, tasks in eval_targets(base):
        out.append((suite, parse_kitchen_tasks(tasks) if base.env == "kitchen" else parse_tasks(tasks, 10**6)))
    return out


def columns(base: Any) -> list[tuple[str, str]]:
    """[(key 'suite:task', header)]: training tasks first as T1.., then the held-out ones."""
    from envs.kitchen import TASKS

    train = set(base.task_ids())
    cols, n = [], 0
    for suite, ids in targets(base):
        for t in ids:
            n += 1
            held = "" if (suite in ("kitchen", base.suite) and t in train) else ", held out"
            name = TASKS[t].short if base.env == "kitchen" else f"T{n} ({suite} {t}{held})"
            cols.append((f"{suite}:{t}", name))
    return cols


def _cpu_s() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def _cell(succ: int, n: int) -> dict:
    from envs.protocol import wilson_interval

    return {"successes": succ, "n": n, "success_rate": succ / n if n else 0.0, "ci95": list(wilson_interval(succ, n))}


def evaluate_policy(cfg: CompareConfig, base: Any, policy: str, out: Path, tasks: list[tuple[str, list[int]]],
                    execution: str = "") -> None:
    """Roll `policy` out `trials` times per task into out/<suite>/ (resumes per episode; the table reads
    the episode records)."""
    frame = 0
    meta = Path(policy) / "policy.json"
    if meta.is_file():
        frame = int(json.loads(meta.read_text()).get("frame_size", 0))
    for suite, ids in tasks:
        common = dict(policy=policy, workers=cfg.workers, seed=base.eval_seed, max_steps=base.eval_max_steps,
                      video=cfg.video, progress=cfg.progress, threads=cfg.threads, execution=execution,
                      out=str(out / suite))
        which = ",".join(str(t) for t in ids)
        if base.env == "kitchen":
            from envs.eval_kitchen import KitchenEvalConfig, evaluate

            evaluate(KitchenEvalConfig(task=which, episodes=cfg.trials, resolution=frame or 96, **common))
        else:
            from envs.eval_libero import LiberoEvalConfig
            from envs.eval_libero import evaluate as evaluate_libero

            evaluate_libero(LiberoEvalConfig(suite=suite, tasks=which, trials=cfg.trials, resolution=frame or 128,
                                             **common))


def _timed(row_dir: Path, part: str, fn: Any) -> Any:
    """Run fn(), adding its wall and CPU seconds to the row's timing.json (summed over resumed parts)."""
    t0, c0 = time.time(), _cpu_s()
    out = fn()
    path = row_dir / "timing.json"
    timing = json.loads(path.read_text()) if path.is_file() else {}
    prev = timing.get(part, {"wall_s": 0.0, "cpu_s": 0.0, "parts": 0})
    timing[part] = {"wall_s": round(prev["wall_s"] + time.time() - t0, 1),
                    "cpu_s": round(prev["cpu_s"] + _cpu_s() - c0, 1), "parts": prev["parts"] + 1}
    atomic_write_json(path, timing)
    return out


def train_head(tcfg: Any, out: Path) -> Path:
    """Train (or find) the head of `tcfg` under out/; returns its policy dir. A finished head is kept;
    a folder trained with another config is refused (its records would mix two heads)."""
    from policies.train import train

    marker = out / "trained.json"
    want = to_dict(tcfg)
    if marker.is_file():
        have = json.loads(marker.read_text())["config"]
        # a field added after the head was trained reads as its default (defaults keep the old behaviour)
        have = {**to_dict(type(tcfg)()), **have}
        diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k) and k not in RUN_ONLY)
        if diff:
            raise ValueError(f"{out}: trained with another config (fields {diff}); remove the folder or change out=")
        return out / "policy"
    train(tcfg)
    atomic_write_json(marker, {"config": want})
    return out / "policy"


def run_row(cfg: CompareConfig, base: Any, label: str, spec: str) -> None:
    """Train the row's head(s) and roll them out (episode records under rows/<row>/eval/)."""
    row = Path(cfg.out) / "rows" / slug(label)
    enc, ovs = parse_row(spec)
    tasks = targets(base)
    per_task = cfg.per_task  # a row may choose per-task heads for itself: `per_task=true` in its spec
    for o in [o for o in ovs if parse_override(o)[0] == "per_task"]:
        per_task = bool(parse_override(o)[1])
        ovs.remove(o)
    if enc.startswith("policy:"):  # an already trained policy: key=value are evaluator options
        opts = dict(parse_override(o) for o in ovs)
        unknown = set(opts) - {"execution"}
        if unknown:
            raise ValueError(f"rows.{label}: a policy row takes execution=... only, got {sorted(unknown)}")
        _timed(row, "eval", lambda: evaluate_policy(cfg, base, enc[7:], row / "eval", tasks,
                                                   str(opts.get("execution", ""))))
        return
    # the row's own overrides come last: a row may ask for evaluations along the way (eval_every=,
    # eval_episodes=: the training-length ablation); the table itself always rolls out the final head
    common = ["eval_episodes=0", "resume=true", f"progress={cfg.progress}", f"threads={cfg.threads}",
              f"encoder={enc}", *ovs]
    if not per_task:
        tcfg = recipe(cfg, [*common, f"out={row / 'train'}"])
        pol = _timed(row, "train", lambda: train_head(tcfg, row / "train"))
        _timed(row, "eval", lambda: evaluate_policy(cfg, base, str(pol), row / "eval", tasks))
        return
    for t in base.task_ids():  # R3M: one head per training task, evaluated on that task only
        tcfg = recipe(cfg, [*common, f"task={t}", f"out={row / 'train' / f'task{t}'}"])
        pol = _timed(row, "train", lambda tcfg=tcfg, t=t: train_head(tcfg, row / "train" / f"task{t}"))
        own = [(s, [t]) for s, ids in tasks if t in ids and s in ("kitchen", base.suite)]
        _timed(row, "eval", lambda pol=pol, t=t, own=own: evaluate_policy(cfg, base, str(pol), row / "eval" / f"task{t}",
                                                                          own))


def reference_policy(env: str, name: str) -> str:
    return "kitchen_scripted" if (env == "kitchen" and name == "scripted") else name


def overall(cells: dict, keys: list[str]) -> dict:
    s = sum(cells[k]["successes"] for k in keys if k in cells)
    n = sum(cells[k]["n"] for k in keys if k in cells)
    return _cell(s, n)


def difference(a: dict | None, b: dict | None) -> dict | None:
    """Cell a - cell b: the difference of the success rates and its Newcombe 95 % interval (None if either is empty)."""
    from envs.protocol import newcombe_difference

    if not a or not b or not a["n"] or not b["n"]:
        return None
    return {"difference": a["success_rate"] - b["success_rate"],
            "ci95": list(newcombe_difference(a["successes"], a["n"], b["successes"], b["n"]))}


def pools(cfg: CompareConfig, rows: list[dict], train_keys: list[str]) -> list[dict]:
    """[{label, members, pending, cells, overall, member_overall}] for the config's `pools`: each task's
    successes and rollouts summed over the members whose training tasks are all finished (`trials` rollouts
    each), so a half-evaluated seed never tilts the pool. Its Wilson interval counts rollouts only: it does
    not widen for the spread between head seeds, which `member_overall` shows."""
    by = {r["label"]: r for r in rows}
    out = []
    for name, members in cfg.pools.items():
        done = [m for m in members if m in by and all(by[m]["cells"].get(k, {"n": 0})["n"] >= cfg.trials
                                                     for k in train_keys)]
        cells: dict[str, dict] = {}
        for k in sorted({k for m in done for k in by[m]["cells"]}):
            have = [by[m]["cells"][k] for m in done if k in by[m]["cells"]]
            cells[k] = _cell(sum(c["successes"] for c in have), sum(c["n"] for c in have))
        out.append({"label": name, "members": done, "pending": [m for m in members if m not in done],
                    "cells": cells, "overall": overall(cells, train_keys),
                    "member_overall": [overall(by[m]["cells"], train_keys)["success_rate"] for m in done]})
    return out


def differences(cfg: CompareConfig, rows: list[dict], cols: list[tuple[str, str]], train_keys: list[str]) -> list[dict]:
    """[{row, minus, cells: {key | 'overall': difference}}] for the config's `differences` whose rows (or
    pools, in `rows` beside them) are on disk."""
    by = {r["label"]: r for r in rows if r["cells"]}
    out = []
    for a, b in cfg.differences:
        if a in by and b in by:
            ca, cb = by[a]["cells"], by[b]["cells"]
            cells = {k: difference(ca.get(k), cb.get(k)) for k, _ in cols}
            cells["overall"] = difference(overall(ca, train_keys), overall(cb, train_keys))
            out.append({"row": a, "minus": b, "cells": cells})
    return out


def markdown(cfg: CompareConfig, base: Any, rows: list[dict], cols: list[tuple[str, str]], train_keys: list[str],
             diffs: list[dict], pooled: list[dict] | None = None) -> str:
    """The table of `rows`, then the seed pools and the differences as `compare` computed them."""
    def pct(c: dict | None) -> str:
        if not c or not c["n"]:
            return "-"
        lo, hi = c["ci95"]
        return f"{100 * c['success_rate']:.0f} [{100 * lo:.0f}, {100 * hi:.0f}] (n={c['n']})"

    lines = [f"# Encoder table: {base.env}, {'one head per task' if cfg.per_task else 'one head on all training tasks'}",
             "", f"Success % [95 % Wilson interval] (n rollouts) of the final head of each row, {cfg.trials} rollouts "
             f"per task asked, env seed {base.eval_seed}, init states 0..{cfg.trials - 1}. Recipe `{cfg.recipe}` "
             f"({base.steps} steps, seed {base.seed}, {base.max_demos} demos/task, views {'+'.join(base.views)}, "
             f"execution {base.execution}); row overrides in the spec column. Overall = the training tasks. CPU s: "
             "user + system seconds of the finished parts of the row (training, evaluation with its workers); "
             "episode s: the rollouts' own wall time summed over episodes (kept when a part is killed).", "",
             "| row | spec | " + " | ".join(h for _, h in cols) + " | overall | CPU s | episode s |",
             "|---|---|" + "---:|" * (len(cols) + 3)]
    for r in rows:
        lines.append(f"| {r['label']} | `{r['spec']}` | " + " | ".join(pct(r["cells"].get(k)) for k, _ in cols)
                     + f" | **{pct(overall(r['cells'], train_keys))}** | {r.get('cpu_s', 0):.0f} | "
                     f"{r.get('episode_s', 0):.0f} |")
    if pooled:
        lines += ["", "Pools: rows that differ only in their seed, each task's rollouts summed over the members whose "
                  "training tasks are finished (the interval counts rollouts, not the spread between seeds: "
                  "see each member's overall):", "",
                  "| pool | members (overall %) | " + " | ".join(h for _, h in cols) + " | overall |",
                  "|---|---|" + "---:|" * (len(cols) + 1)]
        for p in pooled:
            mem = ", ".join(f"{m} ({100 * v:.1f})" for m, v in zip(p["members"], p["member_overall"]))
            mem += "".join(f"; pending: {m}" for m in p["pending"])
            lines.append(f"| {p['label']} | {mem} | " + " | ".join(pct(p["cells"].get(k)) for k, _ in cols)
                         + f" | **{pct(p['overall'])}** |")
    if diffs:
        def pp(d: dict | None) -> str:
            if d is None:
                return "-"
            lo, hi = d["ci95"]
            return f"{100 * d['difference']:+.0f} [{100 * lo:+.0f}, {100 * hi:+.0f}]"

        lines += ["", "Differences, row minus the row it is compared with (percentage points [Newcombe's hybrid score 95 % "
                  "interval]; an interval holding 0 does not resolve a difference):", "",
                  "| row - compared with | " + " | ".join(h for _, h in cols) + " | overall |",
                  "|---|" + "---:|" * (len(cols) + 1)]
        for d in diffs:
            lines.append(f"| {d['row']} - {d['minus']} | " + " | ".join(pp(d["cells"][k]) for k, _ in cols)
                         + f" | **{pp(d['cells']['overall'])}** |")
    along = [r for r in rows if r.get("train_evals")]
    if along:
        lines += ["", "Evaluations along training (the row's own `eval_every` / `eval_episodes`; overall success):", ""]
        for r in along:
            ev = r["train_evals"]
            best = max(ev, key=lambda e: (e["success_rate"], -e["step"]))
            lines.append(f"- {r['label']}: " + ", ".join(f"step {e['step']}: {pct(e)}" for e in ev)
                         + f"; max {pct(best)} at step {best['step']}, final {pct(ev[-1])}")
    return "\n".join(lines) + "\n"


def bar_plot(rows: list[dict], cols: list[tuple[str, str]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from configs.runs import atomic_write

    fig, ax = plt.subplots(figsize=(max(6.0, 2.0 + 0.35 * len(cols) * max(1, len(rows))), 3.6))
    w = 0.8 / max(1, len(rows))
    x = np.arange(len(cols))
    for i, r in enumerate(rows):
        vals = [100 * r["cells"].get(k, {"success_rate": 0.0})["success_rate"] for k, _ in cols]
        ax.bar(x + i * w - 0.4 + w / 2, vals, w, label=r["label"])
    ax.set_xticks(x)
    ax.set_xticklabels([h.split(" (")[0] for _, h in cols])
    ax.set_ylabel("success %")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, ncol=min(3, len(rows)), loc="upper center", bbox_to_anchor=(0.5, -0.12))
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=120, format="png", bbox_inches="tight"))
    plt.close(fig)


def publish(out: Path, dest: Path) -> None:
    """Copy the table, its configs and every episode record (json only) from out/ to dest/."""
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out)
        keep = (p.suffix in (".md", ".png") and len(rel.parts) == 1) or rel.name in ("results.json", "config.yaml",
                                                                                      "row.json", "timing.json", "spec.txt")
        keep = keep or (p.suffix == ".json" and "episodes" in rel.parts)
        if p.is_file() and keep and "checkpoints" not in rel.parts and "policy" not in rel.parts:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, dest / rel)


def cells_from_records(eval_dir: Path, trials: int) -> dict:
    """{'suite:task': cell} over the episode records under `eval_dir` (trials < `trials`; an errored
    episode counts as a failure, as in the evaluator): the table is built from what is on disk, so a
    row killed mid-evaluation shows its n so far."""
    counts: dict[str, list[float]] = {}
    for p in sorted(eval_dir.rglob("trial*.json")):
        if "episodes" not in p.parts:
            continue
        rec = json.loads(p.read_text())
        if int(rec["trial"]) >= trials:
            continue
        c = counts.setdefault(f"{rec['suite']}:{int(rec['task_id'])}", [0, 0, 0.0])
        c[0] += int(bool(rec.get("success")))
        c[1] += 1
        c[2] += float(rec.get("wall_s", 0.0))
    return {k: {**_cell(int(s), int(n)), "episode_s": round(w, 1)} for k, (s, n, w) in sorted(counts.items())}


def row_summary(row_dir: Path, label: str, spec: str, trials: int) -> dict | None:
    """The row as it stands on disk (None if it never ran or ran as another spec); also row.json."""
    spec_file = row_dir / "spec.txt"
    if not spec_file.is_file() or spec_file.read_text() != spec:
        return None
    timing = json.loads((row_dir / "timing.json").read_text()) if (row_dir / "timing.json").is_file() else {}
    along = [json.loads(p.read_text()) for p in sorted(row_dir.glob("train/**/evals/step_*/summary.json"))]
    cells = cells_from_records(row_dir / "eval", trials)
    r = {"label": label, "spec": spec, "cells": cells, "timing": timing,
         "train_evals": [{k: e[k] for k in ("step", "successes", "n", "success_rate", "ci95")} for e in along],
         "cpu_s": round(sum(v["cpu_s"] for v in timing.values()), 1),
         # the episodes' own wall time (in their worker), summed: kept even when a part was killed
         "episode_s": round(sum(c["episode_s"] for c in cells.values()), 1),
         "wall_s": round(sum(v["wall_s"] for v in timing.values()), 1)}
    atomic_write_json(row_dir / "row.json", r)
    return r


def compare(cfg: CompareConfig) -> dict:
    cfg.validate()
    base = recipe(cfg)
    base.validate()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.run:  # the config of the last run that ran something (not of a table rebuild)
        save_config(cfg, out / "config.yaml")
    only = cfg.selected()
    cols = columns(base)
    train_keys = [f"{'kitchen' if base.env == 'kitchen' else base.suite}:{t}" for t in base.task_ids()]
    for label, spec in cfg.rows.items():  # fail before any long work on a bad spec or encoder
        enc, _ = parse_row(spec)
        if cfg.run and enc != "none" and not enc.startswith("policy:") and (not only or label in only):
            from policies.train import build_frozen_encoder

            build_frozen_encoder(enc)
    rows = []
    units = [(REFERENCE_LABELS[n], f"reference:{n}") for n in cfg.references] + list(cfg.rows.items())
    for label, spec in units:
        row_dir = out / "rows" / slug(label)
        name = spec.split(":", 1)[1] if spec.startswith("reference:") else label
        if cfg.run and (not only or name in only or label in only):
            row_dir.mkdir(parents=True, exist_ok=True)
            spec_file = row_dir / "spec.txt"
            if spec_file.is_file() and spec_file.read_text() != spec:
                raise ValueError(f"{row_dir}: holds row {label!r} as {spec_file.read_text()!r}, not {spec!r}; "
                                 "remove the folder or give the row another label")
            atomic_write_text(spec_file, spec)
            if spec.startswith("reference:"):
                pol = reference_policy(base.env, name)
                _timed(row_dir, "eval", lambda pol=pol, d=row_dir: evaluate_policy(cfg, base, pol, d / "eval",
                                                                                  targets(base)))
            else:
                run_row(cfg, base, label, spec)
        r = row_summary(row_dir, label, spec, cfg.trials)
        if r is not None:
            rows.append(r)
    res = {"config": to_dict(cfg), "recipe": to_dict(base), "columns": cols, "train_columns": train_keys, "rows": rows}
    for r in rows:
        r["overall"] = overall(r["cells"], train_keys)
    res["pools"] = pools(cfg, rows, train_keys)
    res["differences"] = differences(cfg, rows + res["pools"], cols, train_keys)
    atomic_write_json(out / "results.json", res)
    atomic_write_text(out / "results.md", markdown(cfg, base, rows, cols, train_keys, res["differences"], res["pools"]))
    if rows:
        bar_plot(rows, cols, out / "bar.png")
    if cfg.publish:
        publish(out, Path(cfg.publish))
    return res
