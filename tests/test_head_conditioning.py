"""Policy heads that can succeed (issue 22): instruction conditioning, action chunks executed receding
or temporally ensembled, frame windows read on the steps between acts, bad input before training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from envs.policy_api import Policy, PolicyInputs
from envs.rollout import EnvStepper, run_loop
from tests.line_env import LineEnv


class WindowPolicy(Policy):
    """Receding chunks of 4 with frames at offsets -6, -4, -2, 0 before each act."""

    def __init__(self) -> None:
        self.inputs = PolicyInputs(cameras=("agentview_rgb",), chunk=4, frame_offsets=(-6, -4, -2, 0))

    def reset(self) -> None:
        self.observed: list[int] = []

    def observe(self, obs: dict, step: int) -> None:
        assert int(obs["agentview_rgb"][0, 0, 0]) == step  # LineEnv paints frame t with the value t
        self.observed.append(step)

    def act(self, obs: dict, instruction: str) -> np.ndarray:
        return np.tile([0.1, 0, 0, 0, 0, 0, -1.0], (4, 1))


def test_receding_chunk_renders_the_coming_windows_frames_only():
    env = LineEnv()
    stepper = EnvStepper(env)
    stepper.reset()
    pol = WindowPolicy()
    res = run_loop(stepper, pol, "go right", 16, seed=0)
    # acts at 0, 4, 8, 12; each reads t-6..t at stride 2: every even step, nothing else
    assert res.acts == 4 and pol.observed == [0, 2, 4, 6, 8, 10, 12, 14]
    assert [t for t, _ in env.drawn] == pol.observed and stepper.rendered == 8


def _two_task_demos(root: Path, T: int = 20, size: int = 16) -> Path:
    """Two LIBERO-like tasks with *identical* frames and proprio but opposite actions: only the
    instruction tells them apart."""
    from envs.demos import Demo, DemoWriter

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (T, size, size, 3), dtype=np.uint8)
    prop = {"ee_pos": rng.normal(size=(T, 3)).astype(np.float32), "ee_ori": np.zeros((T, 3), np.float32),
            "gripper_states": np.zeros((T, 2), np.float32)}
    for tid, sign, instr in ((0, 1.0, "open the middle drawer of the cabinet"), (7, -1.0, "turn on the stove")):
        w = DemoWriter(root / f"t{tid}_demo.hdf5", env_args={"suite": "libero_goal", "task_id": tid},
                       problem_info={"language_instruction": instr})
        acts = np.zeros((T, 7))
        acts[:, 0] = 0.5 * sign
        acts[:, 1] = np.linspace(-0.5, 0.5, T) * sign
        w.add(Demo(actions=acts, obs={"agentview_rgb": frames, "eye_in_hand_rgb": frames, **prop},
                   states=np.zeros((T, 2)), rewards=np.zeros(T), dones=np.zeros(T), instruction=instr))
        w.flush()
    return root


def _cfg(tmp_path: Path, **kw):
    from policies.train import TrainHeadConfig

    base = dict(env="libero", suite="libero_goal", task="0,7", encoder="flow_mean", demos=str(tmp_path / "demos"),
                max_demos=1, steps=300, batch_size=32, lr=3e-3, frames=3, stride=2, eval_every=0, eval_episodes=0,
                out=str(tmp_path / "run"), cache_root=str(tmp_path / "cache"), progress=False, chunk=4,
                instruction="minilm")
    base.update(kw)
    return TrainHeadConfig(**base)


def test_instruction_changes_the_action_for_the_same_image(tmp_path: Path):
    from policies.heads.policy import EncoderHeadPolicy
    from policies.train import train

    _two_task_demos(tmp_path / "demos")
    train(_cfg(tmp_path))
    pol = EncoderHeadPolicy.from_pretrained(tmp_path / "run" / "policy")
    assert pol.inputs.chunk == 4 and pol.head.cfg.text_dim == 384 and pol.inputs.execution == "receding"
    from envs.eval_libero import LiberoEvalConfig
    from envs.evaluator import policy_overrides
    from envs.policy_api import build_policy

    ens = build_policy(str(tmp_path / "run" / "policy"),
                       **policy_overrides(LiberoEvalConfig(policy="x", execution="ensemble")))
    assert ens.inputs.execution == "ensemble" and ens.inputs.chunk == 4  # same weights, ACT execution
    with pytest.raises(ValueError, match="execution must be receding or ensemble"):
        policy_overrides(LiberoEvalConfig(policy="x", execution="ensembled"))
    obs = {"agentview_rgb": np.zeros((16, 16, 3), np.uint8), "eye_in_hand_rgb": np.zeros((16, 16, 3), np.uint8),
           "proprio": np.zeros(8, np.float32)}
    acts = {}
    for instr in ("open the middle drawer of the cabinet", "turn on the stove"):
        pol.reset()
        acts[instr] = pol.act(obs, instr)
    a, b = acts.values()
    assert a.shape == (4, 7)
    # the demos' first action component is +0.5 for one task and -0.5 for the other
    assert a[:, 0].mean() > 0.25 and b[:, 0].mean() < -0.25
    with pytest.raises(ValueError, match="instruction is empty"):
        pol.reset()
        pol.act(obs, "  ")


def test_film_conditioning_starts_as_identity_and_is_used():
    from policies.heads.model import HeadConfig, HeadNetwork

    torch.manual_seed(0)
    net = HeadNetwork(HeadConfig(feature_dim=6, proprio_dim=2, text_dim=5, condition="film", chunk=3)).eval()
    f, p = torch.randn(1, 6), torch.randn(1, 2)
    t1, t2 = torch.randn(1, 5), torch.randn(1, 5)
    assert net(f, p, t1).shape == (1, 3, 7)
    assert torch.equal(net(f, p, t1), net(f, p, t2))  # FiLM initialised to the identity
    for film in net.mlp.film:
        torch.nn.init.normal_(film.weight)
    assert not torch.allclose(net(f, p, t1), net(f, p, t2))
    with pytest.raises(ValueError, match="5-d instruction embedding"):
        net(f, p, None)


def test_bad_input_is_named_before_training(tmp_path: Path):
    from policies.train import train

    _two_task_demos(tmp_path / "demos")
    with pytest.raises(ValueError, match=r"max_demos=3 .* task\(s\) 0 have 1, 7 have 1"):
        train(_cfg(tmp_path, max_demos=3))
    with pytest.raises(FileNotFoundError, match=r"task\(s\) \[5\]"):
        train(_cfg(tmp_path, task="0,5"))
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


def test_encoder_with_another_feature_size_is_refused(tmp_path: Path):
    import json

    from policies.heads.policy import EncoderHeadPolicy
    from policies.train import train

    _two_task_demos(tmp_path / "demos")
    train(_cfg(tmp_path, steps=5, instruction="", chunk=1))
    meta_f = tmp_path / "run" / "policy" / "policy.json"
    meta = json.loads(meta_f.read_text())
    dim = meta["head"]["feature_dim"]
    meta["head"]["feature_dim"] = dim + 2
    meta_f.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=f"2 x {dim // 2} = {dim} feature dims, the head .* was trained on {dim + 2}"):
        EncoderHeadPolicy.from_pretrained(tmp_path / "run" / "policy")
    meta["head"]["feature_dim"], meta["head"]["hidden"] = dim, [64, 64]  # the weights no longer fit
    meta_f.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="weights do not fit the head") as e:
        EncoderHeadPolicy.from_pretrained(tmp_path / "run" / "policy")
    assert "\n" not in str(e.value)


def test_receding_head_in_the_loop_sees_the_training_features(tmp_path: Path):
    """Through the loop, a chunk-4 head acting every 4 steps computes at each act exactly the window
    features training computed for that step (episode_features over every frame)."""
    from encoders.streaming import episode_features
    from policies.heads.policy import EncoderHeadPolicy
    from policies.train import train

    _two_task_demos(tmp_path / "demos")
    train(_cfg(tmp_path, steps=5, instruction="", chunk=4))
    pol = EncoderHeadPolicy.from_pretrained(tmp_path / "run" / "policy")
    env = LineEnv()
    env.render_frame = lambda key="agentview_rgb", size=None: _painted(env, key)  # type: ignore[method-assign]
    stepper = EnvStepper(env)
    stepper.reset()
    seen: dict[int, np.ndarray] = {}
    act = pol.act

    def spy(obs: dict, instruction: str) -> np.ndarray:
        out = act(obs, instruction)
        seen[pol._t] = pol._feats[pol._t].copy()
        return out

    pol.act = spy  # type: ignore[method-assign]
    pol.inputs = PolicyInputs(**{**pol.inputs.__dict__, "proprio_dim": 1})
    env_obs_proprio = np.zeros(8, np.float32)
    stepper.observe_orig = stepper.observe  # type: ignore[attr-defined]
    stepper.observe = lambda cams: {**stepper.observe_orig(cams), "proprio": env_obs_proprio}  # type: ignore
    run_loop(stepper, pol, "go right", 16, seed=0)
    assert sorted(seen) == [0, 4, 8, 12]
    video = [np.stack([_paint(t, k) for t in range(16)]) for k in ("agentview_rgb", "eye_in_hand_rgb")]
    ref = episode_features(pol.encoder, video, pol.window.frames, pol.window.stride)
    for t, f in seen.items():
        assert np.allclose(f, ref[t], atol=1e-5), t


def _paint(t: int, key: str) -> np.ndarray:
    rng = np.random.default_rng([t, len(key)])
    return rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)


def _painted(env: LineEnv, key: str) -> np.ndarray:
    env.drawn.append((env.t, key))
    return _paint(env.t, key)


def test_augmented_features_are_cached_by_encoder_and_seed(tmp_path: Path):
    from policies.heads.data import WindowConfig, build_dataset, random_shift, read_demos
    from policies.train import build_frozen_encoder

    root = _two_task_demos(tmp_path / "demos")
    eps = read_demos(root, "libero", ("agentview_rgb", "eye_in_hand_rgb"), [0, 7], suite="libero_goal")
    enc = build_frozen_encoder("flow_mean")
    win = WindowConfig(frames=3, stride=2)
    a = build_dataset(enc, eps, win, augment=2, shift_pad=3, augment_seed=5, cache_root=tmp_path / "c")
    assert not a.from_cache and len(a.augmented) == 2
    assert not np.allclose(a.augmented[0], a.features) and not np.allclose(a.augmented[0], a.augmented[1])
    b = build_dataset(enc, eps, win, augment=2, shift_pad=3, augment_seed=5, cache_root=tmp_path / "c")
    assert b.from_cache and all(np.array_equal(x, y) for x, y in zip(a.augmented, b.augmented))
    c = build_dataset(enc, eps, win, augment=1, shift_pad=3, augment_seed=6, cache_root=tmp_path / "c")
    assert c.from_cache and np.array_equal(c.augmented[0], b.augmented[1])  # seed 6 = b's second copy
    d = build_dataset(enc, eps, win, augment=1, shift_pad=3, augment_seed=9, cache_root=tmp_path / "c")
    assert not d.from_cache and not np.allclose(d.augmented[0], b.augmented[1])
    files = sorted(p.name for p in (a.cache_dir).glob("*.features.npy"))
    assert files == ["all.features.npy", *(f"shift3-seed{k}.features.npy" for k in (5, 6, 9))]
    v = np.arange(2 * 6 * 6 * 3, dtype=np.uint8).reshape(2, 6, 6, 3)
    s = random_shift(v, 2, np.random.default_rng(0))
    assert s.shape == v.shape and not np.array_equal(s, v)
    assert np.array_equal(s[0] - v[0] == 0, s[1] - v[1] == 0)  # one offset for every frame


def test_blind_head_is_the_no_vision_control(tmp_path: Path):
    """encoder=none: proprio + instruction only; declares no cameras, so the loop renders nothing."""
    from policies.heads.policy import EncoderHeadPolicy
    from policies.train import train

    _two_task_demos(tmp_path / "demos")
    train(_cfg(tmp_path, encoder="none"))
    pol = EncoderHeadPolicy.from_pretrained(tmp_path / "run" / "policy")
    assert pol.inputs.cameras == () and pol.encoder is None and pol.head.cfg.feature_dim == 0
    env = LineEnv()
    stepper = EnvStepper(env)
    stepper.reset()
    stepper.observe_orig = stepper.observe  # type: ignore[attr-defined]
    stepper.observe = lambda cams: {**stepper.observe_orig(cams), "proprio": np.zeros(8, np.float32)}  # type: ignore
    res = run_loop(stepper, pol, "open the middle drawer of the cabinet", 12, seed=0)
    assert res.acts == 3 and env.drawn == [] and stepper.rendered == 0


def test_standardize_norm_has_no_batch_gap_and_keeps_constant_inputs_at_zero():
    from policies.heads.model import HeadConfig, HeadNetwork

    torch.manual_seed(0)
    net = HeadNetwork(HeadConfig(feature_dim=3, proprio_dim=2, norm="standard", text_dim=4))
    f, p = torch.randn(64, 3) * 5 + 2, torch.randn(64, 2)
    t = torch.ones(64, 4)  # one task: a constant instruction embedding
    net.fit_input_norm([(f, p, t)])
    x = torch.cat([f, p, t], 1)
    z = net.norm(x)
    assert torch.allclose(z[:, :5].mean(0), torch.zeros(5), atol=1e-5) and torch.all(z[:, 5:] == 0)
    net.train()
    a_train = net(f[:4], p[:4], t[:4])
    net.eval()
    assert torch.allclose(a_train, net(f[:4], p[:4], t[:4]))  # same function in training and acting
    assert {"norm.mean", "norm.std"} <= set(net.state_dict())


def test_head_without_proprio_ignores_the_robot_state():
    from policies.heads.model import HeadConfig, HeadNetwork

    torch.manual_seed(0)
    for use in (True, False):
        net = HeadNetwork(HeadConfig(feature_dim=6, proprio_dim=4, chunk=2, norm="standard", proprio=use)).eval()
        f = torch.randn(3, 6)
        a, b = net(f, torch.zeros(3, 4)), net(f, torch.randn(3, 4))
        assert a.shape == (3, 2, 7)
        assert torch.equal(a, b) != use  # the state moves the action only when it is an input
    with pytest.raises(ValueError, match="encoder=none"):
        HeadNetwork(HeadConfig(feature_dim=0, proprio_dim=4, proprio=False))
