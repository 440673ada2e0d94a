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
        w.add(Demo(actions=acts, obs=obs, states=np.zeros((T, 2)), rewards=np.zeros(T), dones=np.zeros(T),
                   instruction="open the microwave door", skills=["reach"] * T))
    w.flush()
    return root


def _data(tmp_path, encoder=None, demos_root=None):
    from policies.heads.data import WindowConfig, build_dataset, demo_files, load_demos
    from policies.train import build_frozen_encoder

    root = demos_root or _write_demos(tmp_path / "demos")
    enc = encoder or build_frozen_encoder(ENC)
    window = WindowConfig(frames=3, stride=2)
    files = demo_files(root, "kitchen", [3])
    demos = load_demos(files, "kitchen", window.views)
    return enc, window, files, demos, build_dataset(enc, demos, window, files, cache_root=tmp_path / "cache")


def test_window_indices_repeat_the_first_frame():
    from policies.heads.data import window_indices

    assert window_indices(0, 3, 2).tolist() == [0, 0, 0]
    assert window_indices(3, 3, 2).tolist() == [0, 1, 3]
    assert window_indices(10, 4, 1).tolist() == [7, 8, 9, 10]


def test_feature_cache_reuse(tmp_path):
    from policies.heads.data import build_dataset

    enc, window, files, demos, first = _data(tmp_path)
    assert not first.from_cache and first.features.shape == (36, 2 * enc.dim)
    assert first.proprio.shape == (36, 12) and first.actions.shape == (36, 7)

    def boom(video):
        raise AssertionError("the encoder ran although the features were cached")

    enc.encode = boom
    again = build_dataset(enc, demos, window, files, cache_root=tmp_path / "cache")
    assert again.from_cache and again.cache_dir == first.cache_dir
    np.testing.assert_array_equal(again.features, first.features)
    assert str(again.cache_dir).startswith(str(tmp_path / "cache" / "features" / "policy_head"))


def test_bc_loss_falls_and_saved_head_reloads_and_acts_identically(tmp_path):
    from configs.training import LoopConfig, fit
    from envs.policy_api import build_policy
    from policies.train import HeadMethod, TrainHeadConfig

    torch.manual_seed(0)
    enc, window, files, demos, data = _data(tmp_path)
    cfg = TrainHeadConfig(env="kitchen", task="micro", encoder=ENC, steps=150, frames=3, stride=2, seed=0)
    method = HeadMethod(cfg, data, enc, window, frame_size=16)
    out = tmp_path / "run"
    fit(method, out, LoopConfig(steps=150, lr=1e-3, ckpt_every=150, log_every=10), progress=False)
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert np.mean(losses[-3:]) < 0.5 * losses[0], losses

    policy = build_policy(str(out / "policy"))
    assert type(policy).__name__ == "EncoderHeadPolicy" and policy.head.cfg.kind == "mlp"
    meta = json.loads((out / "policy" / "policy.json").read_text())
    assert meta["policy_type"] == "policy_head" and meta["window"]["frames"] == 3
    # the reloaded policy equals the trained head + encoder, step by step (frame windows included)
    from policies.heads.policy import EncoderHeadPolicy

    fresh = EncoderHeadPolicy(enc, method.model.eval(), window, env="kitchen", frame_size=16)
    d = demos[0]
    policy.reset()
    fresh.reset()
    for t in range(6):
        obs = {"agentview_rgb": d.views["agentview_rgb"][t], "eye_in_hand_rgb": d.views["eye_in_hand_rgb"][t],
               "proprio": d.proprio[t]}
        a, b = policy.act(obs, ""), fresh.act(obs, "")
        assert a.shape == (7,)
        np.testing.assert_allclose(a, b, atol=1e-6)
    # online features equal the cached training features of the same step (same windows)
    policy.reset()
    for t in range(4):
        f = policy.features({"agentview_rgb": d.views["agentview_rgb"][t],
                             "eye_in_hand_rgb": d.views["eye_in_hand_rgb"][t]})
    np.testing.assert_allclose(f, data.features[3], atol=1e-5)


def test_step_head_and_history_rows(tmp_path):
    from policies.heads.model import HeadConfig, HeadNetwork

    enc, window, files, demos, data = _data(tmp_path)
    rows = np.array([0, 1, 13, 35])
    hist = data.history_rows(rows, 3)
    assert hist.tolist() == [[0, 0, 0], [0, 0, 1], [12, 12, 13], [33, 34, 35]]
    head = HeadNetwork(HeadConfig(feature_dim=data.features.shape[1], proprio_dim=12, kind="step", history=3))
    out = head(torch.from_numpy(data.features[hist]), torch.from_numpy(data.proprio[rows]))
    assert out.shape == (4, 7)
    with pytest.raises(ValueError, match="history must be 1"):
        HeadConfig(feature_dim=4, proprio_dim=2, kind="mlp", history=2).validate()


@pytest.mark.parametrize("bad,match", [("nan", "actions contain NaN"), ("missing", r"missing obs key\(s\) \['ee_pos'\]")])
def test_bad_demo_files_are_named(tmp_path, bad, match):
    from policies.heads.data import demo_files, load_demos

    root = _write_demos(tmp_path / "demos", n_demos=1, bad=bad)
    files = demo_files(root, "kitchen", [3])
    with pytest.raises(ValueError, match=match) as e:
        load_demos(files, "kitchen", ("agentview_rgb", "eye_in_hand_rgb"))
    assert "micro_demo.hdf5 demo_0" in str(e.value)


def test_bad_encoder_task_and_missing_demos_are_named(tmp_path):
    from policies.heads.data import demo_files
    from policies.train import TrainHeadConfig, build_frozen_encoder

    with pytest.raises(ValueError, match="encoder 'no_such_encoder' cannot be built"):
        build_frozen_encoder("no_such_encoder")
    with pytest.raises(ValueError, match="unknown kitchen task 'oven'"):
        TrainHeadConfig(env="kitchen", task="oven").validate()
    root = _write_demos(tmp_path / "demos", n_demos=1)
    with pytest.raises(FileNotFoundError, match=r"task\(s\) \[0\]"):
        demo_files(root, "kitchen", [0, 3])


def test_compare_encoders_table_and_encoder_list(tmp_path):
    from policies.compare import CompareConfig, column_names, markdown, overall

    cfg = CompareConfig(encoders="a=random, b=runs/x/encoder", exports="")
    assert cfg.encoder_list() == [("a", "random"), ("b", "runs/x/encoder")]
    with pytest.raises(ValueError, match="duplicate"):
        CompareConfig(encoders="random,random").encoder_list()
    cols = column_names(cfg, [0, 3])
    assert cols == [("kitchen:0", "knob"), ("kitchen:3", "micro")]
    cell = {"successes": 1, "n": 2, "success_rate": 0.5, "ci95": [0.1, 0.9]}
    rows = [{"label": "a", "max": {"kitchen:0": cell, "kitchen:3": cell}, "final": {"kitchen:0": cell}}]
    assert overall(rows[0]["max"], ["kitchen:0", "kitchen:3"])["successes"] == 2
    md = markdown(cfg, rows, cols, ["kitchen:0", "kitchen:3"])
    assert "| a | 50 [10, 90] | 50 [10, 90] | **50 [" in md
    lib = CompareConfig(env="libero", tasks="0,5,6,7")
    names = [h for _, h in column_names(lib, [0, 5, 6, 7])]
    assert names[0].startswith("T1 (libero_goal 0") and names[-1] == "T6 (libero_spatial 4, held out)"
