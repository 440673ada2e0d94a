"""Readable tables of retrieval results (Table-1 style): the rows `encoders/evaluate.py` prints."""

from __future__ import annotations

import math
from typing import Any


def _fmt(v: Any) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"


def markdown_table(results: list[dict[str, Any]], k: int = 10) -> str:
    """Table-1-style rows: atomic and keystep hit@k for cross-scene and cross-view, plus same-scene frac."""
    head = ["encoder"]
    cols = []
    for level in ("atomic", "keystep"):
        for setting, pairs in (("cross_scene", ("g2g", "x2x", "avg")), ("cross_view", ("g2x", "x2g", "avg"))):
            for p in pairs:
                head.append(f"{level[:3]} {setting.split('_')[1]} {p}")
                cols.append((level, setting, p))
    head.append(f"same-scene@{k}")
    lines = [f"hit@{k} (%)", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        row = [r["encoder"]]
        for level, setting, p in cols:
            row.append(_fmt(r.get(level, {}).get(setting, {}).get(p, {}).get(f"hit@{k}")))
        row.append(_fmt(r.get("same_scene_fraction", {}).get(f"@{k}")))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)
