"""The evaluator core shared by every benchmark (eval_libero.py now, eval_kitchen.py next).

A benchmark CLI supplies only what differs: a config (see `EvalSettings`), an env factory, the task
list and its protocol constants, bundled in a `Benchmark`; this module does the rest:

    res = run_evaluation(cfg, Benchmark(title="LIBERO", suite="libero_goal", task_ids=[0, 5],
                                        env_factory=functools.partial(make_env, "libero", "libero_goal"),
                                        protocol={...}, header="max steps 300, ..."))

- a pool of `cfg.workers` spawned processes (or in-process for one), each keeping one env alive per
  task and one policy for the whole run, torch threads sized as free cores / workers;
- one JSON record per episode, written atomically: rerunning with the same `out` skips finished
  episodes; a crashed episode (or a dead worker) is stored with status "error" and its traceback
  and counts as a failure (`retry_errors=true` reruns those);
- an mp4 per episode (agentview, optionally | wrist), `results.json` / `results.md` with 95% Wilson
  intervals per task and overall;
- several ranks (`torchrun --nnodes N --nproc_per_node M SCRIPT ...` or `accelerate launch`, which
  set RANK / WORLD_SIZE): rank 0 reads the finished records and sends the episodes still to run to
  every rank (gloo), each rank runs its contiguous share (`rank_jobs`; the worker pool above runs
  inside each rank) and writes its records, naming `rank` and `world_size`; rank 0 gathers them
  (writing any it does not see on its own disk, so `out` need not be shared), then writes
  results.json / results.md exactly as one process would. A rerun with another world size resumes
  from the records; a rank with no share prints one line and returns.
- `policy_server=true`: one process holds the policy and answers every worker's `act` in batches
  (envs/policy_server.py; the same records); a crash there records the episodes in flight as errors
  and restarts it or stops the evaluation (`policy_server_crash`); unservable policies (scripted
  experts) stay in the workers.

Policies are reached only through the policy registry (`envs.policy_api.build_policy`) and run only
through the rollout loop (`envs.rollout.run_loop`); simulators only through the `envs.env_api.Env` protocol.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from configs.loader import save_config
from configs.runs import atomic_write_json, atomic_write_text
from envs import protocol
from envs.env_api import Env
from envs.policy_api import EnvSpec, Policy, build_policy, check_inputs
from envs.rollout import EnvStepper, run_loop
from envs.videos import write_video


class EvalSettings(Protocol):
    """The fields of a benchmark's config dataclass that the core reads (one per CLI option)."""

    policy: str  # registered name, `name:arg`, or a checkpoint directory
    trials: int  # episodes per task
    workers: int  # parallel episode processes
    out: str
    seed: int
    seed_per_trial: bool  # env seed + trial instead of the same env seed for every trial
    max_steps: int  # 0 = the env's protocol value
    video: bool
    video_stride: int  # keep every k-th frame
    wrist_video: bool
    retry_errors: bool
    progress: bool
    threads: int  # torch threads per worker; 0 = free cores / workers
    execution: str  # "" or a chunk execution override for checkpoints that take one (receding | ensemble)


@dataclass
class Benchmark:
    """What one evaluation needs besides its config; everything here must be picklable.

    `env_factory(task_id, render=bool) -> Env` (a module-level function or functools.partial);
    `protocol` goes verbatim into results.json; `header` is the results.md line under the title;
    `record_extra` is added to every episode record (e.g. which renderer produced it);
    `env_spec` is what the env provides, checked against the policy's declared inputs before
    anything is written."""

    title: str
    suite: str
    task_ids: list[int]
    env_factory: Callable[..., Env]
    protocol: dict[str, Any]
    header: str = ""
    record_extra: dict[str, Any] = field(default_factory=dict)
    env_spec: EnvSpec | None = None


def parse_tasks(spec: str, n_tasks: int, suite: str = "") -> list[int]:
    """'all' -> range(n_tasks); '0,3,7' -> [0, 3, 7]; '1-3' -> [1, 2, 3]; bad ids raise ValueError
    (one line naming the valid ids, of `suite` when given)."""
    spec = str(spec).strip()
    if spec in ("all", ""):
        return list(range(n_tasks))
    out = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            a, _, b = part.partition("-")
            ids = range(int(a), int(b or a) + 1)
        except ValueError:
            raise ValueError(f"tasks: {part!r} is not a task id (use e.g. tasks=0,3,7 or all)") from None
        for i in ids:
            if not 0 <= i < n_tasks:
                of = f" of {suite}" if suite else ""
                raise ValueError(f"tasks: id {i} out of range; the valid task ids{of} are 0..{n_tasks - 1}")
            out.append(i)
    return sorted(set(out))


def episode_path(out: Path, suite: str, task_id: int, trial: int, suffix: str = ".json") -> Path:
    return Path(out) / "episodes" / suite / f"task{task_id:02d}" / f"trial{trial:03d}{suffix}"


def env_seed(cfg: EvalSettings, trial: int) -> int:
    return cfg.seed + trial if cfg.seed_per_trial else cfg.seed


# ---------------------------------------------------------------------------------------------
# One episode
# ---------------------------------------------------------------------------------------------


def run_episode(env: Env, policy: Policy, trial: int, cfg: EvalSettings, video_path: Path | None = None) -> dict:
    """Run one protocol episode through the rollout loop (envs/rollout.py) -> {success, steps,
    wall_s, acts, rendered_frames, **policy.episode_info()}; exceptions propagate to the caller.
    The env renders only the cameras the policy reads, on the steps where it acts (plus the video
    frames, every `video_stride` steps)."""
    t0 = time.time()
    stepper = EnvStepper(env)
    stepper.reset(trial=trial, seed=env_seed(cfg, trial))
    frames: list[np.ndarray] = []

    def grab(o: dict) -> None:
        main = o["agentview_rgb"] if "agentview_rgb" in o else env.render_frame("agentview_rgb")
        if cfg.wrist_video:
            wrist = o["eye_in_hand_rgb"] if "eye_in_hand_rgb" in o else env.render_frame("eye_in_hand_rgb")
            main = np.concatenate([main, wrist], axis=1)
        frames.append(main)

    # a digest of the executed actions (rounded to 1e-5): two runs of an episode agree iff they acted alike
    digest = hashlib.sha1()

    def before_step(t: int, obs: dict, action: np.ndarray) -> None:
        digest.update(np.round(np.asarray(action, np.float64), 5).astype(np.float32).tobytes())
        if video_path is not None and t % cfg.video_stride == 0:
            grab(obs)

    res = run_loop(stepper, policy, env.instruction, cfg.max_steps or env.max_steps,
                   seed=cfg.seed * 100003 + env.task_id * 1000 + trial, bind=env, before_step=before_step)
    if video_path is not None:
        grab(stepper.observe(()))
        write_video(video_path, frames, fps=max(1, 20 // cfg.video_stride))
    record = {"success": res.success, "steps": res.steps, "wall_s": round(time.time() - t0, 3),
              "acts": res.acts, "rendered_frames": stepper.rendered, "actions_sha1": digest.hexdigest()[:16]}
    record.update(policy.episode_info())  # e.g. the scripted expert's skill outcomes
    return record


# ---------------------------------------------------------------------------------------------
# Worker (one per process; keeps one env alive per task, the policy for the whole run)
# ---------------------------------------------------------------------------------------------

_W: dict[str, Any] = {}


def _init_worker(cfg: EvalSettings, bench: Benchmark, driver_pid: int | None = None, workers: int = 1,
                 rank: int = 0, world: int = 1, server: Any = None) -> None:
    """Set up one episode process: threads for one of `workers` processes sharing this machine's
    cores, the (rank, world) its records name, and the policy server it asks (`ServerSpec` or None)."""
    from configs.threads import apply_threads

    if driver_pid is not None:
        # llvmpipe (software EGL) rasterises on all cores by default; with several worker processes
        # that oversubscribes the CPU. Must be set before the process creates its GL context.
        os.environ.setdefault("LP_NUM_THREADS", "1")
    # workers are the parallelism: each gets its share of the free cores (torch spin-waits otherwise)
    n = apply_threads(cfg.threads, workers=workers)
    os.environ.setdefault("OMP_NUM_THREADS", str(n))
    _W.clear()
    _W["cfg"], _W["bench"] = cfg, bench
    _W["rank"], _W["world"] = rank, world
    _W["server"] = server
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


def policy_overrides(cfg: EvalSettings) -> dict[str, Any]:
    """Keyword arguments for `build_policy` beyond the checkpoint's own settings."""
    ex = getattr(cfg, "execution", "")
    if ex and ex not in ("receding", "ensemble"):
        raise ValueError(f"execution must be receding or ensemble (or empty for the checkpoint's), got {ex!r}")
    return {"execution": ex} if ex else {}


def _get_policy(cfg: EvalSettings) -> Policy:
    if "policy" not in _W:
        if _W.get("server") is not None:  # policy_server=true: the one copy lives in the server process
            from envs.remote_policy import RemotePolicy

            _W["policy"] = RemotePolicy(_W["server"])
        else:
            _W["policy"] = build_policy(cfg.policy, seed=cfg.seed, **policy_overrides(cfg))
    return _W["policy"]


def _get_env(bench: Benchmark, task_id: int, policy: Policy) -> Env:
    env = _W.get("env")
    if env is not None and env.task_id == task_id:
        return env
    _close_env()
    # never render inside step(): the rollout loop renders the policy's cameras when it acts
    env = bench.env_factory(task_id, render=False)
    _W["env"] = env
    return env


def _close_env() -> None:
    env = _W.pop("env", None)
    if env is not None:
        env.close()


def _run_job(task_id: int, trial: int) -> dict:
    """Run (task, trial), write its json; never raises for an episode failure."""
    cfg: EvalSettings = _W["cfg"]
    bench: Benchmark = _W["bench"]
    out = Path(cfg.out)
    rec: dict[str, Any] = {"suite": bench.suite, "task_id": task_id, "trial": trial, "policy": cfg.policy,
                           "seed": env_seed(cfg, trial), **bench.record_extra, "pid": os.getpid(),
                           "rank": _W.get("rank", 0), "world_size": _W.get("world", 1)}
    t0 = time.time()
    try:
        policy = _get_policy(cfg)
        env = _get_env(bench, task_id, policy)
        rec["task_name"] = env.task_name
        rec["instruction"] = env.instruction
        video = episode_path(out, bench.suite, task_id, trial, ".mp4") if cfg.video else None
        rec.update(run_episode(env, policy, trial, cfg, video))
        rec["status"] = "ok"
        if video is not None:
            rec["video"] = str(video.relative_to(out))
    except Exception as e:  # recorded, counted as a failure, never dropped
        rec.update(success=False, steps=0, wall_s=round(time.time() - t0, 3), status="error",
                   error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
        _close_env()  # the env may be broken after an exception: rebuild it for the next episode
    atomic_write_json(episode_path(out, bench.suite, task_id, trial), rec)
    return rec


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------


def load_done(out: Path, suite: str, jobs: list[tuple[int, int]], retry_errors: bool) -> dict:
    """Finished episode records on disk, by (task, trial); errors are left out with retry_errors."""
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


def summarize(records: list[dict], cfg: EvalSettings, bench: Benchmark) -> dict:
    """Per-task and overall success with Wilson 95% intervals."""
    tasks: dict[int, dict] = {}
    for r in sorted(records, key=lambda r: (r["task_id"], r["trial"])):
        t = tasks.setdefault(r["task_id"], {"task_id": r["task_id"], "name": "", "n": 0, "successes": 0,
                                            "errors": 0, "steps": [], "wall_s": []})
        t["name"] = t["name"] or r.get("task_name", "")
        t["n"] += 1
        t["successes"] += int(bool(r["success"]))
        t["errors"] += int(r.get("status") == "error")
        t["steps"].append(r.get("steps", 0))
        t["wall_s"].append(r.get("wall_s", 0.0))
    rows = []
    for t in tasks.values():
        lo, hi = protocol.wilson_interval(t["successes"], t["n"])
        rows.append({"task_id": t["task_id"], "name": t["name"], "n": t["n"], "successes": t["successes"],
                     "success_rate": t["successes"] / t["n"], "ci95": [lo, hi], "errors": t["errors"],
                     "mean_steps": float(np.mean(t["steps"])), "mean_wall_s": float(np.mean(t["wall_s"]))})
    n = sum(r["n"] for r in rows)
    s = sum(r["successes"] for r in rows)
    lo, hi = protocol.wilson_interval(s, n)
    return {
        "suite": bench.suite,
        "policy": cfg.policy,
        "protocol": dict(bench.protocol),
        "tasks": rows,
        "overall": {"n": n, "successes": s, "success_rate": s / n if n else 0.0, "ci95": [lo, hi],
                    "errors": sum(r["errors"] for r in rows)},
        "error_reasons": error_reasons(records, bench.suite),
    }


def error_reasons(records: list[dict], suite: str) -> list[dict]:
    """The distinct errors of the episodes that raised one, in order of first occurrence:
    `[{"error": "KeyError: ...", "episodes": [[task, trial], ...], "record": "episodes/.../trial000.json"}]`
    (`record`: the first such episode's JSON, relative to the output folder, with the traceback)."""
    out: dict[str, dict] = {}
    for r in sorted(records, key=lambda r: (r["task_id"], r["trial"])):
        if r.get("status") != "error":
            continue
        msg = " ".join(str(r.get("error") or "unknown error (no message recorded)").split())
        e = out.setdefault(msg, {"error": msg, "episodes": [],
                                 "record": str(episode_path(Path(""), suite, r["task_id"], r["trial"]))})
        e["episodes"].append([r["task_id"], r["trial"]])
    return list(out.values())


def report_errors(res: dict, out: str | Path, file: Any = None, max_lines: int = 10) -> None:
    """One stderr line per distinct episode error (with its episodes and the record holding the
    traceback), and how to rerun them; nothing when no episode errored."""
    import sys

    file = file or sys.stderr
    reasons = res.get("error_reasons") or []
    n, errors = res["overall"]["n"], res["overall"]["errors"]
    if not errors:
        return
    for e in reasons[:max_lines]:
        eps = ", ".join(f"task {t} trial {i}" for t, i in e["episodes"][:3])
        more = f" and {len(e['episodes']) - 3} more" if len(e["episodes"]) > 3 else ""
        reason = e["error"] if len(e["error"]) <= 400 else e["error"][:400] + "..."
        print(f"error in {len(e['episodes'])} episode(s) ({eps}{more}; traceback in {Path(out) / e['record']}): "
              f"{reason}", file=file)
    if len(reasons) > max_lines:
        print(f"... and {len(reasons) - max_lines} more distinct errors (results.json: error_reasons)", file=file)
    every = " -- every episode errored" if errors == n else ""
    print(f"{errors} of {n} episodes raised an error{every}; errored episodes count as failures and a rerun "
          "keeps them: rerun with retry_errors=true to run them again", file=file)


def exit_status(res: dict) -> int:
    """A CLI's exit status for evaluation results: 1 when every episode raised an error, else 0."""
    o = res["overall"]
    return 1 if o["n"] and o["errors"] == o["n"] else 0


def results_markdown(res: dict, title: str, header: str = "") -> str:
    lines = [f"# {title} {res['suite']} - policy `{res['policy']}`", ""]
    if header:
        lines += [header, ""]
    lines += ["| task | name | success | 95% CI | n | errors | mean steps |", "|---:|---|---:|---|---:|---:|---:|"]
    for r in res["tasks"]:
        lines.append(
            f"| {r['task_id']} | {r['name']} | {100 * r['success_rate']:.1f}% | "
            f"[{100 * r['ci95'][0]:.1f}, {100 * r['ci95'][1]:.1f}] | {r['n']} | {r['errors']} | {r['mean_steps']:.0f} |"
        )
    o = res["overall"]
    lines.append(f"| all | | **{100 * o['success_rate']:.1f}%** | [{100 * o['ci95'][0]:.1f}, {100 * o['ci95'][1]:.1f}] | "
                 f"{o['n']} | {o['errors']} | |")
    return "\n".join(lines) + "\n"


def _crash_record(cfg: EvalSettings, bench: Benchmark, task_id: int, trial: int, err: BaseException,
                  rank: int = 0, world: int = 1) -> dict:
    """Record of an episode whose worker died (call inside the `except`, for its traceback)."""
    return {"suite": bench.suite, "task_id": task_id, "trial": trial, "policy": cfg.policy, "success": False,
            "steps": 0, "wall_s": 0.0, "status": "error", "error": f"worker process died: {err}",
            "traceback": traceback.format_exc(), "rank": rank, "world_size": world}


# ---------------------------------------------------------------------------------------------
# Ranks (torchrun / accelerate launch): the episodes split across processes and machines
# ---------------------------------------------------------------------------------------------

RANK_TIMEOUT_S: float = 7 * 24 * 3600.0  # how long a rank may wait for the others (a slow share)

J = TypeVar("J")


def launch_rank() -> tuple[int, int]:
    """(rank, world size) of this process as `torchrun` / `accelerate launch` set them in RANK and
    WORLD_SIZE; (0, 1) for a plain run. Bad values raise ValueError."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        rank = int(os.environ.get("RANK", "0") or 0)
    except ValueError:
        raise ValueError(f"RANK={os.environ.get('RANK')!r} / WORLD_SIZE={os.environ.get('WORLD_SIZE')!r} "
                         "are not integers (set by torchrun / accelerate launch)") from None
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK={rank} is not in [0, WORLD_SIZE={world})")
    return rank, world


@dataclass
class Ranks:
    """This process's place in a multi-process launch, with the few gloo collectives the drivers
    need; `world == 1` (a plain run) makes every collective the identity."""

    rank: int = 0
    world: int = 1
    local_world: int = 1  # ranks on this machine (they share its cores)
    owns_group: bool = False  # this object initialised the process group (and `close` destroys it)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order (on every rank); [obj] for one process."""
        if self.world == 1:
            return [obj]
        import torch.distributed as dist

        got: list[Any] = [None] * self.world
        dist.all_gather_object(got, obj)
        return got

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank (the others' argument is ignored)."""
        if self.world == 1:
            return obj
        import torch.distributed as dist

        box = [obj if self.main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        if self.owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()
            self.owns_group = False


def join_ranks(timeout_s: float = RANK_TIMEOUT_S) -> Ranks:
    """The `Ranks` of this process: with WORLD_SIZE > 1, join (or reuse) the torch.distributed
    process group over gloo (env:// rendezvous: MASTER_ADDR / MASTER_PORT, as torchrun and
    accelerate launch set them), waiting up to `timeout_s` in any collective."""
    rank, world = launch_rank()
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "0") or 0) or 1
    if world == 1:
        return Ranks()
    import datetime

    import torch.distributed as dist

    owns = False
    if not dist.is_initialized():
        dist.init_process_group("gloo", rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=float(timeout_s)))
        owns = True
    if (dist.get_rank(), dist.get_world_size()) != (rank, world):
        raise ValueError(f"the process group is rank {dist.get_rank()} of {dist.get_world_size()}, "
                         f"but RANK/WORLD_SIZE say {rank} of {world}")
    return Ranks(rank=rank, world=world, local_world=min(local, world), owns_group=owns)


def rank_jobs(jobs: Sequence[J], rank: int, world: int) -> list[J]:
    """The contiguous share of `jobs` (e.g. (task, trial) pairs, task-major, so a rank keeps one env
    per task) that `rank` of `world` runs: shares are disjoint, cover `jobs`, differ in length by at
    most one, and are empty for the ranks beyond len(jobs). Same split as training's `rank_slice`."""
    from configs.training import rank_slice

    return list(jobs[rank_slice(len(jobs), rank, world)])


def idle_line(what: str, n: int, ranks: Ranks) -> str:
    """The one line a rank with no share prints."""
    return f"rank {ranks.rank} of {ranks.world}: nothing to do ({n} {what} left to run, all taken by lower ranks)"


def run_evaluation(cfg: EvalSettings, bench: Benchmark, ranks: Ranks | None = None) -> dict:
    """Run (or resume) `cfg.trials` episodes of every task in `bench`; returns the results dict
    (also written as results.json / results.md, with the resolved config.yaml, under cfg.out).

    Under torchrun / accelerate launch (WORLD_SIZE > 1, or `ranks` given) the episodes still to run
    are split across the ranks and rank 0 merges; every rank returns the same results dict."""
    own = ranks is None
    ranks = ranks or join_ranks(getattr(cfg, "rank_timeout_s", 0) or RANK_TIMEOUT_S)
    try:
        return _evaluate_ranked(cfg, bench, ranks)
    finally:
        if own:
            ranks.close()


def _plan(cfg: EvalSettings, bench: Benchmark, out: Path) -> tuple[Policy, dict, list[tuple[int, int]]]:
    """Rank 0's part before any episode: build and check the policy (a bad one fails here, before
    anything is written), write config.yaml, read the finished records -> (policy, done, todo)."""
    if getattr(cfg, "policy_server", False):
        from envs.policy_server import check_settings

        check_settings(cfg)
    policy = build_policy(cfg.policy, seed=cfg.seed, **policy_overrides(cfg))
    if bench.env_spec is not None:
        check_inputs(policy, bench.env_spec, cfg.policy)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    jobs = [(t, i) for t in bench.task_ids for i in range(cfg.trials)]
    done = load_done(out, bench.suite, jobs, cfg.retry_errors)
    kept = sum(r.get("status") == "error" for r in done.values())
    if kept:
        import sys

        print(f"{kept} episode(s) in {out} raised an error in an earlier run and are kept as failures "
              "(retry_errors=true runs them again)", file=sys.stderr)
    return policy, done, [j for j in jobs if j not in done]


def _policy_server(cfg: EvalSettings, sharing: int) -> Any:
    """A started `envs.policy_server.PolicyServer` when cfg.policy_server is set (None otherwise, or
    for a policy that cannot be served: it runs in each worker, as said on stderr)."""
    if not getattr(cfg, "policy_server", False):
        return None
    from envs.policy_server import start_server

    return start_server(cfg, policy_overrides(cfg), workers=sharing)


def _evaluate_ranked(cfg: EvalSettings, bench: Benchmark, ranks: Ranks) -> dict:
    from tqdm import tqdm

    out = Path(cfg.out)
    policy: Policy | None = None
    done: dict = {}
    plan: dict[str, Any] = {}
    if ranks.main:
        try:
            policy, done, todo = _plan(cfg, bench, out)
            plan = {"todo": todo}
        except Exception as e:
            ranks.broadcast({"error": f"{type(e).__name__}: {e}"})  # the others stop with it
            raise
    plan = ranks.broadcast(plan)
    if "error" in plan:
        raise ValueError(f"rank 0 stopped before any episode: {plan['error']}")
    todo = [tuple(j) for j in plan["todo"]]
    mine = rank_jobs(todo, ranks.rank, ranks.world)
    if ranks.world > 1 and not mine:
        print(idle_line("episode(s)", len(todo), ranks), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    records = list(done.values())
    new: list[dict] = []
    tag = f"[rank {ranks.rank}/{ranks.world}] " if ranks.world > 1 else ""
    bar = tqdm(total=len(done) + len(mine), initial=len(done), desc=f"{tag}{bench.suite}:{cfg.policy}",
               disable=not cfg.progress or not mine, dynamic_ncols=True)

    def note(rec: dict) -> None:
        records.append(rec)
        new.append(rec)
        s = sum(int(bool(r["success"])) for r in records)
        bar.set_postfix(success=f"{s}/{len(records)}", err=sum(r.get("status") == "error" for r in records))
        bar.update(1)

    workers = min(cfg.workers, len(mine))
    # the processes sharing this machine's cores: this rank's workers times the ranks on the machine
    sharing = max(1, workers) * ranks.local_world
    # policy_server=true: one policy process answers every worker (envs/policy_server.py); None when off
    server = _policy_server(cfg, sharing) if workers else None
    spec = server.spec if server is not None else None
    if server is not None or workers > 1:
        policy = None  # each worker asks the server, or builds its own copy: drop the driver's
    if workers == 1:
        _init_worker(cfg, bench, workers=sharing, rank=ranks.rank, world=ranks.world, server=spec)
        if policy is not None:
            _W["policy"] = policy  # the one already built (a large VLA is loaded once)
        try:
            for t, i in mine:
                if server is not None and server.failed:
                    break  # policy_server_crash=stop: the rest stay unrun (a rerun resumes)
                note(_run_job(t, i))
        finally:
            _close_env()
            _W.clear()
    elif workers > 1:
        # spawn: a forked child would inherit the parent's GL/MuJoCo state
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                 initargs=(cfg, bench, os.getpid(), sharing, ranks.rank, ranks.world, spec)) as pool:
            futs = {pool.submit(_run_job, t, i): (t, i) for t, i in mine}
            if server is not None:
                server.when_stopped(lambda: [f.cancel() for f in futs])
            for fut in as_completed(futs):
                t, i = futs[fut]
                if fut.cancelled():
                    continue
                try:
                    rec = fut.result()
                except BrokenProcessPool as e:  # a worker died (segfault, OOM): record, don't drop
                    rec = _crash_record(cfg, bench, t, i, e, ranks.rank, ranks.world)
                    atomic_write_json(episode_path(out, bench.suite, t, i), rec)
                note(rec)
    bar.close()
    failed = ""
    if server is not None:
        failed = server.failed
        server.close()
    res: dict | None = None
    if ranks.world > 1:
        # rank 0 merges: every rank's new records (written on its own disk; copied here if this
        # disk does not see them, so that rank 0's folder alone holds the whole evaluation)
        got = ranks.gather((new, failed))
        others = [r for k, (recs, _) in enumerate(got) if k != ranks.rank for r in recs]
        failed = failed or next((f for _, f in got if f), "")
        if ranks.main:
            for r in others:
                p = episode_path(out, bench.suite, r["task_id"], r["trial"])
                if not p.is_file():
                    atomic_write_json(p, r)
            records += others
    if failed:  # policy_server_crash=stop: the crashed episodes are recorded, no results are written
        from envs.policy_server import EvaluationStopped

        raise EvaluationStopped(failed)
    if ranks.main:
        res = summarize(records, cfg, bench)
        atomic_write_json(out / "results.json", res)
        atomic_write_text(out / "results.md", results_markdown(res, bench.title, bench.header))
    return ranks.broadcast(res)
