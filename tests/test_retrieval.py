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


# ------------------------------------------------------------------------------- cross-subject
def _subject_index(takes_per_subject: int = 3) -> pd.DataFrame:
    """Human and robot takes in two scenes, ego + exo views, verbs cycle over 3."""
    rows, verbs = [], ["cut", "pour", "stir"]
    for s, subject in enumerate(("human", "robot")):
        for t in range(takes_per_subject):
            take = 10 * s + t
            for clip in range(2):
                for view in ("ego", "exo_left"):
                    rows.append(dict(take_id=take, clip_id=clip, view=view, scene=f"S{t % 2}", subject=subject,
                                     action=verbs[(t + clip) % 3], keystep_id=-1, keystep=""))
    return pd.DataFrame(rows)


def test_cross_subject_gallery_is_the_other_subject_same_camera_kind_never_the_own_take():
    from encoders.benchmark.retrieval import SUBJECT_PAIRS, setting_gallery

    rng = np.random.default_rng(0)
    m = 60
    ego = rng.random(m) < 0.5
    subject = rng.choice(np.array(["human", "robot"], dtype=object), m)  # subjects mixed inside takes on purpose
    take = rng.integers(0, 6, m)
    scene, twin = rng.integers(0, 3, m), np.arange(m)
    for pair, (q_subj, g_subj, views) in SUBJECT_PAIRS.items():
        qi, gi, excl = setting_gallery("cross_subject", pair, ego, scene, twin, subject, take)
        assert len(qi) and len(gi)
        assert (subject[qi] == q_subj).all() and (subject[gi] == g_subj).all()
        assert (ego[qi] == (views[0] == "g")).all() and (ego[gi] == (views[2] == "g")).all()
        allowed = ~excl
        assert not (allowed & (take[qi][:, None] == take[gi][None, :])).any()  # never the query's own take
        assert allowed[take[qi][:, None] != take[gi][None, :]].all()  # every other take is in the gallery


def test_cross_subject_own_take_is_never_a_hit():
    # human ego query "cut" in take 0; the nearest robot clip is also in take 0 (a same-verb "cut"):
    # counted it would be a hit@1; the robot clips of other takes are "pour" (near) then "cut" (far)
    emb = unit(0, 1, 10, 80)
    verbs = ["cut", "cut", "pour", "cut"]
    subjects = ["human", "robot", "robot", "robot"]
    takes = [0, 0, 1, 2]
    res = evaluate_retrieval(emb, verbs, ["A"] * 4, [True] * 4, ["a", "b", "c", "d"], ks=(1, 2),
                             subjects=subjects, takes=takes)
    h2r = res["cross_subject"]["h2r_g2g"]
    assert h2r["n_queries"] == 1 and h2r["hit@1"] == 0.0 and h2r["hit@2"] == 100.0
    # chance over the allowed gallery {pour, cut}: 1 of 2 at k=1, certain at k=2
    assert h2r["chance@1"] == pytest.approx(50.0) and h2r["chance@2"] == pytest.approx(100.0)
    # robot queries see the one human clip: r2h hits where the verb is "cut" unless it is the own take
    r2h = res["cross_subject"]["r2h_g2g"]
    assert r2h["n_queries"] == 2  # take 0's robot clip has no gallery left (its only human clip is its own take)
    assert r2h["hit@1"] == pytest.approx(50.0) and r2h["chance@1"] == pytest.approx(50.0)
    assert res["cross_subject"]["r2h_x2x"]["n_queries"] == 0  # no exo items
    assert res["cross_subject"]["r2h"]["hit@1"] == pytest.approx(50.0)  # mean over defined camera pairs


def test_cross_subject_chance_counts_positives_in_the_other_subject_only():
    from encoders.benchmark.retrieval import chance_hit_rates, setting_gallery

    index = _subject_index()
    res = evaluate_index(index, np.random.default_rng(1).normal(size=(len(index), 8)), lambda v: v == "ego", ks=(1, 2))
    ego = index["view"].eq("ego").to_numpy()
    verb = pd.factorize(index["action"])[0]
    subject = index["subject"].to_numpy(dtype=object)
    take = index["take_id"].to_numpy()
    # by hand: every robot gallery holds 6 ego clips (3 takes x 2), each verb twice -> P(hit@1) = 2/6
    assert res["atomic"]["cross_subject"]["h2r_g2g"]["chance@1"] == pytest.approx(100 / 3)
    assert res["atomic"]["cross_subject"]["h2r_g2g"]["chance@2"] == pytest.approx(100 * (1 - (4 / 6) * (3 / 5)))
    assert res["atomic"]["cross_subject"]["h2r_g2g"]["n_queries"] == 6
    qi, gi, excl = setting_gallery("cross_subject", "r2h_x2x", ego, index["scene"].to_numpy(), np.arange(len(index)),
                                   subject, take)
    assert res["atomic"]["cross_subject"]["r2h_x2x"]["chance@1"] == pytest.approx(
        chance_hit_rates(excl, verb[qi], verb[gi], (1,))["chance@1"])


def test_cross_subject_perfect_verb_encoder_and_no_subject_column():
    index = _subject_index()
    emb = pd.get_dummies(index["action"]).to_numpy(np.float32)
    res = evaluate_index(index, emb, lambda v: v == "ego", ks=(1,))
    cs = res["atomic"]["cross_subject"]
    for key in ("h2r_g2g", "h2r_x2x", "r2h_g2g", "r2h_x2x", "h2r", "r2h", "avg"):
        assert cs[key]["hit@1"] == 100.0, key
    assert cs["avg"]["n_queries"] == len(index)
    # a dataset without subjects (LIBERO segments are all robot; the toy world has none): no queries
    res = evaluate_index(index.drop(columns="subject"), emb, lambda v: v == "ego", ks=(1,))
    assert res["atomic"]["cross_subject"]["avg"]["n_queries"] == 0
    assert np.isnan(res["atomic"]["cross_subject"]["avg"]["hit@1"])


# ------------------------------------------------------------------------------------ tables
def _table_results(labels: list[str], ks=(1, 5, 10)) -> list[dict]:
    index = _subject_index()
    index["keystep_id"] = 0  # every take is one keystep of its two clips
    index["keystep"] = "prep"
    out = []
    for i, label in enumerate(labels):
        emb = np.random.default_rng(i).normal(size=(len(index), 8))
        scores = evaluate_index(index, emb, lambda v: v == "ego", ks)
        out.append({"encoder": label, "atomic": scores["atomic"], "keystep": scores["keystep"],
                    "same_scene_fraction": scores["atomic"]["same_scene_fraction"]})
    return out


def test_table_leads_with_hit1_fits_100_columns_and_prints_chance():
    from encoders.benchmark.tables import WIDTH, markdown_table

    labels = ["invact", "backbone_mean", "a_very_long_run_name_from_some_experiment_folder"]
    for ks in ((1, 5, 10), (10, 1, 5, 20, 50), (1,)):
        text = markdown_table(_table_results(labels, ks), ks)
        lines = text.splitlines()
        assert max(len(line) for line in lines) <= WIDTH, max(lines, key=len)
        heads = [line for line in lines if line.startswith("| encoder")]
        assert len(heads) == 4  # other scene, other view, other subject, same-scene share
        for head in heads:
            cells = [c.strip() for c in head.strip("|").split("|")]
            assert cells[1] == "@1"  # hit@1 leads
            if len(ks) > 1:
                assert cells[2] == "@5" and cells[3] == "@10"
        assert "h→r ego" in text and "r→h exo" in text and text.count("| *chance*") == 3
    assert "whole in the JSON" in text and "hit@20, hit@50: in the JSON only" in markdown_table(
        _table_results(labels[:1], (1, 5, 10, 20, 50)), (1, 5, 10, 20, 50))


def test_table_chance_row_is_the_results_chance():
    from encoders.benchmark.tables import markdown_table

    results = _table_results(["invact"])
    lines = markdown_table(results, (1, 5, 10)).splitlines()
    start = lines.index("other subject: gallery = human queries vs robot clips (h→r) and back (r→h), own take excluded")
    chance = next(line for line in lines[start:] if line.startswith("| *chance*"))
    cells = [c.strip() for c in chance.strip("|").split("|")]
    cs = results[0]["atomic"]["cross_subject"]
    assert cells[1] == f"{cs['avg']['chance@1']:.1f}" and cells[3] == f"{cs['avg']['chance@10']:.1f}"
    assert cells[4] == f"{cs['h2r_g2g']['chance@1']:.1f}" and cells[7] == f"{cs['r2h_x2x']['chance@1']:.1f}"
    # a setting without queries in any result is left out (toy worlds, LIBERO segments)
    for r in results:
        for level in ("atomic", "keystep"):
            for v in r[level]["cross_subject"].values():
                v["n_queries"] = 0
    assert "other subject" not in markdown_table(results, (1,))
