"""Ego-Exo4D (InvAct Sec. 4.1, App. B.2): atomic-action clips of `downscaled_takes/448`, ego + exo.

Layouts read (`LAYOUTS`; the one found is named in the summary's `layout:` line, and none found is one
error listing these files). Both share takes.json, splits.json, the keystep files and the videos:

- `v2` (release v2, 25 March 2024, the downloader's default since; `--release v2`), also v1 after
  its 15 March 2024 atomic-descriptions update: one atomic-descriptions file per split,
  `annotations/atomic_descriptions_{train,val}.json`, and `annotations/keystep_{train,val}.json`.
  Source: docs.ego-exo4d-data.org (Change Log; Annotations: Keystep, Atomic Action Descriptions) and
  the downloader's `annotations` part as unpacked (`<root>/annotations/...`).
- `v1` (the first release, 15 December 2023, `--release v1`): all atomic descriptions in one file,
  `annotations/atomic_descriptions_latest.json` (same schema, every split), with
  `annotations/keystep_{train,val}.json`; a take's split is then its `splits.json` entry (a take
  without one is dropped, counted as such). Source: the v1 annotation folder as read by public code
  written against that release; the keystep names are those of both releases.

The files, in both (docs.ego-exo4d-data.org: Metadata, Downscaled Takes, Keystep, Atomic Descriptions):

    <root>/takes.json                                   list of takes: take_uid, take_name, root_dir,
                                                        parent_task_name, task_name, university_name,
                                                        physical_setting_uid, duration_sec,
                                                        frame_aligned_videos[cam_id][stream_id].relative_path,
                                                        capture.cameras[].{cam_id, is_ego}
    <root>/annotations/splits.json                      take_uid_to_split
    <root>/annotations/atomic_descriptions_{train,val}.json
        annotations[take_uid] = [ {annotation_uid, annotator_id, rejected, descriptions: [
            {text, timestamp, narration_subject ("C"/"O"), ego_visible, best_exo.cam_id, unsure}]} ]
    <root>/annotations/keystep_{train,val}.json
        annotations[take_uid] = {take_uid, take_name, scenario, segments: [
            {start_time, end_time, step_id, step_unique_id, step_name, step_description, is_essential}]}
    <root>/takes/<take_name>/frame_aligned_videos/downscaled/448/<cam>.mp4  (ego: aria*_214-1.mp4 = rgb)

What the paper does, and how it is done here:
- atomic descriptions are single time points; clip i of an annotation pass spans
  [t_i, t_{i+1}) (the next description of the same pass; the last one ends at the take's end), or
  with `window="centered"` [t_i - window_s/2, t_i + window_s/2);
- clips shorter than `min_seconds` (1 s) or longer than `max_seconds` (5 s) are dropped;
- labels with typos are dropped by a vocabulary check: every word must be in `words_file` (one word
  per line) or, without one, occur in at least `min_word_count` descriptions of the whole
  annotation corpus (a misspelling is rare; every real word of a 30k-clip corpus recurs);
- verb classes are extracted from the free-form sentence: the subject ("C", "The man X", ...) is
  stripped, the first word lemmatised (picks -> pick, carries -> carry), a particle kept
  (pick up, turn off); the object is the noun phrase after it;
- scene = the take's location (`university_name` + `physical_setting_uid`), or with
  `scene="scenario"` its scenario (`parent_task_name`), `scene="task"` its `task_name`;
- keysteps are the keystep segments containing an atomic description's time: keystep = step_name,
  keystep_id = the segment's order in its take (-1 outside every segment);
- splits are the official ones (`splits.json`, else the annotation file's own split).
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from pathlib import Path
from typing import Any

from envs.datasets import DATASETS
from envs.datasets.common import ClipSpec, Item, Layout, Report, Source, detect_layout, load_json

SUBJECT_RE = re.compile(
    r"^\s*(?:(?i:the|a)\s+)?(?:(?i:man|woman|person|lady|boy|girl|guy|player|participant|instructor|"
    r"doctor|nurse|teacher|coach|customer|chef)\s+)?(?:[A-Z](?=\s)|(?i:man|woman|person|lady|boy|girl))\s+",
)  # fmt: skip
SPLITS = ("train", "val")
LAYOUTS = (
    Layout("v2", "Ego-Exo4D release v2 (2024-03-25), per-split atomic descriptions",
           {**{f"atomic_{sp}": f"annotations/atomic_descriptions_{sp}.json" for sp in SPLITS},
            **{f"keystep_{sp}": f"annotations/keystep_{sp}.json" for sp in SPLITS}}),
    Layout("v1", "Ego-Exo4D release v1 (2023-12-15), one atomic-descriptions file",
           {"atomic": "annotations/atomic_descriptions_latest.json",
            **{f"keystep_{sp}": f"annotations/keystep_{sp}.json" for sp in SPLITS}}),
)  # fmt: skip
PARTICLES = {"up", "down", "off", "out", "away", "back", "over"}
ON_VERBS = {"turn", "switch", "put"}  # "turns on", "puts on" (a glove)
DETERMINERS = {"the", "a", "an", "his", "her", "their", "its", "some", "another", "one", "two", "both", "this",
               "that", "these", "those"}  # fmt: skip
NP_STOP = {"with", "on", "in", "from", "to", "into", "onto", "using", "at", "and", "then", "while", "by", "towards",
           "toward", "across", "under", "over", "inside", "near", "beside", "off", "out", "through", "around",
           "for", "as", "before", "after"}  # fmt: skip
IRREGULAR = {"does": "do", "goes": "go", "has": "have", "is": "be", "puts": "put", "cuts": "cut", "sets": "set",
             "lets": "let", "hits": "hit", "shuts": "shut"}  # fmt: skip
WORD_RE = re.compile(r"[a-z]+(?:'[a-z]+)?")


@dataclasses.dataclass
class EgoExo4DOptions:
    splits: list[str] = dataclasses.field(default_factory=lambda: ["train", "val"])
    window: str = "next"  # "next": [t_i, t_{i+1}) | "centered": t_i +- window_s/2
    window_s: float = 2.0
    min_seconds: float = 1.0
    max_seconds: float = 5.0
    words_file: str = ""  # word list for the typo check ("" = corpus frequency)
    min_word_count: int = 2
    annotator: str = "first"  # "first" non-rejected pass per take | "all" passes
    drop_unsure: bool = False  # drop descriptions the annotator flagged `unsure`
    scene: str = "location"  # "location" | "scenario" | "task"
    exo: str = "all"  # "all" exo cameras | "best" (the description's best_exo) | "none"
    resolution: str = "448"  # downscaled_takes/<resolution>

    def validate(self) -> None:
        for name, value, allowed in (("window", self.window, ("next", "centered")),
                                     ("annotator", self.annotator, ("first", "all")),
                                     ("scene", self.scene, ("location", "scenario", "task")),
                                     ("exo", self.exo, ("all", "best", "none"))):  # fmt: skip
            if value not in allowed:
                raise ValueError(f"ego_exo4d.{name}: {value!r} is not one of {allowed}")
        if not 0 <= self.min_seconds < self.max_seconds:
            raise ValueError(f"ego_exo4d: need 0 <= min_seconds < max_seconds, got {self.min_seconds}, {self.max_seconds}")


# ------------------------------------------------------------------------------------- language
def strip_subject(text: str) -> str:
    """'C picks up the knife.' -> 'picks up the knife.'; 'The man X walks ...' -> 'walks ...'."""
    return SUBJECT_RE.sub("", text.strip(), count=1)


def lemma(word: str) -> str:
    """Third-person-singular verb -> base form (simple English rules)."""
    w = word.lower()
    if w in IRREGULAR:
        return IRREGULAR[w]
    if w.endswith("ies") and len(w) > 4:
        return w[:-3] + "y"
    if re.search(r"(ss|sh|ch|x|z|o)es$", w):
        return w[:-2]
    if w.endswith("s") and not w.endswith("ss") and len(w) > 2:
        return w[:-1]
    return w


def parse_atomic(text: str) -> tuple[str, str]:
    """Free-form atomic description -> (verb class, object). ('', '') when no verb is found."""
    words = WORD_RE.findall(strip_subject(text).lower())
    if not words:
        return "", ""
    verb = lemma(words[0])
    rest = words[1:]
    if rest and (rest[0] in PARTICLES or rest[0] == "on" and verb in ON_VERBS):
        verb, rest = f"{verb} {rest[0]}", rest[1:]
    obj: list[str] = []
    for w in rest:
        if w in NP_STOP:
            break
        if w in DETERMINERS and not obj:
            continue
        obj.append(w)
    return verb, " ".join(obj)


def words_of(text: str) -> list[str]:
    """The words the typo check looks at (lower case; one-letter person tags like C or X left out)."""
    return [w for w in WORD_RE.findall(strip_subject(text).lower()) if len(w) > 1]


# --------------------------------------------------------------------------------------- adapter
@DATASETS.register("ego_exo4d")
class EgoExo4D:
    options_cls = EgoExo4DOptions
    retrieval_only = False
    symmetric_pairs: list[list[str]] = []

    def __init__(self, root: str | Path, opts: EgoExo4DOptions | None = None):
        self.root = Path(root)
        self.opts = opts or EgoExo4DOptions()
        self.opts.validate()
        self.extra: dict[str, Any] = {}

    # -- annotation files
    def _takes(self, report: Report) -> dict[str, dict]:
        data = load_json(self.root / "takes.json", report, "takes.json (download with --parts metadata)")
        if not isinstance(data, list):
            if data is not None:
                report.malformed(self.root / "takes.json", "expected a list of takes")
            return {}
        takes = {}
        for i, t in enumerate(data):
            if not isinstance(t, dict) or not t.get("take_uid") or not t.get("take_name"):
                report.malformed(self.root / "takes.json", f"[{i}]: a take needs take_uid and take_name")
                continue
            takes[t["take_uid"]] = t
        return takes

    def _splits(self, report: Report) -> dict[str, str]:
        p = self.root / "annotations" / "splits.json"
        if not p.is_file():
            return {}
        data = load_json(p, report, "splits.json")
        m = data.get("take_uid_to_split") if isinstance(data, dict) else None
        if not isinstance(m, dict):
            report.malformed(p, "no take_uid_to_split mapping")
            return {}
        return {k: str(v).lower() for k, v in m.items()}

    def _views(self, take: dict) -> tuple[str, dict[str, str]]:
        """(ego video path, {exo cam_id: video path}) under downscaled/<res>, relative to root."""
        root_dir = str(take.get("root_dir") or f"takes/{take['take_name']}")
        base = f"{root_dir}/frame_aligned_videos/downscaled/{self.opts.resolution}"
        fav = take.get("frame_aligned_videos") or {}
        cams = (take.get("capture") or {}).get("cameras") or []
        is_ego = {c.get("cam_id"): bool(c.get("is_ego")) for c in cams if isinstance(c, dict)}
        ego, exo = "", {}
        for cam_id, streams in sorted(fav.items()):
            if cam_id in ("collage", "best_exo") or not isinstance(streams, dict):
                continue
            ego_cam = is_ego.get(cam_id, cam_id.startswith("aria"))
            if ego_cam:
                s = streams.get("rgb")
                if isinstance(s, dict) and s.get("relative_path") and not ego:
                    ego = f"{base}/{Path(s['relative_path']).name}"
            else:
                s = next((v for v in streams.values() if isinstance(v, dict) and v.get("relative_path")), None)
                if s:
                    exo[cam_id] = f"{base}/{Path(s['relative_path']).name}"
        return ego, exo

    def _scene(self, take: dict) -> str:
        if self.opts.scene == "scenario":
            return str(take.get("parent_task_name") or take.get("task_name") or "unknown")
        if self.opts.scene == "task":
            return str(take.get("task_name") or "unknown")
        uni = take.get("university_name") or (take.get("capture") or {}).get("university_name") or "unknown"
        setting = take.get("physical_setting_uid")
        return f"{uni}_{setting}" if setting is not None else str(uni)

    def _vocabulary(self, passes: list[tuple[Path, str, list[dict]]]) -> set[str] | None:
        if self.opts.words_file:
            p = Path(self.opts.words_file)
            if not p.is_file():
                raise FileNotFoundError(f"ego_exo4d.words_file: {p} not found")
            return {w.strip().lower() for w in p.read_text().splitlines() if w.strip()}
        counts: Counter = Counter()
        for _, _, descs in passes:
            for d in descs:
                if isinstance(d, dict) and isinstance(d.get("text"), str):
                    counts.update(set(words_of(d["text"])))
        return {w for w, n in counts.items() if n >= self.opts.min_word_count}

    def scan(self, report: Report) -> list[Item]:
        o = self.opts
        layout = detect_layout("ego_exo4d", self.root, LAYOUTS)
        report.layout = layout.describe()
        takes = self._takes(report)
        official = self._splits(report)
        ann_dir = self.root / "annotations"
        passes: list[tuple[Path, str, list[dict]]] = []  # (file, take_uid, descriptions)
        keysteps: dict[str, list[dict]] = {}
        # (atomic-descriptions file, its split or None when one file holds every split)
        sources = ([(layout.path(self.root, "atomic"), None)] if layout.name == "v1"
                   else [(layout.path(self.root, f"atomic_{sp}"), sp) for sp in o.splits])  # fmt: skip
        if layout.name == "v1" and not official:
            report.missing(ann_dir / "splits.json", "the v1 layout takes each take's split from it")
        for path, fsplit in sources:
            data = load_json(path, report, "atomic descriptions" + (f" of split {fsplit!r}" if fsplit else ""))
            anns = data.get("annotations") if isinstance(data, dict) else None
            if data is not None and not isinstance(anns, dict):
                report.malformed(path, "no 'annotations' object (take_uid -> list of annotation passes)")
            for uid, lst in (anns or {}).items():
                if not isinstance(lst, list):
                    report.malformed(path, f"annotations[{uid}]: expected a list of annotation passes")
                    continue
                if fsplit is None:  # v1: one file for every split; a take's split is its splits.json entry
                    if uid not in official and uid in takes:
                        used = [a for a in lst if isinstance(a, dict) and not a.get("rejected")
                                and isinstance(a.get("descriptions"), list)]  # fmt: skip
                        n = sum(len(a["descriptions"]) for a in (used[:1] if o.annotator == "first" else used))
                        report.scanned += n
                        report.drop("take without a split in splits.json", n)
                        continue
                    if uid in official and official[uid] not in o.splits:
                        continue  # another split's take (v2 reads only the requested splits' files)
                good = [a for a in lst if isinstance(a, dict) and not a.get("rejected")
                        and isinstance(a.get("descriptions"), list)]  # fmt: skip
                if len(good) < len([a for a in lst if isinstance(a, dict) and not a.get("rejected")]):
                    report.malformed(path, f"annotations[{uid}]: a pass has no 'descriptions' list")
                for a in good[:1] if o.annotator == "first" else good:
                    passes.append((path, uid, a["descriptions"]))
        for split in o.splits:
            kpath = layout.path(self.root, f"keystep_{split}")
            if kpath.is_file():
                kd = load_json(kpath, report, f"keystep annotations of split {split!r}")
                kanns = kd.get("annotations") if isinstance(kd, dict) else None
                if kd is not None and not isinstance(kanns, dict):
                    report.malformed(kpath, "no 'annotations' object")
                for uid, a in (kanns or {}).items():
                    segs = a.get("segments") if isinstance(a, dict) else None
                    if not isinstance(segs, list):
                        report.malformed(kpath, f"annotations[{uid}]: no 'segments' list")
                        continue
                    ok = [s for s in segs if isinstance(s, dict) and isinstance(s.get("start_time"), (int, float))
                          and isinstance(s.get("end_time"), (int, float))]  # fmt: skip
                    if len(ok) < len(segs):
                        report.malformed(kpath, f"annotations[{uid}]: {len(segs) - len(ok)} segment(s) without "
                                         "numeric start_time/end_time")
                    keysteps[uid] = sorted(ok, key=lambda s: (s["start_time"], s["end_time"]))
        vocab = self._vocabulary(passes)
        split_of_file = dict(sources)
        by_take: dict[str, list[ClipSpec]] = {}
        missing_reported: set[str] = set()
        typo_examples: list[str] = []
        for pi, (path, uid, descs) in enumerate(passes):
            take = takes.get(uid)
            valid = []
            for j, d in enumerate(descs):
                report.scanned += 1
                where = f"annotations[{uid}].descriptions[{j}]"
                if not isinstance(d, dict) or not isinstance(d.get("text"), str) or not d["text"].strip():
                    report.malformed(path, f"{where}: missing or empty 'text'")
                    report.drop("malformed annotation")
                    continue
                if not isinstance(d.get("timestamp"), (int, float)):
                    report.malformed(path, f"{where}: missing or non-numeric 'timestamp'")
                    report.drop("malformed annotation")
                    continue
                valid.append((j, d))
            if take is None:
                if uid not in missing_reported:
                    report.malformed(path, f"annotations[{uid}]: take_uid not in takes.json")
                    missing_reported.add(uid)
                report.drop("take not in takes.json", len(valid))
                continue
            valid.sort(key=lambda jd: jd[1]["timestamp"])
            end_of_take = float(take.get("duration_sec") or 0.0) or None
            ego, exo = self._views(take)
            split = official.get(uid) or split_of_file[path] or ""
            for n, (j, d) in enumerate(valid):
                t = float(d["timestamp"])
                if o.window == "next":
                    a, b = t, (float(valid[n + 1][1]["timestamp"]) if n + 1 < len(valid) else end_of_take)
                else:
                    a, b = max(0.0, t - o.window_s / 2), t + o.window_s / 2
                if b is None:
                    report.drop("last description of a take without duration_sec")
                    continue
                dur = b - a
                if dur < o.min_seconds:
                    report.drop(f"shorter than {o.min_seconds:g} s")
                    continue
                if dur > o.max_seconds:
                    report.drop(f"longer than {o.max_seconds:g} s")
                    continue
                if o.drop_unsure and str(d.get("unsure", "0")) in ("1", "true", "True"):
                    report.drop("annotator unsure")
                    continue
                bad = [w for w in words_of(d["text"]) if vocab is not None and w not in vocab]
                if bad:
                    report.drop("typo (word not in vocabulary)")
                    if len(typo_examples) < 20:
                        typo_examples.append(f"{d['text']!r}: {', '.join(bad)}")
                    continue
                verb, obj = parse_atomic(d["text"])
                if not verb:
                    report.drop("no verb found")
                    continue
                segs = keysteps.get(uid, [])
                k = next((i for i, s in enumerate(segs) if s["start_time"] <= t < s["end_time"]), -1)
                views: dict[str, Source] = {}
                if not ego:
                    report.drop("take has no ego rgb video in takes.json")
                    continue
                views["ego"] = Source(path=ego, start_s=a, end_s=b)
                cams = {} if o.exo == "none" else exo
                if o.exo == "best":
                    best = (d.get("best_exo") or {}).get("cam_id") if isinstance(d.get("best_exo"), dict) else None
                    cams = {best: exo[best]} if best in exo else {}
                    if not cams:
                        report.drop("no best_exo camera")
                        continue
                for cam, p in cams.items():
                    views[cam] = Source(path=p, start_s=a, end_s=b)
                labels = {"split": split, "scene": self._scene(take), "subject": "human", "action": verb,
                          "object": obj, "caption": d["text"].strip(), "keystep_id": k,
                          "keystep": str(segs[k].get("step_name", "")) if k >= 0 else ""}  # fmt: skip
                suffix = f"p{pi}_" if o.annotator == "all" else ""
                by_take.setdefault(take["take_name"], []).append(
                    ClipSpec(clip_id=f"{take['take_name']}_{suffix}a{j:04d}", labels=labels, views=views))
        items = []
        for name, clips in sorted(by_take.items()):
            # missing videos: one line per file; a missing ego drops the take, a missing exo its view
            first = clips[0].views
            gone = {v for v, s in first.items() if not (self.root / s.path).is_file()}
            for c in clips[1:]:
                gone |= {v for v, s in c.views.items() if v not in first and not (self.root / s.path).is_file()}
            for v in sorted(gone):
                src = next(c.views[v] for c in clips if v in c.views)
                report.missing(self.root / src.path, f"{v} video of take {name}")
            if "ego" in gone:
                report.drop("missing video", len(clips))
                continue
            kept = []
            for c in clips:
                c.views = {v: s for v, s in c.views.items() if v not in gone}
                if o.exo != "none" and len(c.views) < 2:
                    report.drop("missing video")
                    continue
                kept.append(c)
            if kept:
                items.append(Item(key=name, clips=kept))
        self.extra = {"typo_examples": typo_examples, "source": "Ego-Exo4D downscaled_takes/" + o.resolution}
        return items
