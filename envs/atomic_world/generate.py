"""Generating the atomic-action video benchmark: take plans, simulation, truth checks, rendering, writing.

A *take* is one continuous episode in one scene by one subject: either a single atomic action or a
keystep (a chain of 2-4 atomic actions). Each atomic action is one clip, rendered from every view
at the same logged states, resampled to `frames` frames. In the take timeline, clip k covers frames
[k*frames, (k+1)*frames) (`end_frame` is exclusive).

Determinism: the plan of take i (scene, subject, actions, object) depends only on (seed, i); the
continuous parameters of attempt a on (seed, i, a). A take whose truth check fails is re-drawn
with the next attempt; after `max_attempts` failures generation stops with an error naming the take.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from configs.loader import to_dict
from configs.runs import atomic_write_json
from envs.atomic_world import mjcf
from envs.atomic_world.dataset import save_clip, write_index
from envs.atomic_world.scenes import SceneSpec, sample_scene, split_scenes
from envs.atomic_world.vocab import (
    ACTIONS,
    FIXTURE_ACTIONS,
    KEYSTEPS,
    OBJECTS,
    OBJECTS_BY_NAME,
    SUBJECTS,
    SYMMETRIC_PAIRS,
    VIEWS,
    ObjectSpec,
    caption,
    object_for,
    valid_for,
)

FORMAT_VERSION = 1


@dataclass
class WorldConfig:
    """What the generated world contains and how clips are rendered."""

    n_scenes: int = 12
    val_fraction: float = 0.25  # share of scenes held out for the val split
    frames: int = 16  # frames per clip
    size: int = 96  # square render size (pixels)
    actions: list[str] = field(default_factory=lambda: list(ACTIONS))
    objects: list[str] = field(default_factory=lambda: [o.name for o in OBJECTS])
    subjects: list[str] = field(default_factory=lambda: list(SUBJECTS))
    views: list[str] = field(default_factory=lambda: list(VIEWS))
    keysteps: list[str] = field(default_factory=lambda: list(KEYSTEPS))
    keystep_prob: float = 0.3  # share of takes that are keystep chains
    max_attempts: int = 12

    def validate(self) -> None:
        def check(name: str, values: list[str], known) -> None:
            bad = [v for v in values if v not in known]
            if bad:
                raise ValueError(f"world.{name}: unknown {bad}; known: {list(known)}")
            if not values:
                raise ValueError(f"world.{name}: must not be empty")

        check("actions", self.actions, ACTIONS)
        check("objects", self.objects, OBJECTS_BY_NAME)
        check("subjects", self.subjects, SUBJECTS)
        check("views", self.views, VIEWS)
        if self.keysteps:
            check("keysteps", self.keysteps, KEYSTEPS)
        if "ego" not in self.views or len(self.views) < 2:
            raise ValueError(f"world.views: need 'ego' and at least one exo view, got {self.views}")
        if self.n_scenes < 1:
            raise ValueError(f"world.n_scenes: must be >= 1, got {self.n_scenes}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"world.val_fraction: must be in [0, 1), got {self.val_fraction}")
        if self.frames < 2:
            raise ValueError(f"world.frames: must be >= 2, got {self.frames}")
        if not 16 <= self.size <= 512:
            raise ValueError(f"world.size: must be in [16, 512], got {self.size}")
        if not 0 <= self.keystep_prob <= 1:
            raise ValueError(f"world.keystep_prob: must be in [0, 1], got {self.keystep_prob}")
        movable_actions = [a for a in self.actions if a not in FIXTURE_ACTIONS]
        for a in movable_actions:
            if not any(valid_for(a, OBJECTS_BY_NAME[o]) for o in self.objects):
                raise ValueError(f"world.actions: no object in world.objects can take {a!r}")

    def usable_keysteps(self) -> list[str]:
        """Keysteps whose every verb is enabled and whose object constraints can be met."""
        out = []
        for k in self.keysteps:
            if all(a in self.actions for a in KEYSTEPS[k]) and _objects_for(self, KEYSTEPS[k], k):
                out.append(k)
        return out


@dataclass
class MakeVideosConfig:
    out: str = "runs/demo/atomic_world"
    takes: int = 360  # the `make demo` dataset (configs/world/default.yaml)
    seed: int = 0
    workers: int = 2
    resume: bool = False
    world: WorldConfig = field(default_factory=WorldConfig)

    def validate(self) -> None:
        if self.takes < 1:
            raise ValueError(f"takes: must be >= 1, got {self.takes}")
        if self.workers < 1:
            raise ValueError(f"workers: must be >= 1, got {self.workers}")


class LabelError(RuntimeError):
    """A take kept failing its truth checks."""


def _objects_for(cfg: WorldConfig, actions: tuple[str, ...], keystep: str | None) -> list[ObjectSpec]:
    specs = [OBJECTS_BY_NAME[o] for o in cfg.objects]
    specs = [s for s in specs if all(valid_for(a, s) for a in actions)]
    if keystep == "store the object in the drawer":
        specs = [s for s in specs if s.fits_drawer]
    return specs


@dataclass(frozen=True)
class TakePlan:
    take_id: int
    scene: str
    subject: str
    object: str  # the movable object present in the take
    actions: tuple[str, ...]
    keystep: str  # "" for a single atomic action


def plan_take(cfg: WorldConfig, seed: int, take_id: int) -> TakePlan:
    """The discrete factors of a take; fixed across re-sampling attempts."""
    rng = np.random.default_rng([seed, 101, take_id])
    keysteps = cfg.usable_keysteps()
    if keysteps and rng.random() < cfg.keystep_prob:
        keystep = keysteps[int(rng.integers(len(keysteps)))]
        actions = KEYSTEPS[keystep]
    else:
        keystep = ""
        # cycling through the verbs keeps small datasets balanced
        order = np.random.default_rng([seed, 103]).permutation(len(cfg.actions))
        actions = (cfg.actions[int(order[take_id % len(cfg.actions)])],)
    objects = _objects_for(cfg, actions, keystep or None)
    return TakePlan(
        take_id=take_id,
        scene=f"scene_{int(rng.integers(cfg.n_scenes)):02d}",
        subject=cfg.subjects[int(rng.integers(len(cfg.subjects)))],
        object=objects[int(rng.integers(len(objects)))].name,
        actions=actions,
        keystep=keystep,
    )


def _simulate(plan: TakePlan, scene: SceneSpec, cfg: WorldConfig, rng: np.random.Generator):
    """Run the take's skills; returns (sim, per-clip log ranges, checks) or raises LabelError-like info."""
    from envs.atomic_world.sim import AtomicSim
    from envs.atomic_world.skills import SKILLS, TakeContext, grip_closed

    spec = OBJECTS_BY_NAME[plan.object]
    # spawn in the workspace, clear of the fixtures; slides need room on both sides
    x = rng.uniform(-0.12, 0.12) if any(a.startswith("slide") for a in plan.actions) else rng.uniform(-0.18, 0.18)
    y = rng.uniform(-0.06, 0.12)
    rest_z = spec.half_height
    xml = mjcf.build_mjcf(scene, plan.subject, spec, (x, y, rest_z + 0.002), tuple(cfg.views), cfg.size)
    sim = AtomicSim(xml, plan.subject)
    sim.set_object_pose((x, y, rest_z + 0.002), rng.uniform(-np.pi, np.pi))
    first = plan.actions[0]
    sim.set_fixtures(
        drawer=rng.uniform(0.1, 0.14) if first == "close" else 0.0,
        knob=rng.uniform(1.3, 1.6) if first == "turn off" else rng.uniform(-0.1, 0.1),
    )
    sim.place_effector((rng.uniform(-0.1, 0.1), rng.uniform(-0.2, -0.1), rng.uniform(0.18, 0.24)), 0.0)
    sim.settle(0.3)
    ctx = TakeContext(spec=spec, rest_z=float(sim.obj_pos[2]), rng=rng, tempo=float(rng.uniform(0.8, 1.25)))
    if first == "put down":
        # precondition: the object is already in hand, lifted above its resting place
        lift = rng.uniform(0.08, 0.12)
        p = sim.obj_pos
        sim.set_object_pose((p[0], p[1], p[2] + lift), sim.obj_yaw)
        z = p[2] + lift + spec.half_height - mjcf.PALM_BOTTOM + 0.002
        sim.place_effector((p[0], p[1], z), sim.obj_yaw + spec.grasp_yaw)
        sim.grip = grip_closed(min(spec.radius, 0.035))
        sim.attach()
        sim.settle(0.2)
    ranges, checks = [], []
    for action in plan.actions:
        if action == "put down" and plan.keystep == "store the object in the drawer":
            cx, cy = mjcf.cabinet_xy(scene)
            ty = cy - sim.drawer_q - 0.09 + spec.radius + 0.014
            ctx.put_target = (cx, ty, mjcf.DRAWER_TRAY_TOP + spec.half_height)
        start = len(sim.log)
        check = SKILLS[action](sim, ctx, action)
        ranges.append((start, len(sim.log)))
        checks.append(check)
        if not check.ok:
            break
    return sim, ranges, checks


def generate_take(cfg: WorldConfig, seed: int, take_id: int, scenes: dict[str, SceneSpec]):
    """Simulate (re-sampling until every clip's label is true) and render one take.

    Returns (plan, failures, clips): the reasons earlier attempts were rejected, and
    clips = [(action, check.measured, {view: (T, H, W, 3) uint8})].
    """
    import mujoco

    plan = plan_take(cfg, seed, take_id)
    failures = []
    for attempt in range(cfg.max_attempts):
        rng = np.random.default_rng([seed, 202, take_id, attempt])
        sim, ranges, checks = _simulate(plan, scenes[plan.scene], cfg, rng)
        if all(c.ok for c in checks) and len(checks) == len(plan.actions):
            break
        bad = next(c for c in checks if not c.ok)
        failures.append(f"attempt {attempt}: {plan.actions[len(checks) - 1]!r}: {bad.reason}")
    else:
        raise LabelError(
            f"take {take_id} ({plan.actions} on {plan.object} in {plan.scene}) failed its truth checks "
            f"{cfg.max_attempts} times: " + "; ".join(failures[-3:])
        )
    renderer = mujoco.Renderer(sim.model, cfg.size, cfg.size)
    try:
        clips = []
        for action, (a, b), check in zip(plan.actions, ranges, checks):
            idx = np.round(np.linspace(a, b - 1, cfg.frames)).astype(int)
            frames = sim.render(renderer, [sim.log[i] for i in idx], tuple(cfg.views))
            clips.append((action, check.measured, frames))
    finally:
        renderer.close()
    return plan, failures, clips


def take_rows(plan: TakePlan, cfg: WorldConfig, split: str, clip_paths: dict[tuple[int, str], str]) -> list[dict]:
    rows = []
    for k, action in enumerate(plan.actions):
        obj = object_for(action, plan.object)
        for view in cfg.views:
            rows.append(
                {
                    "take_id": plan.take_id,
                    "clip_id": f"t{plan.take_id:05d}_c{k}",
                    "view": view,
                    "split": split,
                    "scene": plan.scene,
                    "subject": plan.subject,
                    "action": action,
                    "object": obj,
                    "caption": caption(plan.subject, action, obj),
                    "keystep_id": 0 if plan.keystep else -1,
                    "keystep": plan.keystep,
                    "segment_index": k,
                    "start_frame": k * cfg.frames,
                    "end_frame": (k + 1) * cfg.frames,
                    "path": clip_paths[(k, view)],
                }
            )
    return rows


# ------------------------------------------------------------------------------------------ writing
_WORKER: dict[str, Any] = {}


def _worker_init(cfg_dict: dict, seed: int, out: str) -> None:
    from configs.loader import from_dict

    cfg = from_dict(WorldConfig, cfg_dict)
    _WORKER.update(cfg=cfg, seed=seed, out=Path(out), scenes=_scenes(cfg, seed), splits=split_scenes(seed, cfg.n_scenes, cfg.val_fraction))


def _scenes(cfg: WorldConfig, seed: int) -> dict[str, SceneSpec]:
    n_exo = len([v for v in cfg.views if v != "ego"])
    return {s.name: s for s in (sample_scene(seed, i, n_exo) for i in range(cfg.n_scenes))}


def _make_and_write(take_id: int) -> dict:
    cfg, seed, out = _WORKER["cfg"], _WORKER["seed"], _WORKER["out"]
    t0 = time.perf_counter()
    plan, failures, clips = generate_take(cfg, seed, take_id, _WORKER["scenes"])
    paths, sizes = {}, {}
    for k, (_, _, frames) in enumerate(clips):
        for view, arr in frames.items():
            rel = f"clips/t{take_id:05d}/c{k}_{view}.npz"
            sizes[rel] = save_clip(out / rel, arr).stat().st_size
            paths[(k, view)] = rel
    rows = take_rows(plan, cfg, _WORKER["splits"][plan.scene], paths)
    record = {
        "take_id": take_id,
        "attempts": len(failures) + 1,
        "rejected": failures,
        "checks": [m for _, m, _ in clips],
        "seconds": time.perf_counter() - t0,
        "rows": rows,
        "files": sizes,  # clip path -> bytes: --resume and scripts/check_dataset.py verify against it
    }
    # the sidecar is written last: its presence marks the take complete for --resume
    atomic_write_json(out / "takes" / f"t{take_id:05d}.json", record)
    return record


def take_problems(out: Path, sidecar: Path) -> list[str]:
    """What is wrong with one finished take on disk (cheap: its record parses, and every clip it
    lists exists with the recorded size); [] when intact."""
    try:
        record = json.loads(sidecar.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        return [f"{sidecar}: damaged take record ({type(e).__name__})"]
    # records written before sizes were kept list their clips in `rows` only: check existence
    files = record.get("files") or {r["path"]: None for r in record.get("rows", [])}
    problems = []
    for rel, size in files.items():
        f = out / rel
        if not f.is_file():
            problems.append(f"{f}: missing clip file")
        elif size is not None and f.stat().st_size != size:
            problems.append(f"{f}: damaged clip file: size {f.stat().st_size} bytes, recorded {size}")
    return problems


def _done_takes(out: Path, verify: bool = False) -> set[int]:
    """Takes whose completion record exists; with `verify`, only those whose files check out (the
    record of a damaged take is removed so it is generated again, and the problem is printed)."""
    if not (out / "takes").is_dir():
        return set()
    done = set()
    for p in sorted((out / "takes").glob("t*.json")):
        problems = take_problems(out, p) if verify else []
        if problems:
            print(f"--resume: regenerating take {p.stem}: {problems[0]}" + (f" (+{len(problems) - 1} more)"
                                                                               if len(problems) > 1 else ""))
            p.unlink()
            continue
        done.add(int(p.stem[1:]))
    return done


def build_meta(cfg: MakeVideosConfig, records: list[dict]) -> dict:
    from envs.atomic_world import skills

    w = cfg.world
    scenes = _scenes(w, cfg.seed)
    return {
        "format_version": FORMAT_VERSION,
        "generator": "envs.atomic_world",
        "seed": cfg.seed,
        "config": to_dict(cfg),
        "vocab": {
            "action": list(w.actions),
            "object": [*w.objects, "drawer", "knob"],
            "subject": list(w.subjects),
            "scene": sorted(scenes),
            "view": list(w.views),
            "keystep": list(w.usable_keysteps()),
        },
        "symmetric_pairs": [list(p) for p in SYMMETRIC_PAIRS if p[0] in w.actions and p[1] in w.actions],
        "keystep_programs": {k: list(KEYSTEPS[k]) for k in w.usable_keysteps()},
        "splits": split_scenes(cfg.seed, w.n_scenes, w.val_fraction),
        "scenes": {name: asdict(s) for name, s in scenes.items()},
        "frames": w.frames,
        "size": w.size,
        "truth_thresholds": {
            "move_min_m": skills.MOVE_MIN,
            "lift_min_m": skills.LIFT_MIN,
            "drawer_min_m": skills.DRAWER_MIN,
            "knob_min_rad": float(skills.KNOB_MIN),
            "rotate_min_rad": float(skills.ROTATE_MIN),
        },
        "conventions": "agent at -y facing +y; left = -x; table top z = 0; clip k of a take spans take "
        "frames [k*frames, (k+1)*frames), end_frame exclusive; frames are uniformly resampled per clip",
        "n_takes": len(records),
        "n_clips": sum(len({r["clip_id"] for r in rec["rows"]}) for rec in records),
        "resampled_takes": sum(rec["attempts"] > 1 for rec in records),
    }


def make_dataset(cfg: MakeVideosConfig, progress: bool = True) -> dict:
    """Generate (or resume) a dataset under cfg.out; returns meta. Writes are atomic throughout."""
    from tqdm import tqdm

    from configs.loader import save_config

    out = Path(cfg.out)
    config_path = out / "config.yaml"
    if out.exists() and any(out.iterdir()) and not cfg.resume:
        raise FileExistsError(f"{out} is not empty; pass --resume to continue it or choose another --out")
    if cfg.resume and config_path.is_file():
        import yaml

        old = yaml.safe_load(config_path.read_text())
        new = to_dict(cfg)
        for key in ("seed", "world"):
            if old.get(key) != new.get(key):
                raise ValueError(f"--resume: {config_path} has a different '{key}' than this run; refusing to mix")
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, config_path)
    for stray in out.glob("**/.*.tmp*"):  # leftovers of a killed writer
        stray.unlink()
    done = _done_takes(out, verify=cfg.resume)
    todo = [i for i in range(cfg.takes) if i not in done]
    cfg_dict = to_dict(cfg.world)
    bar = tqdm(total=cfg.takes, initial=cfg.takes - len(todo), desc="takes", unit="take", disable=not progress)
    if cfg.workers == 1 or len(todo) <= 1:
        _worker_init(cfg_dict, cfg.seed, str(out))
        for i in todo:
            _make_and_write(i)
            bar.update()
    else:
        # spawn, not fork: each worker owns its own EGL context
        ctx = mp.get_context("spawn")
        with ctx.Pool(cfg.workers, initializer=_worker_init, initargs=(cfg_dict, cfg.seed, str(out))) as pool:
            for _ in pool.imap_unordered(_make_and_write, todo):
                bar.update()
    bar.close()
    records = [json.loads((out / "takes" / f"t{i:05d}.json").read_text()) for i in range(cfg.takes)]
    write_index(out, [row for rec in records for row in rec["rows"]])
    meta = build_meta(cfg, records)
    atomic_write_json(out / "meta.json", meta)
    return meta
