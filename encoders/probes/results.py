"""Issue 15 results: temporal probes (Tables 2-4, Supp. Table 18), soft-DTW check + speed, InstrAction.

The library behind scripts/probe_results.py (its docstring has the commands): `probe_results` writes
`<out>.json` (every number) and `<out>.generated.md` (tables + the command). One process: the backbone
and the feature cache are shared by all probes.
"""

from __future__ import annotations

import dataclasses
import json
import time

from configs.runs import atomic_write_json, atomic_write_text
from configs.threads import apply_threads


@dataclasses.dataclass
class ProbeResultsConfig:
    """The options of scripts/probe_results.py (same names, same defaults)."""

    data: str = ""
    out: str = "docs/results/probes"
    backbone: str = "efficientnet_lite0"
    image_size: int = 64
    frames: int = 16
    proj_dim: int = 128
    heads: int = 8
    epochs: int = 25
    seeds: int = 1
    ia_epochs: int = 15
    threads: int = 0
    cache_dir: str = ""
    skip_instraction: bool = False
    encoders: str = ""  # comma list of exported encoder dirs to probe through tokens(video)
    encoder_frames: int = 8
    encoder_heads: int = 4


PROBE_RUNS = (("linear", {}), ("attentive", {}), ("self_attentive", {}), ("step", {}),
              ("step", {"pe": "after"}))


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def run_probes(a, log) -> list[dict]:
    from encoders import build_backbone
    from encoders.probes import ProbeConfig, run_probe

    bb = build_backbone(a.backbone, image_size=a.image_size or None)
    out = []
    for name, extra in PROBE_RUNS:
        for seed in range(a.seeds):
            cfg = ProbeConfig(probe=name, backbone=a.backbone, image_size=a.image_size, data=a.data, frames=a.frames,
                              proj_dim=a.proj_dim, heads=a.heads, epochs=a.epochs, seed=seed, threads=a.threads,
                              cache_dir=a.cache_dir, **extra)
            r = run_probe(cfg, log=log, backbone=bb, write=False)
            r["name"] = name + (" (PE after MHSA)" if extra.get("pe") == "after" else "")
            r.pop("history")
            out.append(r)
    return out


def run_encoder_probes(a, log) -> list[dict]:
    """The order-invariant attentive probe on action encoders' `tokens(video)` (issue 15: diagnose InvAct /
    RoboAct-CLIP). The probe cannot see order, so a drop under reversal is the encoder's own order sensitivity."""
    from encoders.probes import ProbeConfig, run_probe

    out = []
    for spec in [e for e in a.encoders.split(",") if e]:
        for name in ("attentive",):
            cfg = ProbeConfig(probe=name, encoder=spec, data=a.data, frames=a.encoder_frames, proj_dim=0,
                              heads=a.encoder_heads, epochs=a.epochs, seed=0, threads=a.threads)
            r = run_probe(cfg, log=log, write=False)
            r["name"] = f"{name} on {spec}"
            r.pop("history")
            out.append(r)
    return out


def _test(o: dict) -> str:
    vs = o.get("vs_correct")
    return f"{vs['lost']}/{vs['gained']} (p={vs['p']:.2g})" if vs else "-"


def seed_summary(runs: list[dict]) -> list[str]:
    """Mean and sample std over seeds per probe and order (the per-seed rows follow)."""
    import numpy as np

    lines = ["| probe | seeds | correct | shuffled | reversed | reversed - correct | to partner (correct) |",
             "|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r["name"] for r in runs):
        rs = [r for r in runs if r["name"] == name]

        def ms(vals: list[float]) -> str:
            v = 100 * np.asarray(vals, dtype=float)
            return f"{v.mean():.1f} ± {v.std(ddof=1):.1f}" if len(v) > 1 else f"{v.mean():.1f}"

        acc = {o: [r["orders"][o]["accuracy"] for r in rs] for o in ("correct", "shuffle", "reverse")}
        drop = [b - a for a, b in zip(acc["correct"], acc["reverse"])]
        lines.append(f"| {name} | {len(rs)} | {ms(acc['correct'])} | {ms(acc['shuffle'])} | {ms(acc['reverse'])} | "
                     f"{ms(drop)} | {ms([r['orders']['correct']['symmetric']['to_partner'] for r in rs])} |")
    return lines


def probe_tables(runs: list[dict]) -> list[str]:
    lines = [*seed_summary(runs), "",
             "| probe | seed | params | correct | shuffled | reversed | reversed vs correct: lost/gained (McNemar) "
             "| symmetric (correct) | symmetric (reversed) | to partner (correct) | to partner (reversed) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        o = r["orders"]
        lines.append(f"| {r['name']} | {r['config']['seed']} | {r['n_params']:,} | {_pct(o['correct']['accuracy'])} | "
                     f"{_pct(o['shuffle']['accuracy'])} | {_pct(o['reverse']['accuracy'])} | {_test(o['reverse'])} | "
                     f"{_pct(o['correct']['symmetric']['accuracy'])} | {_pct(o['reverse']['symmetric']['accuracy'])} | "
                     f"{_pct(o['correct']['symmetric']['to_partner'])} | {_pct(o['reverse']['symmetric']['to_partner'])} |")
    lines += ["", "Most common confusion per symmetric class (correct order, seed 0; Table 4 style):", ""]
    firsts = [r for r in runs if r["config"]["seed"] == 0 and "after" not in r["name"]]
    lines.append("| class | " + " | ".join(r["name"] for r in firsts) + " |")
    lines.append("|---|" + "---|" * len(firsts))
    for c in firsts[0]["orders"]["correct"]["confusions"]:
        cells = []
        for r in firsts:
            cf = r["orders"]["correct"]["confusions"][c]
            mc = f"{cf['most_confused_with']} {_pct(cf['rate'])}" if cf["most_confused_with"] else "none"
            cells.append(f"acc {_pct(cf['accuracy'])}; {mc}")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    return lines


def run_instraction_variants(a, log) -> dict:
    from encoders import build_backbone, build_text_encoder
    from encoders.instraction.model import InstrActionConfig
    from encoders.instraction.train import InstrActionRunConfig, run_instraction

    bb = build_backbone(a.backbone, image_size=a.image_size or None)
    te = build_text_encoder("minilm")
    variants = {
        "contrastive only": InstrActionConfig(hard_negatives=False, w_distill=0.0, w_dtw=0.0, w_mam=0.0),
        "+ hard negatives (HN)": InstrActionConfig(w_distill=0.0, w_dtw=0.0, w_mam=0.0),
        "+ HN + distill + MAM": InstrActionConfig(w_dtw=0.0),
        "+ HN + DTW-Align": InstrActionConfig(w_distill=0.0, w_mam=0.0),
        "+ HN + distill + DTW-Align + MAM (full)": InstrActionConfig(),
    }
    out = {}
    for name, mcfg in variants.items():
        cfg = InstrActionRunConfig(data=a.data, backbone=a.backbone, model=mcfg, epochs=a.ia_epochs,
                                   cache_dir=a.cache_dir)
        t0 = time.perf_counter()
        r = run_instraction(cfg, log=log, backbone=bb, text_encoder=te)
        r["config"] = dataclasses.asdict(cfg)
        log(f"instraction [{name}] {time.perf_counter() - t0:.0f}s: semantic R@1 {r['semantic']['R@1']:.3f}, "
            f"logic {r.get('logic', {}).get('accuracy')}, seg {r.get('segmentation')}")
        out[name] = r
    return out


def instraction_tables(res: dict) -> list[str]:
    lines = ["| variant | Sem. R@1 | Sem. R@5 | Sem. mean rank | Logic acc (chance) | T2V R@1/5/10 | V2T R@1/5/10 "
             "| boundary error, cosine | centred cosine | uniform split |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in res.items():
        s, d, g = r["semantic"], r["dynamics"], r.get("segmentation", {})
        lg = r.get("logic", {})
        lines.append(
            f"| {name} | {_pct(s['R@1'])} | {_pct(s['R@5'])} | {s['mean_rank']:.2f} | "
            f"{_pct(lg.get('accuracy'))} ({_pct(lg.get('chance'))}) | "
            + "/".join(_pct(d['t2v'][f'R@{k}']) for k in (1, 5, 10)) + " | "
            + "/".join(_pct(d['v2t'][f'R@{k}']) for k in (1, 5, 10)) + " | "
            f"{g.get('mean_boundary_error', float('nan')):.2f} | "
            f"{g.get('mean_boundary_error_centered', float('nan')):.2f} | {g.get('uniform_baseline', float('nan')):.2f} |")
    return lines


def probe_results(a: ProbeResultsConfig, command: str = "") -> dict:
    """Every run of the issue-15 results; writes `<out>.json` and `<out>.generated.md`, returns the JSON."""
    apply_threads(a.threads)
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.0f}s] {msg}", flush=True)

    from encoders.instraction import bench

    result = {"command": command, "args": dataclasses.asdict(a)}
    result["probes"] = run_probes(a, log)
    if a.encoders:
        result["encoder_probes"] = run_encoder_probes(a, log)
    result["soft_dtw"] = bench.run(repeats=3)
    if not a.skip_instraction:
        result["instraction"] = run_instraction_variants(a, log)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    atomic_write_json(a.out + ".json", result)
    md = [f"Command: `{result['command']}` ({result['seconds']:.0f} s).", "", *probe_tables(result["probes"]), ""]
    if "encoder_probes" in result:
        md += ["Probes on action-encoder tokens:", "", *probe_tables(result["encoder_probes"]), ""]
    md += [
          "Soft-DTW (gamma 0.1, float32, one thread):", "", "```json",
          json.dumps(result["soft_dtw"], indent=1), "```"]
    if "instraction" in result:
        md += ["", *instraction_tables(result["instraction"])]
    atomic_write_text(a.out + ".generated.md", "\n".join(md) + "\n")
    log(f"wrote {a.out}.json and {a.out}.generated.md")
    return result
