"""End-to-end retrieval benchmark CLI on a tiny on-disk dataset."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from encoders import build_encoder
from encoders.evaluate import main
from envs.atomic_world.toy import make_toy_dataset

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy_dataset(tmp_path_factory.mktemp("toy"), scenes=3, takes_per_scene=2, frames=5, size=32)


@pytest.mark.slow
def test_compare_table_json_layout_and_plots(toy, tmp_path, capsys):
    saved = build_encoder("backbone_mean", backbone="pixels").save_pretrained(tmp_path / "pix_mean")
    out = tmp_path / "cmp" / "results.json"
    final = main(["--data", str(toy), "--split", "val", "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
                  "--compare", "random", "flow_mean", str(saved), "tsne_max=40"])
    printed = capsys.readouterr().out
    assert "| random " in printed and "| flow_mean " in printed and "| pix_mean " in printed
    assert max(len(line) for line in printed.splitlines() if not line.startswith("wrote")) <= 100
    assert "other subject" not in printed  # the toy world has one subject: no cross-subject table
    data = json.loads(out.read_text())
    assert data == json.loads(json.dumps(final))
    assert data["encoders"] == ["random", "flow_mean", "pix_mean"]
    by = {r["encoder"]: r for r in data["compare"]}
    for r in by.values():
        assert r["n_queries"] == 3 * 2 * 5 * 2
        for level in ("atomic", "keystep"):
            for setting, pairs in (("cross_scene", ("g2g", "x2x", "avg")), ("cross_view", ("g2x", "x2g", "avg")),
                                   ("all_scenes", ("g2g", "x2x", "g2x", "x2g", "avg"))):
                for p in pairs:
                    for k in (1, 5, 10):
                        v = r[level][setting][p][f"hit@{k}"]
                        assert 0.0 <= v <= 100.0
            assert r[level]["cross_subject"]["avg"]["n_queries"] == 0
        assert 0.0 <= r["same_scene_fraction"]["@10"] <= 1.0
        assert all(Path(p).is_file() for p in r["plots"])
    # the toy world's verbs are motions: flow beats chance cross-scene; raw pixels retrieve by scene
    assert by["flow_mean"]["atomic"]["cross_scene"]["g2g"]["hit@1"] > by["random"]["atomic"]["cross_scene"]["g2g"]["hit@1"] + 30
    assert by["pix_mean"]["same_scene_fraction"]["@1"] > 0.9 > by["flow_mean"]["same_scene_fraction"]["@1"]
    plots = out.parent / "results_plots"
    assert {"same_scene_fraction.png", "tsne_flow_mean_scene.png", "tsne_flow_mean_verb.png"} <= {p.name for p in plots.iterdir()}
    cfg = yaml.safe_load((out.parent / "results.config.yaml").read_text())
    assert cfg["compare"] == ["random", "flow_mean", str(saved)] and cfg["tsne_max"] == 40


@pytest.mark.slow
def test_cli_script_single_encoder(toy, tmp_path):
    out = tmp_path / "r.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "encoders" / "evaluate.py"), "--encoder", "random", "--data", str(toy),
         "--split", "val", "--out", str(out), "--seed", "3", "plots=false"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    res = json.loads(out.read_text())
    assert res["encoder"] == "random" and res["n_queries"] == 60
    assert set(res["atomic"]) == {"cross_scene", "cross_view", "all_scenes", "cross_subject"}
    head = next(line for line in proc.stdout.splitlines() if line.startswith("| encoder"))
    assert [c.strip() for c in head.strip("|").split("|")][1:4] == ["@1", "@5", "@10"]  # hit@1 leads
    assert max(len(line) for line in proc.stdout.splitlines() if not line.startswith("wrote")) <= 100


def test_cli_bad_inputs_name_the_problem(toy, tmp_path):
    with pytest.raises(KeyError, match="unknown encoder 'nope'"):
        main(["--encoder", "nope", "--data", str(toy), "--out", str(tmp_path / "x.json"), "plots=false"])
    with pytest.raises(FileNotFoundError, match="nodata: dataset folder does not exist"):
        main(["--encoder", "random", "--data", str(tmp_path / "nodata"), "--out", str(tmp_path / "y.json")])
    with pytest.raises(ValueError, match="split='test'"):
        main(["--encoder", "random", "--data", str(toy), "--split", "test", "--out", str(tmp_path / "z.json")])
    with pytest.raises(SystemExit):  # argparse error: 'data' is required
        main(["--encoder", "random"])
