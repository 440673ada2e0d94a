"""Temporal probes: order (in)variance, STEP's PE placement, metrics, and the probe CLI on a tiny dataset."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from encoders.probes import apply_order, build_probe, classification_report, frame_indices
from encoders.probes.data import order_permutation

ROOT = Path(__file__).resolve().parents[1]
B, T, N, C, K = 3, 6, 4, 16, 5


def _perm_pair(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, N, C, generator=g)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    return x, x[:, perm], x.flip(1)


@pytest.mark.parametrize("name", ["linear", "attentive", "self_attentive"])
def test_baseline_probes_are_frame_permutation_invariant(name):
    torch.manual_seed(0)
    probe = build_probe(name, C, K, T, heads=4).eval()
    x, shuffled, reversed_ = _perm_pair()
    with torch.no_grad():
        y = probe(x)
        assert torch.allclose(y, probe(shuffled), atol=1e-5)
        assert torch.allclose(y, probe(reversed_), atol=1e-5)


def test_step_is_not_permutation_invariant():
    torch.manual_seed(0)
    probe = build_probe("step", C, K, T, heads=4).eval()
    with torch.no_grad():
        probe.temporal.normal_()  # random-init scale 0.02 would make the difference small but nonzero
        x, shuffled, reversed_ = _perm_pair()
        y = probe(x)
        assert (y - probe(shuffled)).abs().max() > 1e-3
        assert (y - probe(reversed_)).abs().max() > 1e-3


def test_step_pe_before_vs_after_attention():
    """Supp. Table 18: PE before MHSA makes STEP order-sensitive; PE after (Eq. 5) leaves it invariant."""
    x, shuffled, _ = _perm_pair(1)
    outs = {}
    for pe in ("before", "after"):
        torch.manual_seed(0)
        probe = build_probe("step", C, K, T, heads=4, pe=pe).eval()
        with torch.no_grad():
            probe.temporal.normal_()
            outs[pe] = (probe(x) - probe(shuffled)).abs().max().item()
    assert outs["after"] < 1e-5
    assert outs["before"] > 1e-3


def test_step_structure_and_parameter_count():
    probe = build_probe("step", C, K, T, heads=4)
    names = {n for n, _ in probe.named_modules()}
    assert not any("norm" in n or "ff" in n for n in names)  # bare MHSA: no LayerNorm, no FF
    expected = T * C + C + (4 * C * C + 4 * C) + (C * K + K)  # temporal, CLS, MHSA, classifier
    assert probe.n_params() == expected
    att = build_probe("attentive", C, K, T, heads=4)
    assert probe.n_params() < att.n_params()


def test_probes_accept_encoder_tokens_and_projection():
    for name in ("linear", "attentive", "self_attentive", "step"):
        probe = build_probe(name, C, K, frames=7, proj_dim=8, heads=2)
        assert probe(torch.randn(2, 7, C)).shape == (2, K)  # (B, N, D) from an ActionEncoder
    with pytest.raises(ValueError, match="frames"):
        build_probe("step", C, K, frames=7, heads=4)(torch.randn(2, 5, N, C))


def test_frames_and_orders():
    assert frame_indices(16, 4).tolist() == [0, 5, 10, 15]
    with pytest.raises(ValueError, match="frames"):
        frame_indices(6, 8)
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = order_permutation("shuffle", 5, rng)
        assert sorted(p) == list(range(5)) and (p != np.arange(5)).any()
    x = torch.arange(2 * 4).reshape(2, 4, 1, 1).float()
    assert apply_order(x, "reverse")[0, :, 0, 0].tolist() == [3, 2, 1, 0]
    with pytest.raises(ValueError, match="order"):
        order_permutation("sideways", 4, rng)


def test_classification_report_tables():
    classes = ["push", "pull", "open", "close", "wave"]
    pairs = [["push", "pull"], ["open", "close"]]
    y = np.array([0, 0, 1, 1, 2, 3, 4, 4])
    pred = np.array([0, 1, 0, 0, 2, 2, 4, 0])
    r = classification_report(y, pred, classes, pairs)
    assert r["accuracy"] == pytest.approx(3 / 8)
    assert r["symmetric"]["n"] == 6 and r["symmetric"]["accuracy"] == pytest.approx(2 / 6)
    assert r["other"]["n"] == 2 and r["other"]["accuracy"] == pytest.approx(0.5)
    assert r["confusions"]["pull"]["most_confused_with"] == "push" and r["confusions"]["pull"]["rate"] == 1.0
    assert r["confusions"]["open"]["most_confused_with"] is None
    assert r["symmetric"]["to_partner"] == pytest.approx((1 + 2 + 0 + 1) / 6)


def test_mcnemar_exact_and_order_test_counts():
    from encoders.probes.train import ProbeConfig, evaluate_orders, mcnemar_exact

    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(3, 3) == 1.0
    assert mcnemar_exact(5, 0) == pytest.approx(2 / 32)  # two-sided exact binomial
    assert mcnemar_exact(0, 5) == mcnemar_exact(5, 0)
    assert mcnemar_exact(20, 2) < 1e-3

    class Sign(torch.nn.Module):  # class 1 iff the last frame's value exceeds the first: order-aware
        def forward(self, x):
            d = (x[:, -1] - x[:, 0]).reshape(len(x), -1).mean(1)
            return torch.stack([-d, d], 1)

    x = torch.linspace(0, 1, 5).view(1, 5, 1, 1).repeat(8, 1, 1, 1)
    x[4:] = x[4:].flip(1)
    y = np.array([1] * 4 + [0] * 4)
    out = evaluate_orders(ProbeConfig(orders=["correct", "reverse"]), Sign(), lambda o: apply_order(x, o), y,
                          ["down", "up"], [["down", "up"]])
    assert out["correct"]["accuracy"] == 1.0 and out["reverse"]["accuracy"] == 0.0
    assert out["reverse"]["vs_correct"] == {"lost": 8, "gained": 0, "p": pytest.approx(2 / 256)}
    assert "vs_correct" not in out["correct"]


def test_step_pe_init_and_training_options():
    from encoders.probes.data import channel_stats
    from encoders.probes.train import ProbeConfig, train_probe

    assert build_probe("step", C, K, T, pe_init=0.0).temporal.abs().sum() == 0
    assert build_probe("step", C, K, T, pe_init=1.0).temporal.std() > 0.5
    x = torch.randn(40, T, N, C) * 5 + 3
    mean, std = channel_stats(x)
    z = (x - mean) / std
    assert z.mean().abs() < 1e-4 and (z.std() - 1).abs() < 0.05
    y = torch.arange(40) % K
    for schedule in ("cosine", "constant"):
        cfg = ProbeConfig(probe="step", epochs=2, batch_size=8, heads=4, schedule=schedule)
        model, hist = train_probe(cfg, z, y, K, log=None)
        assert len(hist) == 2 and np.isfinite(hist[-1]["loss"])
    with pytest.raises(ValueError, match="schedule"):
        ProbeConfig(schedule="linear").validate()
    with pytest.raises(ValueError, match="pe_init"):
        ProbeConfig(pe_init=-1).validate()


def test_backbone_without_patch_tokens_is_named(monkeypatch):
    import encoders.features as features
    from encoders.probes.data import backbone_tokens, encoder_tokens

    class Res:
        arrays = {"pooled": np.zeros((2, 4, 8), np.float32)}
        index = None

    class FakeBackbone:
        spec = "pooled_only"

    monkeypatch.setattr(features, "backbone_features", lambda *a, **k: Res())
    with pytest.raises(ValueError, match="backbone"):
        backbone_tokens(FakeBackbone(), "unused", "train", 4, None)
    with pytest.raises(ValueError, match="encoder"):
        encoder_tokens(object(), "unused", None, 4, "correct")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from configs.loader import load_config
    from envs.atomic_world.generate import MakeVideosConfig, make_dataset

    out = tmp_path_factory.mktemp("aw") / "tiny"
    make_dataset(load_config(MakeVideosConfig, ROOT / "configs/world/tiny.yaml", [f"out={out}"]))
    return out


def _cli(args, tmp_path):
    env = {"OMP_NUM_THREADS": "1", "ATOMVLA_THREADS": "1", "ATOMVLA_CACHE": str(tmp_path / "cache"),
           "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(ROOT / "encoders/probe.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True)


def test_probe_cli_on_tiny_dataset(tiny, tmp_path):
    out = tmp_path / "run"
    r = _cli(["--probe", "step", "--backbone", "pixels", "--data", str(tiny), "--frames", "6", "--epochs", "2",
              "--out", str(out), "heads=4"], tmp_path)
    assert r.returncode == 0, r.stderr
    res = json.loads((out / "results.json").read_text())
    assert set(res["orders"]) == {"correct", "shuffle", "reverse"}
    assert res["n_params"] > 0 and res["symmetric_pairs"]
    first = res["orders"]["correct"]
    assert {"per_class", "symmetric", "other", "confusions"} <= set(first)
    assert (out / "config.yaml").is_file() and (out / "results.md").is_file()



def test_attentive_probe_same_accuracy_under_every_order(tiny, tmp_path, monkeypatch):
    from encoders.probe import main

    monkeypatch.setenv("ATOMVLA_CACHE", str(tmp_path / "cache"))
    out2 = tmp_path / "att"
    assert main(["--probe", "attentive", "--backbone", "pixels", "--data", str(tiny), "--frames", "4",
                 "--epochs", "2", "--out", str(out2), "heads=4", "threads=1"]) == 0
    accs = {o: v["accuracy"] for o, v in json.loads((out2 / "results.json").read_text())["orders"].items()}
    assert len(set(accs.values())) == 1


def test_probe_cli_too_many_frames(tiny, tmp_path, capsys):
    from configs.cli import run_cli
    from encoders.probe import main

    assert run_cli(main, ["--probe", "linear", "--backbone", "pixels", "--data", str(tiny), "--frames", "64",
                          "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "frames" in err and "64" in err
