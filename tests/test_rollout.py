"""The one rollout loop (envs/rollout.py) and the policy contract (envs/policy_api.py), on a fake env."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from envs.evaluator import Benchmark, run_evaluation
from envs.policy_api import POLICIES, EnvSpec, Policy, PolicyInputs, check_inputs
from envs.rollout import ChunkQueue, EnvStepper, run_loop
from tests.line_env import LineEnv, LineEvalConfig


class Chunky(Policy):
    """Returns chunks of `k` numbered actions (action[0] = 1, action[1] = its index in the stream)."""

    def __init__(self, k: int, cameras: tuple[str, ...] = ("agentview_rgb",)) -> None:
        self.inputs = PolicyInputs(cameras=cameras, chunk=k, proprio_dim=1)
        self.k = k

    def reset(self) -> None:
        self.n = 0
        self.seen: list[int] = []

    def act(self, obs: dict, instruction: str) -> np.ndarray:
        for c in self.inputs.cameras:
            assert obs[c].shape == (8, 8, 3)
        self.seen.append(int(obs["agentview_rgb"][0, 0, 0]))
        rows = np.zeros((self.k, 7))
        rows[:, 0] = 1.0
        rows[:, 1] = np.arange(self.n, self.n + self.k)
        self.n += self.k
        return rows


def test_chunk_queue_returns_actions_in_order():
    q = ChunkQueue()
    q.push(np.arange(12.0).reshape(4, 3))
    q.push(np.array([9.0, 9.0, 9.0]))
    out = [q.pop() for _ in range(len(q))]
    assert [r[0] for r in out] == [0.0, 3.0, 6.0, 9.0, 9.0] and not q
    with pytest.raises(ValueError, match=r"\(A,\) action or a \(K, A\) chunk"):
        q.push(np.zeros((2, 2, 2)))


def test_chunk_8_renders_once_per_chunk_and_executes_in_order():
    env = LineEnv()
    stepper = EnvStepper(env)
    stepper.reset()
    policy = Chunky(8)
    applied: list[float] = []
    res = run_loop(stepper, policy, env.instruction, 40, to_action=lambda a: a,
                   before_step=lambda t, obs, a: applied.append(a[1]))
    assert res.success and res.steps == 10 and res.acts == 2
    assert applied == list(range(10))  # chunk rows in order, across chunks
    assert env.drawn == [(0, "agentview_rgb"), (8, "agentview_rgb")]  # step 0 and step 8 only
    assert stepper.rendered == 2 and policy.seen == [0, 8]


def test_every_step_cameras_and_blind_policy():
    env = LineEnv()
    stepper = EnvStepper(env)
    stepper.reset()
    blind = Chunky(1, cameras=())
    blind.inputs = PolicyInputs(cameras=(), chunk=1)
    with pytest.raises(KeyError):  # a blind policy gets no camera frame
        run_loop(stepper, blind, "x", 3, to_action=lambda a: a)
    stepper.reset()
    env.drawn.clear()
    res = run_loop(stepper, Chunky(4), "x", 6, to_action=lambda a: a, every_step=("eye_in_hand_rgb",))
    assert res.steps == 6 and res.stopped == "max_steps"
    assert [k for _, k in env.drawn].count("eye_in_hand_rgb") == 6
    assert [t for t, k in env.drawn if k == "agentview_rgb"] == [0, 4]


def test_done_hook_ends_the_loop_at_a_chunk_boundary():
    class Twice(Chunky):
        def done(self) -> bool:
            return self.n >= 6

    stepper = EnvStepper(LineEnv())
    stepper.reset()
    res = run_loop(stepper, Twice(3), "x", 40, to_action=lambda a: a)
    assert res.stopped == "done" and res.steps == 6


def test_check_inputs_names_both_sides():
    spec = EnvSpec("line", cameras=("agentview_rgb",), proprio_dim=1, action_dim=7)
    check_inputs(Chunky(2), spec)
    with pytest.raises(ValueError, match=r"reads camera\(s\) \['eye_in_hand_rgb'\], env line provides \['agentview_rgb'\]"):
        check_inputs(Chunky(2, cameras=("agentview_rgb", "eye_in_hand_rgb")), spec)
    p = Chunky(2)
    p.inputs = PolicyInputs(cameras=("agentview_rgb",), proprio_dim=8)
    with pytest.raises(ValueError, match="proprio of 8 dims, env line provides 1"):
        check_inputs(p, spec)


@POLICIES.register("test_wrist_reader")
class _WristReader(Chunky):
    @classmethod
    def from_spec(cls, spec: str, seed: int = 0, **kwargs: object) -> _WristReader:
        return cls(1, cameras=("eye_in_hand_rgb",))


def test_evaluation_refuses_a_policy_the_env_cannot_feed_before_writing(tmp_path: Path):
    out = tmp_path / "eval"
    bench = Benchmark(title="LINE", suite="line", task_ids=[0], env_factory=LineEnv, protocol={},
                      env_spec=EnvSpec("line", cameras=("agentview_rgb",), proprio_dim=1, action_dim=7))
    with pytest.raises(ValueError, match="policy test_wrist_reader reads camera"):
        run_evaluation(LineEvalConfig(policy="test_wrist_reader", out=str(out), trials=1, seed_per_trial=False,
                                      max_steps=0), bench)
    assert not out.exists()


def test_temporal_ensemble_matches_hand_computed_weighted_average():
    from envs.rollout import TemporalEnsemble

    m = 0.5
    ens = TemporalEnsemble(decay=m)
    # chunks of 3 predicted at steps 0, 1, 2: value = 10 * (step predicted at) + offset within chunk
    chunks = [np.array([[10.0 * s + k] for k in range(3)]) for s in range(3)]
    out = []
    for c in chunks:
        ens.push(c)
        out.append(float(ens.pop()[0]))
    w = np.exp(-m * np.arange(3))
    # step 0: only chunk 0 -> 0; step 1: chunk0[1]=1 (oldest), chunk1[0]=10
    assert out[0] == 0.0
    assert out[1] == pytest.approx((w[0] * 1 + w[1] * 10) / w[:2].sum())
    assert out[2] == pytest.approx((w[0] * 2 + w[1] * 11 + w[2] * 20) / w.sum())
    ens.push(np.array([[30.0], [31.0], [32.0]]))  # step 3: chunk 0 ended, chunks 1, 2, 3 remain
    assert float(ens.pop()[0]) == pytest.approx((w[0] * 12 + w[1] * 21 + w[2] * 30) / w.sum())


def test_ensemble_policy_acts_every_step():
    env = LineEnv()
    stepper = EnvStepper(env)
    stepper.reset()
    p = Chunky(4)
    p.inputs = PolicyInputs(cameras=("agentview_rgb",), chunk=4, execution="ensemble")
    res = run_loop(stepper, p, "x", 5, to_action=lambda a: a)
    assert res.acts == 5 and stepper.rendered == 5
