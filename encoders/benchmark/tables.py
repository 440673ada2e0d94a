"""Readable tables of retrieval results (Table-1 style): the rows `encoders/evaluate.py` prints.

Columns, in plain words: *atomic action* retrieval (one clip, its verb) and *keystep* retrieval
(a chain of 2-4 clips, its keystep name); *other scene* = the gallery excludes every clip of the
query's scene (scene invariance); *other view* = the gallery excludes only the query's own
time-synchronised views (view invariance); ego->exo etc. name the query and gallery cameras. Each
cell is hit@k in percent: a query hits when one of its k nearest gallery clips has its label. The
`chance` row is what a random ranking of the same galleries scores. A separate table gives the
same-scene share of the top k (0-1, all scenes allowed): lower means the encoder ranks by action,
not by background; its chance column is the share of the gallery from the query's scene.
"""

from __future__ import annotations

import math
from typing import Any

_LEVELS = {"atomic": "atomic action", "keystep": "keystep"}
_SETTINGS = (("cross_scene", "other scene", ("g2g", "x2x", "avg")), ("cross_view", "other view", ("g2x", "x2g", "avg")))
_PAIRS = {"g2g": "ego→ego", "x2x": "exo→exo", "g2x": "ego→exo", "x2g": "exo→ego", "avg": "mean"}


def _fmt(v: Any, digits: int = 1) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def markdown_table(results: list[dict[str, Any]], k: int = 10) -> str:
    """hit@k (%) per level/setting/camera pair, a chance row, then the same-scene share table."""
    cols = [(level, setting, p) for level in _LEVELS for setting, _, pairs in _SETTINGS for p in pairs]
    names = {s: n for s, n, _ in _SETTINGS}
    head = ["encoder"] + [f"{_LEVELS[lv]}, {names[st]}, {_PAIRS[p]}" for lv, st, p in cols]

    def cell(r: dict, lv: str, st: str, p: str, metric: str) -> str:
        return _fmt(r.get(lv, {}).get(st, {}).get(p, {}).get(f"{metric}@{k}"))

    lines = [f"retrieval hit@{k} (%): higher is better", "", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]
    for r in results:
        lines.append("| " + " | ".join([r["encoder"]] + [cell(r, *c, "hit") for c in cols]) + " |")
    if results:
        lines.append("| " + " | ".join(["*chance*"] + [cell(results[0], *c, "chance") for c in cols]) + " |")
    lines += ["", f"same-scene share of the top {k} (0-1, all scenes allowed): lower is better", "",
              "| encoder | same-scene share | chance |", "|---|---|---|"]
    for r in results:
        ssf = r.get("same_scene_fraction", {})
        lines.append(f"| {r['encoder']} | {_fmt(ssf.get(f'@{k}'), 2)} | {_fmt(ssf.get('chance'), 2)} |")
    return "\n".join(lines)
