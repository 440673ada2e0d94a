"""Retrieval metrics on hand-built embeddings where the right answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from encoders.benchmark.retrieval import (
    evaluate_index,
    evaluate_retrieval,
    hit_rates,
    keystep_embeddings,
    l2_normalize,
    ranked_gallery,
    same_scene_curve,
)


def unit(*angles_deg: float) -> np.ndarray:
    a = np.deg2rad(np.asarray(angles_deg, dtype=float))
    return np.stack([np.cos(a), np.sin(a)], 1).astype(np.float32)


def test_ranked_gallery_orders_by_cosine_and_respects_exclusion():
    q = unit(0)
    g = unit(10, 50, 5, 90) * np.array([[3.0], [1.0], [0.5], [2.0]], dtype=np.float32)  # norms must not matter
    excl = np.zeros((1, 4), bool)
    order, valid = ranked_gallery(q, g, excl, 4)
    assert order.tolist() == [[2, 0, 1, 3]]
    assert valid.all()
    excl[0, 2] = True
    order, valid = ranked_gallery(q, g, excl, 4)
    assert order[0, :3].tolist() == [0, 1, 3]
    assert valid.tolist() == [[True, True, True, False]]


def test_hit_rates_any_of_topk_and_empty_galleries_skipped():
    order = np.array([[0, 1, 2], [2, 1, 0], [0, 1, 2]])
    valid = np.array([[True, True, True], [True, True, True], [False, False, False]])
    g_labels = np.array([5, 6, 7])
    q_labels = np.array([6, 9, 5])
    hits, n = hit_rates(order, valid, q_labels, g_labels, (1, 2, 3))
    assert n == 2  # the third query has no allowed gallery item: not counted
    assert hits == {"hit@1": 0.0, "hit@2": 50.0, "hit@3": 50.0}


def test_cross_scene_verb_hits_known_answer():
    # 4 ego clips: scene A (cut, pour), scene B (cut, pour). Embeddings put each clip closest to the
    # other clip of its own scene (scene bias), second closest to the same verb in the other scene.
    emb = unit(0, 20, 50, 70)  # A-cut, A-pour, B-cut, B-pour
    verbs = ["cut", "pour", "cut", "pour"]
    scenes = ["A", "A", "B", "B"]
    ego = [True] * 4
    twins = ["a", "b", "c", "d"]
    res = evaluate_retrieval(emb, verbs, scenes, ego, twins, ks=(1, 2))
    # cross-scene: gallery of A-cut is {B-cut, B-pour}; nearest B item to 0 deg is B-cut (50 deg) -> hit
    # A-pour (20): nearest B is B-cut (50) -> miss; B-cut (50): nearest A is A-pour (20) -> miss;
    # B-pour (70): nearest A is A-pour (20) -> hit
    assert res["cross_scene"]["g2g"]["hit@1"] == pytest.approx(50.0)
    assert res["cross_scene"]["g2g"]["hit@2"] == pytest.approx(100.0)
    # all-scenes: the nearest item is always the other clip of the same scene (a different verb) -> 0 hits@1
    assert res["all_scenes"]["g2g"]["hit@1"] == pytest.approx(0.0)
    # and it is always from the query's scene
    assert res["same_scene_fraction"]["@1"] == pytest.approx(1.0)
    # gallery of 3 (all minus self): @10 covers the whole gallery, 1 of 3 from the query's scene
    assert evaluate_retrieval(emb, verbs, scenes, ego, twins, ks=(10,))["same_scene_fraction"]["@10"] == pytest.approx(1 / 3)
    # no exo items: those pairs report 0 queries and NaN, the avg falls back to the defined pairs
    assert res["cross_scene"]["x2x"]["n_queries"] == 0
    assert res["cross_scene"]["avg"]["hit@1"] == pytest.approx(50.0)


def test_cross_view_twin_exclusion_changes_the_answer():
    # ego q0 (cut) has exo twin x0 (cut) identical to it; other exo items: x1 pour (close), x2 cut (far).
    emb = np.concatenate([unit(0), unit(0), unit(10), unit(80)])
    verbs = ["cut", "cut", "pour", "cut"]
    scenes = ["A", "A", "A", "B"]
    ego = [True, False, False, False]
    twins = ["m0", "m0", "m1", "m2"]
    res = evaluate_retrieval(emb, verbs, scenes, ego, twins, ks=(1, 2))
    # without twin exclusion hit@1 would be 100 (the twin); with it the nearest is x1 (pour) -> miss
    assert res["cross_view"]["g2x"]["hit@1"] == 0.0
    assert res["cross_view"]["g2x"]["hit@2"] == 100.0
    assert res["cross_view"]["g2x"]["n_queries"] == 1


def test_same_scene_curve():
    order = np.array([[0, 1, 2, 3]])
    valid = np.array([[True, True, True, True]])
    g_scene = np.array([1, 0, 1, 1])
    curve = same_scene_curve(order, valid, np.array([1]), g_scene)
    assert curve.tolist() == pytest.approx([1.0, 0.5, 2 / 3, 0.75])


def test_keystep_embedding_is_mean_of_atomic_clips_and_standalone_clips_dropped():
    index = pd.DataFrame({
        "take_id": ["t", "t", "t", "t"], "clip_id": [0, 1, 2, 3], "view": ["ego"] * 4,
        "scene": ["A"] * 4, "action": ["cut", "pour", "stir", "cut"],
        "keystep_id": [0, 0, -1, 1], "keystep": ["prep", "prep", "", "finish"],
    })
    emb = np.array([[1, 0], [0, 1], [5, 5], [2, 0]], np.float32)
    kidx, kemb = keystep_embeddings(index, emb)
    assert kidx["keystep"].tolist() == ["prep", "finish"]
    assert kidx["n_clips"].tolist() == [2, 1]
    assert kemb[0] == pytest.approx([0.5, 0.5])  # mean of unit vectors (1,0) and (0,1)
    assert kemb[1] == pytest.approx([1.0, 0.0])


def test_evaluate_index_keystep_levels_and_twins():
    rows = []
    for scene, take in (("A", "t0"), ("B", "t1")):
        for view in ("ego", "exo_left"):
            for clip, (ks, name, verb) in enumerate([(0, "prep", "cut"), (0, "prep", "pour"), (1, "serve", "lift")]):
                rows.append(dict(take_id=take, clip_id=clip, view=view, scene=scene, action=verb,
                                 keystep_id=ks, keystep=name))
    index = pd.DataFrame(rows)
    # embedding = verb one-hot: a perfect action encoder
    emb = pd.get_dummies(index["action"]).to_numpy(np.float32)
    res = evaluate_index(index, emb, lambda v: v == "ego", ks=(1,))
    assert res["n_keysteps"] == 8  # 2 takes x 2 views x 2 keysteps
    for level in ("atomic", "keystep"):
        for setting, pair in (("cross_scene", "g2g"), ("cross_scene", "x2x"), ("cross_view", "g2x"), ("cross_view", "x2g")):
            assert res[level][setting][pair]["hit@1"] == 100.0, (level, setting, pair)
    # perfect verb encoder in all-scenes: top-1 is the same verb from the other scene or other view
    assert res["atomic"]["all_scenes"]["avg"]["hit@1"] == 100.0


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="scenes has 2 entries"):
        evaluate_retrieval(np.zeros((3, 2)), ["a"] * 3, ["s"] * 2, [True] * 3, ["t"] * 3)
    with pytest.raises(ValueError, match="NaN"):
        evaluate_retrieval(np.full((3, 2), np.nan), ["a"] * 3, ["s"] * 3, [True] * 3, list("abc"))
    with pytest.raises(ValueError, match="equal D"):
        ranked_gallery(np.zeros((1, 2)), np.zeros((2, 3)), np.zeros((1, 2), bool), 1)


def test_ranked_gallery_partial_selection_matches_full_sort():
    rng = np.random.default_rng(0)
    q, g = rng.normal(size=(37, 8)), rng.normal(size=(101, 8))
    excl = rng.random((37, 101)) < 0.3
    order, valid = ranked_gallery(q, g, excl, 10, chunk=8)
    sim = l2_normalize(q) @ l2_normalize(g).T
    sim[excl] = -np.inf
    ref = np.argsort(-sim, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(order, ref)
    assert valid.all()
    assert not np.isin(order, np.flatnonzero(excl[0]))[0].any()


def test_chance_level_matches_random_rankings():
    from encoders.benchmark.retrieval import chance_hit_rates

    rng = np.random.default_rng(0)
    q = rng.integers(0, 3, 40)
    g = rng.integers(0, 3, 30)
    excl = rng.random((40, 30)) < 0.3
    exact = chance_hit_rates(excl, q, g, (1, 5))
    # Monte Carlo over random rankings of each query's allowed gallery
    hits = {1: [], 5: []}
    for _ in range(400):
        for i in range(40):
            allowed = np.flatnonzero(~excl[i])
            perm = rng.permutation(allowed)
            for k in (1, 5):
                hits[k].append((g[perm[:k]] == q[i]).any())
    for k in (1, 5):
        assert abs(100 * np.mean(hits[k]) - exact[f"chance@{k}"]) < 2.0
