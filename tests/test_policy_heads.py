"""Policy heads on frozen encoders: feature cache reuse, BC loss, save/reload, bad input (no simulator)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

ENC = "random"


def _write_demos(root: Path, n_demos: int = 3, T: int = 12, size: int = 16, bad: str = "") -> Path:
    """Kitchen-like demo file: actions are a fixed linear map of proprio (learnable by the head)."""
    from envs.demos import Demo, DemoWriter

    rng = np.random.default_rng(0)
    W = rng.normal(size=(12, 7)).astype(np.float32) * 0.2
    path = root / "kitchen" / "micro_demo.hdf5"
    w = DemoWriter(path, env_args={"suite": "kitchen", "task_id": 3, "task": "micro"},
                   problem_info={"language_instruction": "open the microwave door"})
    for _ in range(n_demos):
        q = rng.normal(size=(T, 9)).astype(np.float32)
        ee = rng.normal(size=(T, 3)).astype(np.float32)
        proprio = np.concatenate([q, ee], 1)
        acts = np.tanh(proprio @ W).astype(np.float64)
        if bad == "nan":
            acts[2, 1] = np.nan
        obs = {"agentview_rgb": rng.integers(0, 255, (T, size, size, 3), dtype=np.uint8),
               "eye_in_hand_rgb": rng.integers(0, 255, (T, size, size, 3), dtype=np.uint8),
               "joint_states": q[:, :7], "gripper_states": q[:, 7:9], "ee_pos": ee}
        if bad == "missing":
            del obs["ee_pos"]
        if bad == "noview":
            del obs["eye_in_hand_rgb"]
        w.add(Demo(actions=acts, obs=obs, states=np.zeros((T, 2)), rewards=np.zeros(T), dones=np.zeros(T),
                   instruction="open the microwave door", skills=["reach"] * T))
    w.flush()
    return root


VIEWS = ("agentview_rgb", "eye_in_hand_rgb")


def _data(tmp_path, encoder=None, demos_root=None, history: int = 1):
    from policies.heads.data import WindowConfig, build_dataset, read_demos
    from policies.train import build_frozen_encoder

    root = demos_root or _write_demos(tmp_path / "demos")
    enc = encoder or build_frozen_encoder(ENC)
    window = WindowConfig(frames=3, stride=2)
    episodes = read_demos(root, "kitchen", window.views, [3])
    data = build_dataset(enc, episodes, window, history=history, cache_root=tmp_path / "cache")
    return enc, window, episodes, data


def test_head_windows_are_dataset_offsets_repeating_the_first_step():
    from envs.episodes import window_steps
    from policies.heads.data import WindowConfig, head_windows

    w = WindowConfig(frames=3, stride=2)
    assert w.offsets().tolist() == [-4, -2, 0] and w.span == 5
    wins = {k: list(v) for k, v in head_windows(w, history=2).items()}
    assert wins == {"agentview_rgb": [-4, -2, 0], "eye_in_hand_rgb": [-4, -2, 0], "proprio": [-1, 0], "action": [0]}
    assert window_steps(0, w.offsets()).tolist() == [0, 0, 0]
    assert window_steps(3, w.offsets()).tolist() == [0, 1, 3]
    assert window_steps(10, WindowConfig(frames=4, stride=1).offsets()).tolist() == [7, 8, 9, 10]


def test_feature_cache_reuse(tmp_path):
    from policies.heads.data import build_dataset

    enc, window, episodes, first = _data(tmp_path)
    assert not first.from_cache and first.features.shape == (36, 2 * enc.dim)
    assert first.proprio.shape == (36, 12) and first.actions.shape == (36, 7)
    np.testing.assert_array_equal(first.actions, np.concatenate([e.data["action"] for e in episodes]))

    def boom(video):
        raise AssertionError("the encoder ran although the features were cached")

    enc.encode = boom
    again = build_dataset(enc, episodes, window, cache_root=tmp_path / "cache")
    assert again.from_cache and again.cache_dir == first.cache_dir
    np.testing.assert_array_equal(again.features, first.features)
    assert str(again.cache_dir).startswith(str(tmp_path / "cache" / "features" / "policy_head"))


@pytest.mark.parametrize("name", ["flow_mean", "backbone_mean", "backbone_spatial", "random"])
def test_training_features_are_the_rollout_stream_and_the_dataset_windows(tmp_path, name):
    """Training features = `EncoderStream` pushes over the same episode (the rollout path) =
    `encode` of the EpisodeDataset's window of every view, at every step (flow_mean, backbone_mean:
    streaming hooks; random: the per-window fallback)."""
    from encoders import build_encoder
    from encoders.streaming import EncoderStream

    kw = {"flow_mean": {"size": 16, "grid": 2}, "backbone_mean": {"backbone": "pixels", "image_size": 16},
          "backbone_spatial": {"backbone": "pixels", "image_size": 16}, "random": {"mode": "projection", "dim": 16}}[name]
    enc = build_encoder(name, **kw).freeze()
    _, window, episodes, data = _data(tmp_path, encoder=enc)
    ds = data.episodes
    for ep in (0, len(episodes) - 1):  # the first and the last episode: rows follow the dataset's index
        rows = np.flatnonzero(data.demo == ep)
        stream = EncoderStream(enc, window.frames, window.stride, views=len(VIEWS))
        pushed = np.stack([stream.push([episodes[ep].data[v][t] for v in VIEWS]).reshape(-1)
                           for t in range(len(episodes[ep]))])
        with torch.no_grad():
            encoded = np.stack([np.concatenate([
                enc.encode(torch.from_numpy(ds.window(ep, t, v)[0])[None].permute(0, 1, 4, 2, 3).contiguous())
                .float().numpy()[0] for v in VIEWS]) for t in range(len(episodes[ep]))])
        feats = np.asarray(data.features[rows])
        assert feats.shape == pushed.shape == encoded.shape == (12, 2 * enc.dim)
        assert np.abs(feats - pushed).max() <= 1e-5, (name, ep)
        assert np.abs(feats - encoded).max() <= 1e-5, (name, ep)
        # the features move from step to step, so equality above compares windows, not constants
        assert np.abs(feats[1:] - feats[:-1]).max(axis=1).min() > 1e-4


def test_bc_loss_falls_and_saved_head_reloads_and_acts_identically(tmp_path):
    from configs.training import LoopConfig, fit
    from envs.policy_api import build_policy
    from policies.train import HeadMethod, TrainHeadConfig

    torch.manual_seed(0)
    enc, window, episodes, data = _data(tmp_path)
    cfg = TrainHeadConfig(env="kitchen", task="micro", encoder=ENC, steps=150, frames=3, stride=2, seed=0)
    method = HeadMethod(cfg, data, enc, window, frame_size=16)
    out = tmp_path / "run"
    fit(method, out, LoopConfig(steps=150, lr=1e-3, ckpt_every=150, log_every=10), progress=False)
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert np.mean(losses[-3:]) < 0.5 * losses[0], losses

    policy = build_policy(str(out / "policy"))
    assert type(policy).__name__ == "EncoderHeadPolicy" and policy.head.cfg.kind == "mlp"
    assert policy.inputs.history == window.span == 5 and policy.inputs.cameras == VIEWS
    meta = json.loads((out / "policy" / "policy.json").read_text())
    assert meta["policy_type"] == "policy_head" and meta["window"]["frames"] == 3
    # the reloaded policy equals the trained head + encoder, step by step (frame windows included)
    from policies.heads.policy import EncoderHeadPolicy

    fresh = EncoderHeadPolicy(enc, method.model.eval(), window, env="kitchen", frame_size=16)
    d = episodes[0].data
    policy.reset()
    fresh.reset()
    for t in range(6):
        obs = {"agentview_rgb": d["agentview_rgb"][t], "eye_in_hand_rgb": d["eye_in_hand_rgb"][t],
               "proprio": d["proprio"][t]}
        a, b = policy.act(obs, ""), fresh.act(obs, "")
        assert a.shape == (7,)
        np.testing.assert_allclose(a, b, atol=1e-6)
    # online features equal the cached training features of the same step (same windows)
    policy.reset()
    for t in range(4):
        f = policy.features({"agentview_rgb": d["agentview_rgb"][t], "eye_in_hand_rgb": d["eye_in_hand_rgb"][t]})
    np.testing.assert_allclose(f, data.features[3], atol=1e-5)


def test_step_head_history_rows_are_the_dataset_window_and_the_policy_history(tmp_path):
    from policies.heads.model import HeadConfig, HeadNetwork
    from policies.heads.policy import EncoderHeadPolicy

    enc, window, episodes, data = _data(tmp_path, history=3)
    assert data.history == 3
    rows = np.array([0, 1, 13, 35])
    hist = data.history_rows(rows)
    assert hist.tolist() == [[0, 0, 0], [0, 0, 1], [12, 12, 13], [33, 34, 35]]
    head = HeadNetwork(HeadConfig(feature_dim=data.features.shape[1], proprio_dim=12, kind="step", history=3)).eval()
    out = head(torch.from_numpy(np.asarray(data.features)[hist]), torch.from_numpy(data.proprio[rows]))
    assert out.shape == (4, 7)
    # online, the step head sees the same history (clipped at the episode start) as in training
    policy = EncoderHeadPolicy(enc, head, window, env="kitchen", frame_size=16)
    d = episodes[1].data
    for t in range(4):
        obs = {"agentview_rgb": d["agentview_rgb"][t], "eye_in_hand_rgb": d["eye_in_hand_rgb"][t],
               "proprio": d["proprio"][t]}
        a = policy.act(obs, "")
        r = np.array([12 + t])  # episode 1 starts at row 12
        with torch.no_grad():
            ref = head(torch.from_numpy(np.asarray(data.features)[data.history_rows(r)]),
                       torch.from_numpy(data.proprio[r]))[0].numpy()
        np.testing.assert_allclose(a, np.clip(ref, -1, 1), atol=1e-5)
    with pytest.raises(ValueError, match="history must be 1"):
        HeadConfig(feature_dim=4, proprio_dim=2, kind="mlp", history=2).validate()


def test_bad_demo_files_are_named_before_any_cache_write(tmp_path):
    """A demo without a key the windows ask for (a view; a proprio obs key): one ValueError naming the
    file, demo and key, raised before the feature cache folder is touched."""
    from policies.heads.data import WindowConfig, build_dataset, read_demos
    from policies.train import build_frozen_encoder

    enc = build_frozen_encoder(ENC)
    for bad, key in (("noview", r"no key 'eye_in_hand_rgb'"), ("missing", r"no obs key\(s\) \['ee_pos'\]")):
        root = _write_demos(tmp_path / bad, n_demos=1, bad=bad)
        with pytest.raises(ValueError, match=key) as e:
            episodes = read_demos(root, "kitchen", VIEWS, [3])
            build_dataset(enc, episodes, WindowConfig(frames=3, stride=2), cache_root=tmp_path / "cache")
        assert "micro_demo.hdf5:demo_0" in str(e.value) and "\n" not in str(e.value)
        assert not (tmp_path / "cache").exists()
    root = _write_demos(tmp_path / "nan", n_demos=1, bad="nan")
    with pytest.raises(ValueError, match="micro_demo.hdf5:demo_0: non-finite action at step 2"):
        read_demos(root, "kitchen", VIEWS, [3])


def test_bad_encoder_task_and_missing_demos_are_named(tmp_path):
    from policies.heads.data import read_demos
    from policies.train import TrainHeadConfig, build_frozen_encoder

    with pytest.raises(ValueError, match="encoder 'no_such_encoder' cannot be built"):
        build_frozen_encoder("no_such_encoder")
    with pytest.raises(ValueError, match="unknown kitchen task 'oven'"):
        TrainHeadConfig(env="kitchen", task="oven").validate()
    root = _write_demos(tmp_path / "demos", n_demos=1)
    with pytest.raises(FileNotFoundError, match=r"task\(s\) \[0\]"):
        read_demos(root, "kitchen", VIEWS, [0, 3])
    with pytest.raises(FileNotFoundError, match=r"found tasks \[\]"):  # the kitchen file is no LIBERO demo
        read_demos(root, "libero", VIEWS, [3], suite="libero_goal")
