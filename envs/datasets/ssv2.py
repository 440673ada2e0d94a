"""Something-Something v2: template classes -> verb classes, filled labels -> sentences; webm videos.

Layouts read (`layouts()`; the one found is named in the summary's `layout:` line, and none found is
one error listing these files):

- `labels-dir`, the current download (Qualcomm AI Research, developer.qualcomm.com/software/ai-datasets/
  something-something: labels.zip unpacks to a `labels/` folder; `labels_dir` renames it):

      <root>/labels/labels.json                          {"<template>": "<class id>"}
      <root>/labels/train.json                           [{id, label, template, placeholders}]
      <root>/labels/validation.json
      <root>/labels/test.json                            [{id}] (no labels; not indexed)

- `20bn`, the original release (TwentyBN, 2018, 20bn.com/datasets/something-something): the same
  files, named `something-something-v2-{labels,train,validation,test}.json`, beside the videos:

      <root>/something-something-v2-labels.json
      <root>/something-something-v2-train.json
      <root>/something-something-v2-validation.json
      <root>/something-something-v2-test.json

- `20bn-in-labels-dir`: the 20BN file names unpacked into `labels/` (seen in mirrors of the release).

Videos in every layout: `<root>/20bn-something-something-v2/<id>.webm` (`videos_dir`). An annotation
naming a video that is absent is one `MISSING <path>: video of <split> id <id>` line and the clip is
dropped (counted as "missing video"); the other clips are indexed.

`template` ("Pushing [something] from left to right") without brackets is the class name of
labels.json and becomes `action` (174 verb classes); `label` (the template filled with the objects:
"pushing a book from left to right") is the caption; `placeholders[0]` the object. The test split
has no labels and is not indexed. Each video is one clip of one take; the whole video is the clip.
SSv2 has no scene annotation: scene = the video (`scene="video"`, so every retrieval match is
cross-scene) or one scene for all (`scene="dataset"`). View "ego" (the videos are predominantly
egocentric, InvAct App. B.2). validation -> split "val".
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from envs.datasets import DATASETS
from envs.datasets.common import (
    ClipSpec,
    Item,
    Layout,
    Report,
    Source,
    check_splits,
    detect_layout,
    load_json,
)

ROLES = {"labels": "labels", "train": "train", "val": "validation", "test": "test"}  # role -> file stem
QUALCOMM = "Qualcomm AI Research download, labels.zip"
TWENTYBN = "original 20BN release, 2018"


def layouts(labels_dir: str = "labels") -> tuple[Layout, ...]:
    """The published SSv2 annotation layouts, in detection order (see the module docstring)."""
    d = labels_dir.strip("/")
    return (
        Layout("labels-dir", QUALCOMM, {r: f"{d}/{stem}.json" for r, stem in ROLES.items()}),
        Layout("20bn", TWENTYBN, {r: f"something-something-v2-{stem}.json" for r, stem in ROLES.items()}),
        Layout("20bn-in-labels-dir", f"{TWENTYBN}, its files unpacked into {d}/",
               {r: f"{d}/something-something-v2-{stem}.json" for r, stem in ROLES.items()}),
    )


def class_name(template: str) -> str:
    return template.replace("[", "").replace("]", "").strip()


@dataclasses.dataclass
class SSv2Options:
    splits: list[str] = dataclasses.field(default_factory=lambda: ["train", "val"])
    labels_dir: str = "labels"
    videos_dir: str = "20bn-something-something-v2"
    scene: str = "video"  # "video" | "dataset"
    view: str = "ego"

    def validate(self) -> None:
        check_splits("ssv2", self.splits, " (the test split has no labels)")
        if self.scene not in ("video", "dataset"):
            raise ValueError(f"ssv2.scene: {self.scene!r} is not 'video' or 'dataset'")


@DATASETS.register("ssv2")
class SSv2:
    options_cls = SSv2Options
    retrieval_only = False
    symmetric_pairs: list[list[str]] = []

    def __init__(self, root: str | Path, opts: SSv2Options | None = None):
        self.root = Path(root)
        self.opts = opts or SSv2Options()
        self.opts.validate()
        self.extra = {"source": "Something-Something v2"}

    def scan(self, report: Report) -> list[Item]:
        layout = detect_layout("ssv2", self.root, layouts(self.opts.labels_dir))
        report.layout = f"{layout.describe()}; videos {self.opts.videos_dir}/<id>.webm"
        self.extra["layout"] = layout.name
        lp = layout.path(self.root, "labels")
        labels = load_json(lp, report, "SSv2 class list")
        classes = set(labels) if isinstance(labels, dict) else None
        if labels is not None and classes is None:
            report.malformed(lp, "expected an object {template: class id}")
        items = []
        for split in self.opts.splits:
            p = layout.path(self.root, split)
            data = load_json(p, report, f"SSv2 {split} annotations")
            if data is None:
                continue
            if not isinstance(data, list):
                report.malformed(p, "expected a list of {id, label, template, placeholders}")
                continue
            for i, rec in enumerate(data):
                report.scanned += 1
                if not isinstance(rec, dict) or not all(isinstance(rec.get(k), str) for k in ("id", "label", "template")):
                    report.malformed(p, f"[{i}]: needs string fields id, label, template")
                    report.drop("malformed annotation")
                    continue
                action = class_name(rec["template"])
                if classes is not None and action not in classes:
                    report.malformed(p, f"[{i}] (id {rec['id']}): template {rec['template']!r} is not a class of {lp.name}")
                    report.drop("unknown template")
                    continue
                video = f"{self.opts.videos_dir}/{rec['id']}.webm"
                if not (self.root / video).is_file():
                    report.missing(self.root / video, f"video of {split} id {rec['id']}")
                    report.drop("missing video")
                    continue
                ph = rec.get("placeholders") or []
                obj = str(ph[0]) if isinstance(ph, list) and ph else ""
                labels_ = {"split": split, "scene": f"ssv2_{rec['id']}" if self.opts.scene == "video" else "ssv2",
                           "subject": "human", "action": action, "object": obj, "caption": rec["label"],
                           "keystep_id": -1, "keystep": ""}  # fmt: skip
                items.append(Item(key=f"{split}_{rec['id']}", clips=[
                    ClipSpec(clip_id=str(rec["id"]), labels=labels_, views={self.opts.view: Source(path=video)})]))
        return items
