"""Factor probes (encoders/probes/ridge.py, factors.py): dual ridge = primal ridge, scene-held-out
selection, feature forms, row roles, the report; tiny synthetic features only (no backbone, no data)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from encoders.probes.factors import FEATURES, feature_set, probe_all, select_rows, thin_fit
from encoders.probes.factors_report import markdown_report
from encoders.probes.ridge import accuracy, chance, kernel_probe, zscored_kernel


def _synthetic(m: int = 120, d: int = 40, k: int = 3, scenes: int = 4, seed: int = 0):
    """Class signal in the first k dims, a per-scene offset everywhere (the nuisance), noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, m)
    scene = rng.integers(0, scenes, m)
    x = rng.normal(0, 1, (m, d)) + 3 * rng.normal(0, 1, (scenes, d))[scene]
    x[np.arange(m), y] += 6.0
    return x.astype(np.float32), y, scene


def test_dual_ridge_equals_primal_ridge():
    x, y, _ = _synthetic()
    fit, ev = np.arange(80), np.arange(80, 120)
    p = kernel_probe(zscored_kernel(x, fit), y, 3, fit, None, {"ev": ev}, alphas=[1.0])
    mean, std = x[fit].mean(0), np.maximum(x[fit].std(0), 1e-3)
    z = (x - mean) / std
    t = -np.ones((len(fit), 3))
    t[np.arange(len(fit)), y[fit]] = 1
    d = x.shape[1]
    # primal: min ||Z W + b - T||^2 + lam * D * ||W||^2 with b = mean T (the dual's kernel is Z Z^T / D)
    w = np.linalg.solve(z[fit].T @ z[fit] + 1.0 * d * np.eye(d), z[fit].T @ (t - t.mean(0)))
    primal = (z[ev] @ w + t.mean(0)).argmax(1)
    assert (p.predictions["ev"] == primal).all()
    assert accuracy(p.predictions["ev"], y[ev]) > 0.9


def test_ridge_is_chosen_by_leave_one_group_out():
    x, y, scene = _synthetic()
    fit = np.arange(100)
    p = kernel_probe(zscored_kernel(x, fit), y, 3, fit, scene[fit], {"ev": np.arange(100, 120)},
                     alphas=[1e-3, 1.0, 1e3])
    assert set(p.cv_accuracy) == {1e-3, 1.0, 1e3}
    assert p.cv_accuracy[p.alpha] == max(p.cv_accuracy.values())
    assert set(p.predictions) == {"fit", "ev"}
    with pytest.raises(ValueError, match="groups"):
        kernel_probe(zscored_kernel(x, fit), y, 3, fit, scene[:5])
    with pytest.raises(ValueError, match="labels"):
        kernel_probe(zscored_kernel(x, fit), y + 5, 3, fit)


def test_chance():
    c = chance(np.array([0, 0, 0, 1]), 4)
    assert c == {"majority": 0.75, "uniform": 0.25}


@pytest.mark.parametrize("name", FEATURES)
def test_feature_forms(name):
    m, f, n, c = 5, 3, 4, 6
    tok = np.random.default_rng(0).normal(size=(m, f, n, c)).astype(np.float16)
    want = {"pooled_mean": c, "pooled_ends": 2 * c, "tokens_mean": n * c, "tokens_ends": 2 * n * c,
            "spatial_ends": 4 * c}[name]
    x = feature_set(name, tok)
    assert x.shape == (m, want) and x.dtype == np.float32
    if name == "pooled_mean":
        assert np.allclose(x, tok.astype(np.float32).mean((1, 2)), atol=1e-5)
    with pytest.raises(ValueError, match="features"):
        feature_set("nope", tok)


def _index(takes: int = 12) -> pd.DataFrame:
    rows = []
    for t in range(takes):
        split = "val" if t % 4 == 3 else "train"
        for v in ("ego", "exo_left"):
            rows.append({"take_id": t, "clip_id": f"t{t:05d}_c0", "view": v, "split": split,
                         "scene": f"scene_{t % 4:02d}", "subject": "robot", "action": ["push", "pull"][t % 2],
                         "object": ["cube", "ball", "mug"][t // 3 % 3], "path": f"clips/t{t:05d}/c0_{v}.npz"})
    return pd.DataFrame(rows)


def test_select_rows_roles_are_disjoint_and_split_by_take():
    rows, roles = select_rows(_index(), test_every=3, take_stride=1)
    allr = np.concatenate(list(roles.values()))
    assert sorted(allr) == list(range(len(rows)))
    assert set(rows["split"].iloc[roles["heldout_scene"]]) == {"val"}
    assert len(set(rows["take_id"].iloc[roles["train_scene_test"]])) == 9 // 3  # 9 train takes
    fit_takes = set(rows["take_id"].iloc[roles["fit"]])
    assert not fit_takes & set(rows["take_id"].iloc[roles["train_scene_test"]])
    with pytest.raises(ValueError, match="empty"):
        select_rows(_index(2), test_every=3, take_stride=1)


def test_thin_fit_keeps_the_test_sets_and_thins_only_the_fit_rows():
    rows, roles = select_rows(_index(48), test_every=3, take_stride=1)
    scenes = rows["scene"].to_numpy()
    one = thin_fit(rows, roles, scenes=1)
    assert len(set(scenes[one["fit"]])) == 1 and set(one["fit"]) < set(roles["fit"])
    assert set(scenes[one["fit"]]) < set(scenes[roles["fit"]])  # 3 training scenes, one kept
    half = thin_fit(rows, roles, take_stride=2)
    takes = rows["take_id"].to_numpy()
    n_fit = len(set(takes[roles["fit"]]))
    assert len(set(takes[half["fit"]])) == -(-n_fit // 2)
    for r in ("train_scene_test", "heldout_scene"):
        assert np.array_equal(one[r], roles[r]) and np.array_equal(half[r], roles[r])
    assert np.array_equal(thin_fit(rows, roles)["fit"], roles["fit"])
    with pytest.raises(ValueError, match="fit_scenes"):
        thin_fit(rows, roles, scenes=9)


def test_probe_all_and_report():
    rows, roles = select_rows(_index(24), test_every=3, take_stride=1)
    rng = np.random.default_rng(0)
    labels = {}
    for lab in ("action", "object"):
        vocab = sorted(set(rows[lab]))
        labels[lab] = (np.array([vocab.index(v) for v in rows[lab]]), len(vocab))
    x = np.concatenate([np.eye(2)[labels["action"][0]] * 5, np.eye(3)[labels["object"][0]] * 5,
                        rng.normal(size=(len(rows), 8))], 1).astype(np.float32)
    res = probe_all(x, rows, roles, labels, alphas=[0.1, 1.0])
    assert res["action"]["heldout_scene"] == 1.0 and res["object"]["heldout_scene"] == 1.0
    assert set(res["action"]["heldout_by_view"]) == {"ego", "exo_left"}
    result = {"rows": {r: len(v) for r, v in roles.items()},
              "chance": {lab: {r: chance(y[v], k) for r, v in roles.items() if r != "fit"}
                         for lab, (y, k) in labels.items()},
              "backbone": {"96 px": {"pooled_mean": res}}, "scene_curve": {}, "roboact": None,
              "seconds": {"total": 1.0}, "load_average": {"start": [1, 1, 1], "end": [1, 1, 1]}}
    md = markdown_report(result)
    assert "| 96 px | pooled_mean | 13 |" in md and "**100.0**" in md


def test_pair_errors():
    from encoders.probes.factors import pair_errors

    partner = {0: 1, 1: 0, 2: 3, 3: 2}
    r = pair_errors(np.array([1, 0, 2, 0]), np.array([0, 0, 2, 2]), partner)
    assert r == {"to_partner": 0.5, "pair_level": 0.75}


def test_run_factor_probes_end_to_end_on_a_small_world(small_world, tmp_path):
    """The whole command on real EfficientNet-Lite0 features: roles, probes per label, the written files."""
    import json

    from encoders.probes.factors import FactorProbeConfig, run_factor_probes

    out = tmp_path / "factors"
    cfg = FactorProbeConfig(data=str(small_world), sources=[f"{small_world}@64"], frames=2, labels=["action"],
                            features=["pooled_mean"], curve_features=["pooled_mean"], scene_counts=[2],
                            scene_draws=1, test_every=3, out=str(out), cache_dir=str(tmp_path / "cache"))
    res = run_factor_probes(cfg, log=lambda *_: None)
    (name,) = res["backbone"]
    cell = res["backbone"][name]["pooled_mean"]["action"]
    assert set(res["rows"]) == {"fit", "train_scene_test", "heldout_scene"} and 0.0 <= cell["heldout_scene"] <= 1.0
    assert json.loads((out / "results.json").read_text())["seconds"]["total"] > 0
    md = (out / "results.md").read_text()
    assert md.startswith("Rows: fit") and "Load average" in md and (out / "config.yaml").exists()
