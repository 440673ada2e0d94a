"""vla.compare (scripts/compare_vla_pretraining.py) on the tiny VLA: a 2-variant comparison (none + a random
encoder, 1 LIBERO episode of 5 steps each) writes the table and skips finished variants on rerun."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def tiny_cfg(tmp: Path, **kw):
    from configs.loader import load_config
    from vla.compare import CompareConfig

    ovs = [f"data={tmp / 'aw'}", f"demos={tmp / 'demos'}", f"out={tmp / 'cmp'}"] + [f"{k}={v}" for k, v in kw.items()]
    return load_config(CompareConfig, REPO / "configs" / "vla" / "compare_tiny.yaml", ovs)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    from test_vla_pipeline import make_clip_index, make_demos

    tmp = tmp_path_factory.mktemp("cmp")
    make_clip_index(tmp / "aw")
    make_demos(tmp / "demos", files=1, demos=3)
    return tmp


def test_two_variants_table_and_skip_on_rerun(inputs, monkeypatch):
    import vla.compare as C
    import vla.posttrain
    import vla.pretrain

    cfg = tiny_cfg(inputs)
    rows = C.compare(cfg)
    out = Path(cfg.out)
    assert [r["variant"] for r in rows] == ["none", "random"]
    assert rows[0]["source"] == "none" and "stage2_loss" not in rows[0]
    assert rows[1]["latent_dim"] == 16 and rows[1]["stage2_loss_kind"] == "cosine"
    for r in rows:
        assert r["overall"]["n"] == 1 and r["overall"]["errors"] == 0
        assert r["evals"][0]["tasks"][0]["task_id"] == 7 and r["heldout_l1_norm"] > 0
    md = (out / "compare.md").read_text()
    assert "| none |" in md and "| random |" in md and "goal 7" in md and "95% CI" in md
    assert "intervals overlap" in md  # 1 episode each: nothing can be resolved
    assert json.loads((out / "compare.json").read_text())["rows"][1]["variant"] == "random"
    assert (out / "compare.png").stat().st_size > 1000 and (out / "config.yaml").is_file()
    assert not (out / "none" / "pretrain").exists() and (out / "random" / "pretrain" / "stage2").is_dir()

    # rerun: both variants finished with the same config hash -> nothing trains or evaluates again
    fail = lambda *a, **k: pytest.fail("a finished variant was redone")  # noqa: E731
    monkeypatch.setattr(vla.pretrain, "train", fail)
    monkeypatch.setattr(vla.posttrain, "train", fail)
    monkeypatch.setattr(C, "run_variant", fail)
    again = C.compare(tiny_cfg(inputs))
    assert [r["config_hash"] for r in again] == [r["config_hash"] for r in rows]

    # held-out L1 per window (both variants on the same windows), its demo-bootstrap interval and the
    # paired difference from none; a row written without them is rescored from its stage-3 run
    r1 = rows[1]
    assert len(r1["heldout_l1_norm_per_window"]) == len(r1["heldout_window_demo"]) > 0
    assert r1["heldout_window_demo"] == rows[0]["heldout_window_demo"]
    lo, hi = r1["heldout_l1_norm_ci95"]
    assert lo <= r1["heldout_l1_norm"] + 1e-5 and r1["heldout_l1_norm"] <= hi + 1e-5  # per-window values: 6 decimals
    assert "vs none [95% CI]" in (out / "compare.md").read_text()
    f = out / "random" / C.RESULT_FILE
    stripped = {k: v for k, v in json.loads(f.read_text()).items()
                if not k.endswith(("_per_window", "_window_demo", "_ci95"))}
    f.write_text(json.dumps(stripped))
    again = C.compare(tiny_cfg(inputs))
    assert again[1]["heldout_l1_norm_per_window"] == pytest.approx(r1["heldout_l1_norm_per_window"], abs=1e-5)
    assert "heldout_l1_norm_per_window" in json.loads(f.read_text())

    # results=PATH copies the table out; notes below the marker survive a regeneration
    res = inputs / "docs" / "vla_compare"
    C.write_outputs(tiny_cfg(inputs, results=res), rows, "python cmd")
    md = res.with_suffix(".md")
    md.write_text(md.read_text() + C.NOTES_MARK + "\nhand-written note\n")
    C.write_outputs(tiny_cfg(inputs, results=res), rows, "python cmd")
    assert "hand-written note" in md.read_text() and "python cmd" in md.read_text()
    assert res.with_suffix(".json").is_file() and res.with_suffix(".png").is_file()

    # a changed stage-3 budget changes every variant's hash (both would rerun)
    src = C.encoder_source(cfg, "random")
    assert C.variant_hash(tiny_cfg(inputs, **{"posttrain.steps": 3}), "random", src) != rows[1]["config_hash"]


def test_bad_input_is_one_clear_error(inputs, tmp_path):
    import vla.compare as C

    with pytest.raises(ValueError, match="no_such_encoder"):
        C.compare(tiny_cfg(inputs, variants="none,no_such_encoder", out=tmp_path / "a"))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        C.compare(tiny_cfg(inputs, demos=tmp_path / "nowhere", out=tmp_path / "b"))
    with pytest.raises(FileNotFoundError, match="not an exported encoder"):
        C.compare(tiny_cfg(inputs, variants=f"none,{tmp_path}", out=tmp_path / "c"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_changed_config_retires_stale_stage_folders(tmp_path):
    """Stage 2/3 resume and the evaluator's episode cache must not reuse runs of another config."""
    import vla.compare as C

    v = tmp_path / "laq"
    for d in ("encoder_run", "latents", "pretrain", "posttrain", "eval_libero_goal"):
        (v / d).mkdir(parents=True)
    (v / "variant.json").write_text(json.dumps({"config_hash": "old", "encoder_key": "enc"}))
    C.retire_stale(v, "old", "enc")  # same config: untouched
    assert (v / "posttrain").is_dir()
    C.retire_stale(v, "new", "enc")  # stage 2/3 budget changed, encoder not
    assert sorted(p.name for p in v.iterdir()) == ["encoder_run", "latents", "variant.json"]
    assert sorted(p.name for p in (tmp_path / "laq.stale-old").iterdir()) == ["eval_libero_goal", "posttrain", "pretrain"]
    C.retire_stale(v, "newer", "other-encoder")  # the encoder changed too
    assert not (v / "encoder_run").exists() and (v / "latents").is_dir()


@pytest.mark.slow
def test_workers_run_variants_in_parallel_processes(inputs, tmp_path):
    """workers=2: the two unfinished variants run in two child processes into one `out`; the parent
    then finds both finished and writes the table (and a rerun starts no worker)."""
    import vla.compare as C

    cfg = tiny_cfg(inputs, out=tmp_path / "par", workers=2)
    rows = C.compare(cfg)
    out = Path(cfg.out)
    assert [r["variant"] for r in rows] == ["none", "random"]
    logs = sorted(out.glob("worker_*.log"))
    assert [p.name for p in logs] == ["worker_0.log", "worker_1.log"]
    assert "[1/1] none" in logs[0].read_text() and "[1/1] random" in logs[1].read_text()
    assert "| none |" in (out / "compare.md").read_text() and "| random |" in (out / "compare.md").read_text()
    assert "variants:\n- none\n- random" in (out / "config.yaml").read_text().replace("'", "")
    for p in logs:
        p.unlink()
    C.compare(tiny_cfg(inputs, out=tmp_path / "par", workers=2))
    assert not list(out.glob("worker_*.log"))
    with pytest.raises(ValueError, match="workers"):
        tiny_cfg(inputs, workers=0).validate()


def test_demo_bootstrap_and_paired_difference():
    import numpy as np

    from vla.heldout import demo_bootstrap, paired_difference

    demos = np.repeat(np.arange(5), 4)
    vals = np.repeat([0.1, 0.2, 0.3, 0.4, 0.5], 4)
    lo, hi = demo_bootstrap(vals, demos)
    assert 0.1 <= lo < 0.3 < hi <= 0.5
    assert demo_bootstrap(np.full(20, 0.2), demos) == pytest.approx([0.2, 0.2])
    with pytest.raises(ValueError, match="demo_bootstrap"):
        demo_bootstrap(vals, demos[:3])
    ref = {"heldout_l1_norm_per_window": vals.tolist(), "heldout_window_demo": demos.tolist()}
    better = {"heldout_l1_norm_per_window": (vals - 0.05).tolist(), "heldout_window_demo": demos.tolist()}
    d = paired_difference(better, ref)
    assert d["mean"] == pytest.approx(-0.05) and d["resolved"] and d["ci95"][1] < 0
    noisy = {"heldout_l1_norm_per_window": (vals + np.tile([0.1, -0.1], 10)).tolist(), "heldout_window_demo": demos.tolist()}
    assert not paired_difference(noisy, ref)["resolved"]
    assert paired_difference({"heldout_l1_norm": 0.3}, ref) is None
