"""RoboAct-CLIP results as Markdown: the accuracy, per-class, recombination, frame-study and retrieval
tables of `<doc>.md`, rendered from the JSON payload `encoders/roboact/results.py` writes."""

from __future__ import annotations


def fmt(v) -> str:
    return "—" if v is None else f"{v:.2f}"


def per_class_tables(variants: list[dict], key: str = "accuracy", where: str = "the held-out scenes") -> list[str]:
    """Markdown lines: head accuracy (%) per true action / object class and per view, one column per
    variant, from each variant's `key` ("accuracy": held out; "accuracy_train": training clip-views)."""
    vs = [v for v in variants if "per_class" in v.get(key, {})]
    if not vs:
        return []
    head = "| " + " | ".join(v["name"] for v in vs) + " |"
    L = ["", f"Head accuracy (%) per true class on {where} (n: clip-views) and per view:", ""]
    for f in ("action", "object"):
        classes = list(vs[0][key]["per_class"][f])
        L += [f"| {f} | n {head}", "|---|---|" + "---|" * len(vs)]
        for c in classes:
            cells = " | ".join(fmt(v[key]["per_class"][f].get(c, {}).get("acc")) for v in vs)
            L.append(f"| {c} | {vs[0][key]['per_class'][f][c]['n']} | {cells} |")
        L.append("")
    L += [f"| view | factor {head}", "|---|---|" + "---|" * len(vs)]
    for view in vs[0][key]["per_view"]:
        for f in ("action", "object"):
            cells = " | ".join(fmt(v[key]["per_view"].get(view, {}).get(f)) for v in vs)
            L.append(f"| {view} | {f} | {cells} |")
    return L


def fused_tables(variants: list[dict]) -> list[str]:
    """Markdown lines: held-out head accuracy (%) per clip with the class probabilities averaged over the
    clip's views, overall and per true action / object class, beside the per-clip-view reading."""
    vs = [v for v in variants if "views_fused" in v.get("accuracy", {})]
    if not vs:
        return []
    head = " | ".join(v["name"] for v in vs)
    n = vs[0]["accuracy"]["views_fused"]["clips"]
    L = ["", f"Views fused: head accuracy (%) per held-out clip ({n} clips), the class probabilities of its "
         "synchronised views averaged (a reading beside the per-clip-view one above, not the paper's protocol):", "",
         f"| factor | n | {head} |", "|---|---|" + "---|" * len(vs)]
    for f in ("action", "subject", "object"):
        L.append(f"| **{f}**, per clip-view | | "
                 + " | ".join(fmt(v["accuracy"]["head"][f]) for v in vs) + " |")
        L.append(f"| **{f}**, views fused | {n} | " + " | ".join(fmt(v["accuracy"]["views_fused"]["head"][f]) for v in vs)
                 + " |")
    for f in ("action", "object"):
        for c, x in vs[0]["accuracy"]["views_fused"]["per_class"][f].items():
            cells = " | ".join(fmt(v["accuracy"]["views_fused"]["per_class"][f].get(c, {}).get("acc")) for v in vs)
            L.append(f"| {f}: {c} | {x['n']} | {cells} |")
    return L


def markdown(res: dict, command: str) -> str:
    L = ["# RoboAct-CLIP on the embedded atomic world (held-out scenes)", "",
         f"Command: `{command}`", "",
         f"Data: `{res['data']}` — train on the train split ({res['n_train']} clip-views), evaluate on val "
         f"({res['n_val']} clip-views, scenes {', '.join(res['val_scenes'])}, never seen in training). "
         f"Frames per clip in the dataset: {res['frames_per_clip']}.", "",
         "Accuracy (%) per factor. *head*: auxiliary classifiers (Eq. 22); *text*: zero-shot, best of the "
         f"{res['n_vocab_triplets']} Algorithm-1 descriptions of the vocabulary product (Eq. 24-25 space). "
         "Paper (16 frames): action 99.49 / subject 99.88 / object 97.43.", "",
         "| variant | n | head action | head subject | head object | text action | text subject | text object | text triplet | train s |",
         "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for v in res["variants"]:
        if "skipped" in v:
            L.append(f"| {v['label']} | {v['frames']} | not measurable: {v['skipped']} |||||||| |")
            continue
        a = v["accuracy"]
        L.append(f"| {v['label']} | {v['frames']} | " + " | ".join(fmt(a["head"][f]) for f in ("action", "subject", "object"))
                 + " | " + " | ".join(fmt(a["text"][f]) for f in ("action", "subject", "object", "triplet"))
                 + f" | {fmt(v.get('train_seconds'))} |")
    L += per_class_tables(res["variants"])
    L += fused_tables(res["variants"])
    tr = [v for v in res["variants"] if "accuracy_train" in v]
    if tr:
        n = tr[0]["accuracy_train"]["rows"]
        L += per_class_tables(tr, "accuracy_train", f"{n} of the training clip-views it was trained on "
                                                    "(a seeded random draw, train_share)")  # fmt: skip
    L += ["", "Recombination (Eq. 18) of triplets never seen together in training: the recombined bank "
          "features must retrieve their own Eq. 19 text among all vocabulary triplets.", "",
          "| variant | group | n | top-1 % | top-5 % | chance top-1 % | chance top-5 % |", "|---|---|---|---|---|---|---|"]
    for v in res["variants"]:
        r = v.get("recombination")
        if not r:
            continue
        for g in ("val_unseen", "product_unseen", "train_seen"):
            x = r[g]
            if x.get("n"):
                L.append(f"| {v['label']} | {g} | {x['n']} | {fmt(x['top1'])} | {fmt(x['top5'])} | "
                         f"{fmt(r['chance_top1'])} | {fmt(r['chance_top5'])} |")
    main = next((v for v in res["variants"] if v["name"] == "full_n16" and "recombination" in v), None)
    if main:
        x = main["recombination"]["val_unseen"]
        if x.get("n"):
            L += ["", "Val-only triplets and the rank of their own text (0 = first): "
                  + "; ".join(f"{t}: {r}" for t, r in zip(x["triplets"], x["rank"]))]
    fs = res.get("frame_study")
    if fs:
        L += ["", f"## Frame-count study on a {fs['frames_per_clip']}-frame dataset", "",
              f"`{fs['data']}` ({fs['n_train']} train / {fs['n_val']} val clip-views, val = held-out scenes), full model, "
              f"overrides {fs['overrides']}. Head / text accuracy (%), recombination of val-only triplets.", "",
              "| n | head action | head subject | head object | text action | text subject | text object | "
              "recomb val-unseen top-1 % (n) | train s |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in fs["rows"]:
            if "skipped" in r:
                L.append(f"| {r['frames']} | not measurable: {r['skipped']} |||||||")
                continue
            a, rc = r["accuracy"], r.get("recombination", {}).get("val_unseen", {})
            L.append(f"| {r['frames']} | " + " | ".join(fmt(a["head"][f]) for f in ("action", "subject", "object"))
                     + " | " + " | ".join(fmt(a["text"][f]) for f in ("action", "subject", "object"))
                     + f" | {fmt(rc.get('top1'))} ({rc.get('n', 0)}) | {fmt(r.get('train_seconds'))} |")
    if res.get("retrieval"):
        from encoders.benchmark.tables import markdown_table

        L += ["", "## Video-to-video retrieval (encoders/evaluate.py protocol, val split)", "",
              markdown_table(res["retrieval"], k=1), "", markdown_table(res["retrieval"], k=10)]
    if res.get("notes"):
        L += ["", "## Notes", ""] + [f"- {n}" for n in res["notes"]]
    return "\n".join(L) + "\n"
