"""Evaluate any policy on LIBERO under the published (OpenVLA) protocol; parallel and resumable.

    python envs/eval_libero.py --suite libero10 --policy random --trials 20 --workers 2 --out runs/eval/x
    python envs/eval_libero.py --suite libero_goal --policy scripted --tasks 0,5,6,7 --out runs/eval/s

`--policy` is `random`, `scripted`, a registered name, or a checkpoint directory (policies.build_policy).
Outputs under --out:
    config.yaml                                   resolved config
    episodes/<suite>/task<TT>/trial<III>.json     one per episode: success, steps, wall_s, status, traceback
    episodes/<suite>/task<TT>/trial<III>.mp4      agentview (| wrist) video
    results.json, results.md                      per task + overall success with 95% Wilson intervals
Rerunning with the same --out skips episodes whose json exists; a crashed episode is stored with
status "error" and its traceback and counts as a failure (`retry_errors=true` reruns those).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):
    # `python envs/eval_libero.py`: Python put envs/ first on sys.path, where envs/libero.py would
    # shadow the `libero` package; replace it by the repo root.
    _here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != _here]
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from configs.loader import parse_cli, save_config, to_dict
from configs.runs import atomic_write, atomic_write_json, atomic_write_text
from envs import protocol


@dataclass
class EvalConfig:
    suite: str = "libero_goal"
    policy: str = "random"
    trials: int = protocol.DEFAULT_TRIALS
    tasks: str = "all"  # "all" or comma-separated task ids, e.g. "0,3,7"
    workers: int = 1
    out: str = "runs/eval/libero"
    seed: int = protocol.ENV_SEED
    seed_per_trial: bool = False  # env.seed(seed + trial) instead of env.seed(seed)
    max_steps: int = 0  # 0 = the protocol's value for the suite
    resolution: int = protocol.RENDER_RESOLUTION
    fast_render: bool = True
    video: bool = True
    video_stride: int = 1  # keep every k-th frame (frames cost a render when the policy is blind)
    wrist_video: bool = False
    retry_errors: bool = False
    progress: bool = True
    gifs: str = ""  # also write one small gif per task (trial 0's video) into this folder

    def validate(self) -> None:
        self.suite = protocol.canonical_suite(self.suite)
        if self.trials < 1:
            raise ValueError(f"trials must be >= 1, got {self.trials}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.max_steps < 0:
            raise ValueError(f"max_steps must be >= 0, got {self.max_steps}")
        if self.video_stride < 1:
            raise ValueError(f"video_stride must be >= 1, got {self.video_stride}")
        parse_tasks(self.tasks, 10**6)


def parse_tasks(spec: str, n_tasks: int) -> list[int]:
    """'all' -> range(n_tasks); '0,3,7' -> [0, 3, 7]; bad ids raise ValueError naming the value."""
    spec = str(spec).strip()
    if spec in ("all", ""):
        return list(range(n_tasks))
    out = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            ids = range(int(a), int(b) + 1)
        else:
            try:
                ids = [int(part)]
            except ValueError:
                raise ValueError(f"tasks: {part!r} is not a task id (use e.g. tasks=0,3,7 or all)") from None
        for i in ids:
            if not 0 <= i < n_tasks:
                raise ValueError(f"tasks: id {i} out of range 0..{n_tasks - 1}")
            out.append(i)
    return sorted(set(out))


def episode_path(out: Path, suite: str, task_id: int, trial: int, suffix: str = ".json") -> Path:
    return out / "episodes" / suite / f"task{task_id:02d}" / f"trial{trial:03d}{suffix}"


def write_video(path: Path, frames: list[np.ndarray], fps: int = 20) -> None:
    """Atomic mp4 (H.264) write; frames (H, W, 3) uint8."""
    import imageio.v2 as imageio

    def write(tmp: Path) -> None:
        with imageio.get_writer(str(tmp), fps=fps, codec="libx264", macro_block_size=1, quality=6, format="FFMPEG") as w:
            for f in frames:
                w.append_data(f)

    os.chmod(atomic_write(path, write), 0o644)


def export_gif(mp4: Path, gif: Path, size: int = 96, max_frames: int = 20, fps: int = 5) -> Path:
    """Small looping gif of an episode video (for docs): <= max_frames frames, `size` px high."""
    import imageio.v2 as imageio
    from PIL import Image

    reader = imageio.get_reader(str(mp4), format="FFMPEG")
    frames = [f for f in reader]
    reader.close()
    idx = np.unique(np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).astype(int))
    imgs = []
    for i in idx:
        im = Image.fromarray(frames[i])
        w = round(im.width * size / im.height)
        imgs.append(im.resize((w, size), Image.Resampling.BILINEAR).convert("P", palette=Image.Palette.ADAPTIVE))

    def write(tmp: Path) -> None:
        imgs[0].save(tmp, format="GIF", save_all=True, append_images=imgs[1:], duration=int(1000 / fps), loop=0)

    path = atomic_write(gif, write)
    os.chmod(path, 0o644)
    return path


def export_gifs(out: str | Path, dest: str | Path, trial: int = 0) -> list[Path]:
    """One gif per evaluated task (its trial `trial` video) from an eval --out dir into `dest`."""
    out, dest = Path(out), Path(dest)
    made = []
    for mp4 in sorted(out.glob(f"episodes/*/task*/trial{trial:03d}.mp4")):
        suite, task = mp4.parts[-3], mp4.parts[-2]
        made.append(export_gif(mp4, dest / f"{suite}_{task}.gif"))
    return made


# ---------------------------------------------------------------------------------------------
# One episode
# ---------------------------------------------------------------------------------------------


def _policy_obs(obs: dict, policy: Any) -> dict:
    size = getattr(policy, "image_size", None)
    if not size:
        return obs
    crop = bool(getattr(policy, "center_crop", False))
    out = dict(obs)
    for k in ("agentview_rgb", "eye_in_hand_rgb"):
        if k in out:
            out[k] = protocol.vla_image(out[k], size=size, crop=crop)
    return out


def run_episode(env: Any, policy: Any, trial: int, cfg: EvalConfig, video_path: Path | None = None) -> dict:
    """Run one protocol episode -> {success, steps, wall_s}; exceptions propagate to the caller."""
    t0 = time.time()
    seed = cfg.seed + trial if cfg.seed_per_trial else cfg.seed
    if hasattr(policy, "seed_episode"):
        policy.seed_episode(cfg.seed * 100003 + env.task_id * 1000 + trial)
    policy.reset()
    if hasattr(policy, "bind_env"):
        policy.bind_env(env)
    obs = env.reset(trial=trial, seed=seed)
    convention = getattr(policy, "gripper_convention", "env")
    max_steps = cfg.max_steps or env.max_steps
    frames: list[np.ndarray] = []
    want_video = video_path is not None

    def grab(o: dict) -> None:
        if "agentview_rgb" in o:
            main = o["agentview_rgb"]
        else:
            main = env.render_frame("agentview_rgb")
        if cfg.wrist_video:
            wrist = o["eye_in_hand_rgb"] if "eye_in_hand_rgb" in o else env.render_frame("eye_in_hand_rgb")
            main = np.concatenate([main, wrist], axis=1)
        frames.append(main)

    chunk: list[np.ndarray] = []
    success = False
    steps = 0
    while steps < max_steps:
        if want_video and steps % cfg.video_stride == 0:
            grab(obs)
        if not chunk:
            a = np.asarray(policy.act(_policy_obs(obs, policy), env.instruction), dtype=np.float64)
            chunk = list(a) if a.ndim == 2 else [a]
        obs, _, _, info = env.step(protocol.to_env_action(chunk.pop(0), convention))
        steps += 1
        if info["success"]:
            success = True
            break
    if want_video:
        grab(obs)
        write_video(video_path, frames, fps=max(1, 20 // cfg.video_stride))
    record = {"success": success, "steps": steps, "wall_s": round(time.time() - t0, 3)}
    if hasattr(policy, "episode_info"):  # e.g. the scripted expert's skill outcomes, for diagnosis
        record.update(policy.episode_info())
    return record


# ---------------------------------------------------------------------------------------------
# Worker (one per process; keeps one env alive per task, the policy for the whole run)
# ---------------------------------------------------------------------------------------------

_W: dict[str, Any] = {}


def _init_worker(cfg_dict: dict, driver_pid: int | None = None) -> None:
    from configs.loader import from_dict

    # One BLAS/torch thread per worker: workers are the parallelism, oversubscribing 2 cores hurts.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if driver_pid is not None:
        # llvmpipe (software EGL) rasterises on all cores by default; with several worker processes
        # that oversubscribes the CPU. Must be set before the process creates its GL context.
        os.environ.setdefault("LP_NUM_THREADS", "1")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    _W.clear()
    _W["cfg"] = from_dict(EvalConfig, cfg_dict)
    if driver_pid is not None:
        _watch_parent(driver_pid)


def _watch_parent(driver_pid: int) -> None:
    """Exit when the driver dies (killed, Ctrl-C): orphaned workers would keep simulating.
    The driver's pid is passed in because it may already be gone when this runs."""
    import threading

    def watch() -> None:
        while True:
            if os.getppid() != driver_pid:
                os._exit(1)
            time.sleep(2.0)

    threading.Thread(target=watch, daemon=True).start()


def _get_policy(cfg: EvalConfig) -> Any:
    if "policy" not in _W:
        from policies import build_policy

        _W["policy"] = build_policy(cfg.policy, seed=cfg.seed)
    return _W["policy"]


def _get_env(cfg: EvalConfig, task_id: int, policy: Any) -> Any:
    from envs.libero import LiberoEnv

    env = _W.get("env")
    if env is not None and env.task_id == task_id:
        return env
    if env is not None:
        env.close()
        _W.pop("env")
    env = LiberoEnv(
        cfg.suite,
        task_id,
        resolution=cfg.resolution,
        render=bool(getattr(policy, "needs_images", True)),
        wrist=True,
        fast_render=cfg.fast_render,
    )
    _W["env"] = env
    return env


def _run_job(task_id: int, trial: int) -> dict:
    """Run (task, trial), write its json; never raises for an episode failure."""
    cfg: EvalConfig = _W["cfg"]
    out = Path(cfg.out)
    rec: dict[str, Any] = {
        "suite": cfg.suite,
        "task_id": task_id,
        "trial": trial,
        "policy": cfg.policy,
        "seed": cfg.seed + trial if cfg.seed_per_trial else cfg.seed,
        "fast_render": cfg.fast_render,
        "pid": os.getpid(),
    }
    t0 = time.time()
    try:
        policy = _get_policy(cfg)
        env = _get_env(cfg, task_id, policy)
        rec["task_name"] = env.task.name
        rec["instruction"] = env.instruction
        video = episode_path(out, cfg.suite, task_id, trial, ".mp4") if cfg.video else None
        rec.update(run_episode(env, policy, trial, cfg, video))
        rec["status"] = "ok"
        if video is not None:
            rec["video"] = str(video.relative_to(out))
    except Exception as e:  # recorded, counted as a failure, never dropped
        rec.update(
            success=False,
            steps=0,
            wall_s=round(time.time() - t0, 3),
            status="error",
            error=f"{type(e).__name__}: {e}",
            traceback=traceback.format_exc(),
        )
        # the env may be in a broken state after an exception: rebuild it for the next episode
        env = _W.pop("env", None)
        if env is not None:
            env.close()
    atomic_write_json(episode_path(out, cfg.suite, task_id, trial), rec)
    return rec


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------


def _load_done(out: Path, suite: str, jobs: list[tuple[int, int]], retry_errors: bool) -> dict:
    import json

    done = {}
    for t, i in jobs:
        p = episode_path(out, suite, t, i)
        if p.is_file():
            try:
                rec = json.loads(p.read_text())
            except json.JSONDecodeError:
                continue  # cannot happen with atomic writes, but a hand-edited file is rerun
            if retry_errors and rec.get("status") == "error":
                continue
            done[(t, i)] = rec
    return done


def summarize(records: list[dict], cfg: EvalConfig) -> dict:
    """Per-task and overall success with Wilson 95% intervals."""
    tasks: dict[int, dict] = {}
    for r in sorted(records, key=lambda r: (r["task_id"], r["trial"])):
        t = tasks.setdefault(
            r["task_id"],
            {"task_id": r["task_id"], "name": r.get("task_name", ""), "n": 0, "successes": 0, "errors": 0,
             "steps": [], "wall_s": []},
        )
        t["name"] = t["name"] or r.get("task_name", "")
        t["n"] += 1
        t["successes"] += int(bool(r["success"]))
        t["errors"] += int(r.get("status") == "error")
        t["steps"].append(r.get("steps", 0))
        t["wall_s"].append(r.get("wall_s", 0.0))
    rows = []
    for t in tasks.values():
        lo, hi = protocol.wilson_interval(t["successes"], t["n"])
        rows.append(
            {
                "task_id": t["task_id"], "name": t["name"], "n": t["n"], "successes": t["successes"],
                "success_rate": t["successes"] / t["n"], "ci95": [lo, hi], "errors": t["errors"],
                "mean_steps": float(np.mean(t["steps"])), "mean_wall_s": float(np.mean(t["wall_s"])),
            }
        )
    n = sum(r["n"] for r in rows)
    s = sum(r["successes"] for r in rows)
    lo, hi = protocol.wilson_interval(s, n)
    return {
        "suite": cfg.suite,
        "policy": cfg.policy,
        "protocol": {
            "max_steps": cfg.max_steps or protocol.MAX_STEPS[cfg.suite],
            "wait_steps": protocol.NUM_WAIT_STEPS,
            "seed": cfg.seed,
            "seed_per_trial": cfg.seed_per_trial,
            "trials": cfg.trials,
            "resolution": cfg.resolution,
            "renderer": "fast (no shadows/reflections/AA)" if cfg.fast_render else "reference",
            "full_protocol": cfg.trials >= protocol.FULL_PROTOCOL_TRIALS and cfg.max_steps == 0
            and cfg.resolution == protocol.RENDER_RESOLUTION,
        },
        "tasks": rows,
        "overall": {"n": n, "successes": s, "success_rate": s / n if n else 0.0, "ci95": [lo, hi],
                    "errors": sum(r["errors"] for r in rows)},
    }


def results_markdown(res: dict) -> str:
    p = res["protocol"]
    lines = [
        f"# LIBERO {res['suite']} - policy `{res['policy']}`",
        "",
        f"max steps {p['max_steps']}, {p['wait_steps']} wait steps, seed {p['seed']}, {p['trials']} trials/task, "
        f"{p['resolution']}px, renderer: {p['renderer']}",
        "",
        "| task | name | success | 95% CI | n | errors | mean steps |",
        "|---:|---|---:|---|---:|---:|---:|",
    ]
    for r in res["tasks"]:
        lines.append(
            f"| {r['task_id']} | {r['name']} | {100 * r['success_rate']:.1f}% | "
            f"[{100 * r['ci95'][0]:.1f}, {100 * r['ci95'][1]:.1f}] | {r['n']} | {r['errors']} | {r['mean_steps']:.0f} |"
        )
    o = res["overall"]
    lines.append(
        f"| all | | **{100 * o['success_rate']:.1f}%** | [{100 * o['ci95'][0]:.1f}, {100 * o['ci95'][1]:.1f}] | "
        f"{o['n']} | {o['errors']} | |"
    )
    return "\n".join(lines) + "\n"


def evaluate(cfg: EvalConfig) -> dict:
    """Run (or resume) the evaluation described by cfg; returns the results dict (also written)."""
    from tqdm import tqdm

    from envs.libero import num_tasks

    cfg.validate()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    task_ids = parse_tasks(cfg.tasks, num_tasks(cfg.suite))
    if cfg.policy == "scripted" and str(cfg.tasks).strip() in ("all", ""):
        from envs.skills.programs import supported_tasks

        task_ids = [t for t in task_ids if t in supported_tasks(cfg.suite)]
        if not task_ids:
            raise ValueError(f"the scripted expert has no task program for any {cfg.suite} task")
    jobs = [(t, i) for t in task_ids for i in range(cfg.trials)]
    done = _load_done(out, cfg.suite, jobs, cfg.retry_errors)
    todo = [j for j in jobs if j not in done]
    records = list(done.values())
    bar = tqdm(total=len(jobs), initial=len(done), desc=f"{cfg.suite}:{cfg.policy}", disable=not cfg.progress,
               dynamic_ncols=True)

    def note(rec: dict) -> None:
        records.append(rec)
        s = sum(int(bool(r["success"])) for r in records)
        bar.set_postfix(success=f"{s}/{len(records)}", err=sum(r.get("status") == "error" for r in records))
        bar.update(1)

    cfg_dict = to_dict(cfg)
    if cfg.workers == 1 or len(todo) <= 1:
        _init_worker(cfg_dict)
        try:
            for t, i in todo:
                note(_run_job(t, i))
        finally:
            env = _W.pop("env", None)
            if env is not None:
                env.close()
    elif todo:
        # spawn: a forked child would inherit the parent's GL/MuJoCo state
        with ProcessPoolExecutor(
            max_workers=min(cfg.workers, len(todo)),
            mp_context=mp.get_context("spawn"),
            initializer=_init_worker,
            initargs=(cfg_dict, os.getpid()),
        ) as pool:
            futs = {pool.submit(_run_job, t, i): (t, i) for t, i in todo}
            for fut in as_completed(futs):
                t, i = futs[fut]
                try:
                    rec = fut.result()
                except BrokenProcessPool as e:  # a worker died (segfault, OOM): record, don't drop
                    rec = {
                        "suite": cfg.suite, "task_id": t, "trial": i, "policy": cfg.policy, "success": False,
                        "steps": 0, "wall_s": 0.0, "status": "error",
                        "error": f"worker process died: {e}", "traceback": traceback.format_exc(),
                    }
                    atomic_write_json(episode_path(out, cfg.suite, t, i), rec)
                note(rec)
    bar.close()
    res = summarize(records, cfg)
    atomic_write_json(out / "results.json", res)
    atomic_write_text(out / "results.md", results_markdown(res))
    return res


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_cli(
        EvalConfig,
        argv,
        description=__doc__.split("\n")[0],
        flags={
            "--suite": ("suite", "libero_spatial|libero_object|libero_goal|libero_10|libero_90 (libero10 ok)"),
            "--policy": ("policy", "random | scripted | checkpoint dir"),
            "--trials": ("trials", "episodes per task (50 = full protocol)"),
            "--tasks": ("tasks", "task ids, e.g. 0,3,7 or all"),
            "--workers": ("workers", "parallel episode processes"),
            "--out": ("out", "output directory (rerun to resume)"),
            "--seed": ("seed", "env seed"),
            "--max-steps": ("max_steps", "override the suite's max steps (0 = protocol)"),
        },
    )
    t0 = time.time()
    res = evaluate(cfg)
    if cfg.gifs:
        for gif in export_gifs(cfg.out, cfg.gifs):
            print(f"gif -> {gif}")
    o = res["overall"]
    print(results_markdown(res))
    print(
        f"overall {o['successes']}/{o['n']} = {100 * o['success_rate']:.1f}% "
        f"(95% CI {100 * o['ci95'][0]:.1f}-{100 * o['ci95'][1]:.1f}), {o['errors']} errors, "
        f"{time.time() - t0:.0f}s -> {cfg.out}"
    )
    return res


if __name__ == "__main__":
    # run through the package module so that worker processes unpickle `envs.eval_libero._run_job`
    from envs.eval_libero import main as _main

    _main()
