"""BridgeData V2 (RoboAct-CLIP Sec. III-A): WidowX trajectories -> single-action clips.

Layout read (the raw release, rail.eecs.berkeley.edu/datasets/bridge_release/raw/, unpacked):

    <root>/<environment>/<task>/<NN>/<YYYY-MM-DD_HH-MM-SS>/raw/traj_group<G>/traj<K>/
        images0/im_0.jpg, im_1.jpg, ...     (images1.. = other cameras when present)
        lang.txt                            instruction line(s), then "confidence: <x>" lines
        obs_dict.pkl, policy_out.pkl, agent_data.pkl   (not needed)

(bridge_data_v1 / older folders without the <NN> level read the same.) One trajectory = one take =
one clip over all its frames; each `images<i>` folder in `views` is one view (fixed cameras: exo;
name kept). The first instruction of lang.txt goes through Algorithm 1 (envs.datasets.single_action):
multi-action instructions are dropped, the rest labelled robot-action-object. Trajectories without
lang.txt (the unannotated part of the release) are dropped with that reason. scene = the environment
folder (e.g. datacol2_toykitchen7); frame rate 5 Hz (Bridge's control rate). Bridge has no official
raw split: everything is "train" except `val_scenes`.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from envs.datasets import DATASETS
from envs.datasets.common import ClipSpec, Item, Report, Source
from envs.datasets.single_action import ParserOptions, SingleActionFilter

IMG_RE = re.compile(r"^im_(\d+)\.(jpg|jpeg|png)$")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}$")


def read_lang(path: Path) -> list[str]:
    """Instruction lines of a lang.txt (confidence lines and blanks left out)."""
    return [ln.strip() for ln in path.read_text(errors="replace").splitlines()
            if ln.strip() and not ln.strip().lower().startswith("confidence")]  # fmt: skip


def scene_of(rel_parts: tuple[str, ...]) -> str:
    """Environment folder of a trajectory: the part above the task (above the date / <NN> levels)."""
    parts = list(rel_parts[: rel_parts.index("raw")]) if "raw" in rel_parts else list(rel_parts)
    if parts and DATE_RE.match(parts[-1]):
        parts.pop()
    if parts and parts[-1].isdigit():
        parts.pop()
    return parts[-2] if len(parts) >= 2 else (parts[0] if parts else "unknown")


@dataclasses.dataclass
class BridgeOptions:
    views: list[str] = dataclasses.field(default_factory=lambda: ["images0"])
    fps: float = 5.0
    min_frames: int = 2
    val_scenes: list[str] = dataclasses.field(default_factory=list)
    parser: ParserOptions = dataclasses.field(default_factory=ParserOptions)

    def validate(self) -> None:
        if not self.views:
            raise ValueError("bridge.views: name at least one images<i> folder")


@DATASETS.register("bridge")
class Bridge:
    options_cls = BridgeOptions
    retrieval_only = False
    symmetric_pairs: list[list[str]] = []

    def __init__(self, root: str | Path, opts: BridgeOptions | None = None):
        self.root = Path(root)
        self.opts = opts or BridgeOptions()
        self.opts.validate()
        self.extra = {"source": "BridgeData V2 (raw)", "fps": self.opts.fps,
                      "annotation_filter": f"RoboAct-CLIP Algorithm 1 (parser {self.opts.parser.name})"}

    def scan(self, report: Report) -> list[Item]:
        o = self.opts
        report.layout = "BridgeData V2 raw release (.../raw/traj_group<G>/traj<K>/images<i>/im_<n>.jpg + lang.txt)"
        keep = SingleActionFilter(o.parser, None)
        trajs = sorted({p.parent for p in self.root.rglob("images0") if re.match(r"^traj\d+$", p.parent.name)
                        and p.parent.parent.name.startswith("traj_group")})  # fmt: skip
        items = []
        for traj in trajs:
            report.scanned += 1
            rel = traj.relative_to(self.root)
            lang = traj / "lang.txt"
            if not lang.is_file():
                report.drop("no language annotation (lang.txt)")
                continue
            lines = read_lang(lang)
            if not lines:
                report.malformed(lang, "no instruction line")
                report.drop("no language annotation (lang.txt)")
                continue
            views: dict[str, Source] = {}
            for v in o.views:
                d = traj / v
                imgs = sorted(((int(m.group(1)), p) for p in d.glob("im_*") if (m := IMG_RE.match(p.name))),
                              key=lambda t: t[0]) if d.is_dir() else []  # fmt: skip
                if len(imgs) < o.min_frames:
                    report.missing(d, f"fewer than {o.min_frames} images ({len(imgs)})")
                    break
                views[v] = Source(images=[str(p) for _, p in imgs], fps=o.fps)
            if len(views) < len(o.views):
                report.drop("missing images")
                continue
            labels = keep(lines[0], "robot", report, str(lang))
            if labels is None:
                continue
            scene = scene_of(rel.parts)
            labels.update({"split": "val" if scene in o.val_scenes else "train", "scene": scene,
                           "keystep_id": -1, "keystep": ""})  # fmt: skip
            items.append(Item(key=str(rel), clips=[ClipSpec(clip_id=str(rel).replace("/", "_"), labels=labels,
                                                            views=views)]))
        return items
