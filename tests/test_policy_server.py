"""The batched policy server (envs/policy_server.py): batched act == one at a time, per-session state,
a dead or silent server as one line, crashed episodes recorded by the evaluator (restart | stop).

The policy is a real tiny policy head (a `random` projection encoder + a small step head, saved to
tmp); the env is tests/line_env.py's `LineEnv` (8 x 8 frames, 1-dim proprio)."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from envs.policy_server import PolicyServer, PolicyServerError, RemotePolicy, start_server
from tests.line_env import LineEnv, LineEvalConfig

CAM = "agentview_rgb"


def tiny_head(tmp: Path) -> Path:
    """A policy head on the `random` encoder (dim 8) reading agentview + proprio (1,), history 2."""
    from encoders import build_encoder
    from policies.heads.data import WindowConfig
    from policies.heads.model import HeadConfig, HeadNetwork
    from policies.heads.policy import EncoderHeadPolicy

    torch.manual_seed(0)
    enc = build_encoder("random", mode="projection", dim=8, image_size=8)
    head = HeadNetwork(HeadConfig(feature_dim=8, proprio_dim=1, kind="step", history=2, hidden=(16,)))
    policy = EncoderHeadPolicy(enc, head, WindowConfig(frames=3, stride=2, views=(CAM,)), env="kitchen")
    return policy.save_pretrained(tmp / "head", encoder_spec="random")


@pytest.fixture(scope="module")
def head_dir(tmp_path_factory) -> Path:
    return tiny_head(tmp_path_factory.mktemp("ps"))


def _obs(rng: np.random.Generator) -> dict:
    return {CAM: rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "proprio": rng.normal(size=1).astype(np.float32)}


def test_act_batch_equals_one_at_a_time_and_sessions_are_isolated(head_dir):
    from envs.policy_api import build_policy

    root = build_policy(str(head_dir))
    sessions = [root.session() for _ in range(3)]
    alone = [build_policy(str(head_dir)) for _ in range(3)]  # one policy per episode, called one at a time
    rngs = [np.random.default_rng(k) for k in range(3)]
    got: list[list[np.ndarray]] = [[], [], []]
    for t in range(7):
        who = [k for k in (2, 0, 1) if not (t == 3 and k == 1)]  # a changing order; session 1 skips a step
        obs = {k: _obs(rngs[k]) for k in who}
        out = root.act_batch([(sessions[k], obs[k], "") for k in who])
        for k, a in zip(who, out):
            want = alone[k].act(obs[k], "")
            assert a.shape == want.shape == (7,)
            np.testing.assert_allclose(a, want, rtol=1e-5, atol=1e-5)  # float32: batch-size-dependent kernels
            got[k].append(a)
    # the sessions saw different frames: their actions differ, so equality above is per session
    assert np.abs(np.stack(got[0]) - np.stack(got[2])).max() > 1e-3
    # reset forgets one session's history only
    sessions[0].reset()
    alone[0].reset()
    o = _obs(rngs[0])
    np.testing.assert_allclose(root.act_batch([(sessions[0], o, "")])[0], alone[0].act(o, ""), rtol=1e-5, atol=1e-5)


def test_vla_act_batch_equals_one_at_a_time_across_instructions():
    """The tiny VLA: act_batch over 3 sessions, two instructions (batched per instruction) == act."""
    from vla.heads import ActionHead, ActionVLA
    from vla.modeling import build_vla
    from vla.policy import VLAPolicy

    torch.manual_seed(0)
    vla = build_vla("tiny")
    model = ActionVLA(vla, ActionHead(vla.hidden_size, chunk=4, proprio_dim=2))
    meta = {"chunk": 4, "action_stats": {"q01": [-1.0] * 7, "q99": [1.0] * 7}, "image_size": 32, "proprio_dim": 2,
            "proprio_stats": {"mean": [0.0, 0.0], "std": [1.0, 1.0]}}
    root = VLAPolicy(model, meta, execute=3)
    sessions = [root.session() for _ in range(3)]
    rng = np.random.default_rng(0)
    obs = [{CAM: rng.integers(0, 256, (40, 40, 3), dtype=np.uint8), "proprio": rng.normal(size=2)} for _ in range(3)]
    instr = ["open the drawer", "put the bowl on the plate", "open the drawer"]
    out = root.act_batch([(s, o, i) for s, o, i in zip(sessions, obs, instr)])
    for a, o, i in zip(out, obs, instr):
        assert a.shape == (3, 7)
        np.testing.assert_allclose(a, root.act(o, i), rtol=1e-5, atol=1e-5)
    assert np.abs(out[0] - out[2]).max() > 1e-4  # different frames: equality above is per session
    assert [s.episode_info()["vla_calls"] for s in sessions] == [1, 1, 1] and root.calls == 3


def _episode(policy, seed: int, steps: int = 6) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    policy.seed_episode(seed)
    policy.reset()
    out = []
    for t in range(steps):
        obs = _obs(rng)
        policy.observe(obs, t)
        out.append(policy.act(obs, ""))
    return out


def test_server_batches_concurrent_acts_and_keeps_sessions_apart(head_dir):
    from envs.policy_api import build_policy

    with PolicyServer(str(head_dir), timeout_s=60) as server:
        a, b = RemotePolicy(server.spec), RemotePolicy(server.spec)
        assert a.inputs == build_policy(str(head_dir)).inputs and a.server_pid == server.pid != os.getpid()
        # two episodes interleaved step by step, as two workers would run them
        ra, rb = np.random.default_rng(1), np.random.default_rng(2)
        for p in (a, b):
            p.reset()
        la, lb = build_policy(str(head_dir)), build_policy(str(head_dir))
        for t in range(5):
            for remote, local, rng in ((a, la, ra), (b, lb, rb)):
                obs = _obs(rng)
                remote.observe(obs, t)
                local.observe(obs, t)
                np.testing.assert_allclose(remote.act(obs, ""), local.act(obs, ""), rtol=1e-5, atol=1e-5)
        # acts that arrive together are answered in one batch: hold the server while both are sent
        os.kill(server.pid, signal.SIGSTOP)
        res: dict[str, list] = {}
        threads = [threading.Thread(target=lambda p=p, k=k: res.update({k: _episode(p, 7, steps=1)}))
                   for p, k in ((a, "a"), (b, "b"))]
        for th in threads:
            th.start()
        time.sleep(0.5)
        os.kill(server.pid, signal.SIGCONT)
        for th in threads:
            th.join(30)
        assert server.stats()["max_batch"] == 2
        np.testing.assert_allclose(res["a"][0], res["b"][0], rtol=1e-5, atol=1e-5)  # same seed and frames, same action
        np.testing.assert_allclose(res["a"][0], _episode(build_policy(str(head_dir)), 7, steps=1)[0], rtol=1e-5, atol=1e-5)


def test_dead_server_is_one_line_and_restarts_silent_server_times_out(head_dir, capsys):
    with PolicyServer(str(head_dir), timeout_s=1.5, on_crash="restart") as server:
        p = RemotePolicy(server.spec)
        first = _episode(p, 3)
        pid = server.pid
        # silent (stopped) server: the worker waits timeout_s, then one line
        os.kill(pid, signal.SIGSTOP)
        t0 = time.time()
        with pytest.raises(PolicyServerError, match=r"did not answer within 1.5s \(policy_timeout_s\) during act"):
            p.act(_obs(np.random.default_rng(0)), "")
        assert 1.4 < time.time() - t0 < 10
        os.kill(pid, signal.SIGCONT)
        # dead server: the episode in flight fails with one line, the driver restarts it
        p.reset()
        os.kill(server.pid, signal.SIGKILL)
        with pytest.raises(PolicyServerError, match=rf"^policy server \(pid {pid}\) died \(connection closed\)") as e:
            for _ in range(50):
                p.act(_obs(np.random.default_rng(0)), "")
                time.sleep(0.05)
        assert "\n" not in str(e.value)
        deadline = time.time() + 60  # a restart imports torch and loads the head: slow on a loaded machine
        while time.time() < deadline and not (server.restarts == 1 and server.process.is_alive()):
            time.sleep(0.05)
        assert server.restarts == 1 and server.pid != pid
        np.testing.assert_allclose(np.stack(_episode(p, 3)), np.stack(first), rtol=1e-5, atol=1e-5)  # reconnected
        assert f"policy server (pid {pid}) died with exit code -9; restarting" in capsys.readouterr().err


def test_unservable_policy_is_named_and_the_evaluator_falls_back(capsys):
    """`random` has no session(): the server process says so (Unservable) and the evaluator keeps one
    copy per worker."""
    cfg = LineEvalConfig(policy="random", out="", policy_server=True)
    assert start_server(cfg, {}, workers=1) is None
    assert "policy_server=true ignored: RandomPolicy has no session()" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Through the evaluator
# ---------------------------------------------------------------------------------------------


class KillingLineEnv(LineEnv):
    """LineEnv whose trial 1 kills the policy server at step 3 (a crash mid-episode)."""

    def reset(self, trial: int = 0, seed: int | None = 0) -> dict:
        self.trial = trial
        return super().reset(trial, seed)

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, dict]:
        from envs import evaluator

        pid = getattr(evaluator._W.get("policy"), "server_pid", 0)  # 0: no server (the policy is in-process)
        if self.trial == 1 and self.t == 3 and pid:
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.3)
        log = os.environ.get("LINE_ACTIONS_DIR")  # the executed actions, for a comparison to a tolerance
        if log:
            with open(Path(log) / f"trial{self.trial}.txt", "a") as f:
                f.write(" ".join(repr(float(v)) for v in np.ravel(action)) + "\n")
        return super().step(action * 0.1)  # never reaches x = 1: every episode runs max_steps


def _bench():
    from envs.evaluator import Benchmark

    return Benchmark(title="line", suite="line", task_ids=[0], env_factory=KillingLineEnv, protocol={})


def _records(out: Path) -> dict[int, dict]:
    return {int(p.stem[5:]): json.loads(p.read_text()) for p in sorted((out / "episodes" / "line").glob("*/*.json"))}


def test_evaluator_records_a_crashed_episode_and_restarts_or_stops(head_dir, tmp_path):
    from envs.evaluator import run_evaluation

    ref = LineEvalConfig(policy=str(head_dir), out=str(tmp_path / "ref"))  # no server: one policy in the worker
    run_evaluation(ref, _bench())
    want = _records(tmp_path / "ref")
    assert want[1]["status"] == "ok"  # without a server, trial 1's kill finds nothing to kill

    cfg = LineEvalConfig(policy=str(head_dir), out=str(tmp_path / "restart"), policy_server=True)
    res = run_evaluation(cfg, _bench())
    got = _records(tmp_path / "restart")
    assert got[1]["status"] == "error" and got[1]["error"].startswith("PolicyServerError: policy server (pid ")
    assert re.search(r"\(pid \d+\) died \(connection closed\) during (observe|act)$", got[1]["error"])
    assert res["overall"]["errors"] == 1 and res["overall"]["n"] == 3
    for k in (0, 2):  # the episodes the crash did not touch act exactly as with one policy per worker
        assert got[k]["status"] == "ok" and got[k]["actions_sha1"] == want[k]["actions_sha1"]
        assert got[k]["steps"] == want[k]["steps"] == 12

    stop = LineEvalConfig(policy=str(head_dir), out=str(tmp_path / "stop"), policy_server=True, policy_server_crash="stop")
    with pytest.raises(PolicyServerError, match=r"died with exit code -9; evaluation stopped .*rerun the same command"):
        run_evaluation(stop, _bench())
    got = _records(tmp_path / "stop")
    assert sorted(got) == [0, 1] and got[1]["status"] == "error" and not (tmp_path / "stop" / "results.json").exists()


def _actions(folder: Path, trial: int) -> np.ndarray:
    """(T, A) the actions KillingLineEnv executed in `trial` (logged under LINE_ACTIONS_DIR)."""
    return np.loadtxt(folder / f"trial{trial}.txt", ndmin=2)


def test_two_workers_share_one_server_and_a_crash_is_recorded(head_dir, tmp_path, monkeypatch):
    """The worker pool path: 2 spawned workers ask one server; trial 1 kills it mid-episode (the
    other worker's episode in flight may die with it); the server restarts and the rest finish.

    The finished episodes act as with one policy per worker to float32 precision, not bit for bit:
    two workers' acts answered in one batch go through batch-size-dependent matmul kernels (about
    1e-7 apart), which can flip a 1e-5 rounding of `actions_sha1`, so the executed actions are
    compared to a tolerance. An episode carried on by a restarted server (a fresh session, its
    frame history lost) would act differently from step 3 on, far beyond it."""
    from envs.evaluator import run_evaluation

    for run in ("ref", "pool"):
        (tmp_path / f"{run}_actions").mkdir()
    monkeypatch.setenv("LINE_ACTIONS_DIR", str(tmp_path / "ref_actions"))
    run_evaluation(LineEvalConfig(policy=str(head_dir), out=str(tmp_path / "ref"), trials=4), _bench())
    want = _records(tmp_path / "ref")
    monkeypatch.setenv("LINE_ACTIONS_DIR", str(tmp_path / "pool_actions"))
    cfg = LineEvalConfig(policy=str(head_dir), out=str(tmp_path / "pool"), workers=2, trials=4, policy_server=True)
    res = run_evaluation(cfg, _bench())
    got = _records(tmp_path / "pool")
    assert sorted(got) == [0, 1, 2, 3] and got[1]["status"] == "error" and 1 <= res["overall"]["errors"] <= 2
    for k, r in got.items():
        if r["status"] == "error":
            assert r["error"].startswith("PolicyServerError: policy server (pid "), r["error"]
            continue
        assert r["steps"] == want[k]["steps"] == 12
        a, b = _actions(tmp_path / "pool_actions", k), _actions(tmp_path / "ref_actions", k)
        assert a.shape == b.shape == (12, 7)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def test_bad_crash_mode_is_one_line(head_dir, tmp_path):
    from envs.evaluator import run_evaluation

    cfg = LineEvalConfig(policy=str(head_dir), out=str(tmp_path / "x"), policy_server=True, policy_server_crash="retry")
    with pytest.raises(ValueError, match=r"policy_server_crash must be one of \('restart', 'stop'\), got 'retry'"):
        run_evaluation(cfg, _bench())
    assert not (tmp_path / "x").exists()
