"""Robot-domain atomic clips from the scripted demos: one clip per skill segment of a demo hdf5.

    python scripts/demo_clips.py --demos runs/demos/libero --out runs/demos/libero_atomic
    from envs.datasets.demo_clips import DemoClipsConfig, demo_clips

Reads every `*.hdf5` below `demos` (or one file) in the project's demo format (envs/demos.py:
`data/demo_i/skills`, int16 per step, indices into the `skill_vocab` attribute, written by the
LIBERO and Kitchen demo writers through policies/scripted) and writes the clip index the atomic
world uses (envs/atomic_world/dataset.py: index.parquet + meta.json + one `(T, H, W, 3) uint8`
.npz per clip-view), so every encoder, probe and the retrieval benchmark read it unchanged.

- take = one demo; clip = one *segment*, a maximal run of one skill label: `start_frame` /
  `end_frame` are its first step and one past its last step in the demo (end exclusive);
  `segment_index` its order in the demo. `frames` steps are sampled uniformly over the segment,
  centre-cropped and resized to `size` x `size` (the atomic world's 16 frames at 96 px by default,
  so the two can be mixed: encoders/train.py `data=[...] data_weights=[...]`).
- verb: the skill label through `VERBS` (the one mapping, below); object: `object_of` per segment
  (the Kitchen element; else the sim object the expert's skill acted on, `data/demo_i/skill_objects`,
  named by `sim_noun`; else the instruction's first noun phrase; through `OBJECTS`): so the second
  pick of "put both the alphabet soup and the tomato sauce in the basket" is the tomato sauce;
  subject `robot`.
- views: the demo's cameras (`camera_views`): a camera on the hand is `ego`, a static one `exo_<camera>`.
- scene = `<suite>_t<task id>` (`scene=task`) or `<suite>` (`scene=suite`); split by task, by scene
  (`val` names the held-out tasks `<suite>/<id>` or scenes; empty: the last of each suite) or by
  demo (every `val_every`-th demo of each task is val).
- keystep: none by default (a task is one scene, so a keystep = task has no cross-scene match);
  `keysteps=true` makes the demo's instruction the keystep of its clips (`keystep_id` = its take).
- success: the writers log only the episode's success, so a segment's is *derived*. A file holds one
  task, whose demos mostly run the same sequence of skill runs (its *nominal* sequence: the most
  common one, `nominal_runs`); a demo's runs are aligned to it (`retried_runs`: longest common
  subsequence, later occurrences matched first), and a run left over is an attempt the expert
  started again (a re-grasp after a slip): it failed. The others take the episode's success. So a
  task that repeats skills by design (two objects into the basket; a handle the program lets go of
  and grasps again in every demo) keeps them all. Failed segments are dropped unless `keep_failed`;
  `segments.parquet` lists every segment with `success` and `kept`.

A demo file without skill labels is one error naming it (segment it first: encoders/instraction/segment.py);
a skill label without an entry in VERBS is one error naming the file, the demo and the label.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from configs.runs import atomic_write, atomic_write_json

# Skill label (envs.demos.SKILL_VOCAB) -> clip verb. Atomic-world verbs where the skill is one of
# them; "reach" and "grasp" extend the vocabulary (NEW_VERBS); None: not an action, no clip.
VERBS: dict[str, str | None] = {
    "idle": None,
    "reach": "reach",
    "grasp": "grasp",
    "lift": "pick up",
    "place": "put down",
    "push": "push",
    "open": "open",
    "close": "close",
    "turn": "turn on",  # "turn off" when the instruction says so (`verb_of`)
}
NEW_VERBS: dict[str, str] = {"reach": "reaches for {o}", "grasp": "grasps {o}"}  # verb -> caption phrase
# Object noun phrase (instruction or Kitchen element) -> object label; atomic-world names where they match.
OBJECTS: dict[str, str] = {
    "stove": "knob", "bottom burner": "knob", "top burner": "knob", "oven knob": "knob",
    "top drawer": "drawer", "middle drawer": "drawer", "bottom drawer": "drawer",
}  # fmt: skip
_NOUN = re.compile(r"\bthe ((?:[a-z]+ )*?[a-z]+)(?= (?:of|in|on|to|into|onto|at|from|and|next|under|over|inside|"
                   r"open|closed|door)\b|$)")  # fmt: skip
SPLIT_BY = ("task", "scene", "demo")


@dataclasses.dataclass
class DemoClipsConfig:
    demos: str = ""  # a demo folder (every *.hdf5 below it) or one demo hdf5
    out: str = ""  # output folder (index.parquet, meta.json, segments.parquet, clips/, items/)
    frames: int = 16  # frames per clip-view, sampled uniformly over the segment
    size: int = 96  # square clip size (pixels)
    scene: str = "task"  # "task": one scene per (suite, task); "suite": one per suite
    split_by: str = "task"  # "task" | "scene" | "demo"
    val: list[str] = dataclasses.field(default_factory=list)  # held-out tasks "<suite>/<id>" or scenes; empty: the last of each suite
    val_every: int = 5  # split_by=demo: demos 0, k, 2k, ... of each task are val
    min_steps: int = 2  # shorter segments are dropped
    keysteps: bool = False  # the demo's instruction as the keystep of its clips (keystep_id = its take)
    keep_failed: bool = False  # keep segments derived as failed (retried by the expert)
    resume: bool = False  # keep files already done (items/<file>.json)
    progress: bool = True

    def validate(self) -> None:
        if not self.demos or not self.out:
            raise ValueError("'demos' and 'out' are required (--demos DIR --out DIR)")
        if self.scene not in ("task", "suite"):
            raise ValueError(f"scene: {self.scene!r} is not 'task' or 'suite'")
        if self.split_by not in SPLIT_BY:
            raise ValueError(f"split_by: {self.split_by!r} is not one of {list(SPLIT_BY)}")
        if self.frames < 1 or self.size < 8 or self.val_every < 1 or self.min_steps < 1:
            raise ValueError("frames, val_every and min_steps must be >= 1 and size >= 8")


def segments(skills: list[str]) -> list[tuple[str, int, int]]:
    """Maximal runs of one label: [(skill, start step, end step exclusive), ...] in order."""
    out: list[tuple[str, int, int]] = []
    for t, s in enumerate(skills):
        if out and out[-1][0] == s:
            out[-1] = (s, out[-1][1], t + 1)
        else:
            out.append((s, t, t + 1))
    return out


def nominal_runs(run_labels: Sequence[Sequence[str]]) -> tuple[str, ...]:
    """The most common run-label sequence among a task's demos (ties: the fewest runs, then the
    first seen): what the expert does when no skill has to be attempted again."""
    count = Counter(tuple(r) for r in run_labels)  # keys in first-seen order, which min() keeps on ties
    return min(count, key=lambda seq: (-count[seq], len(seq))) if count else ()


def retried_runs(observed: Sequence[str], nominal: Sequence[str]) -> set[int]:
    """Indices of the runs of `observed` that a longest common subsequence with `nominal` leaves
    over, preferring to match later runs, so of a repeated attempt the earlier one is left over."""
    n, m = len(observed), len(nominal)
    lcs = np.zeros((n + 1, m + 1), dtype=np.int32)  # lcs[i, j]: of observed[i:] and nominal[j:]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            lcs[i, j] = lcs[i + 1, j + 1] + 1 if observed[i] == nominal[j] else max(lcs[i + 1, j], lcs[i, j + 1])
    extra, i, j = set(), 0, 0
    while i < n:
        if j < m and observed[i] == nominal[j] and lcs[i + 1, j] < lcs[i, j]:
            i, j = i + 1, j + 1  # matching run i is needed for the longest alignment
        elif lcs[i + 1, j] == lcs[i, j]:
            extra.add(i)  # run i can be left out without shortening the alignment: a later run matches
            i += 1
        else:
            j += 1
    return extra


def verb_of(skill: str, instruction: str, where: str) -> str | None:
    """The clip verb of a skill label (None: no clip); an unmapped label raises naming `where`."""
    if skill not in VERBS:
        raise ValueError(f"{where}: skill label {skill!r} has no verb mapping; add it to VERBS in "
                         f"envs/datasets/demo_clips.py (mapped labels: {sorted(VERBS)})")
    verb = VERBS[skill]
    if verb == "turn on" and "turn off" in instruction.lower():
        return "turn off"
    return verb


# LIBERO sim object categories (a body name less its `_<n>` instance suffix) whose words are not the
# instructions' noun for the object; every other category reads as its words ("alphabet_soup").
SIM_NOUNS: dict[str, str] = {
    "akita_black_bowl": "black bowl", "porcelain_mug": "white mug", "white_yellow_mug": "yellow and white mug",
    "black_book": "book", "flat_stove": "stove", "cream_cheese": "cream cheese box",
}  # fmt: skip
_INSTANCE = re.compile(r"^(.*?)(?:_\d+(?:_[a-z]+)?)?$")  # akita_black_bowl_1, microwave_1_microjoint


def sim_noun(name: str) -> str:
    """The object noun of a sim body or joint name: "akita_black_bowl_1" -> "black bowl", "moka_pot_2"
    -> "moka pot", "microwave_1_microjoint" -> "microwave", "top_drawer" -> "top drawer"."""
    category = _INSTANCE.match(name.lower()).group(1)
    return SIM_NOUNS.get(category, category.replace("_", " "))


def object_of(env_args: dict, instruction: str, sim_names: Sequence[str] = ()) -> str:
    """A segment's object, through OBJECTS: the Kitchen element; else `sim_noun` of the sim object the
    expert's skill acted on (`sim_names`: the segment's per-step `skill_objects`, their most frequent
    non-empty one); else (a file written before the demos logged objects, or a skill acting on
    nothing) the instruction's first noun phrase."""
    noun = str(env_args.get("element") or "")
    if not noun:
        named = Counter(n for n in sim_names if n).most_common(1)
        if named:
            noun = sim_noun(named[0][0])
        else:
            m = _NOUN.search(instruction.lower())
            noun = m.group(1) if m else "none"
    return OBJECTS.get(noun, noun)


def caption(verb: str, obj: str) -> str:
    from envs.atomic_world.vocab import ACTIONS

    phrase = {**ACTIONS, **NEW_VERBS}.get(verb, verb + " {o}")
    return "the robot " + phrase.format(o=f"the {obj}")


def camera_views(env_args: dict, keys: list[str]) -> dict[str, str]:
    """obs key -> view name for the image keys `keys` of a demo file (a hand camera is `ego`)."""
    kitchen = env_args.get("type") == "kitchen" or env_args.get("suite") == "kitchen"
    if kitchen:
        cams = list(env_args.get("env_kwargs", {}).get("views") or ["default", "left_cap"])
        names = dict(zip(("agentview_rgb", "eye_in_hand_rgb"), cams))
    else:  # LIBERO / robomimic: agentview is static, eye_in_hand rides on the gripper
        names = {"agentview_rgb": "agentview", "eye_in_hand_rgb": "wrist"}
    out = {}
    for k in keys:
        cam = names.get(k, k.removesuffix("_rgb"))
        out[k] = "ego" if cam in ("wrist", "eye_in_hand", "robot0_eye_in_hand") else f"exo_{cam}"
    return out


def sample_steps(start: int, end: int, n: int) -> np.ndarray:
    """`(n,)` step indices at the centres of n equal parts of [start, end)."""
    return np.minimum(start + ((np.arange(n) + 0.5) * (end - start) / n).astype(int), end - 1)


def square(frames: np.ndarray, size: int) -> np.ndarray:
    """`(T, H, W, 3) uint8` -> `(T, size, size, 3) uint8`: centre crop to a square, then resize."""
    import cv2

    t, h, w, _ = frames.shape
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    crop = frames[:, top : top + s, left : left + s]
    if s == size:
        return np.ascontiguousarray(crop)
    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in crop])


def demo_files(demos: str | Path) -> list[Path]:
    p = Path(demos)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise FileNotFoundError(f"demos: {p} is neither a demo hdf5 nor a folder")
    files = sorted(p.rglob("*.hdf5"))
    if not files:
        raise FileNotFoundError(f"demos: no *.hdf5 files below {p}")
    return files


def scene_and_task(path: Path, env_args: dict, scene_mode: str) -> tuple[str, str]:
    suite = str(env_args.get("suite") or path.parent.name)
    task = f"{suite}/{env_args.get('task_id', path.stem.removesuffix('_demo'))}"
    scene = suite if scene_mode == "suite" else f"{suite}_t{task.split('/', 1)[1]}"
    return scene, task


def process_file(path: Path, first_take: int, cfg: DemoClipsConfig, out: Path, split_of) -> dict:
    """Write the clips of one demo file; returns its record {rows, segments, dropped}."""
    from envs.atomic_world.dataset import save_clip
    from envs.datasets.common import safe_key
    from envs.demos import DemoReader

    rows: list[dict[str, Any]] = []
    segs: list[dict[str, Any]] = []
    dropped: Counter = Counter()
    with DemoReader(path) as r:
        scene, task = scene_and_task(path, r.env_args, cfg.scene)
        views = camera_views(r.env_args, file_info(path)[1])
        demo_runs = []  # every demo's skill runs first (no images): the task's nominal sequence is their mode
        for i in range(len(r)):
            d = r.read(i, obs_keys=set())
            if d.skills is None:
                raise ValueError(f"{path}: {r.keys[i]} has no skill labels (data/{r.keys[i]}/skills + skill_vocab); "
                                 "segment it instead with encoders/instraction/segment.py (DTW against verb phrases)")
            demo_runs.append(segments(d.skills))
        nominal = nominal_runs([[s for s, _, _ in runs] for runs in demo_runs])
        for i, runs in enumerate(demo_runs):
            d = r.read(i, obs_keys=set(views))
            take_id = first_take + i
            ok = bool(d.rewards[-1] > 0 or d.dones[-1] > 0) if len(d) else False
            retried = retried_runs([s for s, _, _ in runs], nominal)
            verbs = [verb_of(s, d.instruction, f"{path} {r.keys[i]}") for s, _, _ in runs]
            keystep = d.instruction if cfg.keysteps and sum(v is not None for v in verbs) >= 2 else ""
            split = split_of(scene, task, i)
            for k, ((skill, a, b), verb) in enumerate(zip(runs, verbs)):
                obj = object_of(r.env_args, d.instruction, d.skill_objects[a:b] if d.skill_objects else ())
                success = ok and k not in retried
                keep = verb is not None and b - a >= cfg.min_steps and (success or cfg.keep_failed)
                reason = ("not an action" if verb is None else "shorter than min_steps" if b - a < cfg.min_steps
                          else "" if keep else "failed (retried)")  # fmt: skip
                clip_id = f"{safe_key(path.stem)}_d{i:03d}_s{k:02d}"
                segs.append({"file": str(path), "demo": r.keys[i], "take_id": take_id, "clip_id": clip_id,
                             "skill": skill, "action": verb or "", "object": obj, "start_step": a, "end_step": b,
                             "success": success, "success_source": "derived", "kept": keep})  # fmt: skip
                if not keep:
                    dropped[reason] += 1
                    continue
                steps = sample_steps(a, b, cfg.frames)
                for key, view in views.items():
                    rel = f"clips/t{take_id:05d}/s{k:02d}_{view}.npz"
                    save_clip(out / rel, square(d.obs[key][steps], cfg.size))
                    rows.append({"take_id": take_id, "clip_id": clip_id, "view": view, "split": split,
                                 "scene": scene, "subject": "robot", "action": verb, "object": obj,
                                 "caption": caption(verb, obj), "keystep_id": take_id if keystep else -1,
                                 "keystep": keystep, "segment_index": k, "start_frame": a, "end_frame": b,
                                 "path": rel})  # fmt: skip
    return {"file": str(path), "rows": rows, "segments": segs, "dropped": dict(dropped)}


def _splitter(cfg: DemoClipsConfig, tasks: list[tuple[str, str]]):
    """split(scene, task, demo index) -> "train" | "val" for the (scene, task) pairs of the files."""
    if cfg.split_by == "demo":
        return lambda scene, task, i: "val" if i % cfg.val_every == 0 else "train"
    col = 1 if cfg.split_by == "task" else 0
    by_suite: dict[str, set[str]] = {}
    for st in tasks:
        by_suite.setdefault(st[1].split("/")[0], set()).add(st[col])
    names = sorted(set().union(*by_suite.values()))
    if cfg.val:
        bad = [v for v in cfg.val if v not in names]
        if bad:
            raise ValueError(f"val: {bad} are not {cfg.split_by}s of {cfg.demos}; {cfg.split_by}s: {names}")
        held = set(cfg.val)
    else:  # the last task / scene of each suite that has several
        held = {max(v, key=lambda s: (len(s), s)) for v in by_suite.values() if len(v) > 1}
    return lambda scene, task, i: "val" if (scene, task)[col] in held else "train"


def file_info(path: Path) -> tuple[list[str] | None, list[str], set[str]]:
    """(skill_vocab or None, camera keys, skill labels used) of a demo file, read without its images."""
    import h5py

    from envs.demos import DemoReader

    with DemoReader(path) as r:  # the reader's own checks: missing, damaged, not a demo file
        vocab, keys = r.skill_vocab, r.keys
    with h5py.File(path, "r") as f:
        data = f["data"]
        if vocab is None or any("skills" not in data[k] for k in keys):
            return None, [], set()
        cams = [c for c in ("agentview_rgb", "eye_in_hand_rgb") if keys and c in data[keys[0]]["obs"]]
        used = {vocab[j] for k in keys for j in np.unique(np.asarray(data[k]["skills"]))}
    return vocab, cams, used


def demo_clips(cfg: DemoClipsConfig) -> dict:
    """Index every demo file of `cfg.demos` into `cfg.out`; returns the summary (clips per verb, ...)."""
    import pandas as pd
    from tqdm import tqdm

    from configs.loader import to_dict
    from envs.atomic_world.dataset import write_index
    from envs.atomic_world.vocab import ACTIONS, SYMMETRIC_PAIRS
    from envs.datasets.common import build_meta, safe_key
    from envs.demos import DemoReader

    cfg.validate()
    files = demo_files(cfg.demos)
    out = Path(cfg.out)
    if out.exists() and any(out.iterdir()) and not cfg.resume:
        raise FileExistsError(f"{out} is not empty; pass --resume to continue it or choose another --out")
    counts, tasks = [], []
    for f in files:  # check every file before writing anything
        vocab, _, used = file_info(f)
        if vocab is None:
            raise ValueError(f"{f}: no per-step skill labels (data/demo_i/skills + skill_vocab); segment it "
                             "instead with encoders/instraction/segment.py (DTW against verb phrases)")
        if used - set(VERBS):
            raise ValueError(f"{f}: skill labels {sorted(used - set(VERBS))} have no verb mapping; add them "
                             f"to VERBS in envs/datasets/demo_clips.py (mapped labels: {sorted(VERBS)})")
        with DemoReader(f) as r:
            counts.append(len(r))
            tasks.append(scene_and_task(f, r.env_args, cfg.scene))
    split_of = _splitter(cfg, tasks)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    first = np.concatenate([[0], np.cumsum(counts)]).astype(int)
    for n, f in enumerate(tqdm(files, desc="demo files", disable=not cfg.progress)):
        rec_path = out / "items" / f"{safe_key(str(f.relative_to(Path(cfg.demos)) if Path(cfg.demos).is_dir() else f.name))}.json"
        if cfg.resume and rec_path.is_file():
            records.append(json.loads(rec_path.read_text()))
            continue
        rec = process_file(f, int(first[n]), cfg, out, split_of)
        atomic_write_json(rec_path, rec)  # last: marks the file complete
        records.append(rec)
    rows = [row for rec in records for row in rec["rows"]]
    segs = [s for rec in records for s in rec["segments"]]
    if not rows:
        raise ValueError(f"{cfg.demos}: no segment gave a clip (all idle, shorter than min_steps or failed)")
    write_index(out, rows)
    seg_df = pd.DataFrame(segs)
    atomic_write(out / "segments.parquet", lambda tmp: seg_df.to_parquet(tmp, index=False))
    used_verbs = {r["action"] for r in rows}
    extra = {"source": "project demos (envs/demos.py skill labels)", "demos": str(cfg.demos),
             "verb_map": {k: v for k, v in VERBS.items()}, "object_map": dict(OBJECTS),
             "new_verbs": sorted(used_verbs - set(ACTIONS)), "files": [str(f) for f in files]}  # fmt: skip
    meta = build_meta("demo_clips", rows, [str(f) for f in files], cfg.frames, cfg.size, to_dict(cfg),
                      SYMMETRIC_PAIRS, False, extra)
    meta["generator"] = "envs.datasets.demo_clips"
    meta["take_keys"] = [f"{f}:{k}" for f, c in zip(files, counts) for k in range(c)]
    meta["conventions"] = ("start_frame/end_frame are demo steps of the skill segment (end exclusive); each "
                           "clip-view holds `frames` steps sampled uniformly over it, centre-cropped to size x size")
    atomic_write_json(out / "meta.json", meta)
    clip_verbs = Counter(v for (_, _, v) in {(r["take_id"], r["clip_id"], r["action"]) for r in rows})
    summary = {"demos": str(cfg.demos), "out": str(out), "files": len(files), "takes": int(sum(counts)),
               "segments": len(segs), "clips": sum(clip_verbs.values()), "clip_views": len(rows),
               "clips_per_verb": dict(sorted(clip_verbs.items())),
               "clips_per_split": dict(Counter(s for (_, _, s) in {(r["take_id"], r["clip_id"], r["split"]) for r in rows})),
               "dropped": dict(sum((Counter(rec["dropped"]) for rec in records), Counter()))}  # fmt: skip
    atomic_write_json(out / "report.json", summary)
    return summary
