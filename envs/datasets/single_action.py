"""RoboAct-CLIP's Algorithm 1 applied to robot-episode annotations (RH20T, BridgeData V2 adapters).

The parsing is NOT re-implemented here: it is the parser registry of
`envs.datasets.annotations` (`rules` offline default, `openai_compatible` for a DeepSeek-R1
style endpoint), the same one RoboAct-CLIP's training uses. An annotation is kept when the parser finds exactly one action; the clip's
subject is the episode's own (robot teleoperation vs. human demonstration), its caption Algorithm 1's
description "Robot (or Human) [A] [O]. Action is A, Object is O.".

`prepare(PrepareConfig)` runs Algorithm 1 over an annotation source (a dataset folder, .jsonl, .csv,
.txt) and writes the kept records + a report: the library behind scripts/prepare_single_action.py.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections import Counter
from pathlib import Path
from typing import Any

from configs.runs import atomic_write_json, atomic_write_text
from envs.datasets.annotations import AnnotationParseError, ParserConfig, build_parser, compose_description
from envs.datasets.common import Report


@dataclasses.dataclass
class ParserOptions:
    """The fields of envs.datasets.annotations.ParserConfig (less default_subject)."""

    name: str = "rules"
    url: str = ""
    model: str = ""
    api_key_env: str = ""
    timeout_s: float = 60.0
    temperature: float = 0.0


class SingleActionFilter:
    """text + subject -> labels dict (action, object, caption) or None (multi-action / unparsable)."""

    def __init__(self, opts: ParserOptions, vocab: dict[str, list[str]] | None = None):
        from envs.datasets.annotations import ParserConfig, build_parser, compose_description

        self._compose = compose_description
        self._parsers: dict[str, Any] = {}
        self._make = lambda subject: build_parser(ParserConfig(**dataclasses.asdict(opts), default_subject=subject),
                                                  vocab)  # fmt: skip
        self._cache: dict[tuple[str, str], tuple[str, Any]] = {}
        self._reported: set[str] = set()

    def __call__(self, text: str, subject: str, report: Report, where: str) -> dict | None:
        from envs.datasets.annotations import AnnotationParseError

        key = (text, subject)
        if key not in self._cache:
            if subject not in self._parsers:
                self._parsers[subject] = self._make(subject)
            try:
                p = self._parsers[subject].parse(text)
                if p.n_actions > 1:
                    self._cache[key] = ("multi", p.verbs)
                elif not p.action or not p.object:
                    self._cache[key] = ("bad", f"no {'action' if not p.action else 'object'} found")
                else:
                    self._cache[key] = ("ok", (p.action, p.object))
            except AnnotationParseError as e:
                self._cache[key] = ("bad", str(e))
        status, value = self._cache[key]
        if status == "multi":
            report.drop("multi-action annotation (Algorithm 1)")
            return None
        if status == "bad":
            if text not in self._reported:  # one line per distinct annotation
                self._reported.add(text)
                report.malformed(where, f"annotation {text!r} not parsable: {value}")
            report.drop("unparsable annotation")
            return None
        action, obj = value
        return {"subject": subject, "action": action, "object": obj, "caption": self._compose(subject, action, obj)}


# ------------------------------------------------------------- Algorithm 1 over an annotation source
@dataclasses.dataclass
class PrepareConfig:
    src: str = ""  # dataset folder / index.parquet / .jsonl / .csv / .txt
    out: str = "single_action.jsonl"
    parser: ParserConfig = dataclasses.field(default_factory=ParserConfig)
    take_level: bool = True  # dataset sources: also add each multi-clip take's joined annotation
    limit: int = 0  # parse at most this many annotations (0: all)

    def validate(self) -> None:
        if not self.src:
            raise ValueError("'src' is required (--src PATH)")
        if self.limit < 0:
            raise ValueError(f"limit must be >= 0, got {self.limit}")


def read_annotations(src: str | Path, take_level: bool = True) -> tuple[list[dict], dict[str, list[str]]]:
    """`src` -> ([{"id", "text", ...extra fields}], vocab or {}). Errors name the file and line/field."""
    p = Path(src)
    if not p.exists():
        raise FileNotFoundError(f"--src {p}: no such file or folder")
    if p.is_dir() or p.name == "index.parquet":
        from envs.atomic_world.dataset import read_index, read_meta

        root = p if p.is_dir() else p.parent
        df = read_index(root)
        vocab = {}
        try:
            v = read_meta(root).get("vocab", {})
            vocab = {k: list(v[k]) for k in ("action", "object") if k in v}
        except FileNotFoundError:
            pass
        anns = []
        clips = df.drop_duplicates("clip_id").sort_values(["take_id", "segment_index"], kind="stable")
        for _, r in clips.iterrows():
            anns.append({"id": str(r["clip_id"]), "text": r["caption"], "take_id": str(r["take_id"]), "split": r["split"],
                         "label": [r["subject"], r["action"], r["object"]]})  # fmt: skip
        if take_level:
            for take, g in clips.groupby("take_id", sort=True):
                if len(g) > 1:
                    anns.append({"id": f"take:{take}", "text": ", then ".join(g["caption"]), "take_id": str(take)})
        return anns, vocab
    suffix = p.suffix.lower()
    anns = []
    if suffix == ".jsonl":
        for i, line in enumerate(p.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{p}:{i}: not valid JSON ({e.msg})") from None
            if not isinstance(rec, dict) or "text" not in rec:
                raise ValueError(f"{p}:{i}: each line must be an object with a 'text' field")
            anns.append({**rec, "id": str(rec.get("id", i)), "text": rec["text"]})
    elif suffix == ".csv":
        with p.open(newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or "text" not in reader.fieldnames:
                raise ValueError(f"{p}: CSV needs a 'text' column (and optionally 'id'); got {reader.fieldnames}")
            for i, row in enumerate(reader, 2):
                anns.append({"id": str(row.get("id") or i), "text": row["text"]})
    elif suffix == ".txt":
        for i, line in enumerate(p.read_text().splitlines(), 1):
            anns.append({"id": str(i), "text": line})
    else:
        raise ValueError(f"--src {p}: unsupported annotation file type {suffix!r} (use a dataset folder, "
                         "index.parquet, .jsonl, .csv or .txt)")
    return anns, {}


def prepare(cfg: PrepareConfig) -> dict:
    """Run Algorithm 1 over `cfg.src`; returns the report (also written next to `cfg.out`)."""
    anns, vocab = read_annotations(cfg.src, cfg.take_level)
    if cfg.limit:
        anns = anns[: cfg.limit]
    parser = build_parser(cfg.parser, vocab)
    kept, multi, bad = [], [], []
    for a in anns:
        text = a.get("text")
        try:
            if not isinstance(text, str):
                raise AnnotationParseError(f"text is {type(text).__name__}, not a string")
            p = parser.parse(text)
            if p.n_actions > 1:
                multi.append({"id": a["id"], "text": text, "n_actions": p.n_actions, "verbs": p.verbs})
                continue  # Algorithm 1, line 6: retain only single-action clips
            missing = [k for k, v in (("subject", p.subject), ("action", p.action), ("object", p.object)) if not v]
            if missing:
                raise AnnotationParseError(f"no {' / '.join(missing)} found (set parser.default_subject for "
                                           "subject-less instructions)" if missing == ["subject"] else
                                           f"no {' / '.join(missing)} found")  # fmt: skip
        except AnnotationParseError as e:
            bad.append({"id": a["id"], "text": text, "reason": str(e)})
            continue
        rec = {**a, "n_actions": p.n_actions, "subject": p.subject, "action": p.action, "object": p.object,
               "description": compose_description(p.subject, p.action, p.object)}  # fmt: skip
        if "label" in a:
            rec["matches_label"] = [p.subject, p.action, p.object] == list(a["label"])
        kept.append(rec)
    out = Path(cfg.out)
    atomic_write_text(out, "".join(json.dumps(r) + "\n" for r in kept))
    report = {
        "src": str(cfg.src), "out": str(out), "parser": cfg.parser.name, "annotations": len(anns),
        "kept": len(kept), "discarded_multi_action": len(multi), "bad": len(bad),
        "histogram": {f: dict(Counter(r[f] for r in kept).most_common()) for f in ("subject", "action", "object")},
        "multi_action": multi, "bad_annotations": bad,
    }  # fmt: skip
    if kept and "matches_label" in kept[0]:
        report["label_agreement"] = sum(r["matches_label"] for r in kept) / len(kept)
    atomic_write_json(out.with_name(out.stem + ".report.json"), report)
    return report


def print_report(r: dict) -> None:
    print(f"{r['src']}: {r['annotations']} annotations -> kept {r['kept']}, discarded (multi-action) "
          f"{r['discarded_multi_action']}, bad {r['bad']}  [parser {r['parser']}]")
    if "label_agreement" in r:
        print(f"agreement with the dataset's own labels on kept clips: {100 * r['label_agreement']:.2f}%")
    for f, h in r["histogram"].items():
        print(f"  {f:8s}: " + ", ".join(f"{k}={v}" for k, v in h.items()))
    for b in r["bad_annotations"]:
        print(f"  BAD {b['id']}: {b['reason']}  ({b['text']!r})")
    print(f"wrote {r['out']} and {Path(r['out']).with_name(Path(r['out']).stem + '.report.json')}")
