"""Charades-Ego (InvAct Table 2, zero-shot retrieval): one clip per temporal action annotation.

Layout read (the Charades-Ego annotation archive + CharadesEgo_v1_480 videos, as unpacked):

    <root>/CharadesEgo/CharadesEgo_v1_train.csv, CharadesEgo_v1_test.csv
        columns id, subject, scene, quality, relevance, verified, script, objects, descriptions,
        actions ("c092 11.90 21.20;c147 0.00 12.60": class, start s, end s), length, egocentric
        ("Yes" / "No"), charades_video
    <root>/CharadesEgo/CharadesEgo_v1_classes.txt    "c000 Holding some clothes" (one class a line)
    <root>/CharadesEgo/Charades_v1_mapping.txt        "c000 o000 v000" (class -> object, verb; optional)
    <root>/CharadesEgo/Charades_v1_verbclasses.txt    "v000 awaken"; Charades_v1_objectclasses.txt "o000 None"
    <root>/CharadesEgo_v1_480/<id>.mp4

Retrieval-only (meta.retrieval_only = true). Default: the egocentric videos only (the paper's
"egocentric split"), view "ego"; `views="both"` adds the third-person videos as view "exo" (their
own takes: the two recordings of a script are not frame-synchronised). action = the class name
(`label="class"`, 157 classes) or its verb (`label="verb"`); object from the mapping when present;
scene = the CSV's `scene` (room type); test -> split "val".
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

from envs.datasets import DATASETS
from envs.datasets.common import ClipSpec, Item, Report, Source, check_splits

COLUMNS = ("id", "scene", "actions", "egocentric")


def read_table(path: Path, report: Report) -> dict[str, str]:
    """'c000 Holding some clothes' lines -> {"c000": "Holding some clothes"}."""
    out = {}
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.strip().split(None, 1)
        if len(parts) != 2:
            report.malformed(path, f"line {i}: expected '<id> <name>'")
            continue
        out[parts[0]] = parts[1].strip()
    return out


@dataclasses.dataclass
class CharadesEgoOptions:
    splits: list[str] = dataclasses.field(default_factory=lambda: ["val"])  # "train" | "val" (= test csv)
    annotations_dir: str = "CharadesEgo"
    videos_dir: str = "CharadesEgo_v1_480"
    views: str = "ego"  # "ego" | "both"
    label: str = "class"  # "class" | "verb"
    min_seconds: float = 0.0
    max_seconds: float = 0.0  # 0: no limit

    def validate(self) -> None:
        if self.views not in ("ego", "both"):
            raise ValueError(f"charades_ego.views: {self.views!r} is not 'ego' or 'both'")
        if self.label not in ("class", "verb"):
            raise ValueError(f"charades_ego.label: {self.label!r} is not 'class' or 'verb'")
        check_splits("charades_ego", self.splits)


@DATASETS.register("charades_ego")
class CharadesEgo:
    options_cls = CharadesEgoOptions
    retrieval_only = True
    symmetric_pairs: list[list[str]] = []

    def __init__(self, root: str | Path, opts: CharadesEgoOptions | None = None):
        self.root = Path(root)
        self.opts = opts or CharadesEgoOptions()
        self.opts.validate()
        self.extra = {"source": "Charades-Ego v1", "split_files": {"train": "CharadesEgo_v1_train.csv",
                                                                     "val": "CharadesEgo_v1_test.csv"}}

    def scan(self, report: Report) -> list[Item]:
        o = self.opts
        report.layout = (f"Charades-Ego v1 archive ({o.annotations_dir}/CharadesEgo_v1_{{train,test}}.csv, "
                         f"CharadesEgo_v1_classes.txt + {o.videos_dir}/<id>.mp4)")
        ad = self.root / o.annotations_dir
        cpath = ad / "CharadesEgo_v1_classes.txt"
        if not cpath.is_file():
            report.missing(cpath, "class list")
            return []
        classes = read_table(cpath, report)
        mapping, verbs, objects = {}, {}, {}
        if (ad / "Charades_v1_mapping.txt").is_file():
            for line in (ad / "Charades_v1_mapping.txt").read_text().splitlines():
                p = line.split()
                if len(p) == 3:
                    mapping[p[0]] = (p[1], p[2])
            if (ad / "Charades_v1_verbclasses.txt").is_file():
                verbs = read_table(ad / "Charades_v1_verbclasses.txt", report)
            if (ad / "Charades_v1_objectclasses.txt").is_file():
                objects = read_table(ad / "Charades_v1_objectclasses.txt", report)
        if o.label == "verb" and not verbs:
            raise FileNotFoundError(f"charades_ego.label=verb needs {ad}/Charades_v1_mapping.txt and "
                                    "Charades_v1_verbclasses.txt")
        items = []
        for split in o.splits:
            path = ad / ("CharadesEgo_v1_train.csv" if split == "train" else "CharadesEgo_v1_test.csv")
            if not path.is_file():
                report.missing(path, f"annotation CSV of split {split!r}")
                continue
            with path.open(newline="") as f:
                reader = csv.DictReader(f)
                missing_cols = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
                if missing_cols:
                    report.malformed(path, f"missing columns {missing_cols}; got {reader.fieldnames}")
                    continue
                for line_no, row in enumerate(reader, 2):
                    ego = str(row["egocentric"]).strip().lower() == "yes"
                    if not ego and o.views == "ego":
                        continue
                    vid = row["id"]
                    video = f"{o.videos_dir}/{vid}.mp4"
                    clips = []
                    for k, ann in enumerate(a for a in (row["actions"] or "").split(";") if a.strip()):
                        report.scanned += 1
                        p = ann.split()
                        try:
                            cls, a, b = p[0], float(p[1]), float(p[2])
                        except (IndexError, ValueError):
                            report.malformed(path, f"line {line_no} (id {vid}): action {ann!r} is not '<class> <start> <end>'")
                            report.drop("malformed annotation")
                            continue
                        if cls not in classes:
                            report.malformed(path, f"line {line_no} (id {vid}): unknown class {cls!r}")
                            report.drop("unknown class")
                            continue
                        if b <= a or b - a < o.min_seconds or (o.max_seconds and b - a > o.max_seconds):
                            report.drop("window outside [min_seconds, max_seconds] or empty")
                            continue
                        obj_id, verb_id = mapping.get(cls, ("", ""))
                        obj = objects.get(obj_id, "")
                        action = verbs.get(verb_id, "") if o.label == "verb" else classes[cls]
                        labels = {"split": split, "scene": (row.get("scene") or "unknown").strip(),
                                  "subject": "human", "action": action, "object": "" if obj == "None" else obj,
                                  "caption": classes[cls], "keystep_id": -1, "keystep": ""}  # fmt: skip
                        clips.append(ClipSpec(clip_id=f"{vid}_{k:02d}_{cls}", labels=labels,
                                              views={"ego" if ego else "exo": Source(path=video, start_s=a, end_s=b)}))
                    if not clips:
                        continue
                    if not (self.root / video).is_file():
                        report.missing(self.root / video, f"video of {split} id {vid}")
                        report.drop("missing video", len(clips))
                        continue
                    items.append(Item(key=f"{split}_{vid}", clips=clips))
        return items
