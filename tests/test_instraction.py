"""InstrAction parts: soft-DTW vs a NumPy DP, hard DTW, Action Perceiver masks, MAM, negatives, segmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from encoders.instraction import (
    ActionPerceiver,
    MaskedActionDecoder,
    WordVocab,
    alignment_cost,
    boundary_error,
    cosine_cost,
    distill_loss,
    dtw_objective,
    dtw_path,
    mam_loss,
    order_loss,
    order_swapped,
    render_caption,
    segment,
    soft_dtw,
    verb_altered,
    window_mask,
)
from encoders.instraction.benchmark import run_benchmark
from encoders.instraction.soft_dtw import soft_dtw_reference
from encoders.instraction.takes import TakeItem, crop_lengths


@pytest.mark.parametrize("gamma", [1.0, 0.1, 0.01])
def test_soft_dtw_matches_numpy_reference(gamma):
    rng = np.random.default_rng(0)
    d = rng.random((3, 9, 6))
    x = torch.tensor(d, requires_grad=True)
    v = soft_dtw(x, gamma)
    v.sum().backward()
    for b in range(3):
        ref_v, ref_g = soft_dtw_reference(d[b], gamma)
        assert abs(v[b].item() - ref_v) < 1e-5
        assert np.abs(x.grad[b].numpy() - ref_g).max() < 1e-5


def test_soft_dtw_variable_lengths_and_float32():
    rng = np.random.default_rng(1)
    d = rng.random((2, 8, 5))
    x = torch.tensor(d, requires_grad=True)
    v = soft_dtw(x, 0.5, lengths_x=torch.tensor([8, 3]), lengths_y=torch.tensor([2, 5]))
    v.sum().backward()
    for b, (n, m) in enumerate([(8, 2), (3, 5)]):
        ref_v, ref_g = soft_dtw_reference(d[b, :n, :m], 0.5)
        full = np.zeros((8, 5))
        full[:n, :m] = ref_g
        assert abs(v[b].item() - ref_v) < 1e-5
        assert np.abs(x.grad[b].numpy() - full).max() < 1e-5
    f = soft_dtw(torch.tensor(d, dtype=torch.float32), 0.5)
    assert f.dtype == torch.float32 and abs(f[0].item() - soft_dtw_reference(d[0], 0.5)[0]) < 1e-4
    assert torch.autograd.gradcheck(lambda c: soft_dtw(c, 0.3), (torch.tensor(d[:, :4, :3], requires_grad=True),))


def test_soft_dtw_approaches_hard_dtw_as_gamma_shrinks():
    rng = np.random.default_rng(2)
    d = torch.tensor(rng.random((7, 5)))
    _, hard = dtw_path(d)
    gaps = [abs(soft_dtw(d, g).item() - hard) for g in (1.0, 0.1, 0.01, 0.001)]
    assert gaps == sorted(gaps, reverse=True)
    assert gaps[-1] < 1e-2
    assert soft_dtw(d, 0.001).item() <= hard + 1e-9  # soft-min is a lower bound of min


def test_soft_dtw_bad_input():
    with pytest.raises(ValueError, match="gamma"):
        soft_dtw(torch.rand(3, 3), 0.0)
    with pytest.raises(ValueError, match="cost"):
        soft_dtw(torch.rand(3), 0.1)


def test_hard_dtw_paths_and_eq10():
    c = torch.rand(6, 3)
    path, total = dtw_path(c)
    assert path[0] == (0, 0) and path[-1] == (5, 2)
    assert all(0 <= i2 - i1 <= 1 and 0 <= j2 - j1 <= 1 for (i1, j1), (i2, j2) in zip(path, path[1:]))
    assert total == pytest.approx(sum(float(c[i, j]) for i, j in path))
    fpath, _ = dtw_path(c, frame_steps=True)
    assert [i for i, _ in fpath] == list(range(6))  # every frame exactly once
    sim = torch.eye(4)
    assert alignment_cost(sim) == pytest.approx(0.0)  # perfect diagonal similarity: zero normalised cost


def test_order_hinge_and_batch_objective():
    torch.manual_seed(0)
    phrases = torch.randn(2, 3, 8)
    tokens = phrases.repeat_interleave(2, dim=1).clone().requires_grad_(True)  # aligned in order
    hinge = order_loss(tokens, phrases, beta=0.1, gamma=0.01)
    assert (hinge == 0).all()  # the correct order beats the reversed one by more than the margin
    loss = dtw_objective(tokens, phrases, beta=0.1, gamma=0.1, lengths=torch.tensor([3, 2]))
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(tokens.grad).all()


def test_window_mask_and_perceiver_shapes():
    m = window_mask(4, 8, 3, window=2.0)
    assert m.shape == (4, 24) and m.dtype == torch.bool
    assert (~m).any(1).all()  # no query row fully masked
    visible_frames = (~m.view(4, 8, 3)).all(2)
    for k in range(4):
        f = visible_frames[k].nonzero().flatten()
        assert (f.diff() == 1).all()  # one contiguous local window
        assert abs(f.float().mean().item() - ((k + 0.5) * 2 - 0.5)) <= 0.5
    assert (visible_frames.sum(1) <= 3).all()
    p = ActionPerceiver(in_dim=10, dim=16, n_latents=4, heads=2)
    s = p(torch.randn(2, 8, 3, 10))
    assert s.shape == (2, 4, 16)
    assert p.teacher(torch.randn(2, 8, 3, 10), torch.randn(2, 5, 16)).shape == (2, 5, 16)
    assert p(torch.randn(2, 8, 10)).shape == (2, 4, 16)  # (B, T, C) pooled frames


def test_distillation_reduces_to_contrastive_at_alpha_zero():
    torch.manual_seed(0)
    st, te, tx = torch.randn(4, 8), torch.randn(4, 8), torch.randn(4, 8)
    l0 = distill_loss(st, te, tx, tau=0.1, alpha=0.0)
    logits = torch.nn.functional.normalize(st, dim=-1) @ torch.nn.functional.normalize(tx, dim=-1).T / 0.1
    ce = torch.nn.functional.cross_entropy(logits, torch.arange(4)) + torch.nn.functional.cross_entropy(
        logits.T, torch.arange(4))
    assert l0.item() == pytest.approx(ce.item(), rel=1e-5)
    assert distill_loss(st, te, tx, alpha=0.5).item() != pytest.approx(l0.item())


def test_hard_negatives_never_return_the_positive():
    actions = ["push", "pull", "open", "close", "pick up", "put down"]
    for steps in ([("push", "red cube")], [("open", "drawer"), ("pick up", "red cube"), ("put down", "red cube")],
                  [("push", "red cube"), ("push", "red cube")]):
        pos = render_caption("robot", steps)
        for seed in range(5):
            va = verb_altered("robot", steps, actions, 9, seed)
            os_ = order_swapped("robot", steps, 3, seed)
            assert pos not in va and pos not in os_
            assert len(set(va)) == len(va) and len(set(os_)) == len(os_)
            assert len(va) == min(9, len(steps) * (len(actions) - 1))
    assert order_swapped("robot", [("push", "red cube")]) == []
    assert order_swapped("robot", [("push", "red cube"), ("push", "red cube")]) == []  # identical steps


def test_mam_decoder_is_causal_and_trains():
    caps = ["the robot pushes the red cube away", "the person opens the drawer, then closes the drawer"]
    vocab = WordVocab(caps)
    inp, tgt, masked = vocab.batch(caps, mask_words={"pushes", "opens", "closes"})
    assert inp.shape == tgt.shape == masked.shape
    assert masked.sum() == 3 and (tgt[masked] != vocab.stoi["[MASK]"]).all()
    assert vocab.itos[int(tgt[0][masked[0]][0])] == "pushes"
    dec = MaskedActionDecoder(len(vocab), dim=16, heads=2, layers=1).eval()
    s = torch.randn(2, 4, 16)
    out = dec(inp, s)
    changed = inp.clone()
    changed[:, -1] = 5
    assert torch.allclose(out[:, :-1], dec(changed, s)[:, :-1], atol=1e-5)  # later tokens never leak back
    loss = mam_loss(out, tgt)
    loss.backward()
    assert torch.isfinite(loss)


def test_segment_recovers_boundaries_and_bad_input():
    phrases = torch.eye(3, 6)
    truth = [4, 9]
    frames = torch.cat([phrases[0].repeat(4, 1), phrases[1].repeat(5, 1), phrases[2].repeat(3, 1)])
    frames = frames + 0.05 * torch.randn(frames.shape)
    assert segment(frames, phrases) == truth
    assert boundary_error(segment(frames, phrases), truth) == 0.0
    shared = torch.ones(6) * 3.0  # a component common to every token and phrase
    assert segment(frames + shared, phrases + shared, center=True) == truth
    tokens = frames[::2]  # coarser tokens with known frame positions
    pred = segment(tokens, phrases, positions=torch.arange(0, 12, 2))
    assert boundary_error(pred, truth) <= 1.0
    with pytest.raises(ValueError, match="verb_phrases"):
        segment(frames, [])
    with pytest.raises(ValueError, match="verb_phrases"):
        segment(frames[:2], phrases)
    with pytest.raises(ValueError, match="verb_phrases"):
        segment(frames, ["open", " "], embed_text=lambda t: torch.rand(len(t), 6))


def test_crop_lengths_vary_and_stay_inside():
    r = crop_lengths(50, 16, seed=0)
    assert all(0 <= s < e <= 16 and e - s >= 8 for s, e in r)
    assert len({e - s for s, e in r}) > 3


def test_benchmark_with_an_oracle_model():
    items = [TakeItem(0, "ego", "robot", [("push", "red cube")], [0], ""),
             TakeItem(1, "ego", "robot", [("pull", "red cube")], [1], ""),
             TakeItem(2, "ego", "human", [("open", "drawer"), ("close", "drawer")], [2, 3], "k")]
    actions = ["push", "pull", "open", "close"]
    texts: dict[str, torch.Tensor] = {}

    def embed_text(ts):
        for t in ts:
            texts.setdefault(t, torch.randn(32))
        return torch.stack([texts[t] for t in ts])

    torch.manual_seed(0)
    video = embed_text([render_caption(it.subject, it.steps) for it in items])
    res = run_benchmark(items, video, embed_text, actions)
    assert res["semantic"]["R@1"] == 1.0 and res["semantic"]["mean_rank"] == 1.0
    assert res["logic"]["accuracy"] == 1.0 and res["logic"]["n"] == 1
    assert res["dynamics"]["t2v"]["R@1"] == 1.0 and res["dynamics"]["v2t"]["R@1"] == 1.0


def test_cosine_cost_range():
    c = cosine_cost(torch.randn(2, 5, 4), torch.randn(2, 3, 4))
    assert c.shape == (2, 5, 3) and (c >= -1e-6).all() and (c <= 2 + 1e-6).all()
