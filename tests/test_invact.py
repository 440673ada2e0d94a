"""InvAct: model shapes, RoPE, each loss on hand-computed cases, quadruplet sampling, training and resume."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

from configs.loader import from_dict
from encoders.invact import InvActConfig, InvActEncoder, Rope3D
from encoders.invact.losses import (
    InvActLossConfig,
    attraction_loss,
    invact_loss,
    repulsion_loss,
    text_alignment_loss,
    verb_ce_loss,
    view_alignment_loss,
)


def tiny_cfg(**kw) -> InvActConfig:
    return from_dict(InvActConfig, {"dim": 32, "heads": 2, "depth": 1, "flow_size": 16, "frames": 4,
                                    "backbone": "pixels", "backbone_size": 16, **kw})  # fmt: skip


@pytest.mark.parametrize("modality", ["flow", "rgb", "rgb+flow", "backbone+flow"])
def test_shapes_through_the_model(modality):
    enc = InvActEncoder(tiny_cfg(modality=modality))
    video = torch.randint(0, 255, (3, 6, 3, 32, 32), dtype=torch.uint8)
    inputs = enc.prepare(video)
    if "flow" in modality:
        assert inputs["flow"].shape == (3, 3, 3, 16, 16)  # (B, T-1, 3, S, S)
    if modality == "backbone+flow":
        assert inputs["ctx"].shape[0] == 3 and inputs["ctx"].ndim == 3  # (B, N, C) frame-averaged
    assert enc.encode(video).shape == (3, 32)
    # N = (T-1) * (S/8)^2 tubelet tokens for flow input
    tok = enc.tubelet(torch.zeros(1, 3 * (1 + (modality == "rgb+flow")), 3, 16, 16))
    assert tok.flatten(2).shape[-1] == 3 * 2 * 2


def test_rope_depends_only_on_relative_position():
    rope = Rope3D(head_dim=12, base=100.0)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 12, generator=g), torch.randn(1, 12, generator=g)

    def dot(pq, pk):
        aq, ak = rope.angles(torch.tensor([pq])), rope.angles(torch.tensor([pk]))
        return float((Rope3D.rotate(q, aq) * Rope3D.rotate(k, ak)).sum())

    a = dot([1, 2, 3], [4, 0, 1])
    b = dot([3, 5, 4], [6, 3, 2])  # both shifted by (2, 3, 1)
    c = dot([1, 2, 3], [4, 1, 1])  # a different offset
    assert a == pytest.approx(b, abs=1e-5) and abs(a - c) > 1e-3
    assert dot([0, 0, 0], [0, 0, 0]) == pytest.approx(float((q * k).sum()), abs=1e-6)  # origin = no rotation


def test_view_alignment_eq2():
    g = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    x = torch.tensor([[1.0, 0.0], [2.0, 0.0]])  # cos 1 and cos 0
    assert float(view_alignment_loss(g, x)) == pytest.approx(0.5)


def test_attraction_eq3_hand_computed():
    # anchors 0,1: same action, different scenes; 2: other action. Unit vectors at known angles.
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    action, scene = torch.tensor([0, 0, 1]), torch.tensor([0, 1, 1])
    tau = 1.0
    # anchor 0: P={1} (cos 0), N={2} (cos -1); anchor 1: P={0} (cos 0), N={2} (cos 0); anchor 2: no positive
    l0 = -math.log(math.exp(0) / (math.exp(0) + math.exp(-1)))
    l1 = -math.log(math.exp(0) / (math.exp(0) + math.exp(0)))
    assert float(attraction_loss(z, action, scene, tau)) == pytest.approx((l0 + l1) / 2, rel=1e-5)


def test_repulsion_eq4_hand_computed():
    z = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    action, scene = torch.tensor([0, 1, 1]), torch.tensor([0, 0, 1])
    tau = 0.5
    # R(0) = {1}, R(1) = {0}, R(2) = {} ; <z_i, z_i> = 1
    expect = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + math.exp(0.6 / tau)))
    assert float(repulsion_loss(z, action, scene, tau)) == pytest.approx(expect, rel=1e-5)


def test_text_eq5_and_ce_eq6_hand_computed():
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    # row terms: i=0: e^1/(e^1+e^1); i=1: e^0/(e^0+e^0); column terms: j=0: e^1/(e^1+e^0); j=1: e^0/(e^1+e^0)
    rows = -(math.log(0.5) + math.log(0.5)) / 2
    cols = -(math.log(math.e / (math.e + 1)) + math.log(1 / (math.e + 1))) / 2
    assert float(text_alignment_loss(z, t, 1.0)) == pytest.approx(0.5 * (rows + cols), rel=1e-5)
    lg = torch.tensor([[2.0, 0.0]])
    lx = torch.tensor([[0.0, 0.0]])
    y = torch.tensor([0])
    expect = -math.log(math.exp(2) / (math.exp(2) + 1)) - math.log(0.5)
    assert float(verb_ce_loss(lg, lx, y)) == pytest.approx(expect, rel=1e-5)


def test_total_loss_weights_eq7():
    g, x = torch.randn(8, 4), torch.randn(8, 4)
    a, s = torch.tensor([0, 0, 0, 1] * 2), torch.tensor([0, 1, 2, 2] * 2)
    cfg = InvActLossConfig(lambda_text=0, lambda_ce=0)
    total, terms = invact_loss(cfg, g, x, None, None, None, a, s)
    assert set(terms) == {"vv", "att", "rep"}
    assert float(total) == pytest.approx(0.5 * terms["vv"] + terms["att"] + terms["rep"], rel=1e-5)
    with pytest.raises(ValueError, match="every InvAct loss weight is 0"):
        invact_loss(InvActLossConfig(0, 0, 0, 0, 0, 0), g, x, None, None, None, a, s)


def test_quadruplet_layout(small_world):
    from encoders.invact.data import QuadrupletSampler
    from envs.atomic_world.dataset import read_index, read_meta

    idx = read_index(small_world, "train")
    s = QuadrupletSampler(idx, read_meta(small_world)["vocab"]["action"], quads=3, seed=1)
    b = s.batch(7)
    assert len(b.ego) == 12 and len(b.exo) == 12
    for q in range(3):
        a, sc = b.action[4 * q : 4 * q + 4], b.scene[4 * q : 4 * q + 4]
        assert a[0] == a[1] == a[2] != a[3]  # [S1A1, S2A1, S3A1, S3A2]
        assert len({sc[0], sc[1], sc[2]}) == 3 and sc[2] == sc[3]
    # ego/exo rows are the two views of one clip
    assert all(idx.at[e, "clip_id"] == idx.at[x, "clip_id"] for e, x in zip(b.ego, b.exo))
    assert all(idx.at[e, "view"] == "ego" and idx.at[x, "view"] != "ego" for e, x in zip(b.ego, b.exo))
    assert set(idx["split"]) == {"train"}
    b2 = s.batch(7)
    assert np.array_equal(b.ego, b2.ego) and np.array_equal(b.exo, b2.exo)  # a function of (seed, step)


def _train_cfg(data, out, **kw):
    from encoders.train import TrainConfig

    return from_dict(TrainConfig, {
        "data": str(data), "out": str(out), "steps": 20, "batch_quads": 2, "lr": 2e-3, "log_every": 1,
        "ckpt_every": 10, "cache_dir": str(out.parent / "cache"),
        "model": {"dim": 32, "heads": 2, "depth": 1, "flow_size": 16, "backbone_size": 32}, **kw})  # fmt: skip


@pytest.mark.slow
def test_training_smoke_loss_decreases_and_exports(small_world, tmp_path):
    import json

    from encoders import build_encoder
    from encoders.train import train

    out = train(_train_cfg(small_world, tmp_path / "run"), progress=False)
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in recs]
    assert len(losses) == 20
    # threads=0 (the default): torch's threads are re-sized between steps (ThreadResizer), and logged
    assert os.environ.get("ATOMVLA_THREADS") or all(r["threads"] >= 1 for r in recs)
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    enc = build_encoder(str(out / "encoder"))
    video = torch.from_numpy(np.load(next((small_world / "clips").glob("*/c0_ego.npz")))["frames"]).permute(0, 3, 1, 2)[None]
    assert enc.encode(video).shape == (1, 32) and (out / "config.yaml").is_file()


@pytest.mark.slow
def test_resume_gives_the_same_next_loss(small_world, tmp_path):
    from configs.training import latest_checkpoint, load_checkpoint
    from encoders.invact.method import InvActMethod
    from encoders.train import loss_at, train

    full = train(_train_cfg(small_world, tmp_path / "full", steps=14, ckpt_every=7), progress=False)
    part = train(_train_cfg(small_world, tmp_path / "part", steps=7, ckpt_every=7), progress=False)
    resumed = train(_train_cfg(small_world, tmp_path / "part", steps=14, ckpt_every=7, resume=True), progress=False)
    assert resumed == part

    def final_loss(run):
        cfg = _train_cfg(small_world, run, steps=14)
        m = InvActMethod(cfg).model
        load_checkpoint(latest_checkpoint(run), m, torch.optim.AdamW(m.parameters()))
        return loss_at(cfg, 14, m)

    assert final_loss(full) == pytest.approx(final_loss(resumed), rel=1e-5, abs=1e-6)
    with pytest.raises(FileExistsError, match="--resume"):
        train(_train_cfg(small_world, tmp_path / "full", steps=14), progress=False)


def test_tokens_feed_the_probes(small_world):
    import torch

    from encoders.invact import InvActConfig, InvActEncoder
    from encoders.probes.data import encoder_tokens
    from envs.atomic_world.dataset import read_index

    enc = InvActEncoder(InvActConfig(dim=32, heads=2, depth=1, flow_size=16, modality="flow")).freeze()
    video = torch.randint(0, 255, (2, 8, 3, 48, 48), dtype=torch.uint8)
    tok = enc.tokens(video)
    assert tok.shape == (2, 7 * 2 * 2, 32)  # (T-1) flow maps x (16/8)^2 tubelets, width d
    index = read_index(small_world, "val").iloc[:3]
    fwd = encoder_tokens(enc, small_world, index, frames=8, order="correct")
    rev = encoder_tokens(enc, small_world, index, frames=8, order="reverse")
    assert fwd.shape == (3, 28, 32) and not torch.allclose(fwd, rev)  # order reaches the tokens
