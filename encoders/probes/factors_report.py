"""Markdown tables of a factor-probe result (encoders/probes/factors.py `run_factor_probes`)."""

from __future__ import annotations

ROLES = (("fit", "fit"), ("train_scene_test", "train scenes, held-out takes"), ("heldout_scene", "held-out scenes"))


def _pct(v) -> str:
    return "-" if v is None or v != v else f"{100 * v:.1f}"


def markdown_report(result: dict) -> str:
    """Tables: backbone probes (fit / train-scene test / held-out scene per label), chance, held-out
    accuracy per view, the fitted-scene curve, RoboAct-CLIP's heads and probes of its embeddings."""
    labels = list(result["chance"])
    rows = result["rows"]
    lines = [f"Rows: fit {rows['fit']}, train scenes held-out takes {rows['train_scene_test']}, "
             f"held-out scenes {rows['heldout_scene']} clip-views. Cells: accuracy % "
             "fit / train scenes (held-out takes) / held-out scenes; LOSO = leave-one-scene-out over the "
             "fitted scenes at the chosen ridge.", ""]
    head = "| input | features | D | " + " | ".join(f"{lab} fit / train-sc / held-out | {lab} LOSO"
                                                  for lab in labels) + " |"
    lines += [head, "|" + "---|" * (3 + 2 * len(labels))]
    for name, feats in result["backbone"].items():
        for feat, res in feats.items():
            cells = [f"{_pct(res[lab]['fit'])} / {_pct(res[lab]['train_scene_test'])} / "
                     f"**{_pct(res[lab]['heldout_scene'])}** | {_pct(res[lab]['loso_fit_scenes'])}" for lab in labels]
            lines.append(f"| {name} | {feat} | {res[labels[0]]['dim']} | " + " | ".join(cells) + " |")
    ch = result["chance"]
    lines.append("| chance (majority / uniform) | | | " + " | ".join(
        f"- / {_pct(ch[lab]['train_scene_test']['majority'])} / {_pct(ch[lab]['heldout_scene']['majority'])} "
        f"(uniform {_pct(ch[lab]['heldout_scene']['uniform'])}) | " for lab in labels) + " |")
    lines += ["", "Held-out scenes, accuracy % per view:", ""]
    views = None
    for feats in result["backbone"].values():
        for res in feats.values():
            views = list(res[labels[0]]["heldout_by_view"])
            break
        break
    if views:
        lines += ["| input | features | " + " | ".join(f"{lab} {v}" for lab in labels for v in views) + " |",
                  "|" + "---|" * (2 + len(labels) * len(views))]
        for name, feats in result["backbone"].items():
            for feat, res in feats.items():
                lines.append(f"| {name} | {feat} | " + " | ".join(
                    _pct(res[lab]["heldout_by_view"][v]) for lab in labels for v in views) + " |")
    if result.get("scene_curve"):
        lines += ["", "Held-out-scene accuracy % vs number of fitted training scenes, mean [min-max] over draws; "
                  "'same clips, all scenes' fits as many clips drawn from every fitted scene:", ""]
        counts = sorted({int(n) for c in result["scene_curve"].values() for lab in c.values() for n in lab})
        lines += ["| features | label | " + " | ".join(f"{n} scenes | same clips, all scenes" for n in counts) + " |",
                  "|" + "---|" * (2 + 2 * len(counts))]
        for key, curve in result["scene_curve"].items():
            for lab, per in curve.items():
                per = {int(n): v for n, v in per.items()}
                cells = []
                for n in counts:
                    v = per.get(n)
                    cells.append("- | -" if v is None else
                                 f"{_pct(v['mean'])} [{_pct(v['min'])}-{_pct(v['max'])}] ({v.get('fit_rows', 0):.0f} clips) | "
                                 f"{_pct(v.get('matched_mean'))} [{_pct(v.get('matched_min'))}-{_pct(v.get('matched_max'))}]")
                lines.append(f"| {key} | {lab} | " + " | ".join(cells) + " |")
    rr = result.get("roboact")
    if rr:
        lines += ["", f"RoboAct-CLIP export `{rr['export']}` (trained on every train-split clip, so its "
                  "'train scenes, held-out takes' were training clips of the encoder):", "",
                  "| read-out | D | " + " | ".join(f"{lab} fit / train-sc / held-out" for lab in labels) + " |",
                  "|" + "---|" * (2 + len(labels))]
        lines.append("| its own heads (Eq. 22) | - | " + " | ".join(
            " / ".join(_pct(rr["heads"].get(lab, {}).get(r)) for r, _ in ROLES) for lab in labels) + " |")
        for f, res in rr["probes"].items():
            lines.append(f"| ridge probe on `{f}` | {res[labels[0]]['dim']} | " + " | ".join(
                f"{_pct(res[lab]['fit'])} / {_pct(res[lab]['train_scene_test'])} / **{_pct(res[lab]['heldout_scene'])}**"
                for lab in labels) + " |")
    pair_rows = [(f"{name} {feat}", res[lab]["heldout_pairs"]) for name, feats in result["backbone"].items()
                 for feat, res in feats.items() for lab in labels if "heldout_pairs" in res[lab]]
    if rr:
        pair_rows += [("RoboAct-CLIP heads", h["heldout_pairs"]) for h in rr["heads"].values() if "heldout_pairs" in h]
        pair_rows += [(f"RoboAct-CLIP probe on `{f}`", res[lab]["heldout_pairs"]) for f, res in rr["probes"].items()
                      for lab in labels if "heldout_pairs" in res[lab]]
    if pair_rows:
        lines += ["", "Held-out-scene action errors and the symmetric verb pairs (pick up / put down, ...): share "
                  "of the errors that name the true verb's partner (1 of 11 wrong verbs), and accuracy when a pair "
                  "counts as one class:", "", "| read-out | errors to the partner % | pair-level accuracy % |",
                  "|---|---|---|"]
        lines += [f"| {n} | {_pct(p['to_partner'])} | {_pct(p['pair_level'])} |" for n, p in pair_rows]
    secs = result.get("seconds", {})
    load = result.get("load_average", {})
    lines += ["", "Wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in secs.items())
              + f". Load average (1/5/15 min) at start {load.get('start')}, at end {load.get('end')}.", ""]
    return "\n".join(lines)
