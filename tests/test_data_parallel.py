"""Data-parallel training is real: 2 CPU processes (gloo) split each batch and stay in sync.

Also: the shared training loop's checkpoint helpers, thread sizing, and rank slicing."""

import json

import pytest
import yaml
from dist_launch import REPO, launch_cpu

from configs.training import rank_slice


def _tiny_invact(data, out, cache, **kw) -> dict:
    return {"method": "invact", "data": str(data), "out": str(out), "steps": 3, "batch_quads": 2, "lr": 2e-3,
            "log_every": 1, "ckpt_every": 3, "cache_dir": str(cache), "seed": 3,
            "model": {"dim": 32, "heads": 2, "depth": 1, "flow_size": 16, "backbone_size": 32}, **kw}


@pytest.mark.slow
def test_two_processes_split_the_batch_and_stay_in_sync(small_world, tmp_path):
    cfg_path = tmp_path / "cfg.yaml"
    out = tmp_path / "run"
    cfg_path.write_text(yaml.safe_dump(_tiny_invact(small_world, out, tmp_path / "cache")))
    launch_cpu(REPO / "tests" / "dist_probe_encoder.py", [str(cfg_path), str(tmp_path / "report")])
    r0, r1 = (json.loads((tmp_path / "report" / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2 and {r0["rank"], r1["rank"]} == {0, 1}
    assert r0["threads"] == r1["threads"] == 1
    # different samples per rank: disjoint halves of the global batch of step 0
    assert len(r0["rows_step0"]) == len(r1["rows_step0"]) == 4
    assert r0["rows_step0"] != r1["rows_step0"]
    # all-reduced gradients: identical parameters after the steps
    assert r0["params_sha1"] == r1["params_sha1"]
    # one set of files, written by the main process only
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3] and all(x["world"] == 2 for x in lines)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_000003"]
    assert (out / "encoder" / "model.safetensors").is_file() and (out / "config.yaml").is_file()
    assert not list(out.rglob("*.tmp*"))


def test_rank_slices_partition_the_batch():
    for n in (1, 4, 7):
        for world in (1, 2, 3):
            parts = [list(range(n))[rank_slice(n, r, world)] for r in range(world)]
            assert sum(parts, []) == list(range(n))
            assert max(map(len, parts)) - min(map(len, parts)) <= 1
    with pytest.raises(ValueError, match="rank 2"):
        rank_slice(4, 2, 2)


def test_thread_default_follows_free_cores(monkeypatch):
    from configs import threads

    monkeypatch.delenv("ATOMVLA_THREADS", raising=False)
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    monkeypatch.setattr(threads, "_own_running_threads", lambda: 1)
    monkeypatch.setattr(threads, "_others_runnable_now", lambda: 0.0)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (2.0, 0.0, 0.0))  # us + one busy process
    assert threads.default_threads() == 1
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (1.0, 0.0, 0.0))  # only us
    assert threads.default_threads() == 2
    assert threads.default_threads(workers=2) == 1  # the free cores are divided between workers
    assert threads.default_threads(requested=3) == 3  # an explicit setting wins
    monkeypatch.setattr(threads, "_others_runnable_now", lambda: 1.0)  # a process started a moment ago
    assert threads.default_threads() == 1
    monkeypatch.setenv("ATOMVLA_THREADS", "5")
    assert threads.default_threads() == 5
    monkeypatch.setenv("ATOMVLA_THREADS", "many")
    with pytest.raises(ValueError, match="ATOMVLA_THREADS"):
        threads.default_threads()
