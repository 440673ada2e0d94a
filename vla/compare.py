"""Latent-action pretraining compared (invact.txt Sec. 4 / App. A.3, Fig. 7): none vs LAQ vs InvAct
vs RoboAct-CLIP (vs any encoder), each through the same VLA pipeline into LIBERO.

The library behind scripts/compare_vla_pretraining.py (`main` is its command line, `compare` the run;
the table and its statistics are vla/compare_report.py and vla/heldout.py). With workers > 1 the
unfinished variants run in child processes of `python -m vla.compare`.

    python scripts/compare_vla_pretraining.py --config configs/vla/compare.yaml
    python scripts/compare_vla_pretraining.py --config configs/vla/compare.yaml variants=none,invact \\
        encoder_dirs.invact=runs/demo/invact/encoder out=runs/vla_compare/x
    python scripts/compare_vla_pretraining.py --config configs/vla/compare_tiny.yaml data=DIR demos=DIR out=DIR

Per variant (`out/<variant>/`), only the latent source differs; stage-2/3 configs, data, seeds and
the evaluation are identical:
    encoder_run/   the encoder trained through encoders/train.py (variants with a training config
                   in `encoder_configs` and no `encoder_dirs` entry)
    latents/       stage 1 (vla/latents.py; LAQ also stores its code indices -> stage 2 uses CE)
    pretrain/      stage 2 (vla/pretrain.py)                         -- absent for `none`
    posttrain/     stage 3 (vla/posttrain.py init=pretrain|none) + held-out demo action L1
    eval_<suite>/  envs/eval_libero.py on the configured tasks/trials (per-episode resume)
    result.json    the variant's row + the hash of everything that defines it; written last
A rerun skips every variant whose result.json carries the current hash, and each stage of an
unfinished one resumes. `out/` also gets config.yaml (resolved), compare.{md,json,png}; with
`results=docs/results/vla_compare` the three are copied there too.

Variant names: `none` (no latent pretraining: stage 3 with init=none), a name with an encoder
training config (laq, invact, roboact_clip: trained here, or given as `encoder_dirs.<name>=DIR`),
any other build_encoder registry name (e.g. random, with `encoder_args.<name>`), or an exported
encoder directory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from configs.loader import from_dict, parse_cli, read_yaml, save_config, set_dotted, to_dict
from configs.runs import atomic_write, atomic_write_json, atomic_write_text
from vla.compare_report import bar_plot, pooled, table_markdown, verdict
from vla.heldout import heldout_fields

REPO = Path(__file__).resolve().parents[1]
RESULT_FILE = "result.json"
NOTES_MARK = "<!-- notes: kept when the table above is regenerated -->"
TRAIN_CONFIGS = {"laq": "configs/encoder/laq.yaml", "invact": "configs/encoder/invact.yaml",
                 "roboact_clip": "configs/encoder/roboact_clip.yaml"}


@dataclasses.dataclass
class EvalSpec:
    suite: str = "libero_goal"
    tasks: str = "0,5,6,7"


@dataclasses.dataclass
class CompareConfig:
    variants: list[str] = dataclasses.field(default_factory=lambda: ["none", "laq", "invact", "roboact_clip"])
    encoders: list[str] = dataclasses.field(default_factory=list)  # extra variants: names or exported dirs
    encoder_configs: dict[str, str] = dataclasses.field(default_factory=lambda: dict(TRAIN_CONFIGS))
    encoder_dirs: dict[str, str] = dataclasses.field(default_factory=dict)  # variant -> exported encoder dir
    encoder_train: dict[str, Any] = dataclasses.field(default_factory=dict)  # overrides for every trained encoder
    encoder_args: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # build_encoder kwargs
    data: str = "runs/demo/atomic_world"  # clip index: encoder training + stage-1 latents
    demos: str = "runs/demo/libero_demos/libero_goal"  # stage-3 demos (comma-separated files/folders)
    out: str = "runs/vla_compare/default"
    seed: int = 0
    latents: dict[str, Any] = dataclasses.field(default_factory=dict)  # LatentsConfig overrides
    pretrain_config: str = "configs/vla/pretrain.yaml"
    pretrain: dict[str, Any] = dataclasses.field(default_factory=dict)  # PretrainConfig overrides
    posttrain_config: str = "configs/vla/posttrain.yaml"
    posttrain: dict[str, Any] = dataclasses.field(default_factory=dict)  # PosttrainConfig overrides
    evals: list[EvalSpec] = dataclasses.field(default_factory=lambda: [EvalSpec()])
    trials: int = 1
    max_steps: int = 150
    resolution: int = 128
    eval_args: dict[str, Any] = dataclasses.field(default_factory=dict)  # other LiberoEvalConfig fields
    results: str = ""  # also copy compare.{md,json,png} to <results>.{md,json,png}
    title: str = ""  # a line under the table's heading (budget, load)
    threads: int = 0  # per process; 0 = its share of the free cores
    progress: bool = True
    workers: int = 1  # unfinished variants run in this many child processes side by side (2 on a 2-core box)

    def validate(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers: must be >= 1, got {self.workers}")
        if not self.all_variants():
            raise ValueError("variants: give at least one (none, laq, invact, roboact_clip, a name or a dir)")
        if len(set(map(variant_slug, self.all_variants()))) != len(self.all_variants()):
            raise ValueError(f"variants: two variants share a folder name: {self.all_variants()}")
        if not self.evals:
            raise ValueError("evals: give at least one {suite, tasks}")
        if self.trials < 1 or self.max_steps < 0:
            raise ValueError("trials must be >= 1 and max_steps >= 0")

    def all_variants(self) -> list[str]:
        return list(dict.fromkeys([*self.variants, *self.encoders]))


def repo_path(p: str) -> Path:
    """A config file path as given, or relative to the repository root when not found from here."""
    return Path(p) if Path(p).exists() or Path(p).is_absolute() else REPO / p


def variant_slug(v: str) -> str:
    """Folder/table name of a variant: the name, or for a directory its last meaningful part."""
    p = Path(v)
    if len(p.parts) == 1:
        return v
    return p.parent.name if p.name in ("encoder", "") else p.name


# -- resolving a variant's latent source -----------------------------------------------------------
def encoder_source(cfg: CompareConfig, v: str) -> dict[str, Any]:
    """{"kind": none|dir|train|name, ...}; an unknown name or missing dir is one clear error."""
    from encoders.base import get_encoder_class

    if v == "none":
        return {"kind": "none"}
    if v in cfg.encoder_dirs:
        d = Path(cfg.encoder_dirs[v])
        if not (d / "config.json").is_file():
            raise FileNotFoundError(f"encoder_dirs.{v}={d}: not an exported encoder (no config.json)")
        return {"kind": "dir", "path": str(d)}
    if v in cfg.encoder_configs:
        y = repo_path(cfg.encoder_configs[v])
        return {"kind": "train", "config": str(y), "resolved": read_yaml(y), "overrides": cfg.encoder_train}
    if "/" in v or Path(v).is_dir():
        if not (Path(v) / "config.json").is_file():
            raise FileNotFoundError(f"variant {v!r}: not an exported encoder directory (no config.json)")
        return {"kind": "dir", "path": v}
    try:
        get_encoder_class(v)
    except KeyError:
        raise ValueError(f"variant {v!r}: unknown encoder (not none, not in encoder_configs "
                         f"{sorted(cfg.encoder_configs)}, not a registered encoder, not a directory)") from None
    return {"kind": "name", "name": v, "args": cfg.encoder_args.get(v, {})}


def resolve(cls: type, path: str | None, *overrides: dict[str, Any]) -> Any:
    """`cls` from YAML `path` <- each overrides mapping in turn (nested mappings merge key by key)."""
    data = read_yaml(repo_path(path)) if path else {}

    def put(prefix: str, val: Any) -> None:
        if isinstance(val, dict) and (val or not prefix):
            for k, x in val.items():
                put(f"{prefix}.{k}" if prefix else str(k), x)
        else:
            set_dotted(data, prefix, val)

    for ov in overrides:
        put("", ov)
    return from_dict(cls, data, source=str(path or cls.__name__))


def stage_configs(cfg: CompareConfig, vdir: Path, pretrained: bool) -> tuple[Any, Any]:
    """The resolved stage-2 and stage-3 configs of a variant (identical for all but paths/init)."""
    from vla.posttrain import PosttrainConfig
    from vla.pretrain import PretrainConfig

    common = {"seed": cfg.seed, "resume": True, "threads": cfg.threads}
    pre = resolve(PretrainConfig, cfg.pretrain_config, cfg.pretrain,
                  {**common, "latents": str(vdir / "latents"), "out": str(vdir / "pretrain")})
    post = resolve(PosttrainConfig, cfg.posttrain_config, cfg.posttrain,
                   {**common, "demos": cfg.demos, "out": str(vdir / "posttrain"),
                    "init": str(vdir / "pretrain") if pretrained else "none"})
    return pre, post


def variant_hash(cfg: CompareConfig, v: str, src: dict[str, Any]) -> str:
    """Everything that defines a variant's result, paths of its own folder excluded."""
    pre, post = stage_configs(cfg, Path("V"), src["kind"] != "none")
    drop = ("threads", "progress", "resume", "out")
    key = {
        "source": src, "data": cfg.data if src["kind"] != "none" else "", "demos": cfg.demos, "seed": cfg.seed,
        "latents": cfg.latents, "pretrain": {k: v for k, v in to_dict(pre).items() if k not in drop},
        "posttrain": {k: v for k, v in to_dict(post).items() if k not in drop},
        "evals": [dataclasses.asdict(e) for e in cfg.evals], "trials": cfg.trials, "max_steps": cfg.max_steps,
        "resolution": cfg.resolution, "eval_args": cfg.eval_args,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def encoder_key(cfg: CompareConfig, src: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps([src, cfg.data, cfg.seed], sort_keys=True, default=str).encode()).hexdigest()[:16]


def retire_stale(vdir: Path, h: str, ekey: str) -> None:
    """A variant folder from another config: move its stage folders aside (`<variant>.stale-<hash>`),
    since stage 2/3 resume and the evaluator's episode cache would otherwise reuse them. Kept: latents/
    (stage 1 checks its own job hash) and encoder_run/ when the encoder's part of the config is unchanged."""
    if not vdir.is_dir():
        return
    marker = vdir / "variant.json"
    old = json.loads(marker.read_text()) if marker.is_file() else {}
    if not old and (vdir / RESULT_FILE).is_file():
        old = {"config_hash": json.loads((vdir / RESULT_FILE).read_text()).get("config_hash")}
    if not old or old.get("config_hash") == h:
        return
    stale = vdir.parent / f"{vdir.name}.stale-{old.get('config_hash')}"
    keep = {"latents", "variant.json"} | ({"encoder_run"} if old.get("encoder_key") == ekey else set())
    for p in sorted(vdir.iterdir()):
        if p.name not in keep:
            stale.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(stale / p.name, ignore_errors=True)
            p.rename(stale / p.name)
            print(f"  config changed: {p} -> {stale / p.name}", flush=True)


# -- the stages ---------------------------------------------------------------------------------------
def train_encoder(cfg: CompareConfig, v: str, src: dict[str, Any], vdir: Path) -> str:
    """encoders/train.py with the variant's config (resumes; skipped when its final step is done)."""
    from configs.training import latest_checkpoint
    from encoders import train as enc_train

    run = vdir / "encoder_run"
    tcfg = resolve(enc_train.TrainConfig, src["config"], cfg.encoder_train,
                   {"data": cfg.data, "out": str(run), "seed": cfg.seed, "resume": True, "threads": cfg.threads})
    ck = latest_checkpoint(run)
    done = ck is not None and json.loads((ck / "state.json").read_text())["step"] >= tcfg.steps
    if done and (run / "encoder" / "config.json").is_file():
        print(f"[{v}] encoder: {run / 'encoder'} already trained ({tcfg.steps} steps)", flush=True)
    else:
        print(f"[{v}] encoder: training {tcfg.method} {tcfg.steps} steps on {cfg.data} -> {run}", flush=True)
        enc_train.train(tcfg, progress=cfg.progress)
    return str(run / "encoder")


def run_variant(cfg: CompareConfig, v: str, src: dict[str, Any], vdir: Path, h: str) -> dict[str, Any]:
    import vla.latents as stage1
    import vla.posttrain as stage3
    import vla.pretrain as stage2
    from envs.eval_libero import LiberoEvalConfig, evaluate

    t0 = time.perf_counter()
    ekey = encoder_key(cfg, src)
    retire_stale(vdir, h, ekey)
    vdir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(vdir / "variant.json", {"config_hash": h, "encoder_key": ekey, "spec": v})
    pre, post = stage_configs(cfg, vdir, src["kind"] != "none")
    row: dict[str, Any] = {"variant": variant_slug(v), "spec": v, "source": src["kind"], "config_hash": h,
                           "load_start": [round(x, 2) for x in os.getloadavg()]}
    if src["kind"] != "none":
        if src["kind"] == "train":
            enc, args = train_encoder(cfg, v, src, vdir), {}
        else:
            enc, args = src.get("path") or src["name"], src.get("args", {})
        print(f"[{v}] stage 1: latents of {cfg.data} through {enc}", flush=True)
        lcfg = resolve(stage1.LatentsConfig, None, cfg.latents, {
            "encoder": enc, "data": cfg.data, "out": str(vdir / "latents"), "threads": cfg.threads,
            "progress": cfg.progress})
        lcfg.encoder_args = dict(args)
        lat = stage1.run(lcfg)
        lm = json.loads((lat / "latents.json").read_text())
        row |= {"encoder": enc, "encoder_hash": lm["encoder_hash"], "latent_dim": lm["dim"],
                "latent_rows": lm["n"], "codebook_size": lm.get("codebook_size", 0)}
        print(f"[{v}] stage 2: {pre.steps} steps x batch {pre.batch} ({pre.model})", flush=True)
        s2 = stage2.train(pre, progress=cfg.progress)
        r2 = json.loads((s2 / "results.json").read_text())
        row |= {"stage2_loss": r2.get("final_loss"), "stage2_loss_kind": r2.get("loss_kind")}
    print(f"[{v}] stage 3: {post.steps} steps x batch {post.batch}, init={post.init}", flush=True)
    s3 = stage3.train(post, progress=cfg.progress)
    r3 = json.loads((s3 / "results.json").read_text())
    row |= heldout_fields(r3)
    row |= {"stage3_loss": r3.get("final_loss"), "evals": []}
    for e in cfg.evals:
        print(f"[{v}] eval: {e.suite} tasks {e.tasks}, {cfg.trials} trial(s), {cfg.max_steps} steps", flush=True)
        ecfg = LiberoEvalConfig(**{"video": False, "progress": cfg.progress, "threads": cfg.threads,
                                   **cfg.eval_args, "suite": e.suite, "tasks": e.tasks, "trials": cfg.trials,
                                   "max_steps": cfg.max_steps, "resolution": cfg.resolution,
                                   "policy": str(s3 / stage3.POLICY_DIR), "out": str(vdir / f"eval_{e.suite}")})
        res = evaluate(ecfg)
        row["evals"].append({"suite": res["suite"], "protocol": res["protocol"], "overall": res["overall"],
                             "tasks": [{k: t[k] for k in ("task_id", "name", "n", "successes", "success_rate",
                                                          "ci95", "errors")} for t in res["tasks"]]})
    row["overall"] = pooled(row["evals"])
    row["wall_s"] = round(time.perf_counter() - t0, 1)
    row["load_end"] = [round(x, 2) for x in os.getloadavg()]
    atomic_write_json(vdir / RESULT_FILE, row)  # last: marks the variant finished
    return row


def add_per_window(rows: list[dict[str, Any]], out: Path) -> None:
    """Rows of variants finished before per-window errors were kept: rescore their stage-3 runs once."""
    from vla.heldout import PER_WINDOW, rescore

    for r in rows:
        run = out / r["variant"] / "posttrain"
        if PER_WINDOW not in r and r.get("heldout_l1_norm") is not None and run.is_dir():
            print(f"[{r['variant']}] held-out windows: rescoring {run} for per-window errors", flush=True)
            r |= heldout_fields(rescore(run))
            atomic_write_json(out / r["variant"] / RESULT_FILE, r)


def write_outputs(cfg: CompareConfig, rows: list[dict[str, Any]], command: str = "") -> dict[str, Path]:
    out = Path(cfg.out)
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    md = "# VLA latent-action pretraining compared\n\n" + table_markdown(rows, cfg.title)
    md += f"Training seed {cfg.seed} (encoders, stage 2, stage 3).\n\n" + verdict(rows) + "\n"
    md += ("\nPer variant: " + "; ".join(
        f"{r['variant']} {r.get('wall_s', 0) / 60:.0f} min" + (f" (load {r['load_start'][0]:.1f} -> {r['load_end'][0]:.1f})"
                                                             if "load_start" in r else "") for r in rows) + ".\n")
    if command:
        md += f"\nCommand (load average 1/5/15 min when the table was written: {load}):\n\n```\n{command}\n```\n"
    files = {"md": out / "compare.md", "json": out / "compare.json", "png": out / "compare.png"}
    atomic_write_text(files["md"], md)
    atomic_write_json(files["json"], {"config": to_dict(cfg), "command": command, "load_avg": os.getloadavg(),
                                      "rows": rows})
    bar_plot(rows, files["png"])
    if cfg.results:
        for ext, f in files.items():
            dst = Path(f"{cfg.results}.{ext}")
            dst.parent.mkdir(parents=True, exist_ok=True)
            keep = dst.read_text().partition(NOTES_MARK)[2] if ext == "md" and dst.is_file() else ""
            if keep:  # hand-written notes below the marker survive a regeneration
                atomic_write_text(dst, f.read_text() + "\n" + NOTES_MARK + keep)
            else:
                atomic_write(dst, lambda p, f=f: shutil.copyfile(f, p))
    return files


def is_finished(vdir: Path, h: str) -> bool:
    f = vdir / RESULT_FILE
    try:
        return json.loads(f.read_text()).get("config_hash") == h
    except (OSError, ValueError):
        return False


def run_workers(cfg: CompareConfig, todo: list[str], out: Path) -> None:
    """Run the unfinished variants `todo` in `cfg.workers` child processes (`python -m vla.compare`, round robin),
    each with its share of the free cores, all into the same `out` (every variant has its own folder).
    Logs: `out/worker_<i>.log`. A failed worker is one error naming its log."""
    import subprocess

    from configs.threads import default_threads

    n = min(cfg.workers, len(todo))
    threads = cfg.threads or default_threads(0, workers=n)
    procs = []
    for i in range(n):
        part = todo[i::n]
        log = out / f"worker_{i}.log"
        args = [sys.executable, "-m", "vla.compare", "--config", str(out / "config.yaml"),
                f"variants=[{','.join(part)}]", "encoders=[]", "workers=1", f"threads={threads}",
                "progress=false", "results="]
        print(f"worker {i}: {', '.join(part)} ({threads} thread(s)) -> {log}", flush=True)
        with open(log, "w") as fh:
            procs.append((subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, cwd=REPO), log))
    failed = [(p.wait(), log) for p, log in procs]
    failed = [(rc, log) for rc, log in failed if rc != 0]
    if failed:
        tail = failed[0][1].read_text().strip().splitlines()[-1:] if failed[0][1].is_file() else []
        raise RuntimeError(f"compare worker failed (exit {failed[0][0]}), see {failed[0][1]}: {' '.join(tail)}")


def compare(cfg: CompareConfig, command: str = "") -> list[dict[str, Any]]:
    """Run (or resume) every variant; returns the table rows (also written under cfg.out)."""
    from envs.episodes import episode_files

    cfg.validate()
    episode_files(cfg.demos)  # missing demos: one error before anything runs
    srcs = {v: encoder_source(cfg, v) for v in cfg.all_variants()}
    if any(s["kind"] != "none" for s in srcs.values()) and not (Path(cfg.data) / "index.parquet").is_file():
        raise FileNotFoundError(f"data={cfg.data}: no index.parquet (the clip index for encoders and stage 1)")
    for p in (cfg.pretrain_config, cfg.posttrain_config):
        read_yaml(repo_path(p))
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    todo = [v for v, src in srcs.items() if not is_finished(out / variant_slug(v), variant_hash(cfg, v, src))]
    if cfg.workers > 1 and len(todo) > 1:
        run_workers(cfg, todo, out)
        save_config(cfg, out / "config.yaml")  # the workers wrote their own subsets there
    rows = []
    for i, (v, src) in enumerate(srcs.items()):
        vdir, h = out / variant_slug(v), variant_hash(cfg, v, src)
        f = vdir / RESULT_FILE
        old = json.loads(f.read_text()) if f.is_file() else {}
        if old.get("config_hash") == h:
            print(f"[{i + 1}/{len(srcs)}] {v}: finished ({f}), skipped", flush=True)
            rows.append(old)
            continue
        print(f"[{i + 1}/{len(srcs)}] {v}: {src['kind']} -> {vdir}", flush=True)
        rows.append(run_variant(cfg, v, src, vdir, h))
        o = rows[-1]["overall"]
        print(f"[{v}] done in {rows[-1]['wall_s']:.0f}s: success {o['successes']}/{o['n']}, held-out L1 "
              f"{rows[-1].get('heldout_l1_norm')}", flush=True)
    add_per_window(rows, out)
    files = write_outputs(cfg, rows, command)
    print(files["md"].read_text())
    print(f"table: {files['md']}, {files['json']}, plot: {files['png']}")
    return rows


def main(argv: list[str] | None = None) -> int:
    cfg = parse_cli(CompareConfig, argv, description=__doc__, prog="scripts/compare_vla_pretraining.py",
                    flags={"--out": ("out", "output folder (rerun to resume)")})
    args = sys.argv[1:] if argv is None else argv
    compare(cfg, "python scripts/compare_vla_pretraining.py " + " ".join(shlex.quote(a) for a in args))
    return 0


__all__ = ["CompareConfig", "EvalSpec", "compare", "main", "table_markdown"]

if __name__ == "__main__":
    from configs.cli import run_cli

    sys.exit(run_cli(main))
