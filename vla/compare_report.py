"""The latent-action comparison's table, verdict and bar plot (vla/compare.py):
LIBERO success with Wilson intervals per task and pooled, held-out action L1 with demo-bootstrap
intervals and the paired difference from the `none` variant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from configs.runs import atomic_write


def pooled(evals: list[dict[str, Any]]) -> dict[str, Any]:
    """Successes of several evaluations (suites) pooled into one count with its Wilson 95% interval."""
    from envs.protocol import wilson_interval

    n = sum(e["overall"]["n"] for e in evals)
    s = sum(e["overall"]["successes"] for e in evals)
    return {"n": n, "successes": s, "success_rate": s / n if n else 0.0, "ci95": list(wilson_interval(s, n)),
            "errors": sum(e["overall"].get("errors", 0) for e in evals)}


# -- the table and the plot ---------------------------------------------------------------------------
def table_markdown(rows: list[dict[str, Any]], title: str = "") -> str:
    cols = [(e["suite"], t["task_id"]) for e in rows[0]["evals"] for t in e["tasks"]]
    short = {"libero_goal": "goal", "libero_10": "l10"}
    head = ["variant", "latents"] + [f"{short.get(s, s)} {t}" for s, t in cols] + [
        "success", "95% CI", "held-out L1 (norm) [95% CI]", "vs none [95% CI]", "held-out L1 (raw)", "stage-2 loss"]
    ref = next((r for r in rows if r.get("source") == "none"), None)

    def cell(r: dict[str, Any]) -> list[str]:
        per = {(e["suite"], t["task_id"]): f"{t['successes']}/{t['n']}" for e in r["evals"] for t in e["tasks"]}
        o = r["overall"]
        lat = "-" if r["source"] == "none" else (
            f"{r['latent_dim']}-d" + (f", {r['codebook_size']} codes (CE)" if r.get("codebook_size") else " (cos)"))
        l1n, l1r, s2 = r.get("heldout_l1_norm"), r.get("heldout_l1_raw"), r.get("stage2_loss")
        return [r["variant"], lat] + [per.get(c, "-") for c in cols] + [
            f"{o['successes']}/{o['n']} = {100 * o['success_rate']:.0f}%",
            f"[{100 * o['ci95'][0]:.1f}, {100 * o['ci95'][1]:.1f}]",
            "-" if l1n is None else f"{l1n:.3f}" + (" [{:.3f}, {:.3f}]".format(*r["heldout_l1_norm_ci95"])
                                                    if r.get("heldout_l1_norm_ci95") else ""),
            l1_vs(r, ref), "-" if l1r is None else f"{l1r:.3f}", "-" if s2 is None else f"{s2:.3f}"]

    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(r)) + " |" for r in rows]
    base = next((r for r in rows if r.get("heldout_l1_norm_mean_baseline") is not None), None)
    if base:
        lines.append(f"\nMean-action constant predictor on the same held-out windows: L1 "
                     f"{base['heldout_l1_norm_mean_baseline']:.3f} (norm) / {base['heldout_l1_raw_mean_baseline']:.3f} (raw).")
    p = rows[0]["evals"][0]["protocol"]
    lines.append(f"Protocol: {p['trials']} trial(s)/task, {p['max_steps']} max steps, {p['resolution']} px, "
                 f"env seed {p['seed']}, renderer {p['renderer']}.")
    return (f"{title}\n\n" if title else "") + "\n".join(lines) + "\n"


def l1_vs(r: dict[str, Any], ref: dict[str, Any] | None) -> str:
    """Held-out L1 minus the `none` variant's on the same windows, with its paired demo-bootstrap interval."""
    from vla.heldout import paired_difference

    d = None if ref is None or r is ref else paired_difference(r, ref)
    return "-" if d is None else f"{d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]"


def verdict(rows: list[dict[str, Any]]) -> str:
    """Which differences are resolved: disjoint 95% success intervals, and held-out L1 differences from
    `none` whose paired demo-bootstrap interval excludes 0 (one training seed: the interval covers the
    held-out demos, not training noise)."""
    from vla.heldout import paired_difference

    apart = [(a["variant"], b["variant"]) for i, a in enumerate(rows) for b in rows[i + 1:]
             if max(a["overall"]["ci95"][0], b["overall"]["ci95"][0]) > min(a["overall"]["ci95"][1], b["overall"]["ci95"][1])]
    text = ("All 95% success intervals overlap: no difference in LIBERO success between these variants is "
            "resolved at this budget." if not apart else
            "Disjoint 95% success intervals (resolved differences): " + ", ".join(f"{a} vs {b}" for a, b in apart) + ".")
    ref = next((r for r in rows if r.get("source") == "none"), None)
    diffs = {r["variant"]: paired_difference(r, ref) for r in rows if ref is not None and r is not ref}
    diffs = {k: v for k, v in diffs.items() if v is not None}
    if diffs:
        res = [f"{k} ({v['mean']:+.3f})" for k, v in diffs.items() if v["resolved"]]
        text += (" Held-out L1 vs none, paired over the same windows with a 95% interval over held-out demos: "
                 + ("resolved for " + ", ".join(res) if res else "no difference excludes 0")
                 + " (one training seed: the interval covers the choice of held-out demos, not training noise).")
    else:
        text += " The held-out L1 has no per-window errors here: differences in it carry no interval."
    return text


def bar_plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [r["variant"] for r in rows]
    x = np.arange(len(rows))
    rate = np.array([100 * r["overall"]["success_rate"] for r in rows])
    lo = np.array([100 * r["overall"]["ci95"][0] for r in rows])
    hi = np.array([100 * r["overall"]["ci95"][1] for r in rows])
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.2))
    a.bar(x, rate, color="tab:blue", yerr=[rate - lo, hi - rate], capsize=4)
    a.set(xticks=x, ylabel="LIBERO success % (95% Wilson CI)", ylim=(0, 100), title="success")
    a.set_xticklabels(names, rotation=20)
    l1 = np.array([r.get("heldout_l1_norm") or np.nan for r in rows])
    b.bar(x, l1, color="tab:orange")
    base = [r.get("heldout_l1_norm_mean_baseline") for r in rows if r.get("heldout_l1_norm_mean_baseline")]
    if base:
        b.axhline(base[0], color="k", ls="--", lw=1, label="mean action")
        b.legend(fontsize=8)
    b.set(xticks=x, ylabel="held-out action L1 (normalised)", title="held-out demo action error")
    b.set_xticklabels(names, rotation=20)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=80, format="png"))
    plt.close(fig)
