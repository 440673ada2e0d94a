"""Readable tables of retrieval results (Table-1 style): what `encoders/evaluate.py` prints.

One table per setting, each at most `WIDTH` characters wide, hit@1 first:
*other scene* = the gallery holds no clip of the query's scene (scene invariance); *other view* =
it excludes only the query's own time-synchronised views (view invariance); *other subject* =
human queries against robot clips (h→r) and back (r→h), same camera kind, the query's take
excluded (subject invariance). Each row is an encoder, each cell hit@k in percent (a query hits when
one of its k nearest gallery clips has its verb): `@k` columns are the mean over the setting's camera
pairs, the per-pair columns (ego→ego, ...) and `keystep` (a chain of 2-4 clips, its keystep
name) are at the smallest k. The `chance` row is what a random ranking of the same galleries scores.
A last table gives the same-scene share of the top k (0-1, all scenes allowed): lower means the
encoder ranks by action, not by background. Every number, per pair and per k, is in the JSON.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from typing import Any

WIDTH = 100  # characters per printed line
LABEL_MAX = 18  # longer encoder labels are cut in the table (the JSON keeps them whole)
MAX_KS = 3  # the smallest three ks are printed; more would not fit WIDTH
# (setting key, title, what the gallery is, per-pair columns (key, header))
SETTINGS = (
    ("cross_scene", "other scene", "no clip of the query's scene", (("g2g", "ego→ego"), ("x2x", "exo→exo"))),
    ("cross_view", "other view", "the query's own synchronised views excluded",
     (("g2x", "ego→exo"), ("x2g", "exo→ego"))),
    ("cross_subject", "other subject", "human queries vs robot clips (h→r) and back (r→h), own take excluded",
     (("h2r_g2g", "h→r ego"), ("h2r_x2x", "h→r exo"), ("r2h_g2g", "r→h ego"), ("r2h_x2x", "r→h exo"))),
)


def _fmt(v: Any, digits: int = 1) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _label(name: str) -> str:
    return name if len(name) <= LABEL_MAX else name[: LABEL_MAX - 1] + "…"


def render(head: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table with padded columns: the first left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    sep = "|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":" for i, w in enumerate(widths)) + "|"
    return [line(head), sep, *[line(r) for r in rows]]


def _has_queries(results: list[dict[str, Any]], setting: str) -> bool:
    return any(r.get(lv, {}).get(setting, {}).get("avg", {}).get("n_queries", 0) for r in results for lv in ("atomic", "keystep"))


def setting_table(results: list[dict[str, Any]], setting: str, ks: Sequence[int]) -> list[str]:
    """Lines of one setting's table: mean hit@k for every k, then per-pair and keystep hit@min(k)."""
    _, title, gallery, pairs = next(s for s in SETTINGS if s[0] == setting)
    k0 = ks[0]
    cols = [("atomic", "avg", k, f"@{k}") for k in ks] + [("atomic", p, k0, h) for p, h in pairs]
    cols.append(("keystep", "avg", k0, f"keystep @{k0}"))

    def cells(r: dict, metric: str) -> list[str]:
        return [_fmt(r.get(lv, {}).get(setting, {}).get(p, {}).get(f"{metric}@{k}")) for lv, p, k, _ in cols]

    rows = [[_label(r["encoder"])] + cells(r, "hit") for r in results]
    if results:
        rows.append(["*chance*"] + cells(results[0], "chance"))
    return [f"{title}: gallery = {gallery}", "", *render(["encoder"] + [h for *_, h in cols], rows)]


def markdown_table(results: list[dict[str, Any]], k: int | Sequence[int] = (1, 5, 10)) -> str:
    """Every retrieval table for `results` (one dict per encoder, as `evaluate_encoder` returns) at `k`
    (one k or several; the smallest leads, at most `MAX_KS` are printed). A setting with no query in
    any result is left out. Lines stay within `WIDTH` characters."""
    all_ks = sorted({int(k)} if isinstance(k, int) else {int(v) for v in k})
    ks = all_ks[:MAX_KS]
    legend = (f"retrieval hit@k (%), higher is better. @k: mean over the camera pairs; pair and keystep "
              f"columns: hit@{ks[0]}; *chance*: a random ranking of the same galleries.")
    if len(all_ks) > MAX_KS:
        legend += f" hit@{', hit@'.join(map(str, all_ks[MAX_KS:]))}: in the JSON only (width)."
    lines = textwrap.wrap(legend, WIDTH)
    if any(len(r["encoder"]) > LABEL_MAX for r in results):
        lines.append(f"(encoder names cut to {LABEL_MAX} characters; whole in the JSON)")
    for setting, *_ in SETTINGS:
        if _has_queries(results, setting):
            lines += ["", *setting_table(results, setting, ks)]
    rows = []
    for r in results:
        ssf = r.get("same_scene_fraction", {})
        rows.append([_label(r["encoder"])] + [_fmt(ssf.get(f"@{v}"), 2) for v in ks] + [_fmt(ssf.get("chance"), 2)])
    lines += ["", "same-scene share of the top k (0-1, all scenes allowed): lower is better", "",
              *render(["encoder"] + [f"@{v}" for v in ks] + ["chance"], rows)]
    return "\n".join(lines)
