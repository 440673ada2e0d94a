"""Video->video retrieval benchmark (InvAct protocol) for any ActionEncoder.

    python encoders/evaluate.py --encoder backbone_mean --data /tmp/aw_tiny --split val --out results.json
    python encoders/evaluate.py --data /tmp/aw_tiny --compare random flow_mean backbone_mean --out cmp.json
    python encoders/evaluate.py --data runs/demos/libero_atomic --split all --out libero.json     # LIBERO segments
    python encoders/evaluate.py data=[runs/demos/libero_atomic,runs/demos/kitchen_atomic] --split all --out robot.json

Writes the results JSON (layout in `evaluate_encoder`), the resolved config next to it
(`<out stem>.config.yaml`), and plots under `<out stem>_plots/`; prints markdown tables.
hit@k values are percentages, same-scene fractions are in [0, 1].
"""

from __future__ import annotations

import dataclasses
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

from configs.cli import run_cli
from configs.loader import parse_cli, save_config
from configs.runs import atomic_write_json, seed_everything
from configs.threads import apply_threads
from encoders.benchmark.tables import markdown_table


@dataclasses.dataclass
class RetrievalEvalConfig:
    encoder: str = "backbone_mean"  # registry name or directory written by save_pretrained
    data: str | list[str] = ""  # dataset folder (index.parquet + meta.json), or a list of them (one gallery)
    split: str = "val"  # "all": every split
    out: str = "results.json"
    seed: int = 0
    compare: list[str] = dataclasses.field(default_factory=list)  # several encoders in one run
    views: list[str] = dataclasses.field(default_factory=list)  # empty: all views
    ks: list[int] = dataclasses.field(default_factory=lambda: [1, 5, 10])
    curve_k: int = 50  # same-scene fraction curve goes to this k
    batch_size: int = 8  # clips per encode() call
    cache_dir: str = ""  # feature/flow cache root; empty: $ATOMVLA_CACHE or .cache/atomvla
    plots: bool = True
    tsne_max: int = 1000  # t-SNE on at most this many clips (random subset, seeded)
    threads: int = 0  # torch threads; 0: the cores free to this process (configs/threads.py)

    def validate(self) -> None:
        if not self.data:
            raise ValueError("'data' is required (--data DIR)")
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"'ks' must be positive integers, got {self.ks}")
        if self.batch_size < 1 or self.threads < 0:
            raise ValueError("'batch_size' must be >= 1 and 'threads' >= 0 (0 = automatic)")


def data_folder(cfg: RetrievalEvalConfig) -> str:
    """The one folder to evaluate: `data`, or the mix folder of several (envs/datasets/mix.py), so a
    query's gallery spans every dataset (e.g. a LIBERO "open" finds Kitchen and atomic-world "open")."""
    roots = [cfg.data] if isinstance(cfg.data, str) else [str(d) for d in cfg.data]
    if len(roots) == 1:
        return roots[0]
    from encoders.features import default_cache_root
    from envs.datasets.mix import mix_datasets

    return str(mix_datasets(roots, [], cfg.cache_dir or default_cache_root()))


def encoder_label(spec: str) -> str:
    p = Path(spec)
    if not ("/" in spec or p.is_dir()):
        return spec
    # a trainer export lives in <run>/encoder: the run's name says more than "encoder"
    return p.parent.name if p.name == "encoder" and p.parent.name else p.name


def evaluate_encoder(encoder, cfg: RetrievalEvalConfig, label: str | None = None) -> tuple[dict[str, Any], Any, np.ndarray]:
    """Embed the split and score it. Returns (results, index, embeddings (M, D)).

    results: `{"encoder", "n_queries", "atomic"|"keystep": {"cross_scene"|"cross_view"|"all_scenes"|
    "cross_subject": {pair|"avg": {"hit@k": %, "chance@k": %, "n_queries"}}}, "same_scene_fraction":
    {"@k": frac, "curve": [...]}, ...}`; pairs as in encoders/benchmark/retrieval.py (cross_subject:
    h2r_g2g, h2r_x2x, r2h_g2g, r2h_x2x and their means h2r, r2h).
    """
    from encoders.benchmark.retrieval import evaluate_index
    from envs.atomic_world.dataset import is_ego

    t0 = time.time()
    views = tuple(cfg.views) if cfg.views else None
    split = None if cfg.split == "all" else cfg.split
    index, emb = encoder.embed_dataset(data_folder(cfg), split, views, batch_size=cfg.batch_size,
                               cache_root=cfg.cache_dir or None)
    t_embed = time.time() - t0
    scores = evaluate_index(index, emb, is_ego, cfg.ks, cfg.curve_k)
    atomic, keystep = scores["atomic"], scores["keystep"]
    results = {
        "encoder": label or encoder.registry_name,
        "encoder_type": encoder.registry_name,
        "dim": int(emb.shape[1]),
        "data": str(cfg.data),
        "split": cfg.split,
        "n_queries": int(len(index)),
        "n_keysteps": int(scores["n_keysteps"]),
        "atomic": {k: v for k, v in atomic.items() if k != "same_scene_fraction"},
        "keystep": {k: v for k, v in keystep.items() if k != "same_scene_fraction"},
        "same_scene_fraction": atomic.get("same_scene_fraction", {}),
        "keystep_same_scene_fraction": keystep.get("same_scene_fraction", {}),
        "units": {"hit@k": "percent of queries", "same_scene_fraction": "fraction in [0, 1]"},
        "seconds": {"embed": round(t_embed, 3), "total": round(time.time() - t0, 3)},
    }
    return results, index, emb


def _plots(cfg: RetrievalEvalConfig, label: str, index, emb: np.ndarray, plot_dir: Path) -> list[str]:
    from encoders.benchmark.plots import scatter_by, tsne_2d
    from envs.atomic_world.dataset import is_ego

    rng = np.random.default_rng(cfg.seed)
    sel = np.arange(len(emb))
    if len(sel) > cfg.tsne_max:
        sel = np.sort(rng.choice(len(sel), cfg.tsne_max, replace=False))
    if len(sel) < 3:
        return []
    xy = tsne_2d(emb[sel], seed=cfg.seed)
    safe = label.replace("/", "_").replace(":", "_")
    sub = index.iloc[sel]
    ego = sub["view"].map(is_ego).to_numpy(bool)
    return [
        str(scatter_by(xy, sub["scene"].to_numpy(), f"{label}: t-SNE by scene", plot_dir / f"tsne_{safe}_scene.png", ego=ego)),
        str(scatter_by(xy, sub["action"].to_numpy(), f"{label}: t-SNE by verb", plot_dir / f"tsne_{safe}_verb.png", ego=ego)),
    ]


def main(argv: list[str] | None = None) -> dict[str, Any]:

    from encoders.base import build_encoder
    from encoders.benchmark.retrieval import SETTINGS
    from envs.atomic_world.dataset import read_index

    argv = list(sys.argv[1:] if argv is None else argv)
    compare: list[str] = []
    if "--compare" in argv:  # `--compare A B C`: take every following word up to the next flag or key=value
        i = argv.index("--compare")
        j = i + 1
        while j < len(argv) and not argv[j].startswith("--") and "=" not in argv[j]:
            compare.append(argv[j])
            j += 1
        if not compare:
            raise ValueError("--compare needs at least one encoder name or directory")
        argv = argv[:i] + argv[j:]
    cfg = parse_cli(
        RetrievalEvalConfig, argv, prog="encoders/evaluate.py",
        description="Video->video retrieval benchmark (hit@k cross-scene / cross-view / cross-subject / all-scenes,\n"
                    "keysteps; tables lead with hit@1 and fit in 100 columns, the JSON has every number).\n"
                    "--compare A B C  evaluates several encoders (names, saved dirs or YAML files) in one run\n"
                    "                 and prints one table; the JSON is then {'compare': [results...]}.\n"
                    "--split all      evaluates every split.",
        flags={"--encoder": ("encoder", "encoder name or saved directory"), "--data": ("data", "dataset folder"),
               "--split": ("split", "split to evaluate"), "--out": ("out", "results JSON path"),
               "--seed": ("seed", "random seed"), "--cache-dir": ("cache_dir", "feature cache root")},
    )
    if compare:
        cfg.compare = compare
    apply_threads(cfg.threads)
    seed_everything(cfg.seed)
    out = Path(cfg.out)
    plot_dir = out.with_name(out.stem + "_plots")

    specs = cfg.compare or [cfg.encoder]
    # the dataset and every encoder name/directory are checked before any clip is encoded or file written
    read_index(data_folder(cfg))
    encoders = [build_encoder(spec) for spec in specs]
    save_config(cfg, out.with_name(out.stem + ".config.yaml"))
    all_results, curves = [], {}
    for spec, encoder in zip(specs, encoders):
        label = encoder_label(spec)
        res, index, emb = evaluate_encoder(encoder, cfg, label)
        if cfg.plots:
            res["plots"] = _plots(cfg, label, index, emb, plot_dir)
        curves[label] = res["same_scene_fraction"].get("curve", [])
        all_results.append(res)
    if cfg.plots and any(len(c) for c in curves.values()):
        from encoders.benchmark.plots import same_scene_plot

        p = same_scene_plot(curves, plot_dir / "same_scene_fraction.png", f"same-scene fraction ({cfg.split})")
        for r in all_results:
            r.setdefault("plots", []).append(str(p))

    final = all_results[0] if len(all_results) == 1 else {"compare": all_results, "encoders": [r["encoder"] for r in all_results]}
    atomic_write_json(out, final)
    print(markdown_table(all_results, cfg.ks))
    empty = []
    for level in ("atomic", "keystep"):
        for setting, pairs in all_results[0][level].items():
            none = [p for p in SETTINGS.get(setting, ()) if pairs.get(p, {}).get("n_queries", 0) == 0]
            empty += [f"{level}/{setting}"] if none and len(none) == len(SETTINGS[setting]) else [
                f"{level}/{setting}/{p}" for p in none]
    if empty:
        print("\n" + textwrap.fill(f"note: no queries with a non-empty gallery for {', '.join(empty)} (too few "
                                   "scenes/views/subjects/keysteps in this split): shown as —, a table with none "
                                   "is left out", 100))
    if all_results[0]["n_keysteps"] == 0:
        print("note: no keystep instances (keystep_id >= 0) in this split")
    print(f"\nwrote {out}")
    return final


if __name__ == "__main__":
    sys.exit(run_cli(main))
