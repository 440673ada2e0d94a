"""Evaluation and demo generation across ranks (torchrun, gloo): the split, the merge, resume across
world sizes, idle ranks and bad input. The multi-process checks launch real `torchrun` processes on
the real LIBERO simulator (random policy, 3 steps, 64 px), so they are marked slow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from dist_launch import REPO, launch_cpu

from envs.evaluator import episode_path, launch_rank, rank_jobs

SUITE = "libero_goal"


# -- quick: the split, the launch environment, bad input ---------------------------------------------


@pytest.mark.parametrize("n_tasks,trials", [(1, 1), (1, 2), (2, 3), (3, 5), (10, 50)])
@pytest.mark.parametrize("world", [1, 2, 3, 4, 7, 64])
def test_rank_split_covers_every_episode_once(n_tasks: int, trials: int, world: int) -> None:
    jobs = [(t, i) for t in range(n_tasks) for i in range(trials)]
    shares = [rank_jobs(jobs, r, world) for r in range(world)]
    # every (task, trial) exactly once, in the task-major order (so a rank keeps one env per task)
    assert [j for s in shares for j in s] == jobs
    assert len({j for s in shares for j in s}) == len(jobs)
    sizes = [len(s) for s in shares]
    assert max(sizes) - min(sizes) <= 1
    # world > episodes: the first len(jobs) ranks take one each, the others are idle
    assert sum(1 for s in sizes if s == 0) == max(0, world - len(jobs))
    assert all(sizes[r] >= sizes[r + 1] for r in range(world - 1))  # idle ranks are the last ones
    with pytest.raises(ValueError, match="rank"):
        rank_jobs(jobs, world, world)


def test_launch_rank_reads_the_launcher_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert launch_rank() == (0, 1)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert launch_rank() == (3, 4)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ValueError, match=r"RANK=4 is not in \[0, WORLD_SIZE=4\)"):
        launch_rank()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="not integers"):
        launch_rank()


def test_unknown_suite_or_task_is_one_line_naming_the_valid_ones(tmp_path: Path) -> None:
    from envs.demo_tasks import LiberoDemoConfig, libero_demo_tasks
    from envs.eval_libero import LiberoEvalConfig, libero_benchmark

    with pytest.raises(ValueError, match="libero_spatial, libero_object, libero_goal, libero_10, libero_90"):
        LiberoEvalConfig(suite="libero_11").validate()
    cfg = LiberoEvalConfig(suite="goal", tasks="3,12")
    cfg.validate()
    with pytest.raises(ValueError, match=r"id 12 out of range; the valid task ids of libero_goal are 0\.\.9"):
        libero_benchmark(cfg)
    # libero_90 has no scripted programs (the four suites of the published numbers do, all but one task)
    demo = LiberoDemoConfig(suite="libero_90", tasks="0,2")
    demo.validate()
    with pytest.raises(ValueError, match=r"no scripted program for libero_90 tasks \[0, 2\]; available: \[\]"):
        libero_demo_tasks(demo)
    with pytest.raises(ValueError, match=r"valid task ids of libero_goal are 0\.\.9"):
        libero_demo_tasks(LiberoDemoConfig(suite="libero_goal", tasks="10"))

    # as a user meets it: one line on stderr, status 2, nothing written
    for script, args in (("envs/eval_libero.py", ["--suite", "goal", "--tasks", "12"]),
                         ("scripts/make_libero_demos.py", ["--suite", "libero_90", "--tasks", "2"])):
        out = tmp_path / Path(script).stem
        r = subprocess.run([sys.executable, script, *args, "--out", str(out)], cwd=REPO,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and ("0..9" in lines[0] or "available: []" in lines[0])
        assert not out.exists()


# -- slow: real gloo ranks on the real simulator ------------------------------------------------------


def _eval_args(out: Path, trials: int) -> list[str]:
    return ["--suite", SUITE, "--tasks", "0", "--policy", "random", "--trials", str(trials), "--max-steps", "3",
            "--out", str(out), "resolution=64", "video=false", "progress=false"]


def _one_process(out: Path, trials: int) -> dict:
    from envs.eval_libero import LiberoEvalConfig, evaluate

    return evaluate(LiberoEvalConfig(suite=SUITE, tasks="0", policy="random", trials=trials, max_steps=3, out=str(out),
                                     resolution=64, video=False, progress=False))


def _record(out: Path, trial: int) -> dict:
    return json.loads(episode_path(out, SUITE, 0, trial).read_text())


def _episode(rec: dict) -> tuple:
    """What must not depend on who ran the episode."""
    return rec["status"], rec["success"], rec["steps"], rec["acts"], rec["actions_sha1"], rec["seed"]


def _untimed(res: dict) -> dict:
    """results.json less its timing (the mean wall time per task)."""
    res = json.loads(json.dumps(res))
    for t in res["tasks"]:
        t.pop("mean_wall_s")
    return res


@pytest.mark.slow
def test_two_gloo_ranks_merge_like_one_process_and_resume_across_world_sizes(tmp_path: Path) -> None:
    one, ranked = tmp_path / "one", tmp_path / "ranked"
    ref = _one_process(one, trials=2)

    # world 2: one episode per rank, rank 0 merges
    launch_cpu(REPO / "envs" / "eval_libero.py", _eval_args(ranked, 2), nproc=2, timeout=600)
    recs = [_record(ranked, i) for i in range(2)]
    assert [(r["rank"], r["world_size"]) for r in recs] == [(0, 2), (1, 2)]
    assert recs[0]["pid"] != recs[1]["pid"]
    assert [_episode(r) for r in recs] == [_episode(_record(one, i)) for i in range(2)]
    assert all(r["steps"] == 3 and r["status"] == "ok" for r in recs)
    merged = json.loads((ranked / "results.json").read_text())
    assert _untimed(merged) == _untimed(ref) and merged["overall"]["n"] == 2
    assert (ranked / "results.md").read_text() == (one / "results.md").read_text()
    assert sorted(p.name for p in ranked.glob("episodes/*/*/*")) == ["trial000.json", "trial001.json"]

    # world 1, trials 3: only the new trial runs; the world-2 records are untouched
    before = {i: episode_path(ranked, SUITE, 0, i).read_bytes() for i in range(2)}
    res = _one_process(ranked, trials=3)
    assert {i: episode_path(ranked, SUITE, 0, i).read_bytes() for i in range(2)} == before
    assert (_record(ranked, 2)["rank"], _record(ranked, 2)["world_size"]) == (0, 1) and res["overall"]["n"] == 3

    # world 2, trials 4: one episode left for two ranks -> rank 0 runs it, rank 1 says so and exits 0
    before = {i: episode_path(ranked, SUITE, 0, i).read_bytes() for i in range(3)}
    r = launch_cpu(REPO / "envs" / "eval_libero.py", _eval_args(ranked, 4), nproc=2, timeout=600)
    assert "rank 1 of 2: nothing to do (1 episode(s) left to run" in r.stdout
    assert r.stdout.count("| all |") == 1  # only rank 0 prints the table
    assert {i: episode_path(ranked, SUITE, 0, i).read_bytes() for i in range(3)} == before
    assert (_record(ranked, 3)["rank"], _record(ranked, 3)["world_size"]) == (0, 2)

    # the records of three runs at world sizes 2, 1, 2 merge exactly as one process running all four
    ref = _one_process(one, trials=4)
    assert [_episode(_record(ranked, i)) for i in range(4)] == [_episode(_record(one, i)) for i in range(4)]
    assert _untimed(json.loads((ranked / "results.json").read_text())) == _untimed(ref)
    assert (ranked / "results.md").read_text() == (one / "results.md").read_text()


def test_demo_tasks_are_dealt_in_turn_and_finished_ones_skipped() -> None:
    """Only unfinished tasks are dealt, task k to rank k mod world: every one exactly once, and a slow
    suite at the end of the list is shared by all ranks (a contiguous split gave it to the last)."""
    from envs.demo_tasks import deal_unfinished

    disk = [{"suite": s, "task_id": t, "demos": 50 if (s, t) in {("a", 0), ("a", 1), ("b", 2)} else 7}
            for s in ("a", "b") for t in range(4)]
    left, _ = deal_unfinished(disk, 50, 0, 1)
    assert left == [("a", 2), ("a", 3), ("b", 0), ("b", 1), ("b", 3)]
    shares = [deal_unfinished(disk, 50, r, 2)[1] for r in range(2)]
    assert shares == [[("a", 2), ("b", 0), ("b", 3)], [("a", 3), ("b", 1)]]
    assert sorted(j for sh in shares for j in sh) == sorted(left)
    assert deal_unfinished(disk, 50, 6, 7)[1] == []  # more ranks than tasks: the idle ones get nothing
    assert all(len({j for j in sh if j[0] == "b"}) >= 1 for sh in shares)


@pytest.mark.slow
def test_demo_generation_splits_tasks_across_ranks_and_resumes(tmp_path: Path) -> None:
    """Two tasks on two ranks (one hdf5 writer per task), rank 0's summary; a world-1 rerun resumes both."""
    from envs.demo_tasks import LiberoDemoConfig, make_libero_demos

    out = tmp_path / "demos"
    args = ["--suite", SUITE, "--tasks", "0,5", "--episodes", "1", "--out", str(out), "max_attempts=1",
            "max_steps=3", "resolution=64", "flush_every=1"]
    r = launch_cpu(REPO / "scripts" / "make_libero_demos.py", args, nproc=2, timeout=600)
    summary = json.loads((out / "summary.json").read_text())
    assert [(t["task_id"], t["rank"], t["world_size"], t["attempts"]) for t in summary["tasks"]] == [
        (0, 0, 2, 1), (5, 1, 2, 1)]
    assert r.stdout.count(f"{SUITE} task ") == 2  # rank 0 prints every row, once
    progress = sorted((out / SUITE).glob("*.progress.json"))
    assert len(progress) == 2 and all(json.loads(p.read_text())["attempts"] == 1 for p in progress)
    # each progress file names the run that wrote it, so a finished task's row keeps it on a rerun
    assert sorted((json.loads(p.read_text())["rank"], json.loads(p.read_text())["world_size"]) for p in progress) == [
        (0, 2), (1, 2)]

    # world 1 with one more attempt allowed: each task continues from its counter (attempt 1, not 0)
    again = make_libero_demos(LiberoDemoConfig(suite=SUITE, tasks="0,5", episodes=1, out=str(out), max_attempts=2,
                                               max_steps=3, resolution=64, flush_every=1))
    assert [(t["task_id"], t["rank"], t["world_size"], t["attempts"]) for t in again["tasks"]] == [
        (0, 0, 1, 2), (5, 0, 1, 2)]
    assert json.loads((out / "summary.json").read_text()) == again
    # the wall time adds up over the parts: the first part's seconds, then this run's on top
    first = {t["task_id"]: t["wall_s_all_runs"] for t in summary["tasks"]}
    for t in again["tasks"]:
        assert t["wall_s_all_runs"] >= first[t["task_id"]] + t["wall_s"] - 0.5 and first[t["task_id"]] > 0
    assert again["wall_s_all_runs_summed"] == round(sum(t["wall_s_all_runs"] for t in again["tasks"]), 1)
    # status=true reads the same numbers from disk, without a simulator
    from envs.demo_tasks import libero_demo_status

    st = libero_demo_status(LiberoDemoConfig(suite=SUITE, tasks="0,5", episodes=1, out=str(out), status=True))
    assert [(t["task_id"], t["demos"], t["attempts"], t["wall_s_all_runs"]) for t in st["tasks"]] == [
        (t["task_id"], t["demos"], t["attempts"], t["wall_s_all_runs"]) for t in again["tasks"]]
    assert st["done_tasks"] == sum(t["demos"] >= 1 for t in again["tasks"])


@pytest.mark.slow
def test_kitchen_evaluation_under_two_ranks_prints_the_table_once(tmp_path: Path) -> None:
    """Kitchen shares the rank split: two episodes on two ranks, one record each; rank 0 alone prints."""
    out = tmp_path / "k"
    args = ["--task", "micro", "--policy", "random", "--episodes", "2", "--out", str(out), "--max-steps", "3",
            "resolution=32", "workers=1"]
    r = launch_cpu(REPO / "envs" / "eval_kitchen.py", args, nproc=2, timeout=600)
    recs = [json.loads(p.read_text()) for p in sorted(out.glob("episodes/*/*/trial*.json"))]
    assert sorted((x["trial"], x["rank"], x["world_size"]) for x in recs) == [(0, 0, 2), (1, 1, 2)]
    assert r.stdout.count("| all |") == 1 and r.stdout.count("overall 0/2") == 1, r.stdout
