"""Teleoperation data -> the project's demo format (envs/demos.py), with checks and time alignment.

    episodes = read_raw(src) | read_lerobot(src) (envs/lerobot.py) | read_robomimic(src)
    report = ingest(src, fmt, out, rate=10.0)   # out/demos.hdf5 + out/manifest.json, or out/report.json

RAW LAYOUT (what scripts/teleop.py writes; one directory per episode, processed in sorted order):

    SRC/<episode>/meta.json          {"instruction": str, "robot": str,
                                      "markers": [{"t": s, "label": "open the middle drawer"}, ...]}
    SRC/<episode>/<stream>.npz       t (N,) float64 seconds on one clock for all streams, v (N, ...) values
        joint_states  (N, J) rad          required (J joints: any count, the same in every episode)
        action        (N, A) commands     required (joint targets, gripper 0..1, grip force N)
        gripper_state (N,) or (N, 1) 0..1 optional
        force_torque  (N, 6) N, Nm        optional
        cam_<name>    (N, H, W, 3) uint8  optional; or cam_<name>.mp4 + cam_<name>.t.npy (frame times)

A marker starts an atomic step at time t; its label is a one-step instruction whose skill label
(decompose(label)[0].skill) tags every resampled frame until the next marker ("idle" before the first).
Without markers, a multi-step episode is labelled by a `segmenter` when one is given (Python API, e.g.
InstrAction's DTW segmentation), a one-step one by its instruction.

Alignment: every stream is cut to the common time window and resampled onto t0 + k / rate: joint
states, gripper and force-torque are interpolated linearly; actions and camera frames are held (the
command / frame in force at that time). A sample within 1e-4 s of a grid time is taken exactly.

Checks, each reported as {episode, field, kind, detail}: missing (a required stream, a data file or
video file), shape (t / v lengths differ, force_torque not (6,), a per-field shape differing between
episodes or from meta/info.json), short (a LeRobot video with fewer frames than its parquet rows),
mapping (a LeRobot mapping that does not fit meta/info.json, envs/lerobot_mapping.py), nan (non-finite values),
clock_jump (time going backwards or jumping forward > max_jump_s), gap (a step > gap_factor x the
median step), window (no common time span). Any problem -> nothing is written but out/report.json
(unless skip_bad: bad episodes are left out and listed). Output is built in a temp file and renamed;
a rerun over unchanged input with the same options finds manifest.json up to date and does nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from configs.runs import atomic_write_json
from envs.demos import Demo, DemoReader, DemoWriter
from envs.streams import SNAP_S, Problem, StreamEpisode, on_grid, resample
from real_robot.robot import PROPRIO_KEYS

REQUIRED = ("joint_states", "action")
# fixed per-sample shapes; every other stream (joint_states and action included: 6 for an SO-100, 14 for
# ALOHA, 7 for the twin) only keeps one shape across the episodes of a source
DIMS = {"force_torque": (6,)}


# -- readers -------------------------------------------------------------------------------------------
def read_raw(src: str | Path) -> tuple[list[StreamEpisode], list[Problem]]:
    """The raw layout above -> episodes (+ problems found while reading)."""
    src = Path(src)
    episodes, problems = [], []
    for d in sorted(p for p in src.iterdir() if p.is_dir()):
        meta_f = d / "meta.json"
        try:
            meta = json.loads(meta_f.read_text())
        except (OSError, json.JSONDecodeError) as e:
            problems.append(Problem(d.name, "meta.json", "missing", f"unreadable ({e})"))
            continue
        streams: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for f in sorted(d.glob("*.npz")):
            try:
                with np.load(f) as z:
                    streams[f.stem] = (np.asarray(z["t"]), np.asarray(z["v"]))
            except (OSError, KeyError, ValueError) as e:
                problems.append(Problem(d.name, f.stem, "shape", f"{f.name} needs arrays t and v ({e})"))
        for f in sorted(d.glob("cam_*.mp4")):
            tf = f.with_name(f.stem + ".t.npy")
            if not tf.is_file():
                problems.append(Problem(d.name, f.stem, "missing", f"{tf.name} (frame times) not found"))
                continue
            from envs.lerobot import decode_video

            frames, _ = decode_video(f)
            streams[f.stem] = (np.load(tf), frames)
        markers = [(float(m["t"]), str(m["label"])) for m in meta.get("markers", [])]
        episodes.append(StreamEpisode(d.name, str(meta.get("instruction", "")), streams, markers,
                                attrs={"robot": str(meta.get("robot", ""))}))
    return episodes, problems


def read_robomimic(src: str | Path, rate: float) -> tuple[list[StreamEpisode], list[Problem]]:
    """A robomimic/LIBERO hdf5 file (through envs.demos.DemoReader) -> episodes sampled at `rate` Hz."""
    episodes = []
    with DemoReader(src) as reader:
        for i, demo in enumerate(reader):
            t = np.arange(len(demo)) / rate
            streams = {"action": (t, demo.actions)}
            for k, v in demo.obs.items():
                name = {"agentview_rgb": "cam_front", "eye_in_hand_rgb": "cam_wrist",
                        "gripper_states": "gripper_state"}.get(k, k)  # fmt: skip
                streams[name] = (t, v)
            episodes.append(StreamEpisode(f"demo_{i}", demo.instruction, streams, skills=demo.skills,
                                          skill_objects=demo.skill_objects))
    return episodes, []


# -- checks ----------------------------------------------------------------------------------------------
def check(episodes: list[StreamEpisode], max_jump_s: float = 1.0, gap_factor: float = 3.0,
          required: tuple[str, ...] = REQUIRED) -> list[Problem]:
    """Every problem of every episode (see module docstring); an empty list means all are clean."""
    problems: list[Problem] = []
    ref: dict[str, tuple[int, ...]] = {}
    for ep in episodes:
        for r in required:
            if r not in ep.streams:
                problems.append(Problem(ep.name, r, "missing", "required stream not found"))
        for name, (t, v) in ep.streams.items():
            P = lambda kind, detail, e=ep.name, f=name: problems.append(Problem(e, f, kind, detail))  # noqa: E731
            if t.ndim != 1 or v.ndim < 1 or t.shape[0] != v.shape[0]:
                P("shape", f"t has shape {t.shape}, v has shape {v.shape} (need t (N,) and v (N, ...))")
                continue
            if t.shape[0] < 2:
                P("shape", f"{t.shape[0]} samples (need at least 2)")
                continue
            sample = tuple(v.shape[1:]) if not (v.ndim == 2 and v.shape[1] == 1) else ()
            want = DIMS.get(name)
            if want is not None and sample != want:
                P("shape", f"samples have shape {sample}, expected {want}")
            elif name in ref and ref[name] != sample:
                P("shape", f"samples have shape {sample}, earlier episodes have {ref[name]}")
            else:
                ref.setdefault(name, sample)  # only a shape that passed sets the reference
            if not np.all(np.isfinite(t)):
                P("nan", f"non-finite timestamp at index {int(np.argmin(np.isfinite(t)))}")
                continue
            if v.dtype.kind == "f":
                bad = ~np.isfinite(v.reshape(v.shape[0], -1)).all(axis=1)
                if bad.any():
                    idx = np.flatnonzero(bad)
                    P("nan", f"{len(idx)} samples with NaN/inf, first at index {idx[0]} (t={t[idx[0]]:.3f} s)")
            dt = np.diff(t)
            if np.any(dt <= 0):
                i = int(np.argmax(dt <= 0))
                P("clock_jump", f"time goes backwards or repeats at index {i + 1} ({t[i]:.4f} -> {t[i + 1]:.4f} s)")
                continue
            if np.any(dt > max_jump_s):
                i = int(np.argmax(dt > max_jump_s))
                P("clock_jump", f"time jumps {dt[i]:.3f} s forward at index {i + 1} (t={t[i]:.3f} s)")
                continue
            med = float(np.median(dt))
            if np.any(dt > gap_factor * med):
                i = int(np.argmax(dt > gap_factor * med))
                P("gap", f"{dt[i]:.3f} s without samples at t={t[i]:.3f} s (median step {med:.3f} s)")
        if ep.streams and not any(p.episode == ep.name for p in problems):
            t0 = max(float(t[0]) for t, _ in ep.streams.values())
            t1 = min(float(t[-1]) for t, _ in ep.streams.values())
            if t1 < t0:
                problems.append(Problem(ep.name, "*", "window", f"streams share no time span ({t0:.3f} > {t1:.3f} s)"))
    return problems


Segmenter = Callable[[np.ndarray, list[str]], list[int]]


def align(ep: StreamEpisode, rate: float, segmenter: Segmenter | None = None) -> Demo:
    """A checked episode -> a Demo on the grid t0 + k / rate over the streams' common window.

    Step labels: the source's own, else the markers, else -- for a multi-step instruction --
    `segmenter(frames (T, H, W, 3) uint8, step instructions) -> M-1 boundary frame indices` (e.g.
    encoders.instraction.segment over per-frame embeddings), else one-step instructions label
    every frame, else none."""
    from real_robot.decompose import decompose

    grid, obs, actions = on_grid(ep, rate)
    T = len(grid)
    cams = [v for k, v in obs.items() if k.endswith("_rgb")]
    objects = None
    if ep.skills is not None:
        skills = list(resample(np.arange(len(ep.skills)) / rate, np.array(ep.skills), grid - grid[0], True))
        if ep.skill_objects is not None and len(ep.skill_objects) == len(ep.skills):
            objects = [str(o) for o in resample(np.arange(len(ep.skill_objects)) / rate, np.array(ep.skill_objects),
                                                grid - grid[0], True)]
    elif ep.markers:
        labels = [decompose(label)[0].skill for _, label in ep.markers]
        times = np.array([m[0] for m in ep.markers])
        idx = np.searchsorted(times, grid + SNAP_S, side="right") - 1
        skills = ["idle" if i < 0 else labels[i] for i in idx]
    else:
        steps = decompose(ep.instruction) if ep.instruction else []
        skills = [steps[0].skill] * T if len(steps) == 1 else None  # one-step episodes label themselves
        if len(steps) > 1 and segmenter is not None and (cams or getattr(segmenter, "uses_obs", False)):
            bounds = [0, *_run_segmenter(segmenter, cams, [s.instruction for s in steps], obs), T]
            skills = [steps[j].skill for j in range(len(steps)) for _ in range(bounds[j + 1] - bounds[j])]
    seg_err = {}
    if segmenter is not None and skills is not None and (ep.skills is not None or ep.markers):
        from encoders.instraction.changepoint import label_runs
        from encoders.instraction.segment import boundary_metrics

        names, truth = label_runs(skills)  # ground truth: the source's / markers' step changes
        if len(names) > 1:
            m = boundary_metrics(_run_segmenter(segmenter, cams, names, obs), truth, T)
            seg_err = {"segmenter_mae_steps": m["mae"], "segmenter_f1": m["f1"]}
    low = [obs[k].reshape(T, -1) for k in ("joint_states", "gripper_states") if k in obs]
    dones = np.zeros(T)
    dones[-1] = 1
    return Demo(actions=actions, obs=obs, states=np.concatenate(low, axis=1) if low else np.zeros((T, 0)),
                rewards=np.zeros(T), dones=dones, instruction=ep.instruction, skills=skills, skill_objects=objects,
                attrs={"source_episode": ep.name, "rate_hz": float(rate), "t0": float(grid[0]),
                       **{k: v for k, v in ep.attrs.items() if isinstance(v, (str, int, float))}, **seg_err})


def _run_segmenter(segmenter: Segmenter, cams: list[np.ndarray], steps: list[str], obs: dict) -> list[int]:
    """M-1 boundaries; a segmenter with `uses_obs` (encoders.instraction.changepoint.Segmenter) also gets the obs."""
    frames = cams[0] if cams else None
    return list(segmenter(frames, steps, obs=obs) if getattr(segmenter, "uses_obs", False) else segmenter(frames, steps))


# -- the whole job -----------------------------------------------------------------------------------------
def fingerprint(src: Path) -> str:
    """sha256 over every file's relative path and content under `src` (or of the file itself)."""
    h = hashlib.sha256()
    files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file())
    for p in files:
        h.update(str(p.relative_to(src) if src.is_dir() else p.name).encode())
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def ingest(src: str | Path, fmt: str, out: str | Path, rate: float = 0.0, skip_bad: bool = False,
           max_jump_s: float = 1.0, gap_factor: float = 3.0, segmenter: Segmenter | None = None,
           mapping: str = "auto") -> dict[str, Any]:
    """Read, check, align and write (see module docstring). Returns the report dict (also on disk).
    `segmenter` labels multi-step episodes that have no markers (see `align`); `mapping` says which
    LeRobot features are what ("auto", a configs/ingest/lerobot_<name>.yaml name or a YAML path;
    fmt "lerobot" only)."""
    src, out = Path(src), Path(out)
    if mapping != "auto" and fmt != "lerobot":
        raise ValueError(f"mapping {mapping!r} applies to --format lerobot only, got format {fmt!r}")
    options = {"format": fmt, "rate": rate, "skip_bad": skip_bad, "max_jump_s": max_jump_s, "gap_factor": gap_factor,
               "segmenter": getattr(segmenter, "__qualname__", None) if segmenter is not None else None,
               **({"mapping": mapping} if fmt == "lerobot" else {})}
    fp = fingerprint(src)
    manifest_f, demos_f = out / "manifest.json", out / "demos.hdf5"
    if manifest_f.is_file() and demos_f.is_file():
        old = json.loads(manifest_f.read_text())
        if old.get("fingerprint") == fp and old.get("options") == options:
            return {**old, "status": "up to date"}
    if fmt == "raw":
        episodes, problems = read_raw(src)
    elif fmt == "lerobot":
        from envs.lerobot import read_lerobot

        episodes, problems = read_lerobot(src, mapping)
    elif fmt == "robomimic":
        episodes, problems = read_robomimic(src, rate or 20.0)
    else:
        raise ValueError(f"format must be raw, robomimic or lerobot, got {fmt!r}")
    if rate <= 0:
        rate = float(episodes[0].attrs.get("fps", 20.0)) if episodes else 20.0
    problems += check(episodes, max_jump_s, gap_factor)
    bad = {p.episode for p in problems}
    report: dict[str, Any] = {"source": str(src), "fingerprint": fp, "options": options, "rate_hz": rate,
                              "problems": [p.__dict__ for p in problems]}
    good = [e for e in episodes if e.name not in bad]
    if (problems and not skip_bad) or not good:
        report["status"] = "failed: nothing written"
        atomic_write_json(out / "report.json", report)
        return report
    demos = [align(e, rate, segmenter) for e in good]
    out.mkdir(parents=True, exist_ok=True)
    partial = out / ".demos.partial.hdf5"
    partial.unlink(missing_ok=True)
    # proprio = the joint states (+ the gripper where the source has one), as many dims as the source has
    pkeys = [k for k in PROPRIO_KEYS if all(k in d.obs for d in demos)]
    writer = DemoWriter(partial, env_args={"source_format": fmt, "rate_hz": rate, "proprio_keys": pkeys,
                                           **({"mapping": mapping} if fmt == "lerobot" else {})},
                        problem_info={"language_instruction": demos[0].instruction})
    for d in demos:
        writer.add(d)
    writer.flush()
    os.replace(partial, demos_f)
    report.update(status="written", skipped=sorted(bad),
                  episodes=[{"name": e.name, "frames": len(d), "instruction": d.instruction,
                             **{k: v for k, v in d.attrs.items() if k.startswith("segmenter_")}}
                            for e, d in zip(good, demos)])  # fmt: skip
    scored = [d.attrs for d in demos if "segmenter_mae_steps" in d.attrs]
    if scored:  # the segmenter's boundary error where the source has ground-truth steps
        report["segmenter_boundary_error"] = {"episodes": len(scored),
                                              "mae_steps": float(np.mean([a["segmenter_mae_steps"] for a in scored])),
                                              "f1": float(np.mean([a["segmenter_f1"] for a in scored]))}
    atomic_write_json(manifest_f, report)
    (out / "report.json").unlink(missing_ok=True)
    return report
