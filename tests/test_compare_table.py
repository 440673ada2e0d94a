"""The encoder table (policies/compare.py) end to end on the tiny sizes, in the real LIBERO simulator:
a 2-task head with 1 demo per task trains and is rolled out, and a table killed in the middle of its
evaluation resumes to the same table, episode by episode."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.test_head_conditioning import _two_task_demos

REPO = Path(__file__).resolve().parents[1]


def _configs(tmp_path: Path, out: Path) -> Path:
    _two_task_demos(tmp_path / "demos")
    recipe = {"env": "libero", "suite": "libero_goal", "task": "0,7", "eval": "libero_goal:0,7", "encoder": "random",
              "demos": str(tmp_path / "demos"), "max_demos": 1, "steps": 40, "batch_size": 16, "instruction": "minilm",
              "chunk": 4, "execution": "ensemble", "loss": "l1", "norm": "standard", "feature_proj": 8,
              "frames": 1, "stride": 1, "eval_max_steps": 6, "cache_root": str(tmp_path / "cache"), "log_every": 10}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    table = {"recipe": str(tmp_path / "recipe.yaml"), "rows": {"random features": "random", "blind": "none"},
             "references": ["random"], "trials": 2, "workers": 1, "out": str(out), "progress": False, "threads": 1}
    path = tmp_path / f"table_{out.name}.yaml"
    path.write_text(yaml.safe_dump(table, sort_keys=False))
    return path


def _records(out: Path) -> dict:
    """{(row, suite, task, trial): (success, steps, actions digest)} of every episode of the table."""
    recs = {}
    for p in sorted((out / "rows").rglob("trial*.json")):
        r = json.loads(p.read_text())
        row = p.relative_to(out / "rows").parts[0]
        recs[(row, r["suite"], r["task_id"], r["trial"])] = (r["success"], r["steps"], r["actions_sha1"])
    return recs


@pytest.mark.slow
def test_two_task_table_trains_evaluates_and_resumes_after_a_kill(tmp_path: Path):
    from configs.loader import load_config
    from policies.compare import CompareConfig, compare

    # uninterrupted
    full = compare(load_config(CompareConfig, _configs(tmp_path, tmp_path / "full")))
    labels = [r["label"] for r in full["rows"]]
    assert labels == ["random actions", "random features", "blind"]
    for r in full["rows"]:
        assert set(r["cells"]) == {"libero_goal:0", "libero_goal:7"} and all(c["n"] == 2 for c in r["cells"].values())
        assert r["cpu_s"] > 0 and r["timing"]["eval"]["parts"] == 1
    head = json.loads((tmp_path / "full" / "rows" / "random_features" / "train" / "trained.json").read_text())
    assert head["config"]["max_demos"] == 1 and head["config"]["eval_episodes"] == 0
    md = (tmp_path / "full" / "results.md").read_text()
    assert "| blind | `none` |" in md and "(n=2)" in md
    a = _records(tmp_path / "full")
    assert len(a) == 12 and len({v[2] for k, v in a.items() if k[0] != "random_actions"}) > 1

    # killed once the head of the first trained row is being rolled out, then run again to the end
    cfg_b = _configs(tmp_path, tmp_path / "killed")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(REPO / "scripts" / "compare_encoders.py"), "--config", str(cfg_b)],
                            cwd=REPO, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ev = tmp_path / "killed" / "rows" / "random_features" / "eval"
    deadline = time.time() + 600
    while not list(ev.rglob("trial*.json")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = _records(tmp_path / "killed")
    assert 0 < len(partial) < 12 and not (tmp_path / "killed" / "results.json").is_file()
    # the table as it stands (run=false runs nothing): the killed row shows its n so far
    from configs.loader import load_config as _load

    now = compare(_load(CompareConfig, cfg_b, ["run=false"]))
    shown = {r["label"]: sum(c["n"] for c in r["cells"].values()) for r in now["rows"]}
    assert 0 < sum(shown.values()) == len(partial) < 12 and _records(tmp_path / "killed") == partial
    resumed = compare(load_config(CompareConfig, cfg_b))
    assert _records(tmp_path / "killed") == a
    def table(res: dict) -> list:  # everything but the timing
        return [(r["label"], {k: {f: v for f, v in c.items() if f != "episode_s"} for k, c in r["cells"].items()})
                for r in res["rows"]]

    assert table(resumed) == table(full)
    # the episodes written before the kill were kept, not rerun
    assert json.loads((tmp_path / "killed" / "rows" / "random_features" / "timing.json").read_text())["eval"]["parts"] == 1


def test_table_config_errors_are_one_line(tmp_path: Path):
    from policies.compare import CompareConfig, compare, parse_row

    with pytest.raises(FileNotFoundError, match="recipe: nope.yaml does not exist"):
        compare(CompareConfig(recipe="nope.yaml"))
    with pytest.raises(ValueError, match=r"only: \['bogus'\] name no row"):
        compare(CompareConfig(recipe=str(REPO / "configs/policy/head_libero.yaml"), only="bogus"))
    with pytest.raises(ValueError, match="not scripted or random"):
        CompareConfig(recipe=str(REPO / "configs/policy/head_libero.yaml"), references=("expert",)).validate()
    # a label holding a comma is selected whole; a comma list selects several
    cfg = CompareConfig(recipe=str(REPO / "configs/policy/head_libero.yaml"),
                        rows={"a, seed 1": "backbone_mean seed=1", "b": "none"}, only="a, seed 1")
    cfg.validate()
    assert cfg.selected() == {"a, seed 1"}
    cfg.only = "b,scripted"
    assert cfg.selected() == {"b", "scripted"}
    cfg.differences = [("b", "random actions")]  # a reference goes by its label
    cfg.validate()
    cfg.differences = [("b", "c")]
    with pytest.raises(ValueError, match="differences: 'b' - 'c' names no row"):
        cfg.validate()
    assert parse_row("runs/x/encoder frames=8 stride=2") == ("runs/x/encoder", ["frames=8", "stride=2"])
    with pytest.raises(ValueError):
        parse_row("invact frames")


def test_columns_are_the_training_tasks_then_the_held_out_ones():
    from configs.loader import load_config
    from policies.compare import columns
    from policies.train import TrainHeadConfig

    lib = load_config(TrainHeadConfig, REPO / "configs/policy/head_libero.yaml")
    names = [h for _, h in columns(lib)]
    assert names == ["T1 (libero_goal 0)", "T2 (libero_goal 5)", "T3 (libero_goal 6)", "T4 (libero_goal 7)",
                     "T5 (libero_10 7, held out)", "T6 (libero_spatial 4, held out)"]
    kit = load_config(TrainHeadConfig, REPO / "configs/policy/head_kitchen.yaml", ["task=all"])
    assert [h for _, h in columns(kit)] == ["knob", "door", "light", "micro", "slide"]


def test_a_finished_head_is_kept_when_only_a_later_field_at_its_default_is_missing(tmp_path: Path):
    """A head trained before a config field existed is the same head if the field's default keeps the old
    behaviour; a field that really differs is refused (records of two heads would mix)."""
    from configs.loader import to_dict
    from policies.compare import train_head
    from policies.train import TrainHeadConfig

    tcfg = TrainHeadConfig(env="libero", encoder="backbone_mean")
    old = {k: v for k, v in to_dict(tcfg).items() if k != "proprio"}  # written before `proprio` existed
    (tmp_path / "trained.json").write_text(json.dumps({"config": old}))
    assert train_head(tcfg, tmp_path) == tmp_path / "policy"
    tcfg.proprio = False
    with pytest.raises(ValueError, match=r"another config \(fields \['proprio'\]\)"):
        train_head(tcfg, tmp_path)


def test_differences_carry_newcombe_intervals_per_task_and_overall():
    from configs.loader import load_config
    from envs.protocol import newcombe_difference
    from policies.compare import CompareConfig, _cell, differences, markdown
    from policies.train import TrainHeadConfig

    base = load_config(TrainHeadConfig, REPO / "configs/policy/head_libero.yaml")
    cols = [("libero_goal:0", "T1"), ("libero_goal:5", "T2"), ("libero_10:7", "T5")]
    train_keys = ["libero_goal:0", "libero_goal:5"]
    rows = [{"label": "mix", "spec": "x", "cells": {"libero_goal:0": _cell(19, 50), "libero_goal:5": _cell(37, 50)}},
            {"label": "world", "spec": "y", "cells": {"libero_goal:0": _cell(8, 50), "libero_goal:5": _cell(42, 50),
                                                      "libero_10:7": _cell(0, 50)}}]
    cfg = CompareConfig(recipe=str(REPO / "configs/policy/head_libero.yaml"), rows={"mix": "x", "world": "y"},
                        differences=[("mix", "world"), ("mix", "not on disk")])
    (d,) = differences(cfg, rows, cols, train_keys)  # a pair whose row has no records yet is left out
    assert d["row"] == "mix" and d["minus"] == "world" and d["cells"]["libero_10:7"] is None
    assert d["cells"]["libero_goal:0"]["difference"] == pytest.approx(0.22)
    assert d["cells"]["libero_goal:0"]["ci95"] == pytest.approx(list(newcombe_difference(19, 50, 8, 50)))
    assert d["cells"]["overall"]["ci95"] == pytest.approx(list(newcombe_difference(56, 100, 50, 100)))
    md = markdown(cfg, base, rows, cols, train_keys, [d])
    assert "| mix - world | +22 [+5, +38] | -10 [-26, +6] | - | **+6 [-8, +19]** |" in md


def test_pools_sum_finished_seeds_only_and_can_be_differenced():
    from configs.loader import load_config
    from envs.protocol import newcombe_difference, wilson_interval
    from policies.compare import CompareConfig, _cell, differences, markdown, pools
    from policies.train import TrainHeadConfig

    base = load_config(TrainHeadConfig, REPO / "configs/policy/head_libero.yaml")
    cols = [("libero_goal:0", "T1"), ("libero_goal:5", "T2"), ("libero_10:7", "T5")]
    train_keys = ["libero_goal:0", "libero_goal:5"]
    rows = [{"label": "a", "spec": "x", "cells": {"libero_goal:0": _cell(40, 50), "libero_goal:5": _cell(45, 50),
                                                  "libero_10:7": _cell(1, 50)}},
            {"label": "a, seed 1", "spec": "x seed=1", "cells": {"libero_goal:0": _cell(30, 50),
                                                                "libero_goal:5": _cell(47, 50)}},
            # seed 2 stopped inside T2: it must not join the pool (its T1 would outweigh its T2)
            {"label": "a, seed 2", "spec": "x seed=2", "cells": {"libero_goal:0": _cell(50, 50),
                                                                "libero_goal:5": _cell(3, 10)}},
            {"label": "b", "spec": "y", "cells": {"libero_goal:0": _cell(20, 50), "libero_goal:5": _cell(40, 50)}}]
    cfg = CompareConfig(recipe=str(REPO / "configs/policy/head_libero.yaml"),
                        rows={r["label"]: r["spec"] for r in rows},
                        pools={"a, seeds": ["a", "a, seed 1", "a, seed 2"], "b, seeds": ["b"]},
                        differences=[("a, seeds", "b, seeds")])
    cfg.validate()
    pa, pb = pools(cfg, rows, train_keys)
    assert pa["members"] == ["a", "a, seed 1"] and pa["pending"] == ["a, seed 2"]
    assert pa["cells"]["libero_goal:0"] == _cell(70, 100) and pa["cells"]["libero_10:7"] == _cell(1, 50)
    assert pa["overall"]["successes"] == 162 and pa["overall"]["n"] == 200
    assert pa["overall"]["ci95"] == pytest.approx(list(wilson_interval(162, 200)))
    assert pa["member_overall"] == pytest.approx([0.85, 0.77])
    (d,) = differences(cfg, rows + [pa, pb], cols, train_keys)
    assert d["cells"]["overall"]["ci95"] == pytest.approx(list(newcombe_difference(162, 200, 60, 100)))
    md = markdown(cfg, base, rows, cols, train_keys, [d], [pa, pb])
    assert "| a, seeds | a (85.0), a, seed 1 (77.0); pending: a, seed 2 |" in md
    assert "| a, seeds - b, seeds |" in md
    cfg.pools = {"a": ["b"]}
    with pytest.raises(ValueError, match="pools: 'a' is already a row label"):
        cfg.validate()
    cfg.pools = {"c": ["b", "nope"]}
    with pytest.raises(ValueError, match=r"pools.c: \['nope'\] names no row"):
        cfg.validate()
