"""Something-Something v2: template classes -> verb classes, filled labels -> sentences; webm videos.

Layout read (the official download as unpacked; both label-file namings of its releases):

    <root>/labels/labels.json | something-something-v2-labels.json          {"<template>": "<class id>"}
    <root>/labels/train.json | something-something-v2-train.json            [{id, label, template, placeholders}]
    <root>/labels/validation.json | something-something-v2-validation.json
    <root>/20bn-something-something-v2/<id>.webm

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
from envs.datasets.common import ClipSpec, Item, Report, Source, check_splits, load_json

FILES = {
    "labels": ("labels.json", "something-something-v2-labels.json"),
    "train": ("train.json", "something-something-v2-train.json"),
    "val": ("validation.json", "something-something-v2-validation.json"),
}


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

    def _file(self, what: str) -> Path:
        d = self.root / self.opts.labels_dir
        for name in FILES[what]:
            if (d / name).is_file():
                return d / name
        return d / FILES[what][0]

    def scan(self, report: Report) -> list[Item]:
        lp = self._file("labels")
        labels = load_json(lp, report, "SSv2 class list")
        classes = set(labels) if isinstance(labels, dict) else None
        if labels is not None and classes is None:
            report.malformed(lp, "expected an object {template: class id}")
        items = []
        for split in self.opts.splits:
            p = self._file(split)
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
