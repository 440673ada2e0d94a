"""RH20T (RoboAct-CLIP Sec. III-A): robot and human demonstration episodes -> single-action clips.

Layout read (rh20t.github.io download, unpacked; the rh20t_api README / extract.py):

    <root>/task_description.json     {"task_0001": {"task_description_english": ..., "task_description_chinese": ...}}
    <root>/RH20T_cfg<N>/task_<TTTT>_user_<UUUU>_scene_<SSSS>_cfg_<CCCC>/cam_<serial>/color.mp4
    <root>/RH20T_cfg<N>/task_<TTTT>_user_<UUUU>_scene_<SSSS>_cfg_<CCCC>_human/cam_<serial>/color.mp4

(depth.mp4 / timestamps.npy next to color.mp4 are not needed.) One episode = one take = one clip
over the whole color video; its cameras (static, time-synchronised) are its views, named by their
`cam_<serial>` folder. The task's English description goes through Algorithm 1
(envs.datasets.single_action -> envs.datasets.annotations): multi-action descriptions are
dropped, the rest labelled subject-action-object; subject = robot, or human for `_human` episodes.
scene = the robot configuration folder (`scene="cfg"`, e.g. RH20T_cfg3) or that plus the episode's
scene number (`scene="episode"`). RH20T has no official split: everything is "train" except
episodes of `val_users`.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from envs.datasets import DATASETS
from envs.datasets.common import ClipSpec, Item, Report, Source, load_json
from envs.datasets.single_action import ParserOptions, SingleActionFilter

EPISODE_RE = re.compile(r"^task_(\d{4})_user_(\d{4})_scene_(\d{4})_cfg_(\d{4})(_human)?$")


@dataclasses.dataclass
class RH20TOptions:
    task_descriptions: str = "task_description.json"  # relative to root, or absolute
    scene: str = "cfg"  # "cfg" | "episode"
    subjects: list[str] = dataclasses.field(default_factory=lambda: ["robot", "human"])
    max_views: int = 0  # 0: every camera
    val_users: list[int] = dataclasses.field(default_factory=list)
    parser: ParserOptions = dataclasses.field(default_factory=ParserOptions)

    def validate(self) -> None:
        if self.scene not in ("cfg", "episode"):
            raise ValueError(f"rh20t.scene: {self.scene!r} is not 'cfg' or 'episode'")
        bad = [s for s in self.subjects if s not in ("robot", "human")]
        if bad or not self.subjects:
            raise ValueError(f"rh20t.subjects: must be a non-empty subset of ['robot', 'human'], got {self.subjects}")


@DATASETS.register("rh20t")
class RH20T:
    options_cls = RH20TOptions
    retrieval_only = False
    symmetric_pairs: list[list[str]] = []

    def __init__(self, root: str | Path, opts: RH20TOptions | None = None):
        self.root = Path(root)
        self.opts = opts or RH20TOptions()
        self.opts.validate()
        self.extra = {"source": "RH20T", "annotation_filter": f"RoboAct-CLIP Algorithm 1 (parser {self.opts.parser.name})"}

    def scan(self, report: Report) -> list[Item]:
        o = self.opts
        report.layout = "rh20t.github.io release (task_description.json + RH20T_cfg<N>/<episode>/cam_<serial>/color.mp4)"
        tpath = Path(o.task_descriptions)
        tpath = tpath if tpath.is_absolute() else self.root / tpath
        tasks = load_json(tpath, report, "RH20T task descriptions")
        if not isinstance(tasks, dict):
            if tasks is not None:
                report.malformed(tpath, "expected an object {task_XXXX: {task_description_english, ...}}")
            return []
        keep = SingleActionFilter(o.parser)
        items = []
        for cfg_dir in sorted(p for p in self.root.glob("RH20T_cfg*") if p.is_dir()):
            for ep in sorted(p for p in cfg_dir.iterdir() if p.is_dir()):
                m = EPISODE_RE.match(ep.name)
                if not m:
                    continue  # calib/ and other folders
                report.scanned += 1
                task, user, scene = int(m.group(1)), int(m.group(2)), int(m.group(3))
                subject = "human" if m.group(5) else "robot"
                if subject not in o.subjects:
                    report.drop(f"subject {subject} not requested")
                    continue
                desc = tasks.get(f"task_{task:04d}")
                text = desc.get("task_description_english") if isinstance(desc, dict) else None
                if not isinstance(text, str) or not text.strip():
                    report.malformed(tpath, f"task_{task:04d} (episode {ep.relative_to(self.root)}): "
                                     "no task_description_english")
                    report.drop("no language annotation")
                    continue
                cams = sorted(c for c in ep.glob("cam_*") if c.is_dir())
                videos = {c.name: c / "color.mp4" for c in cams}
                for v in videos.values():
                    if not v.is_file():
                        report.missing(v, f"color video of {ep.relative_to(self.root)}")
                videos = {n: v for n, v in videos.items() if v.is_file()}
                if o.max_views:
                    videos = dict(list(videos.items())[: o.max_views])
                if not videos:
                    if not cams:
                        report.missing(ep / "cam_*", "no camera folder")
                    report.drop("missing video")
                    continue
                labels = keep(text, subject, report, str(tpath))
                if labels is None:
                    continue
                sc = cfg_dir.name if o.scene == "cfg" else f"{cfg_dir.name}_scene{scene:04d}"
                labels.update({"split": "val" if user in o.val_users else "train", "scene": sc,
                               "keystep_id": -1, "keystep": ""})  # fmt: skip
                key = f"{cfg_dir.name}/{ep.name}"
                views = {n: Source(path=str(v.relative_to(self.root))) for n, v in videos.items()}
                items.append(Item(key=key, clips=[ClipSpec(clip_id=ep.name, labels=labels, views=views)]))
        return items
