"""LIBERO protocol, env wrapper and evaluator: the evaluator core and the policy/env contracts on a
fake env (quick), and the real simulator at tiny horizons (`slow`)."""

from __future__ import annotations

import functools
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from envs import protocol
from envs.eval_libero import LiberoEvalConfig, episode_path, evaluate, parse_tasks
from envs.evaluator import Benchmark, run_episode, run_evaluation
from envs.policy_api import POLICIES, Policy, PolicyInputs
from tests.line_env import LineEvalConfig

# -- test policies, registered once at import ----------------------------------------------------

CALLS: list[str] = []  # hooks the evaluator called on _Hooks, in order (in-process runs)


@POLICIES.register("test_crashy")
class _Crashy(Policy):
    @classmethod
    def from_spec(cls, spec: str, seed: int = 0, **kwargs: object) -> _Crashy:
        return cls()

    def reset(self) -> None:
        pass

    def act(self, obs: dict, instruction: str) -> np.ndarray:
        raise RuntimeError("boom")


@POLICIES.register("test_hooks")
class _Hooks(Policy):
    """Drives the fake env forward; records every hook and checks the VLA image preprocessing."""

    inputs = PolicyInputs(cameras=("agentview_rgb",), image_size=8)

    @classmethod
    def from_spec(cls, spec: str, seed: int = 0, **kwargs: object) -> _Hooks:
        return cls()

    def seed_episode(self, seed: int) -> None:
        CALLS.append("seed_episode")

    def reset(self) -> None:
        CALLS.append("reset")
        self.acts = 0

    def bind_env(self, env: object) -> None:
        CALLS.append("bind_env")

    def act(self, obs: dict, instruction: str) -> np.ndarray:
        CALLS.append("act")
        assert obs["agentview_rgb"].shape == (8, 8, 3) and instruction.startswith("reach")
        self.acts += 1
        return np.array([1.0, 0, 0, 0, 0, 0, -1.0])

    def episode_info(self) -> dict:
        CALLS.append("episode_info")
        return {"acts": self.acts}


class FakeEnv:
    """A 1-D world implementing envs.env_api.Env: each step moves x by action[0] / 4; success at x >= 1."""

    suite = "fake"
    max_steps = 6

    def __init__(self, task_id: int, render: bool = True) -> None:
        self.task_id = task_id
        self.instruction = f"reach {task_id}"
        self.render_enabled = render
        self.x = 0.0

    @property
    def task_name(self) -> str:
        return f"fake_task_{self.task_id}"

    def reset(self, trial: int = 0, seed: int | None = 0) -> dict:
        self.x = 0.0
        return self._obs()

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, dict]:
        self.x += float(action[0]) / 4
        ok = self.x >= 1.0
        return self._obs(), float(ok), ok, {"success": ok}

    def render_frame(self, key: str = "agentview_rgb", size: int | None = None) -> np.ndarray:
        return np.full((16, 16, 3), int(40 * self.x) % 256, np.uint8)

    def close(self) -> None:
        pass

    def _obs(self) -> dict:
        obs = {"proprio": np.array([self.x], np.float32)}
        if self.render_enabled:
            obs["agentview_rgb"] = self.render_frame()
        return obs


# the evaluator settings of these tests: the shared test config with this file's defaults
FakeConfig = functools.partial(LineEvalConfig, policy="test_hooks", out="", trials=1, seed_per_trial=False,
                               max_steps=0, video=True)


def fake_benchmark(task_ids: list[int]) -> Benchmark:
    return Benchmark(title="FAKE", suite="fake", task_ids=task_ids, env_factory=FakeEnv,
                     protocol={"max_steps": FakeEnv.max_steps}, header="a 1-D fake world", record_extra={"k": 1})


# -- quick: protocol, contracts, evaluator core ----------------------------------------------------


def test_protocol_constants_table():
    assert protocol.MAX_STEPS == {
        "libero_spatial": 220, "libero_object": 280, "libero_goal": 300, "libero_10": 520, "libero_90": 400,
    }
    assert protocol.NUM_WAIT_STEPS == 10
    assert protocol.WAIT_ACTION == (0, 0, 0, 0, 0, 0, -1)
    assert protocol.RENDER_RESOLUTION == 256 and protocol.VLA_RESOLUTION == 224
    assert protocol.ENV_SEED == 0 and protocol.DEFAULT_TRIALS == 20 and protocol.FULL_PROTOCOL_TRIALS == 50
    for alias, name in [("libero10", "libero_10"), ("LIBERO-10", "libero_10"), ("goal", "libero_goal"),
                        ("libero_spatial", "libero_spatial"), ("libero90", "libero_90")]:
        assert protocol.canonical_suite(alias) == name
    with pytest.raises(ValueError, match="unknown LIBERO suite"):
        protocol.canonical_suite("libero_11")
    assert "| libero_10 | 520 |" in protocol.protocol_table()


@pytest.mark.slow
def test_roboact_tasks_match_the_benchmark():
    from envs.libero_env import get_task

    for tid, (suite, idx, instruction) in protocol.ROBOACT_TASKS.items():
        assert get_task(suite, idx).instruction == instruction, tid


def test_gripper_conversion():
    # OpenVLA convention: 1 = open -> env -1 (open); 0 = close -> env +1
    assert protocol.policy_gripper_to_env(1.0, "openvla") == -1.0
    assert protocol.policy_gripper_to_env(0.0, "openvla") == 1.0
    assert protocol.policy_gripper_to_env(0.8, "openvla") == -1.0
    assert protocol.policy_gripper_to_env(0.2, "openvla") == 1.0
    np.testing.assert_array_equal(protocol.policy_gripper_to_env(np.array([0.9, 0.1]), "openvla"), [-1.0, 1.0])
    assert protocol.policy_gripper_to_env(0.3, "env") == 1.0
    assert protocol.policy_gripper_to_env(-0.3, "env") == -1.0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        protocol.policy_gripper_to_env(-0.5, "openvla")
    with pytest.raises(ValueError, match="convention"):
        protocol.policy_gripper_to_env(0.5, "bogus")
    a = protocol.to_env_action(np.array([2.0, -3.0, 0.1, 0, 0, 0, 1.0]), "openvla")
    np.testing.assert_allclose(a, [1.0, -1.0, 0.1, 0, 0, 0, -1.0])
    with pytest.raises(ValueError, match="7 dims"):
        protocol.to_env_action(np.zeros(6))
    with pytest.raises(ValueError, match="non-finite"):
        protocol.to_env_action(np.array([np.nan, 0, 0, 0, 0, 0, 0]))


def test_image_transforms_on_synthetic_image():
    img = np.zeros((256, 256, 3), np.uint8)
    img[:4, :4] = (255, 0, 0)  # top-left red, inside the 5-pixel margin a 90%-area crop removes
    img[120:136, 120:136] = (0, 255, 0)  # centre green
    flipped = protocol.flip_image(img)
    assert (flipped[-4:, -4:] == (255, 0, 0)).all() and (flipped[:4, :4] == 0).all()
    np.testing.assert_array_equal(protocol.flip_image(flipped), img)
    small = protocol.resize_image(img, 224)
    assert small.shape == (224, 224, 3) and small.dtype == np.uint8
    crop = protocol.center_crop(small, 0.9)
    assert crop.shape == (224, 224, 3)
    # the corner is cut away by the 90%-area crop, the centre stays in the centre and grows
    assert small[:3, :3, 0].min() > 150 and crop[:3, :3, 0].max() < 50
    green = np.argwhere(crop[..., 1] > 200)
    assert abs(green.mean(0) - 111.5).max() < 3 and len(green) > (16 * 224 / 256) ** 2
    np.testing.assert_array_equal(protocol.center_crop(img, 1.0), img)
    with pytest.raises(ValueError):
        protocol.center_crop(img, 0.0)
    assert protocol.vla_image(img, crop=False).shape == (224, 224, 3)


def test_wilson_interval_and_task_parsing():
    lo, hi = protocol.wilson_interval(10, 20)
    assert lo < 0.5 < hi and abs((lo + hi) / 2 - 0.5) < 1e-9 and 0.28 < lo < 0.3
    assert protocol.wilson_interval(0, 0) == (0.0, 1.0)
    assert protocol.wilson_interval(20, 20)[1] == 1.0
    # Newcombe's hybrid score interval of a difference (Newcombe 1998, Table II, example (a):
    # 56/70 - 48/80 = 0.2000, method 10: 0.0524 to 0.3339)
    lo, hi = protocol.newcombe_difference(56, 70, 48, 80)
    assert abs(lo - 0.0524) < 5e-4 and abs(hi - 0.3339) < 5e-4
    assert protocol.newcombe_difference(5, 10, 5, 10)[0] < 0 < protocol.newcombe_difference(5, 10, 5, 10)[1]
    assert protocol.newcombe_difference(0, 0, 3, 10) == (-1.0, 1.0)
    assert parse_tasks("all", 3) == [0, 1, 2]
    assert parse_tasks("2,0,2", 10) == [0, 2]
    assert parse_tasks("1-3", 10) == [1, 2, 3]
    with pytest.raises(ValueError, match="out of range"):
        parse_tasks("10", 10)
    with pytest.raises(ValueError, match="not a task id"):
        parse_tasks("a", 10)


@pytest.mark.slow
def test_env_observations_are_flipped_and_shaped():
    from envs.libero_env import LiberoEnv

    with LiberoEnv("libero_goal", 7, resolution=64) as env:
        obs = env.reset(trial=0, wait_steps=2)
        assert obs["agentview_rgb"].shape == (64, 64, 3) and obs["agentview_rgb"].dtype == np.uint8
        assert obs["eye_in_hand_rgb"].shape == (64, 64, 3)
        assert obs["proprio"].shape == (8,) and obs["proprio"].dtype == np.float32
        # the observation is the flipped raw camera frame (same as an on-demand render); the two
        # renders may differ in a few pixels, a wrong orientation differs everywhere
        raw = env.raw.sim.render(camera_name="agentview", width=64, height=64)
        ob = obs["agentview_rgb"].astype(int)
        assert np.abs(protocol.flip_image(raw).astype(int) - ob).mean() < 1.5
        assert np.abs(raw.astype(int) - ob).mean() > 10
        assert np.abs(env.render_frame().astype(int) - ob).mean() < 1.5
        env.set_render(False)
        obs2, _, _, info = env.step(np.array(protocol.WAIT_ACTION))
        assert "agentview_rgb" not in obs2 and info["success"] is False
        with pytest.raises(ValueError, match="shape"):
            env.step(np.zeros(6))
        with pytest.raises(ValueError, match="init state"):
            env.reset(trial=10_000)


@pytest.mark.slow
def test_an_episode_does_not_depend_on_the_one_before_it():
    """Resume and parallel workers rely on it: trial 1 after a gripping trial 0 in the same env is
    trial 1 in a fresh env (robosuite without a hard reset kept the gripper's command smoothing)."""
    from envs.libero_env import LiberoEnv

    def trial1(before: bool) -> np.ndarray:
        with LiberoEnv("libero_goal", 0, resolution=32) as env:
            if before:
                env.reset(trial=0, wait_steps=0)
                for _ in range(4):
                    env.step(np.array([0.2, 0, 0, 0, 0, 0, 1.0]))
            env.reset(trial=1, wait_steps=2)
            env.step(np.zeros(7))
            return env.get_state()

    assert np.array_equal(trial1(False), trial1(True))


@pytest.mark.slow
def test_evaluator_short_horizon_resume_and_errors(tmp_path: Path):
    out = tmp_path / "ev"
    cfg = LiberoEvalConfig(suite="libero10", policy="random", trials=1, tasks="0", max_steps=4, resolution=64,
                     out=str(out), progress=False)
    cfg.validate()
    res = evaluate(cfg)
    assert res["suite"] == "libero_10" and res["overall"]["n"] == 1 and res["overall"]["errors"] == 0
    ep = episode_path(out, "libero_10", 0, 0)
    rec = json.loads(ep.read_text())
    assert rec["status"] == "ok" and rec["steps"] == 4 and rec["success"] is False
    assert (out / rec["video"]).stat().st_size > 0
    md = (out / "results.md").read_text()
    assert "| 0 | LIVING_ROOM_SCENE2_put_both_the_alphabet_soup" in md and (out / "config.yaml").is_file()

    # resume: the finished episode is skipped (file untouched), only the new trial runs
    mtime = ep.stat().st_mtime_ns
    cfg2 = LiberoEvalConfig(**{**cfg.__dict__, "trials": 2})
    res2 = evaluate(cfg2)
    assert ep.stat().st_mtime_ns == mtime
    assert res2["overall"]["n"] == 2 and episode_path(out, "libero_10", 0, 1).is_file()

    # a crashing policy is recorded with its traceback and counted as a failure
    out3 = tmp_path / "crash"
    cfg3 = LiberoEvalConfig(**{**cfg.__dict__, "policy": "test_crashy", "out": str(out3), "video": False})
    res3 = evaluate(cfg3)
    rec3 = json.loads(episode_path(out3, "libero_10", 0, 0).read_text())
    assert rec3["status"] == "error" and "boom" in rec3["traceback"] and rec3["success"] is False
    assert res3["overall"]["errors"] == 1 and res3["overall"]["success_rate"] == 0.0


def test_bad_config_values_are_named():
    from configs.loader import ConfigError, from_dict

    with pytest.raises(ConfigError, match="trials"):
        from_dict(LiberoEvalConfig, {"trials": 0})
    with pytest.raises(ConfigError, match="unknown LIBERO suite"):
        from_dict(LiberoEvalConfig, {"suite": "nope"})


def test_eval_config_files_and_policy_registry(tmp_path: Path):
    from configs.loader import load_config
    from envs.policy_api import build_policy
    from policies.random_actions import RandomPolicy

    files = sorted((Path(__file__).resolve().parents[1] / "configs" / "eval").glob("libero*.yaml"))
    assert files
    for f in files:
        load_config(LiberoEvalConfig, f)
    p = build_policy("random", seed=3)
    assert isinstance(p, RandomPolicy) and p.needs_images is False
    assert build_policy("random:images").needs_images is True
    a = p.act({}, "x")
    assert a.shape == (7,) and a[6] in (-1.0, 1.0) and np.all(np.abs(a) <= 1)
    with pytest.raises(ValueError, match="unknown policy"):
        build_policy("no_such_policy")
    with pytest.raises(ValueError, match="not a policy checkpoint"):
        build_policy(str(tmp_path))  # a directory without policy.json


def test_policy_contract_is_abstract_and_scripted_is_registered():
    from envs.policy_api import build_policy
    from policies.scripted.programs import ScriptedPolicy

    class NoAct(Policy):
        def reset(self) -> None:
            pass

    with pytest.raises(TypeError, match="act"):
        NoAct()  # a policy missing a hook the evaluator calls cannot even be built
    p = build_policy("scripted:0.05", seed=2)
    assert isinstance(p, ScriptedPolicy) and p.noise == 0.05 and p.seed == 2 and p.needs_images is False
    assert POLICIES.name_of(ScriptedPolicy) == "scripted" and build_policy("scripted").noise == 0.0
    with pytest.raises(ValueError, match="action noise"):
        build_policy("scripted:loud")
    with pytest.raises(RuntimeError, match="bind_env"):
        p.act({}, "x")
    assert p.episode_info() == {"skills": []}
    with pytest.raises(ValueError, match="already registered"):
        POLICIES.register("scripted")(NoAct)  # one name, one class


def test_checkpoint_naming_anything_but_a_registered_policy_is_refused(tmp_path: Path, monkeypatch):
    """issue 10 section 2: policy.json names a registered type; module paths are never imported."""
    from envs.policy_api import build_policy, load_policy

    # a module that would announce its import, importable from the checkpoint's folder
    (tmp_path / "evil_ckpt_mod.py").write_text("import os\nos.environ['ATOMVLA_PWNED'] = '1'\nclass Evil:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for i, name in enumerate(["os:system", "evil_ckpt_mod:Evil", "evil_ckpt_mod", "policies.base:RandomPolicy",
                              "no_such_policy"]):
        ck = tmp_path / f"ckpt{i}"
        ck.mkdir()
        (ck / "policy.json").write_text(json.dumps({"policy_type": name}))
        with pytest.raises(ValueError, match=rf"policy.json: policy_type '{name}' is not a registered policy.*refusing"):
            build_policy(str(ck))
    assert "evil_ckpt_mod" not in sys.modules and "ATOMVLA_PWNED" not in os.environ
    legacy = tmp_path / "legacy"  # the old format named a module:Class to import
    legacy.mkdir()
    (legacy / "policy.json").write_text(json.dumps({"policy_class": "evil_ckpt_mod:Evil"}))
    with pytest.raises(ValueError, match="policy.json: damaged policy checkpoint.*missing field 'policy_type'"):
        load_policy(legacy)
    (legacy / "policy.json").write_text("{not json")
    with pytest.raises(ValueError, match="damaged"):
        load_policy(legacy)
    assert "evil_ckpt_mod" not in sys.modules


def test_env_registry_and_protocol():
    from configs.registry import UnknownNameError
    from envs.env_api import ENVS, Env, make_env
    from envs.libero_env import LiberoEnv, make_libero_env

    with pytest.raises(UnknownNameError, match=r"unknown env 'kitchenn'; registered: .*libero"):
        make_env("kitchenn", "x", 0)
    assert ENVS.get("libero") is make_libero_env and "libero" in ENVS.names()
    assert isinstance(FakeEnv(0), Env)
    for member in ("reset", "step", "render_frame", "close", "task_name"):
        assert hasattr(LiberoEnv, member), member


def test_evaluator_core_hooks_records_resume_and_crashes(tmp_path: Path):
    """The shared core on a fake env: hook order, episode_info merged, videos, resume, crash records."""
    CALLS.clear()
    out = tmp_path / "ev"
    cfg = FakeConfig(out=str(out), trials=2)
    res = run_evaluation(cfg, fake_benchmark([0, 3]))
    one = ["seed_episode", "reset", "bind_env", "act", "act", "act", "act", "episode_info"]
    assert CALLS == one * 4  # 2 tasks x 2 trials, every hook called directly, in order
    rec = json.loads(episode_path(out, "fake", 3, 1).read_text())
    assert rec["status"] == "ok" and rec["success"] is True and rec["steps"] == 4 and rec["acts"] == 4
    assert rec["task_name"] == "fake_task_3" and rec["k"] == 1 and rec["instruction"] == "reach 3"
    assert (out / rec["video"]).stat().st_size > 0 and (out / "config.yaml").is_file()
    assert res["overall"]["n"] == 4 and res["overall"]["success_rate"] == 1.0 and res["protocol"] == {"max_steps": 6}
    md = (out / "results.md").read_text()
    assert md.startswith("# FAKE fake - policy `test_hooks`\n\na 1-D fake world\n") and "| 3 | fake_task_3 | 100.0%" in md

    # resume: finished episodes are kept, only the new trial of each task runs
    CALLS.clear()
    mtime = episode_path(out, "fake", 0, 0).stat().st_mtime_ns
    res = run_evaluation(replace(cfg, trials=3), fake_benchmark([0, 3]))
    assert CALLS.count("seed_episode") == 2 and res["overall"]["n"] == 6
    assert episode_path(out, "fake", 0, 0).stat().st_mtime_ns == mtime

    # a crashing (blind) policy: recorded with its traceback, counted as a failure; max_steps respected
    out2 = tmp_path / "crash"
    res = run_evaluation(FakeConfig(policy="test_crashy", out=str(out2), max_steps=2), fake_benchmark([1]))
    rec = json.loads(episode_path(out2, "fake", 1, 0).read_text())
    assert rec["status"] == "error" and "boom" in rec["traceback"] and rec["success"] is False
    assert res["overall"]["errors"] == 1 and res["overall"]["success_rate"] == 0.0


def test_run_episode_blind_policy_and_step_budget(tmp_path: Path):
    from policies.random_actions import RandomPolicy

    env = FakeEnv(0, render=False)  # what the evaluator always builds: the rollout loop renders
    rec = run_episode(env, RandomPolicy(seed=0), 0, FakeConfig(max_steps=3, video_stride=2), tmp_path / "v.mp4")
    assert rec["steps"] <= 3 and (tmp_path / "v.mp4").stat().st_size > 0
    assert set(rec) == {"success", "steps", "wall_s", "acts", "rendered_frames", "actions_sha1"}
    assert rec["rendered_frames"] == 0 and len(rec["actions_sha1"]) == 16
    again = run_episode(FakeEnv(0, render=False), RandomPolicy(seed=0), 0, FakeConfig(max_steps=3, video_stride=2))
    assert again["actions_sha1"] == rec["actions_sha1"]  # the same episode acts alike: the digest says so


@pytest.mark.slow
def test_evaluator_worker_pool(tmp_path: Path):
    """Two spawned workers: picklable benchmark, thread sizing per worker, one record per episode."""
    out = tmp_path / "pool"
    res = run_evaluation(FakeConfig(policy="random", workers=2, trials=2, out=str(out), video=False, threads=0),
                         fake_benchmark([0, 1]))
    recs = [json.loads(p.read_text()) for p in sorted(out.glob("episodes/fake/*/*.json"))]
    assert res["overall"]["n"] == 4 and res["overall"]["errors"] == 0 and len(recs) == 4
    assert all(r["status"] == "ok" and r["pid"] != os.getpid() for r in recs)


def test_worker_threads_divide_the_free_cores(monkeypatch):
    import torch

    from envs import evaluator

    monkeypatch.delenv("ATOMVLA_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("configs.threads.free_cores", lambda: 4)
    before = torch.get_num_threads()
    try:
        evaluator._init_worker(FakeConfig(threads=0), fake_benchmark([0]), None, workers=2)
        assert torch.get_num_threads() == 2 and os.environ["OMP_NUM_THREADS"] == "2"
        evaluator._init_worker(FakeConfig(threads=3), fake_benchmark([0]), None, workers=2)
        assert torch.get_num_threads() == 3  # an explicit threads= wins
    finally:
        evaluator._W.clear()
        torch.set_num_threads(before)
