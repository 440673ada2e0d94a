"""RoboAct-CLIP: each loss on hand-built inputs, model shapes, bank update semantics, recombination
shapes and gradient flow, and a tiny end-to-end train -> resume -> export -> use run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from configs.loader import ConfigError, from_dict
from encoders.base import frame_indices, sample_frames
from encoders.roboact import RoboActConfig, RoboActEncoder, sinusoidal_positions
from encoders.roboact.losses import (
    aux_classification_loss,
    clip_loss,
    disentanglement_loss,
    l2_loss,
    orthogonality_loss,
    recombination_loss,
    total_loss,
)

ACTIONS = ["push", "pull", "lift", "lower"]
OBJECTS = ["red cube", "blue ball"]
SUBJECTS = ["robot", "human"]
MOVES = {"push": (1, 0), "pull": (-1, 0), "lift": (0, -1), "lower": (0, 1)}


def tiny_cfg(**kw) -> RoboActConfig:
    base = {"dim": 16, "heads": 2, "attn_tokens": 2, "branch_dim": 8, "depth": 1, "frames": 4, "dropout": 0.0,
            "backbone": "pixels", "backbone_size": 16, "subjects": SUBJECTS, "actions": ACTIONS, "objects": OBJECTS}  # fmt: skip
    return from_dict(RoboActConfig, {**base, **kw}, source="test")


# ------------------------------------------------------------------------------------- losses
def test_orthogonality_loss_hand_built():
    e = torch.eye(3)
    # orthogonal branches -> 0
    assert orthogonality_loss(e[[0]], e[[1]], e[[2]]).item() == pytest.approx(0.0)
    # all three identical -> each cosine 1 -> (1 + 1 + 1) / 3 = 1
    v = torch.tensor([[1.0, 2.0, 0.0]])
    assert orthogonality_loss(v, v, v).item() == pytest.approx(1.0)
    # sub = act, obj orthogonal: (1 + 0 + 0) / 3; two rows averaged with the orthogonal row -> 1/6
    sub = torch.stack([e[0], e[0]])
    act = torch.stack([e[0], e[1]])
    obj = torch.stack([e[2], e[2]])
    assert orthogonality_loss(sub, act, obj).item() == pytest.approx(1 / 6)
    # signed (literal Eq. 13) vs absolute: anti-parallel gives -1 vs +1 per pair
    assert orthogonality_loss(v, -v, e[[2]], absolute=False).item() == pytest.approx(-1 / 3)
    assert orthogonality_loss(v, -v, e[[2]], absolute=True).item() == pytest.approx(1 / 3)


def test_l2_loss_hand_built():
    sub, act, obj = torch.tensor([[3.0, 4.0]]), torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    assert l2_loss(sub, act, obj).item() == pytest.approx(0.01 * (25 + 1 + 4))
    # averaged over rows
    two = l2_loss(torch.cat([sub, 0 * sub]), torch.cat([act, 0 * act]), torch.cat([obj, 0 * obj]), weight=1.0)
    assert two.item() == pytest.approx(30 / 2)


def test_clip_loss_hand_built():
    fv = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    ft = torch.tensor([[2.0, 0.0], [0.0, 3.0]])  # scale must not matter (cosine)
    tau = 0.5
    # logits: diag 1/tau, off-diag 0 -> loss = -log(e^2 / (e^2 + 1))
    want = -math.log(math.exp(2) / (math.exp(2) + 1))
    assert clip_loss(fv, ft, torch.tensor([0, 1]), tau).item() == pytest.approx(want, rel=1e-5)
    # swapped targets -> the loss grows
    assert clip_loss(fv, ft, torch.tensor([1, 0]), tau).item() > want + 1
    # duplicates: two clips sharing text 0 -> one text row, no false negative
    fv3 = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert clip_loss(fv3, ft, torch.tensor([0, 0, 1]), tau).item() == pytest.approx(want, rel=1e-5)


def test_recombination_loss_hand_built():
    t_all = torch.eye(3)
    f = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 5.0]])
    tau = 1.0
    want = -math.log(math.e / (math.e + 2))
    assert recombination_loss(f, t_all, torch.tensor([0, 2]), tau).item() == pytest.approx(want, rel=1e-5)
    assert recombination_loss(f, t_all, torch.tensor([1, 1]), tau).item() == pytest.approx(-math.log(1 / (math.e + 2)), rel=1e-5)


def test_aux_disent_and_total_compose_as_the_equations_say():
    logits = {"subject": torch.tensor([[0.0, 0.0]]), "action": torch.tensor([[10.0, 0.0, 0.0]]),
              "object": torch.tensor([[0.0, 0.0, 0.0, 0.0]])}  # fmt: skip
    y = {"subject": torch.tensor([0]), "action": torch.tensor([0]), "object": torch.tensor([3])}
    ce_a = -F.log_softmax(logits["action"], -1)[0, 0].item()
    aux = aux_classification_loss(logits, y, {"subject": 2.0, "action": 1.0, "object": 0.5})
    assert aux.item() == pytest.approx(2 * math.log(2) + ce_a + 0.5 * math.log(4), rel=1e-5)
    one = torch.tensor(1.0)
    assert disentanglement_loss(one, 2 * one, 3 * one, 0.5, 2.0).item() == pytest.approx(0.5 * 3 + 6)  # Eq. 21
    assert total_loss(one, 2 * one, 3 * one, 0.5, 0.1).item() == pytest.approx(1 + 1 + 0.3)  # Eq. 27


# -------------------------------------------------------------------------------------- model
def test_shapes_through_the_model_and_ablation_variants():
    video = torch.randint(0, 255, (3, 6, 3, 32, 32), dtype=torch.uint8)
    m = RoboActEncoder(tiny_cfg())
    out = m.forward_features(m.frame_features(video))
    assert out["fv"].shape == (3, 16) and out["attn"].shape == (3, 16)
    for f in ("subject", "action", "object"):
        assert out[f].shape == (3, 8)
    assert out["logits_action"].shape == (3, 4) and out["logits_subject"].shape == (3, 2)
    assert m.encode(video).shape == (3, 24) and m.dim == 24
    # Eq. 24 order: sub, obj, act
    assert torch.equal(out["embedding"], torch.cat([out["subject"], out["object"], out["action"]], -1))
    probs = m.classify(video)
    assert probs["object"].shape == (3, 2) and torch.allclose(probs["action"].sum(-1), torch.ones(3))
    for kw in ({"temporal": "endpoints"}, {"disentangle": False}, {"temporal": "raw", "disentangle": False},
               {"frames": 2}, {"output": "action"}):  # fmt: skip
        e = RoboActEncoder(tiny_cfg(**kw))
        assert e.encode(video).shape == (3, e.dim)
        assert {k: v.shape for k, v in e.branches(video).items()} == {f: (3, 8) for f in ("subject", "object", "action")}
    # the shared frame sampler repeats frames of a short clip instead of failing
    assert RoboActEncoder(tiny_cfg(frames=8)).encode(video).shape == (3, 24)
    with pytest.raises(ConfigError, match="temporal"):
        tiny_cfg(temporal="lstm")


def test_motion_stem_reads_pixel_differences_only():
    """motion "diff" (issue 23): each frame row carries its small frame; the Eq. 7 tokens come from
    the pixel stem, so a static background added to every frame does not change them."""
    torch.manual_seed(0)
    m = RoboActEncoder(tiny_cfg(motion="diff", motion_size=16, motion_width=4)).eval()
    video = torch.randint(0, 100, (2, 6, 3, 32, 32), dtype=torch.uint8)
    feats = m.frame_features(video)
    assert feats.shape == (2, 4, m.feature_dim + 3 * 16 * 16) and m.encode(video).shape == (2, 24)
    assert m.tokens(video).shape == (2, 3, 16)
    lit = video.clone()
    lit[..., :8, :] += 50  # the same change in every frame: no motion
    pix, pix_lit = (f[..., m.feature_dim :].reshape(2, 4, 3, 16, 16) / 255.0 for f in (feats, m.frame_features(lit)))
    assert not torch.allclose(pix, pix_lit) and torch.allclose(m.motion(pix), m.motion(pix_lit), atol=1e-5)
    with pytest.raises(ConfigError, match="motion"):
        tiny_cfg(motion="diff", temporal="endpoints")
    # action_input "temporal": the action reads the motion tokens only, the object still sees the frames
    m = RoboActEncoder(tiny_cfg(motion="diff", motion_size=16, motion_width=4, action_input="temporal")).eval()
    feats = m.frame_features(video)
    moved = feats.clone()
    moved[..., : m.feature_dim] += torch.randn(2, 1, m.feature_dim)  # another scene's frozen features
    a, b = m.forward_features(feats), m.forward_features(moved)
    assert torch.allclose(a["logits_action"], b["logits_action"]) and torch.equal(a["action"], b["action"])
    assert not torch.allclose(a["logits_object"], b["logits_object"])
    with pytest.raises(ConfigError, match="action_input"):
        tiny_cfg(action_input="temporal", disentangle=False)
    # object_input "pixels": the object reads the small frames only (another scene's frozen features
    # leave it unchanged), and a change in the frames' colour reaches it
    m = RoboActEncoder(tiny_cfg(motion="diff", motion_size=16, motion_width=4, action_input="temporal",
                                object_input="pixels", object_width=4, object_size=16)).eval()
    feats = m.frame_features(video)
    moved = feats.clone()
    moved[..., : m.feature_dim] += torch.randn(2, 1, m.feature_dim)
    a, b = m.forward_features(feats), m.forward_features(moved)
    assert torch.allclose(a["logits_object"], b["logits_object"]) and torch.equal(a["object"], b["object"])
    assert not torch.allclose(a["logits_subject"], b["logits_subject"])
    tinted = feats.clone()
    tinted[..., m.feature_dim :] = (tinted[..., m.feature_dim :] * 1.5).clamp(0, 255)
    assert not torch.allclose(m.forward_features(tinted)["logits_object"], a["logits_object"])
    assert m.encode(video).shape == (2, 24)
    with pytest.raises(ConfigError, match="object_input"):
        tiny_cfg(object_input="pixels")  # no small frames without motion "diff"


def test_moments_pool_keeps_where_a_response_was():
    """motion_pool "moments": a response map and its mirror image pool to the same mean and max (so
    clockwise and counterclockwise rotation fields can look alike), but to x-moments of opposite sign."""
    from encoders.pixel_motion import MotionStem, mean_max_pool, moments_pool

    torch.manual_seed(0)
    h = torch.rand(2, 5, 3, 3)
    h[:, :, :, 0] += 2.0  # stronger on the left
    mirror = h.flip(-1)
    assert torch.allclose(mean_max_pool(h), mean_max_pool(mirror))
    a, b = moments_pool(h), moments_pool(mirror)
    assert a.shape == (2, 20) and torch.allclose(a[:, :10], b[:, :10])
    assert torch.allclose(a[:, 10:15], -b[:, 10:15], atol=1e-6) and (a[:, 10:15] < 0).all()  # x-moment: left is negative
    assert torch.allclose(a[:, 15:], b[:, 15:], atol=1e-6)  # y-moment unchanged by a left-right mirror
    assert torch.allclose(moments_pool(h.flip(-2))[:, 15:], -a[:, 15:], atol=1e-6)
    stem = MotionStem(16, 4, "moments")
    assert stem(torch.rand(2, 5, 3, 16, 16)).shape == (2, 4, 16) and stem.proj.in_features == 4 * 16
    m = RoboActEncoder(tiny_cfg(motion="diff", motion_size=16, motion_width=4, motion_pool="moments")).eval()
    assert m.encode(torch.randint(0, 255, (2, 6, 3, 32, 32), dtype=torch.uint8)).shape == (2, 24)
    with pytest.raises(ConfigError, match="motion_pool"):
        tiny_cfg(motion="diff", motion_pool="median")


def test_motion_frame_tells_a_motion_from_its_mirror_in_brightness():
    """motion_frame: a light square on dark moving right and a dark square on light moving left leave
    the same frame differences, so the 6-channel stem gives them the same tokens; with the frame
    itself (9 channels) they differ."""
    from encoders.pixel_motion import MotionStem

    def clip(light: bool, cols: tuple[int, int]) -> torch.Tensor:
        v = torch.full((1, 2, 3, 16, 16), 0.0 if light else 1.0)
        for i, c in enumerate(cols):
            v[0, i, :, 6:10, c : c + 4] = 1.0 if light else 0.0
        return v

    a, b = clip(True, (4, 6)), clip(False, (6, 4))  # light moving right, dark moving left
    assert torch.equal(a[:, 1] - a[:, 0], b[:, 1] - b[:, 0]) and not torch.equal(a, b)
    torch.manual_seed(0)
    plain, framed = MotionStem(8, 4, "moments").eval(), MotionStem(8, 4, "moments", frame=True).eval()
    assert plain.stem[0].in_channels == 6 and framed.stem[0].in_channels == 9
    with torch.no_grad():
        assert torch.allclose(plain(a), plain(b))
        assert not torch.allclose(framed(a), framed(b), atol=1e-4)
    m = RoboActEncoder(tiny_cfg(motion="diff", motion_size=16, motion_width=4, motion_frame=True)).eval()
    assert m.encode(torch.randint(0, 255, (2, 6, 3, 32, 32), dtype=torch.uint8)).shape == (2, 24)


def test_object_attention_pool_reads_the_scored_cell_and_not_a_brighter_one():
    """object_pool "attn": with the score peaked on one grid cell the pool returns that cell's features,
    where max pooling returns a brighter cell elsewhere (a static distractor's); the stem's output
    width matches mean_max's, and an unknown pool is one config error."""
    from encoders.pixel_motion import ObjectStem, attention_pool, mean_max_pool

    h = torch.zeros(1, 3, 4, 4)
    h[0, :, 1, 2] = torch.tensor([1.0, 2.0, 3.0])  # the moved object's cell
    h[0, :, 3, 0] = 10.0  # a brighter distractor
    score = torch.full((1, 2, 4, 4), -30.0)
    score[0, :, 1, 2] = 30.0
    assert torch.allclose(attention_pool(h, score), torch.tensor([[1.0, 2.0, 3.0, 1.0, 2.0, 3.0]]), atol=1e-4)
    assert (mean_max_pool(h)[0, 3:] == 10.0).all()
    uniform = attention_pool(h, torch.zeros(1, 2, 4, 4))
    assert torch.allclose(uniform[0, :3], h.mean((2, 3))[0])
    stem = ObjectStem(16, 4, "attn")
    assert stem(torch.rand(2, 5, 3, 32, 32)).shape == (2, 16) and stem.proj[0].in_features == 8 * 4
    m = RoboActEncoder(tiny_cfg(motion="diff", motion_size=16, motion_width=4, object_input="pixels",
                                object_width=4, object_size=16, object_pool="attn")).eval()
    assert m.encode(torch.randint(0, 255, (2, 6, 3, 32, 32), dtype=torch.uint8)).shape == (2, 24)
    with pytest.raises(ConfigError, match="object_pool"):
        tiny_cfg(motion="diff", object_input="pixels", object_pool="median")


def test_every_results_variant_config_loads_and_validates():
    """Each variant scripts/roboact_results.py can train (VARIANTS) names a YAML that loads into the
    training config and gives a valid RoboActConfig; the file named is the one on disk."""
    from pathlib import Path

    from encoders.roboact.results import VARIANTS, ResultsConfig, variant_config

    root = Path(__file__).resolve().parents[1]
    for name, yaml, _ in VARIANTS:
        assert (root / yaml).is_file(), yaml
        tc = variant_config(ResultsConfig(), name, str(root / yaml))
        from_dict(RoboActConfig, tc.model, source=yaml).validate()


def test_accuracies_break_down_by_class_and_view():
    """scripts/roboact_results.py's per-class / per-view head accuracy: the counts cover every row and
    the n-weighted class accuracies give back the overall head accuracy."""
    import pandas as pd

    from encoders.roboact.report import markdown, per_class_tables
    from encoders.roboact.results import accuracies, all_triplets, share_rows

    torch.manual_seed(0)
    m = RoboActEncoder(tiny_cfg()).eval()
    rng = np.random.default_rng(0)
    n = 40
    index = pd.DataFrame({"subject": rng.choice(SUBJECTS, n), "action": rng.choice(ACTIONS, n),
                          "object": rng.choice(OBJECTS, n), "view": rng.choice(["ego", "exo_left"], n)})  # fmt: skip
    video = torch.randint(0, 255, (n, 4, 3, 16, 16), dtype=torch.uint8)
    with torch.no_grad():
        feats = m.frame_features(video).numpy()
        trip = all_triplets(m)
        res = accuracies(m, index, feats, torch.randn(len(trip), m.dim), trip)
    for f in ("subject", "action", "object"):
        pc = res["per_class"][f]
        assert sum(c["n"] for c in pc.values()) == n and set(pc) == set(index[f])
        assert sum(c["acc"] * c["n"] for c in pc.values()) / n == pytest.approx(res["head"][f])
        by_view = sum(res["per_view"][v][f] * (index["view"] == v).sum() for v in res["per_view"]) / n
        assert by_view == pytest.approx(res["head"][f])
        for c, x in pc.items():  # each class's per-view accuracies weight back to its own
            nv = {v: ((index[f] == c) & (index["view"] == v)).sum() for v in x["views"]}
            assert sum(x["views"][v] * nv[v] for v in nv) / x["n"] == pytest.approx(x["acc"])
    lines = per_class_tables([{"name": "tiny", "accuracy": res}])
    assert f"| {ACTIONS[0]} | {res['per_class']['action'][ACTIONS[0]]['n']} |" in "\n".join(lines)
    # train_stride: every k-th training row, and its tables in the report
    with torch.no_grad():
        seen = accuracies(m, index, feats, torch.randn(len(trip), m.dim), trip, np.arange(0, n, 4))
    assert sum(c["n"] for c in seen["per_class"]["action"].values()) == 10
    draw = share_rows(900, 1 / 3)  # rows list a clip's 3 views in a row: every view must be drawn
    assert len(draw) == 300 and (np.diff(draw) > 0).all() and set(draw % 3) == {0, 1, 2}
    assert np.array_equal(draw, share_rows(900, 1 / 3)) and len(share_rows(5, 2.0)) == 5
    row = {"name": "tiny", "label": "tiny", "frames": 4, "accuracy": res, "accuracy_train": {**seen, "rows": 10}}
    md = markdown({"data": "d", "n_train": n, "n_val": n, "val_scenes": ["s1"], "frames_per_clip": 4,
                   "n_vocab_triplets": len(trip), "train_share": 0.25, "variants": [row]}, "cmd")  # fmt: skip
    assert "per true class on the held-out scenes" in md and "per true class on 10 of the training clip-views" in md


def test_views_fused_average_a_clips_view_probabilities():
    """A clip whose ego view is sure and whose two exo views lean the wrong way a little is right once
    fused; a clip wrong in all views stays wrong; per class counts are per clip."""
    import pandas as pd

    from encoders.roboact.report import fused_tables
    from encoders.roboact.results import views_fused

    m = RoboActEncoder(tiny_cfg())
    a0, a1 = m.cfg.actions[:2]
    index = pd.DataFrame({"clip_id": ["c0"] * 3 + ["c1"] * 3, "view": ["ego", "exo_left", "exo_right"] * 2,
                          "action": [a0] * 3 + [a1] * 3, "subject": m.cfg.subjects[0], "object": m.cfg.objects[0]})
    k = len(m.cfg.actions)
    act = torch.full((6, k), -20.0)
    act[0, 0] = 10.0  # c0 ego: a0, sure
    act[1:3, 0], act[1:3, 1] = 0.0, 0.5  # c0 exo: a1 a little more likely (wrong per view)
    act[3:6, 0] = 5.0  # c1 (truly a1): a0 in every view
    logits = {"logits_action": act, "logits_subject": torch.zeros(6, len(m.cfg.subjects)),
              "logits_object": torch.zeros(6, len(m.cfg.objects))}
    logits["logits_subject"][:, 0] = logits["logits_object"][:, 0] = 1.0
    res = views_fused(m, index, logits)
    assert res["clips"] == 2 and res["head"]["action"] == 50.0 and res["head"]["object"] == 100.0
    assert res["per_class"]["action"] == {a0: {"acc": 100.0, "n": 1}, a1: {"acc": 0.0, "n": 1}}
    per_view = (act.argmax(-1).numpy() == np.array([0, 0, 0, 1, 1, 1])).mean() * 100
    assert per_view == pytest.approx(100 / 6)  # one clip-view of six right, one clip of two once fused
    row = {"name": "tiny", "accuracy": {"head": {"action": per_view, "subject": 100.0, "object": 100.0},
                                        "views_fused": res}}
    md = "\n".join(fused_tables([row]))
    assert "| **action**, views fused | 2 | 50.00 |" in md and f"| action: {a1} | 1 | 0.00 |" in md


def test_frozen_backbone_is_not_saved_or_trained():
    m = RoboActEncoder(tiny_cfg())
    m.backbone()
    assert not any(k.startswith("_backbone") for k in m.state_dict())
    assert all(not k.startswith(("_backbone", "_text")) for k, _ in m.named_parameters())
    assert "bank_action" in m.state_dict() and "triplets" in m.state_dict()


def test_diff_transformer_sees_frame_differences_only():
    """Eq. 6-8: adding a constant to every frame changes F_v only through F_v1 / F_vn, not Tem_vn."""
    torch.manual_seed(0)
    m = RoboActEncoder(tiny_cfg(feature_dim=5)).eval()
    x = torch.randn(2, 4, 5)
    p1 = m.in_proj(x)
    p2 = m.in_proj(x + 3.0)
    d1, d2 = p1[:, 1:] - p1[:, :-1], p2[:, 1:] - p2[:, :-1]
    assert torch.allclose(d1, d2, atol=1e-5)
    pe = sinusoidal_positions(3, 16)
    assert pe.shape == (3, 16) and torch.allclose(pe[0, 1::2], torch.ones(8))
    assert frame_indices(16, 8).tolist() == [0, 2, 4, 6, 9, 11, 13, 15]


def test_one_frame_sampler_for_every_encoder():
    # one sampler: a clip shorter than asked repeats frames (never raises), the same for InvAct
    # (sample_frames) and RoboAct-CLIP (frame_indices)
    assert frame_indices(3, 5).tolist() == [0, 0, 1, 2, 2]
    video = torch.arange(3).view(1, 3, 1, 1, 1).expand(2, 3, 3, 2, 2)
    assert sample_frames(video, 5)[0, :, 0, 0, 0].tolist() == [0, 0, 1, 2, 2]
    with pytest.raises(ValueError, match="n >= 1"):
        frame_indices(4, 0)


def test_bank_update_semantics():
    m = RoboActEncoder(tiny_cfg(branch_dim=2))
    feats = {"subject": torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 4.0]]),
             "action": torch.zeros(3, 2), "object": torch.ones(3, 2)}  # fmt: skip
    y = {"subject": torch.tensor([0, 0, 1]), "action": torch.tensor([2, 2, 2]), "object": torch.tensor([1, 1, 1])}
    m.update_banks(feats, y, momentum=0.9)
    # first fill copies the class mean
    assert m.bank_subject[0].tolist() == [2.0, 0.0] and m.bank_subject[1].tolist() == [0.0, 4.0]
    assert m.bank_action_filled.tolist() == [False, False, True, False]
    assert m.bank_object_filled.tolist() == [False, True]
    # second update: EMA for present classes, absent classes untouched
    feats2 = {"subject": torch.tensor([[12.0, 0.0]]), "action": torch.ones(1, 2), "object": torch.ones(1, 2)}
    y2 = {"subject": torch.tensor([0]), "action": torch.tensor([0]), "object": torch.tensor([1])}
    m.update_banks(feats2, y2, momentum=0.9)
    assert m.bank_subject[0].tolist() == pytest.approx([0.9 * 2 + 0.1 * 12, 0.0])
    assert m.bank_subject[1].tolist() == [0.0, 4.0]
    assert m.bank_action[0].tolist() == [1.0, 1.0]  # newly filled: copied, not blended with zeros
    assert m.bank_action_filled.tolist() == [True, False, True, False]
    # banks never build a graph
    feats3 = {k: v.clone().requires_grad_(True) for k, v in feats.items()}
    m.update_banks(feats3, y, 0.5)
    assert not m.bank_subject.requires_grad


def test_recombination_shapes_and_gradient_flow():
    m = RoboActEncoder(tiny_cfg())
    with pytest.raises(ValueError, match="never seen"):
        m.recombine("robot", "push", "red cube")
    sub, act, obj = (torch.randn(2, 8, requires_grad=True) for _ in range(3))
    out = m.recombine(sub, act, obj)
    assert out.shape == (2, 24)
    out.sum().backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in (sub, act, obj))
    assert all(p.grad is not None for p in m.recomb.parameters())
    # bank lookups by name / id / broadcast of a single class
    m.update_banks({f: torch.randn(4, 8) for f in ("subject", "action", "object")},
                   {"subject": torch.tensor([0, 1, 0, 1]), "action": torch.tensor([0, 1, 2, 3]),
                    "object": torch.tensor([0, 1, 1, 0])}, 0.9)  # fmt: skip
    r = m.recombine("robot", ["push", "pull", "lift"], torch.tensor([0, 1, 1]))
    assert r.shape == (3, 24) and not r.requires_grad or r.grad_fn is not None
    with pytest.raises(KeyError, match="unknown action"):
        m.recombine("robot", "juggle", "red cube")
    # the executor's per-step score: classifier product and cosine to the recombined triplet
    video = torch.randint(0, 255, (2, 6, 3, 32, 32), dtype=torch.uint8)
    sc = m.triplet_scores(video, "robot", "push", "red cube")
    probs = m.classify(video)
    assert torch.allclose(sc["prob"], probs["subject"][:, 0] * probs["action"][:, 0] * probs["object"][:, 0])
    assert sc["recomb_cos"].shape == (2,) and sc["recomb_cos"].abs().max() <= 1 + 1e-5
    # live batch means carry gradient into the branch features; absent classes come from the bank
    feats = torch.randn(3, 8, requires_grad=True)
    table = m.bank_or_batch("action", feats, torch.tensor([0, 0, 1]), torch.tensor([0, 1, 3]))
    assert torch.allclose(table[0], feats[:2].mean(0)) and torch.allclose(table[2], m.bank_action[3])
    table.sum().backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0
    with pytest.raises(RuntimeError, match="disentanglement"):
        RoboActEncoder(tiny_cfg(disentangle=False)).recombine("robot", "push", "red cube")


# ------------------------------------------------------------------------ end to end (tiny)
def _render(rng, bg, subject, action, obj, t, size):
    frames = np.empty((t, size, size, 3), np.uint8)
    dx, dy = MOVES[action]
    s = size // 4
    col = np.array([220, 30, 30] if obj == "red cube" else [30, 60, 230], np.uint8)
    arm = np.array([128, 128, 128] if subject == "robot" else [230, 180, 140], np.uint8)
    x0, y0 = size // 2 - s // 2 + int(rng.integers(-1, 2)), size // 2 - s // 2 + int(rng.integers(-1, 2))
    for i in range(t):
        f = bg.copy()
        x, y = int(np.clip(x0 + 2 * dx * i, 0, size - s)), int(np.clip(y0 + 2 * dy * i, 0, size - s))
        f[y : y + s, x : x + s] = col
        f[:, :3] = arm  # the "subject" strip
        frames[i] = f
    return frames


@pytest.fixture(scope="module")
def factor_world(tmp_path_factory):
    """4 scenes (val: scene3), 2 subjects x 4 actions x 2 objects, 6 frames x 32 px, one ego view.
    (robot, lower, blue ball) never occurs in train."""
    from configs.runs import atomic_write_json
    from envs.atomic_world.dataset import save_clip, write_index

    root = tmp_path_factory.mktemp("roboact") / "fw"
    rng = np.random.default_rng(0)
    rows, take = [], 0
    for sc in range(4):
        bg = rng.integers(0, 90, (32, 32, 3)).astype(np.uint8)
        for s in SUBJECTS:
            for a in ACTIONS:
                for o in OBJECTS:
                    split = "val" if sc == 3 else "train"
                    if split == "train" and (s, a, o) == ("robot", "lower", "blue ball"):
                        continue
                    path = f"clips/t{take:03d}/c0_ego.npz"
                    save_clip(root / path, _render(rng, bg, s, a, o, 6, 32))
                    rows.append({"take_id": take, "clip_id": f"t{take:03d}_c0", "view": "ego", "split": split,
                                 "scene": f"scene{sc}", "subject": s, "action": a, "object": o,
                                 "caption": f"the {s} {a}es the {o}", "keystep_id": -1, "keystep": "",
                                 "segment_index": 0, "start_frame": 0, "end_frame": 6, "path": path})  # fmt: skip
                    take += 1
    write_index(root, rows)
    atomic_write_json(root / "meta.json", {"vocab": {"subject": SUBJECTS, "action": ACTIONS, "object": OBJECTS,
                                                      "scene": [f"scene{i}" for i in range(4)]}})  # fmt: skip
    return root


def test_equal_small_frame_sizes_share_one_array(factor_world):
    """motion_size == object_size: dataset_features reads the small frames once and gives both blocks
    the same array (at 96 px on the 8x world each copy is 4 GB), and every row carries them twice."""
    m = RoboActEncoder(tiny_cfg(motion="diff", motion_size=16, motion_width=4, object_input="pixels",
                                object_width=4, object_size=16, actions=ACTIONS)).eval()
    index, feats = m.dataset_features(factor_world, "val", cache_root=factor_world.parent / "cache")
    assert len(feats.pixels) == 2 and feats.pixels[0] is feats.pixels[1]
    row, c, p = feats[:2], m.feature_dim, 3 * 16 * 16
    assert row.shape == (2, 4, c + 2 * p) and np.array_equal(row[..., c : c + p], row[..., c + p :])
    assert m.forward_features(torch.from_numpy(row))["logits_action"].shape == (2, len(ACTIONS))


def _train_cfg(root, out, steps, **kw):
    from encoders.train import TrainConfig

    d = {"method": "roboact_clip", "data": str(root), "out": str(out), "steps": steps, "lr": 3e-3, "batch_quads": 2,
         "ckpt_every": 10, "log_every": 10, "threads": 1, "cache_dir": str(root.parent / "cache"),
         "model": {"dim": 32, "heads": 2, "attn_tokens": 2, "branch_dim": 16, "depth": 1, "frames": 4, "dropout": 0.0,
                   "backbone": "pixels", "backbone_size": 16},
         "loss": {"bank_every": 2}}  # fmt: skip
    for k, v in kw.items():
        d[k] = {**d[k], **v} if isinstance(v, dict) else v
    return from_dict(TrainConfig, d, source="test")


@pytest.mark.slow
def test_train_resume_export_and_use(factor_world, tmp_path):
    from encoders.base import build_encoder
    from encoders.train import train

    out = train(_train_cfg(factor_world, tmp_path / "run", 60), progress=False)
    enc = build_encoder(str(out / "encoder"))
    assert type(enc).__name__ == "RoboActEncoder" and enc.dim == 48
    assert not any(p.requires_grad for p in enc.parameters())
    lines = (out / "metrics.jsonl").read_text().splitlines()
    import json

    first, last = json.loads(lines[0]), json.loads(lines[-1])
    assert last["loss"] < first["loss"] and {"clip", "recomb", "sim", "l2", "aux"} <= set(last)

    # held-out scene: the action head (motion direction) must be well above chance (25%)
    index, feats = enc.dataset_features(factor_world, "val", cache_root=factor_world.parent / "cache")
    probs = enc.classify_features(torch.from_numpy(feats[:]))
    y = np.array([ACTIONS.index(a) for a in index["action"]])
    assert (probs["action"].argmax(-1).numpy() == y).mean() >= 0.6

    # the API the executor uses, on raw video
    from envs.atomic_world.dataset import load_clip

    video = torch.from_numpy(np.stack([load_clip(factor_world / p) for p in index["path"][:2]])).permute(0, 1, 4, 2, 3)
    br = enc.branches(video)
    assert {k: v.shape for k, v in br.items()} == {"subject": (2, 16), "action": (2, 16), "object": (2, 16)}
    r = enc.recombine("robot", "lower", "blue ball")  # a triplet never seen together in training
    assert r.shape == (1, 48) and enc.bank_object_filled.all()
    assert enc.triplets.shape == (15, 3)

    # resume from the step-30... checkpoint reproduces the uninterrupted run
    out2 = tmp_path / "run2"
    train(_train_cfg(factor_world, out2, 30), progress=False)
    train(_train_cfg(factor_world, out2, 60, resume=True), progress=False)
    a = build_encoder(str(out / "encoder")).state_dict()
    b = build_encoder(str(out2 / "encoder")).state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-5), k


def test_method_errors_name_the_field(factor_world, tmp_path):
    from encoders.roboact.method import RoboActMethod

    with pytest.raises(ConfigError, match="lambda"):
        RoboActMethod(_train_cfg(factor_world, tmp_path / "x", 5, loss={"lambda_aux": -1.0}))
    with pytest.raises(ConfigError, match="width"):
        RoboActMethod(_train_cfg(factor_world, tmp_path / "x", 5, model={"width": 3}))


def test_batches_depend_on_seed_and_step_and_scene_swap_keeps_differences(factor_world, tmp_path):
    from encoders.roboact.method import RoboActMethod

    m = RoboActMethod(_train_cfg(factor_world, tmp_path / "x", 5, loss={"scene_swap": 1.0}))
    assert np.array_equal(m.batch(3), m.batch(3)) and not np.array_equal(m.batch(3), m.batch(4))
    rows, x = m.batch_inputs(3)
    raw = torch.from_numpy(m.feats[rows])
    assert not torch.allclose(x, raw)  # every clip moved to another scene's prototype
    assert torch.allclose(x[:, 1:] - x[:, :-1], raw[:, 1:] - raw[:, :-1], atol=1e-4)  # Eq. 6 inputs unchanged
    assert m.model.triplets.shape == (15, 3) and m.desc_text.shape == (15, 384)


@pytest.mark.slow
def test_motion_stem_trains_exports_and_generalises(factor_world, tmp_path):
    """motion "diff" end to end: pixel jitter leaves the frozen features alone, training lowers the
    loss, the export reloads with its stem, and the held-out scene's action is well above chance."""
    from encoders.base import build_encoder
    from encoders.roboact.method import RoboActMethod
    from encoders.train import train

    model = {"motion": "diff", "motion_size": 16, "motion_width": 8}
    m = RoboActMethod(_train_cfg(factor_world, tmp_path / "x", 5, model=model))
    rows, x = m.batch_inputs(3)
    c = m.model.feature_dim
    assert x.shape[-1] == c + 3 * 16 * 16 and torch.equal(x[..., :c], torch.from_numpy(m.feats[rows][..., :c]))
    assert not torch.equal(x[..., c:], torch.from_numpy(m.feats[rows][..., c:]))  # shifted / brightened small frames
    out = train(_train_cfg(factor_world, tmp_path / "run", 60, model=model), progress=False)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    import json

    assert json.loads(lines[-1])["loss"] < json.loads(lines[0])["loss"]
    enc = build_encoder(str(out / "encoder"))
    assert enc.cfg.motion == "diff" and enc.pixels == 3 * 16 * 16
    index, feats = enc.dataset_features(factor_world, "val", cache_root=factor_world.parent / "cache")
    probs = enc.classify_features(torch.from_numpy(feats[:]))
    y = np.array([ACTIONS.index(a) for a in index["action"]])
    assert (probs["action"].argmax(-1).numpy() == y).mean() >= 0.6


def test_tokens_feed_the_probes(small_world):
    """tokens(video): the Eq. 7 outputs (B, n-1, d), order-sensitive; raw/endpoints give the projected frames."""
    from encoders.probes.data import encoder_tokens
    from envs.atomic_world.dataset import read_index

    torch.manual_seed(0)
    m = RoboActEncoder(tiny_cfg()).eval()
    video = torch.randint(0, 255, (2, 6, 3, 32, 32), dtype=torch.uint8)
    assert m.tokens(video).shape == (2, 3, 16)  # frames=4 -> 3 differences, width d
    assert RoboActEncoder(tiny_cfg(temporal="raw", disentangle=False)).tokens(video).shape == (2, 4, 16)
    index = read_index(small_world, "val").iloc[:3]
    fwd = encoder_tokens(m, small_world, index, frames=4, order="correct")
    rev = encoder_tokens(m, small_world, index, frames=4, order="reverse")
    assert fwd.shape == (3, 3, 16) and not torch.allclose(fwd, rev)


def test_object_stem_batches_train_and_export(factor_world, tmp_path):
    """object_input "pixels": each frame row carries the motion frames and then the object frames;
    the jitter moves both blocks (the frozen features stay), training runs, the export reloads with
    both stems, and the object logits reach the object stem only."""
    from encoders.base import build_encoder
    from encoders.roboact.method import RoboActMethod
    from encoders.train import train

    model = {"motion": "diff", "motion_size": 16, "motion_width": 4, "action_input": "temporal",
             "object_input": "pixels", "object_size": 32, "object_width": 4}
    m = RoboActMethod(_train_cfg(factor_world, tmp_path / "x", 5, model=model, loss={"motion_tint": 0.1}))
    rows, x = m.batch_inputs(3)
    c, sl = m.model.feature_dim, m.model.pixel_slices()
    assert x.shape[-1] == c + 3 * 16 * 16 + 3 * 32 * 32 and sl["object"] == slice(c + 768, c + 768 + 3072)
    assert torch.equal(x[..., :c], torch.from_numpy(m.feats[rows][..., :c]))
    for name in ("motion", "object"):
        assert not torch.equal(x[..., sl[name]], torch.from_numpy(m.feats[rows][..., sl[name]]))
    out = train(_train_cfg(factor_world, tmp_path / "run", 20, model=model), progress=False)
    enc = build_encoder(str(out / "encoder"))
    assert enc.cfg.object_input == "pixels" and enc.pixel_sizes == {"motion": 16, "object": 32}
    index, feats = enc.dataset_features(factor_world, "val", cache_root=factor_world.parent / "cache")
    assert feats.shape[-1] == c + 768 + 3072
    probs = enc.classify_features(torch.from_numpy(feats[:]))["object"]
    assert probs.shape == (len(index), len(enc.cfg.objects))
    # the object stem is trained: a gradient of the object loss reaches it and no other pixel block
    enc.train().requires_grad_(True)  # an export is frozen
    enc.forward_features(torch.from_numpy(feats[:4]))["logits_object"].sum().backward()
    assert enc.object_stem.stem[0].weight.grad.abs().sum() > 0 and enc.motion.stem[0].weight.grad is None


def test_jitter_is_a_per_clip_roll_and_gain_of_each_ranks_frames(factor_world, tmp_path):
    """The training jitter (shift on the uint8 frames, rows joined once) equals rolling and scaling the
    joined float rows clip by clip, for each rank's part of a batch; the frozen columns are untouched."""
    from configs.training import rank_slice
    from encoders.roboact.method import RoboActMethod

    model = {"motion": "diff", "motion_size": 16, "motion_width": 4, "action_input": "temporal",
             "object_input": "pixels", "object_size": 32, "object_width": 4}
    m = RoboActMethod(_train_cfg(factor_world, tmp_path / "x", 5, model=model, loss={"motion_tint": 0.1}))
    c, full = m.model.feature_dim, m.batch(3)
    for rank in (0, 1):
        rows, x = m.batch_inputs(3, rank, 2)
        part = rank_slice(len(full), rank, 2)
        assert np.array_equal(rows, full[part])
        g, shift = m.jitter_draws(3, part, len(full))
        assert g.shape == (len(rows), 3, 1, 1) and len(np.unique(g.numpy().reshape(len(rows), 3), axis=0)) > 1
        raw = m.feats[rows]
        assert np.array_equal(x[..., :c].numpy(), raw[..., :c])
        for name, sl in m.model.pixel_slices().items():
            s = m.model.pixel_sizes[name]
            k = s / 16
            want = np.stack([np.roll(raw[i][..., sl].reshape(-1, 3, s, s), (round(dy * k), round(dx * k)), (-2, -1))
                             for i, (dy, dx) in enumerate(shift)])
            want = np.clip(want * g.numpy()[:, None], 0, 255).reshape(len(rows), -1, 3 * s * s)
            assert np.array_equal(x[..., sl].numpy(), want), name


def test_frame_rows_concatenate_only_the_rows_read():
    from encoders.roboact.frame_rows import FrameRows

    rng = np.random.default_rng(0)
    frozen = rng.normal(size=(5, 3, 4)).astype(np.float32)
    pix = [rng.integers(0, 256, (5, 3, 6), dtype=np.uint8), rng.integers(0, 256, (5, 3, 2), dtype=np.uint8)]
    rows = FrameRows(frozen, pix)
    full = np.concatenate([frozen, *(p.astype(np.float32) for p in pix)], -1)
    assert rows.shape == full.shape and len(rows) == 5 and rows.pixels[0].dtype == np.uint8
    for key in (np.array([4, 0, 2]), slice(1, 3), 3):
        assert np.array_equal(rows[key], full[key]) and rows[key].dtype == np.float32
    assert np.array_equal(np.asarray(rows), full)
    assert np.array_equal(FrameRows(frozen)[[1, 2]], frozen[[1, 2]])
    with pytest.raises(ValueError, match="pixel block"):
        FrameRows(frozen, [pix[0][:4]])
