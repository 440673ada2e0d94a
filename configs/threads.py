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
"""

from __future__ import annotations

import os

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
    import time

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


def default_threads(requested: int = 0, workers: int = 1) -> int:
    """Intra-op threads for one of `workers` processes: `requested` if > 0, else $ATOMVLA_THREADS,
    else the free cores divided between the workers (at least 1)."""
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
    return max(1, free_cores() // max(1, workers))


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
