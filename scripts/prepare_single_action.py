"""Algorithm 1 of roboact_clip.txt: keep single-action clips and re-annotate them as subject-action-object.

    python scripts/prepare_single_action.py --src runs/demo/atomic_world --out /tmp/single_action.jsonl
    python scripts/prepare_single_action.py --src annotations.jsonl --out out.jsonl parser.default_subject=robot
    python scripts/prepare_single_action.py --src ann.csv --out out.jsonl parser.name=openai_compatible \
        parser.url=http://127.0.0.1:8000/v1/chat/completions parser.model=deepseek-r1

--src is one of
  - a dataset folder (or its index.parquet): one annotation per clip (its caption; views share it),
    plus, for takes made of several clips (keystep chains), the take-level annotation "c1, then c2,
    ..." — a multi-action annotation that Algorithm 1 must discard;
  - a .jsonl file of {"id": ..., "text": ...} lines, a .csv with columns id,text, or a .txt file
    with one annotation per line (id = line number).

Each annotation is parsed into (number of actions, subject, action, object) by the parser registry
(encoders/annotation_parsers.py: `rules` offline default, `openai_compatible`); multi-action ones are
discarded; the rest get Algorithm 1's description "Robot (or Human) [A] [O]. Action is A, Object is O.".
Annotations that cannot be parsed (empty, no verb, no subject, malformed parser reply) are listed
in the report as bad, never dropped silently.

Writes `--out` (JSONL, one kept record per line) and `<out stem>.report.json`; prints the report.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import sys
from collections import Counter
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from configs.cli import run_cli
from configs.loader import parse_cli
from configs.runs import atomic_write_json, atomic_write_text
from encoders.roboact.annotation_parsers import (
    AnnotationParseError,
    ParserConfig,
    build_parser,
    compose_description,
)


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


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_cli(PrepareConfig, argv, description=__doc__, prog="scripts/prepare_single_action.py",
                    flags={"--src": ("src", "dataset folder, index.parquet or annotation file"),
                           "--out": ("out", "output JSONL of kept clips")})  # fmt: skip
    r = prepare(cfg)
    print_report(r)
    return r


if __name__ == "__main__":
    sys.exit(run_cli(main))
