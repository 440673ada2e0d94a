"""One policy process serving several environment workers, answering their `act` calls in batches.

With `policy_server=true` (eval_libero.py / eval_kitchen.py) the evaluator (envs/evaluator.py) starts
one server process that holds the only copy of the policy; every episode worker holds a
`RemotePolicy` (envs/remote_policy.py), a `Policy` that forwards the rollout loop's hooks to it over
a local socket (`multiprocessing.connection`, AF_UNIX, in a fresh 0700 temp folder). Episode
records and results are the same as with one policy per worker.

    server = PolicyServer("runs/demo/head/policy", timeout_s=60)     # driver: spawns the process
    policy = RemotePolicy(server.spec)                                 # worker: a Policy like any other
    ...                                                                # run_loop(stepper, policy, ...)
    server.close()

Sessions: one connection = one worker = one session, which holds that worker's episode state on the
server (`policy.session()`: the same model weights, its own frame history, feature stream and
counters); the rollout loop's `reset()` resets it at every episode start.

Batching: the server waits on every connection; the `act` requests pending at the same moment are
answered by one `policy.act_batch([(session, obs, instruction), ...])` call (one batched forward
pass; equal to calling each session's `act` in turn), every other hook (`seed_episode`, `reset`,
`observe`, `done`, `label`, `label_object`, `episode_info`) one by one in each connection's order. `seed_episode`,
`reset` and `observe` are one-way messages (no reply to wait for; an error they raise is answered to
the session's next request). A policy without `act_batch` is served with one `session.act` per
request (still one model copy). A policy without `session()`, or one that reads the simulator through
`bind_env` (the scripted experts' privileged state), cannot be served: `PolicyServer` raises
`Unservable`, and the evaluator runs one copy per worker instead, saying so in one stderr line.

Failures: a worker waits at most `timeout_s` for an answer (`PolicyServerError`, one line); when the
server process dies, every episode in flight raises `PolicyServerError("policy server (pid N) died
during act ...")` and is recorded with status "error"; the driver then restarts the server
(`on_crash="restart"`; the workers reconnect at their next episode) or stops the evaluation
(`on_crash="stop"`: `failed` holds the one-line reason and `when_stopped` callbacks run).

Anchor: LeRobot's async inference runs a `PolicyServer` (gRPC) that receives a robot client's
timestamped observations and returns action chunks, so the robot keeps acting while the next chunk
is computed (`actions_per_chunk`, `chunk_size_threshold`, overlapping chunks aggregated on the
client). Here the episodes are simulated, so `act` stays synchronous (the records equal a run
without the server) and the gain is one model copy for N workers plus batched forward passes.
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import os
import queue
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, Listener, wait
from typing import Any

import numpy as np

from envs.policy_api import Policy, build_policy
from envs.remote_policy import PolicyServerError, RemotePolicy, ServerSpec

__all__ = ["EvaluationStopped", "PolicyServer", "PolicyServerError", "RemotePolicy", "ServerSpec", "Unservable",
           "start_server"]

CRASH_MODES = ("restart", "stop")
_ONE_WAY = ("seed", "reset", "observe")


class EvaluationStopped(PolicyServerError, ValueError):
    """The server died and `on_crash="stop"`: also a ValueError, so that the command lines
    (configs.cli.run_cli) print it as one `error:` line and exit 2, like other stopped inputs."""


class Unservable(ValueError):
    """The policy cannot be served from one process; the message says why."""


def one_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {' '.join(str(e).split())}"


def unservable_reason(policy: Policy) -> str:
    """'' when `policy` can be served from one process; else why not (one line)."""
    name = type(policy).__name__
    if type(policy).bind_env is not Policy.bind_env:
        return f"{name} reads the simulator through bind_env (privileged env state), so it runs in each worker"
    if not callable(getattr(policy, "session", None)):
        return f"{name} has no session() (episode state apart from the model), so it runs in each worker"
    return ""


def check_settings(cfg: Any) -> None:
    """One ValueError line for bad `policy_server*` keys of an evaluation config."""
    mode = getattr(cfg, "policy_server_crash", "restart")
    if mode not in CRASH_MODES:
        raise ValueError(f"policy_server_crash must be one of {CRASH_MODES}, got {mode!r}")
    if getattr(cfg, "policy_timeout_s", 1.0) <= 0:
        raise ValueError(f"policy_timeout_s must be > 0, got {cfg.policy_timeout_s}")


# ---------------------------------------------------------------------------------------------
# The server process
# ---------------------------------------------------------------------------------------------


@dataclass
class _Session:
    policy: Policy
    error: str = ""  # raised by a one-way message; answered to the next request


def _overrides(policy: Policy) -> list[str]:
    """The optional hooks the policy implements (the client asks the server only for those)."""
    return [h for h in ("done", "label", "label_object", "episode_info") if getattr(type(policy), h) is not getattr(Policy, h)]


def _serve(spec: str, build_kwargs: dict, address: str, threads: int, workers: int, ready: Connection) -> None:
    """Entry point of the server process: build the policy, report ready (or why not), serve forever."""
    try:
        from configs.threads import apply_threads

        apply_threads(threads, workers=workers)
        policy = build_policy(spec, **build_kwargs)
        reason = unservable_reason(policy)
        if reason:
            ready.send(("unservable", reason))
            return
        listener = Listener(address, family="AF_UNIX")
    except Exception as e:
        ready.send(("error", one_line(e)))
        return
    ready.send(("ready", os.getpid()))
    ready.close()
    serve_forever(policy, listener)


def serve_forever(policy: Policy, listener: Listener) -> None:
    """Answer every connection's messages; the `act` requests pending together go in one batch."""
    hello = {"inputs": policy.inputs, "gripper_convention": policy.gripper_convention,
             "center_crop": policy.center_crop, "hooks": _overrides(policy), "pid": os.getpid(),
             "name": type(policy).__name__}
    stats = {"acts": 0, "batches": 0, "max_batch": 0}
    new: queue.SimpleQueue = queue.SimpleQueue()
    wake_r, wake_w = mp.Pipe(duplex=False)

    def accept() -> None:
        while True:
            try:
                conn = listener.accept()
            except OSError:
                continue
            new.put(conn)
            wake_w.send(None)

    threading.Thread(target=accept, daemon=True).start()
    sessions: dict[Connection, _Session] = {}
    while True:
        ready = wait([wake_r, *sessions])
        if wake_r in ready:
            while wake_r.poll():
                wake_r.recv()
            while not new.empty():
                sessions[new.get()] = _Session(policy.session())
        acts: list[tuple[Connection, _Session, tuple]] = []
        for conn in ready:
            if conn is wake_r:
                continue
            s = sessions[conn]
            try:
                while conn.poll():
                    msg = conn.recv()
                    if msg[0] == "act":
                        acts.append((conn, s, msg))  # a request: the client sends nothing more until answered
                        break
                    _handle(conn, s, msg, hello, stats)
            except (EOFError, OSError):
                sessions.pop(conn, None)
                conn.close()
        if acts:
            _answer_acts(policy, acts, stats)


def _handle(conn: Connection, s: _Session, msg: tuple, hello: dict, stats: dict) -> None:
    op = msg[0]
    value: Any = None
    err = ""
    try:
        if op == "seed":
            s.policy.seed_episode(msg[1])
        elif op == "reset":
            s.error = ""
            s.policy.reset()
        elif op == "observe":
            s.policy.observe(msg[1], msg[2])
        elif op == "hello":
            value = hello
        elif op == "stats":
            value = dict(stats)
        elif op in ("done", "label", "label_object", "episode_info"):
            value = getattr(s.policy, op)()
        else:
            err = f"ValueError: unknown policy server message {op!r}"
    except Exception as e:
        err = one_line(e)
    if op in _ONE_WAY:
        s.error = s.error or err
        return
    err, s.error = s.error or err, ""
    conn.send(("error", err) if err else ("ok", value))


def _answer_acts(policy: Policy, acts: list[tuple[Connection, _Session, tuple]], stats: dict) -> None:
    replies: list[tuple[str, Any]] = [("error", s.error) if s.error else ("", None) for _, s, _ in acts]
    todo = [k for k, r in enumerate(replies) if not r[0]]
    calls = [(acts[k][1].policy, acts[k][2][1], acts[k][2][2]) for k in todo]
    batch = getattr(policy, "act_batch", None)
    if calls and callable(batch):
        try:
            for k, a in zip(todo, batch(calls)):
                replies[k] = ("ok", np.asarray(a))
        except Exception as e:  # one batch, one error: every request in it fails alike
            for k in todo:
                replies[k] = ("error", one_line(e))
    else:
        for k, (p, obs, instruction) in zip(todo, calls):
            try:
                replies[k] = ("ok", np.asarray(p.act(obs, instruction)))
            except Exception as e:
                replies[k] = ("error", one_line(e))
    stats["acts"] += len(calls)
    stats["batches"] += bool(calls)
    stats["max_batch"] = max(stats["max_batch"], len(calls))
    for (conn, s, _), r in zip(acts, replies):
        s.error = ""
        try:
            conn.send(r)
        except OSError:
            pass  # that worker is gone; its connection is dropped at the next wait


# ---------------------------------------------------------------------------------------------
# The driver side
# ---------------------------------------------------------------------------------------------


class PolicyServer:
    """Starts the server process (spawned) for policy `spec` and watches it: when it dies it is
    restarted (`on_crash="restart"`) or `failed` is set and the `when_stopped` callbacks run
    ("stop"). Raises `Unservable` when the policy cannot be served, `PolicyServerError` when it
    does not start."""

    def __init__(self, spec: str, *, build_kwargs: dict | None = None, timeout_s: float = 300.0,
                 start_timeout_s: float = 600.0, on_crash: str = "restart", threads: int = 0, workers: int = 1,
                 log: Any = None) -> None:
        if on_crash not in CRASH_MODES:
            raise ValueError(f"on_crash must be one of {CRASH_MODES}, got {on_crash!r}")
        self.policy, self.build_kwargs = spec, dict(build_kwargs or {})
        self.on_crash, self.threads, self.workers = on_crash, threads, workers
        self.log = log or sys.stderr
        self._dir = tempfile.mkdtemp(prefix="atomvla-policy-")  # 0700: only this user can connect
        self.spec = ServerSpec(os.path.join(self._dir, "socket"), float(timeout_s), float(start_timeout_s))
        self.failed = ""
        self.restarts = 0
        self._callbacks: list[Callable[[], None]] = []
        self._closing = threading.Event()
        try:
            self.process = self._start()
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise
        threading.Thread(target=self._supervise, daemon=True).start()
        atexit.register(self.close)

    @property
    def pid(self) -> int:
        return int(self.process.pid or 0)

    def _start(self) -> Any:
        ctx = mp.get_context("spawn")
        if os.path.exists(self.spec.address):
            os.unlink(self.spec.address)
        r, w = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_serve, args=(self.policy, self.build_kwargs, self.spec.address, self.threads,
                                             self.workers, w), daemon=True, name="policy-server")
        p.start()
        w.close()
        try:
            if not r.poll(self.spec.connect_timeout_s):
                p.kill()
                raise PolicyServerError(f"policy server for {self.policy} did not start within "
                                        f"{self.spec.connect_timeout_s:g}s")
            kind, value = r.recv()
        except EOFError:
            p.join(5)
            raise PolicyServerError(f"policy server for {self.policy} exited with code {p.exitcode} before it "
                                    "was ready") from None
        finally:
            r.close()
        if kind != "ready":
            p.join(30)
            if kind == "unservable":
                raise Unservable(value)
            raise PolicyServerError(f"policy server could not load {self.policy}: {value}")
        return p

    def _supervise(self) -> None:
        while not self._closing.is_set():
            self.process.join(0.2)
            if self._closing.is_set() or self.process.is_alive():
                continue
            why = f"policy server (pid {self.pid}) died with exit code {self.process.exitcode}"
            if self.on_crash == "restart":
                print(f"{why}; restarting it (policy_server_crash=restart)", file=self.log, flush=True)
                try:
                    self.process = self._start()
                    self.restarts += 1
                    continue
                except Exception as e:
                    why = f"{why} and did not restart: {one_line(e)}"
            self._stop(f"{why}; evaluation stopped (policy_server_crash={self.on_crash}): rerun the same "
                       "command to resume")
            return

    def _stop(self, why: str) -> None:
        self.failed = why
        with open(os.path.join(self._dir, "stopped"), "w") as f:  # workers fail at once instead of waiting
            f.write(why)
        print(why, file=self.log, flush=True)
        for fn in self._callbacks:
            fn()

    def when_stopped(self, fn: Callable[[], None]) -> None:
        """Call `fn` when the server stops for good (now, if it already has)."""
        self._callbacks.append(fn)
        if self.failed:
            fn()

    def stats(self) -> dict[str, int]:
        """{acts, batches, max_batch} answered so far by the current server process."""
        client = RemotePolicy(self.spec)
        try:
            return client._request("stats")
        finally:
            client.close()

    def close(self) -> None:
        """Stop the server process and remove its socket folder (idempotent)."""
        self._closing.set()
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(10)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(5)
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> PolicyServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def start_server(cfg: Any, build_kwargs: dict, workers: int, log: Any = None) -> PolicyServer | None:
    """The evaluator's hook: a `PolicyServer` for `cfg.policy` when `cfg.policy_server` is set and
    the policy can be served; None otherwise (an unservable policy prints one line and runs in
    each worker)."""
    if not getattr(cfg, "policy_server", False):
        return None
    try:
        return PolicyServer(cfg.policy, build_kwargs={"seed": cfg.seed, **build_kwargs},
                            timeout_s=float(getattr(cfg, "policy_timeout_s", 300.0)),
                            on_crash=getattr(cfg, "policy_server_crash", "restart"), threads=cfg.threads,
                            workers=workers, log=log)
    except Unservable as e:
        print(f"policy_server=true ignored: {e}", file=log or sys.stderr, flush=True)
        return None
