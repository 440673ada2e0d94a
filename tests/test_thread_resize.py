"""Torch's threads re-sized between training steps (configs/threads.py `ThreadResizer`, issue 25:
"stage 2 slowed about 30x mid-run" when another process started after the threads were sized)."""

from __future__ import annotations

import json

import pytest
import torch


class Clock:
    """Stands in for the clock, /proc/stat and this process's CPU time."""

    def __init__(self) -> None:
        self.t = 0.0
        self.busy = 0.0  # CPU seconds of all cores
        self.own = 0.0  # CPU seconds of this process

    def run(self, seconds: float, own_cores: float, other_cores: float) -> None:
        self.t += seconds
        self.own += seconds * own_cores
        self.busy += seconds * (own_cores + other_cores)


@pytest.fixture
def clock(monkeypatch):
    from configs import threads

    c = Clock()
    runnable = {"now": 0.0}
    monkeypatch.delenv(threads.ENV_VAR, raising=False)
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    monkeypatch.setattr(threads.time, "monotonic", lambda: c.t)
    monkeypatch.setattr(threads, "_busy_cpu_seconds", lambda: c.busy)
    monkeypatch.setattr(threads, "_own_cpu_seconds", lambda: c.own)
    monkeypatch.setattr(threads, "_others_runnable_now", lambda: runnable["now"])
    c.runnable = runnable
    n = torch.get_num_threads()
    torch.set_num_threads(2)
    yield c
    torch.set_num_threads(n)


def test_resizer_follows_a_process_that_comes_and_goes(clock):
    from configs.threads import ThreadResizer

    r = ThreadResizer(every_s=10)
    clock.run(5, own_cores=2.0, other_cores=0.0)
    assert r() is None and torch.get_num_threads() == 2  # not due yet
    clock.run(6, own_cores=2.0, other_cores=0.0)  # our own two busy threads are not another process
    assert r() is None and torch.get_num_threads() == 2
    clock.runnable["now"] = 1.0  # a spin loop starts: runnable at once, before it has taken much CPU
    clock.run(10, own_cores=1.9, other_cores=0.1)
    assert r() == 1 and torch.get_num_threads() == 1
    clock.run(10, own_cores=1.0, other_cores=1.0)  # it keeps its core
    assert r() is None and torch.get_num_threads() == 1
    clock.runnable["now"] = 0.0  # between its time slices it is not runnable, but it took a core
    clock.run(10, own_cores=1.0, other_cores=0.9)
    assert r() is None and torch.get_num_threads() == 1
    clock.run(10, own_cores=1.0, other_cores=0.0)  # it ended
    assert r() == 2 and torch.get_num_threads() == 2
    assert r.changes == [(21.0, 2, 1), (51.0, 1, 2)]


def test_resizer_is_off_when_the_user_fixed_the_threads(clock, monkeypatch):
    from configs.threads import ENV_VAR, ThreadResizer

    clock.runnable["now"] = 2.0  # two other busy processes: automatic sizing would drop to 1 thread
    fixed, auto = ThreadResizer(requested=2), ThreadResizer(0)
    monkeypatch.setenv(ENV_VAR, "2")
    env = ThreadResizer(0)
    clock.run(20, own_cores=1.0, other_cores=2.0)
    assert not fixed.enabled and fixed() is None and not env.enabled and env() is None
    assert torch.get_num_threads() == 2
    assert auto.enabled and auto() == 1 and torch.get_num_threads() == 1


def test_resizer_divides_cores_between_workers(clock):
    from configs.threads import ThreadResizer

    r = ThreadResizer(workers=2, every_s=1)
    torch.set_num_threads(1)
    clock.run(2, own_cores=1.0, other_cores=0.0)  # the other rank idles a moment: still one core each
    assert r() is None and torch.get_num_threads() == 1


def test_fit_logs_the_threads_only_when_it_resizes(tmp_path, monkeypatch):
    from configs.threads import ENV_VAR
    from configs.training import LoopConfig, fit

    monkeypatch.delenv(ENV_VAR, raising=False)

    class Tiny:
        def __init__(self) -> None:
            self.model = torch.nn.Linear(2, 1)

        def loss(self, model, step, device, rank=0, world=1):
            return (model(torch.ones(4, 2, device=device)) ** 2).mean(), {}

    n = torch.get_num_threads()
    for name, threads in (("auto", 0), ("fixed", 1), ("none", None)):
        fit(Tiny(), tmp_path / name, LoopConfig(steps=2, ckpt_every=2, log_every=1), progress=False, threads=threads)
        recs = [json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        assert [("threads" in r) for r in recs] == [name == "auto"] * 2, name
    torch.set_num_threads(n)
