"""CPU thread sizing for every CPU-heavy entry point and worker pool.

Torch's intra-op threads spin-wait for a core. On a 2-core machine beside one busy process, InvAct
training ran 0.62 s/step with 2 threads and 0.08 s/step with 1 (docs/results/threads.md): a thread
that waits for a core that is not free slows every step. So the default thread count is the number
of cores *free to this process*, not the number of cores:

    free = cores this process may run on (sched_getaffinity)  -  load from other processes

where the other processes' load is the larger of (a) the runnable tasks right now (/proc/loadavg's
4th field, sampled a few times over ~50 ms, each sample less this process's own running threads
at that instant) and (b) the 1-minute load average less this process's running threads. (a) sees a process that started a second ago; (b) sees one that
happens to be between time slices. Taking the larger errs towards fewer threads, the cheap side:
one thread too few costs at most 2x here, one too many cost 8x (0.62 vs 0.08 s/step).
A user override (`threads=N` in a config, or ATOMVLA_THREADS) always wins.

Sizing once at start is not enough for a long run: a process that starts later takes a core, and
the threads sized for an idle machine then spin-wait (a stage-2 VLA run went from 1.5 s to ~40 s a
step when another job started 37 s in). `ThreadResizer` re-measures between training steps (at
most every `every_s` seconds; `configs.training.fit(threads=...)` calls it) and changes torch's
thread count when the free cores changed. Between steps the 1-minute load average is the wrong
measure: it holds this process's own threads of the last minute, so a run on 2 threads would read
its own load as another process. The resizer uses the CPU time the *other* processes took since its
last check instead (all CPUs' busy time from /proc/stat less this process's own CPU time), together
with the runnable tasks of other processes right now (which sees a newcomer at once).
"""

from __future__ import annotations

import os
import time

ENV_VAR = "ATOMVLA_THREADS"


def available_cores() -> int:
    """Cores this process may run on (respects taskset / cgroup cpusets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def _own_running_threads() -> int:
    """Threads of this process in state R (running) right now; 1 where /proc is absent."""
    try:
        n = 0
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/stat") as f:
                # the state follows the ')' that closes the command name
                if f.read().rsplit(")", 1)[1].split()[0] == "R":
                    n += 1
        return max(1, n)
    except OSError:
        return 1


def _others_runnable_now(samples: int = 5, interval: float = 0.01) -> float:
    """Mean number of runnable tasks of *other* processes over a few samples: /proc/loadavg field 4
    less this process's own running threads, read at the same instant (torch's pool threads can
    still be spinning from the last op, or just have gone to sleep)."""
    vals = []
    for i in range(samples):
        try:
            with open("/proc/loadavg") as f:
                runnable = int(f.read().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            return 0.0
        vals.append(max(0, runnable - _own_running_threads()))
        if i + 1 < samples:
            time.sleep(interval)
    return sum(vals) / len(vals)


def free_cores() -> int:
    """Cores not busy with other processes (at least 1), from the run queue, the load average and the
    affinity mask."""
    cores = available_cores()
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = 0.0
    others = max(0.0, load - _own_running_threads(), _others_runnable_now())
    return max(1, min(cores, int(cores - others + 0.5)))


def user_threads(requested: int = 0) -> int | None:
    """The user's fixed thread count: `requested` if > 0, else $ATOMVLA_THREADS if > 0, else None."""
    if requested and requested > 0:
        return int(requested)
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"{ENV_VAR}={env!r} is not an integer") from None
        if n > 0:
            return n
    return None


def default_threads(requested: int = 0, workers: int = 1) -> int:
    """Intra-op threads for one of `workers` processes: `requested` if > 0, else $ATOMVLA_THREADS,
    else the free cores divided between the workers (at least 1)."""
    fixed = user_threads(requested)
    return fixed if fixed is not None else max(1, free_cores() // max(1, workers))


def apply_threads(requested: int = 0, workers: int = 1) -> int:
    """Set torch's intra-op thread count (see `default_threads`) and return it.

    Inter-op threads are set to 1 once: they serve parallel graph branches this code never has."""
    import torch

    n = default_threads(requested, workers)
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or parallel work has started: harmless
        pass
    return n


def _busy_cpu_seconds() -> float | None:
    """CPU seconds all cores have spent busy since boot (/proc/stat: everything but idle and iowait);
    None where /proc/stat is absent."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    # guest time is already counted in user time
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


class ThreadResizer:
    """Re-size torch's intra-op threads between training steps as other processes come and go.

    Call it after every step: it returns at once until `every_s` seconds have passed, then measures
    the other processes' load since its last measurement (the larger of the CPU time they took and
    their runnable tasks now, see the module docstring), sets torch's threads to the cores left free
    (at most the cores divided between `workers`) and returns the new count if it changed, else
    None. A user's fixed count (`requested` > 0 or $ATOMVLA_THREADS) disables it. `changes` records
    (seconds since start, old, new) for each change."""

    def __init__(self, requested: int = 0, workers: int = 1, every_s: float = 10.0) -> None:
        self.enabled = user_threads(requested) is None
        self.cap = max(1, available_cores() // max(1, workers))
        self.every_s = float(every_s)
        self.changes: list[tuple[float, int, int]] = []
        self._t0 = self._last = time.monotonic()
        self._busy, self._own = _busy_cpu_seconds(), _own_cpu_seconds()

    def others_load(self) -> float:
        """Cores' worth of work from other processes since the last call (and right now)."""
        now, busy, own = time.monotonic(), _busy_cpu_seconds(), _own_cpu_seconds()
        took = 0.0
        if busy is not None and self._busy is not None and now > self._last:
            took = max(0.0, (busy - self._busy) - (own - self._own)) / (now - self._last)
        self._last, self._busy, self._own = now, busy, own
        return max(took, _others_runnable_now())

    def __call__(self) -> int | None:
        if not self.enabled or time.monotonic() - self._last < self.every_s:
            return None
        import torch

        others = self.others_load()
        n = max(1, min(self.cap, int(available_cores() - others + 0.5)))
        old = torch.get_num_threads()
        if n == old:
            return None
        torch.set_num_threads(n)
        self.changes.append((round(self._last - self._t0, 1), old, n))
        return n
