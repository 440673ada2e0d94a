"""Real-dataset adapters (envs/datasets/) on tiny generated fixtures of each documented layout.

The fixtures (tests/fixtures/datasets/make_fixtures.py) are written into tmp_path with PyAV; each
plants the faults its adapter must report (malformed annotations, missing videos, ...).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from envs.atomic_world.dataset import INDEX_COLUMNS, AtomicClipDataset, read_index, read_meta
from envs.datasets import DATASETS
from envs.datasets.ego_exo4d import lemma, parse_atomic, strip_subject
from envs.datasets.index import IndexConfig, format_summary, index_dataset
from tests.fixtures.datasets.make_fixtures import MAKERS

FRAMES, SIZE = 4, 16


def run(tmp_path, kind, **over):
    root = MAKERS[kind](tmp_path / "src" / kind)
    cfg = IndexConfig(kind=kind, root=str(root), out=str(tmp_path / "out" / kind), frames=FRAMES, size=SIZE,
                      progress=False, threads=1)  # fmt: skip
    for k, v in over.items():
        setattr(cfg, k, v)
    summary = index_dataset(cfg)
    return summary, read_index(cfg.out), read_meta(cfg.out), cfg


def check_common(out_dir, df, meta):
    assert list(df.columns) == list(INDEX_COLUMNS)
    for k in ("action", "object", "subject", "scene", "view", "keystep"):
        assert k in meta["vocab"]
    ds = AtomicClipDataset(out_dir)
    item = ds[0]
    assert tuple(item["video"].shape) == (FRAMES, 3, SIZE, SIZE)
    assert item["video"].float().std() > 0  # real decoded pixels, not a blank clip
    assert json.loads((out_dir / "report.json").read_text())["kept_clip_views"] == len(df)


def test_registry_lists_all_kinds():
    assert DATASETS.names() == sorted(["bridge", "charades_ego", "ego_exo4d", "ntu120", "rh20t", "ssv2"])


def test_atomic_sentence_parsing():
    assert strip_subject("The man X walks towards C.") == "walks towards C."
    assert [lemma(w) for w in ("picks", "carries", "washes", "puts", "closes", "goes")] == \
        ["pick", "carry", "wash", "put", "close", "go"]  # fmt: skip
    assert parse_atomic("C picks up the knife with his right hand.") == ("pick up", "knife")
    assert parse_atomic("C turns off the stove.") == ("turn off", "stove")
    assert parse_atomic("The woman washes the bowls in the sink") == ("wash", "bowls")


def test_ego_exo4d(tmp_path):
    s, df, meta, cfg = run(tmp_path, "ego_exo4d")
    check_common(tmp_path / "out" / "ego_exo4d", df, meta)
    assert s["kept_clips"] == 10 and s["kept_by_split"] == {"train": 6, "val": 4}
    assert s["dropped"] == {"malformed annotation": 1, "shorter than 1 s": 1, "longer than 5 s": 1,
                            "typo (word not in vocabulary)": 1, "take not in takes.json": 1}  # fmt: skip
    probs = "\n".join(s["problems"])
    assert "descriptions[6]: missing or non-numeric 'timestamp'" in probs
    assert "uid-unknown" in probs and "sfu_cooking_03_4/frame_aligned_videos/downscaled/448/cam02.mp4" in probs
    # time-synchronised views: every clip has ego + exo rows with the same window
    for _, g in df.groupby("clip_id"):
        assert "ego" in set(g["view"]) and len(g) >= 2 and g["start_frame"].nunique() == 1
    assert set(df[df["scene"] == "sfu_12"]["view"]) == {"ego", "cam01"}  # its cam02 is missing
    assert set(meta["vocab"]["action"]) == {"pick up", "put", "open", "close"}
    assert meta["splits"] == {"cmu_97": "train", "iiith_11": "train", "sfu_12": "val"}
    # keysteps: windows containing the description's time point
    ego = df[df["view"] == "ego"].set_index("clip_id")
    assert ego.loc["iiith_cooking_01_1_a0000", "keystep"] == "Cut vegetables"
    assert ego.loc["iiith_cooking_01_1_a0004", "keystep"] == "Store utensils"
    assert ego.loc["sfu_cooking_03_4_a0003", "keystep_id"] == -1
    # window [0.5, 2.5) s at 10 fps
    assert (ego.loc["iiith_cooking_01_1_a0000", "start_frame"], ego.loc["iiith_cooking_01_1_a0000", "end_frame"]) == (5, 25)
    assert "typo (word not in vocabulary)" in format_summary(s)


def test_ego_exo4d_options(tmp_path):
    s, df, meta, _ = run(tmp_path, "ego_exo4d")
    words = tmp_path / "words.txt"
    words.write_text("\n".join(["picks", "up", "the", "knife", "with", "his", "right", "hand", "puts", "on", "board",
                                "opens", "drawer", "closes", "spoon"]))  # fmt: skip
    cfg = IndexConfig(kind="ego_exo4d", root=str(tmp_path / "src" / "ego_exo4d"), out=str(tmp_path / "o2"),
                      frames=2, size=16, progress=False, threads=1)  # fmt: skip
    cfg.ego_exo4d.words_file, cfg.ego_exo4d.exo, cfg.ego_exo4d.scene = str(words), "best", "scenario"
    s2 = index_dataset(cfg)
    df2 = read_index(cfg.out)
    assert s2["dropped"].get("typo (word not in vocabulary)") == 1  # "pikcs"
    assert set(df2["scene"]) == {"Cooking", "Bike Repair"}
    assert df2.groupby("clip_id").size().max() == 2  # ego + the description's best exo
    assert df2[df2["clip_id"] == "iiith_cooking_01_1_a0004"]["view"].tolist() == ["cam02", "ego"]


def test_resume_after_a_killed_run(tmp_path):
    s, df, meta, cfg = run(tmp_path, "ego_exo4d")
    out = tmp_path / "out" / "ego_exo4d"
    with pytest.raises(FileExistsError):
        index_dataset(cfg)  # not empty, no --resume
    # a run killed mid-way: one take's completion record and the final files never written
    records = sorted((out / "items").glob("*.json"))
    kept_mtime = records[0].stat().st_mtime_ns
    records[-1].unlink()
    (out / "index.parquet").unlink()
    (out / ".stray.tmp.npz").write_bytes(b"x")
    cfg.resume = True
    s2 = index_dataset(cfg)
    assert records[0].stat().st_mtime_ns == kept_mtime  # completed takes are not redone
    assert records[-1].is_file() and not (out / ".stray.tmp.npz").exists()
    assert read_index(out).equals(df) and s2["kept_clips"] == s["kept_clips"]
    cfg.frames = 8
    with pytest.raises(ValueError, match="frames"):
        index_dataset(cfg)  # a resume must not mix clip formats


def test_limit_then_resume_all(tmp_path):
    s1, df1, _, cfg = run(tmp_path, "ntu120", limit=1)
    assert s1["items"] == 1 and df1["clip_id"].nunique() == 1
    cfg.limit, cfg.resume = 0, True
    s2 = index_dataset(cfg)
    assert s2["items"] == 4 and read_index(cfg.out)["clip_id"].nunique() == 4


def test_ssv2(tmp_path):
    s, df, meta, _ = run(tmp_path, "ssv2")
    check_common(tmp_path / "out" / "ssv2", df, meta)
    assert s["kept_by_split"] == {"train": 2, "val": 2}
    assert s["dropped"] == {"unknown template": 1, "missing video": 1, "malformed annotation": 1}
    r = df.set_index("clip_id").loc["101"]
    assert (r["action"], r["caption"], r["object"], r["view"]) == (
        "Pushing something from left to right", "pushing a book from left to right", "a book", "ego")
    assert "20bn-something-something-v2/104.webm" in "\n".join(s["problems"])


def test_charades_ego(tmp_path):
    s, df, meta, _ = run(tmp_path, "charades_ego")
    check_common(tmp_path / "out" / "charades_ego", df, meta)
    assert meta["retrieval_only"] is True and set(df["view"]) == {"ego"} and set(df["split"]) == {"val"}
    assert s["kept_clips"] == 4
    assert s["dropped"] == {"unknown class": 1, "malformed annotation": 1, "missing video": 1,
                            "window outside the video": 1}  # fmt: skip
    probs = "\n".join(s["problems"])
    assert "CharadesEgo_v1_480/CCC33EGO.mp4" in probs and "'c002 oops'" in probs
    r = df.set_index("clip_id").loc["AAA11EGO_01_c001"]
    assert (r["action"], r["object"], r["scene"], r["start_frame"], r["end_frame"]) == (
        "Putting clothes somewhere", "clothes", "Bedroom", 12, 28)


def test_ntu120(tmp_path):
    s, df, meta, _ = run(tmp_path, "ntu120")
    check_common(tmp_path / "out" / "ntu120", df, meta)
    assert meta["retrieval_only"] is True and len(meta["symmetric_pairs_step"]) == 9
    assert meta["symmetric_pairs"] == [["sitting down", "standing up (from sitting position)"]]
    g = df.groupby("clip_id")["view"].apply(sorted).to_dict()
    assert g["S002P003R002A009"] == ["C001", "C002", "C003"] and g["S018P003R001A087"] == ["C001", "C002"]
    assert set(df["split"]) == {"val"} and s["dropped"]["split train not requested"] == 3
    probs = "\n".join(s["problems"])
    assert "readme_rgb.avi" in probs and "S018C003P003R001A087_rgb.avi" in probs


def test_rh20t(tmp_path):
    s, df, meta, _ = run(tmp_path, "rh20t")
    check_common(tmp_path / "out" / "rh20t", df, meta)
    ego = df.drop_duplicates("clip_id").set_index("clip_id")
    assert ego.loc["task_0001_user_0001_scene_0001_cfg_0001_human", "subject"] == "human"
    r = ego.loc["task_0001_user_0001_scene_0001_cfg_0001"]
    assert (r["subject"], r["action"], r["object"]) == ("robot", "pick up", "block")
    assert r["caption"] == "Robot pick up block. Action is pick up, Object is block."  # Algorithm 1, line 9
    assert s["dropped"] == {"multi-action annotation (Algorithm 1)": 1, "no language annotation": 1}
    assert "cam_104122061850/color.mp4" in "\n".join(s["problems"])
    assert df[df["clip_id"].str.startswith("task_0003")]["view"].tolist() == ["cam_036422060215"]


def test_bridge(tmp_path):
    s, df, meta, _ = run(tmp_path, "bridge")
    check_common(tmp_path / "out" / "bridge", df, meta)
    assert s["dropped"] == {"multi-action annotation (Algorithm 1)": 1, "no language annotation (lang.txt)": 1}
    assert set(df["scene"]) == {"datacol2_toykitchen7", "toysink1_room8052"} and set(df["subject"]) == {"robot"}
    assert df.set_index("scene").loc["datacol2_toykitchen7", "action"] == "open"
    frames = np.load(tmp_path / "out" / "bridge" / df["path"].iloc[0])["frames"]
    assert frames.shape == (FRAMES, SIZE, SIZE, 3)


def test_cli(tmp_path):
    """What scripts/index_dataset.py does: its arguments through parse_cli, then index_dataset."""
    from configs.loader import parse_cli
    from envs.datasets.index import IndexConfig, format_summary, index_dataset

    def main(argv):
        return index_dataset(parse_cli(IndexConfig, argv, flags={
            "--kind": ("kind", ""), "--root": ("root", ""), "--out": ("out", ""), "--frames": ("frames", ""),
            "--size": ("size", "")}))  # fmt: skip

    root = MAKERS["ssv2"](tmp_path / "ssv2")
    out = format_summary(main(["--kind", "ssv2", "--root", str(root), "--out", str(tmp_path / "o"), "--frames", "2",
                               "--size", "16", "progress=false", "threads=1", "ssv2.splits=[val]"]))  # fmt: skip
    assert "kept 2 clips" in out and "by split: val=2" in out
    with pytest.raises((SystemExit, ValueError)):
        main(["--kind", "nope", "--root", str(root), "--out", str(tmp_path / "p")])


def test_decode_windows_picks_the_frames_at_the_sample_instants(tmp_path):
    import av

    from envs.datasets.common import decode_windows

    path = tmp_path / "ramp.mp4"
    with av.open(str(path), "w") as c:  # frame k is uniformly grey level 4 * k (60 frames, 10 fps)
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        s.options = {"crf": "0"}
        for k in range(60):
            img = np.full((32, 32, 3), 4 * k, np.uint8)
            for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    (a, b, late, past), fps, dur = decode_windows(path, [(0.5, 1.5), (4.0, 5.0), (5.2, None), (7.0, 8.0)], 5, 16)
    assert fps == 10 and abs(dur - 6.0) < 0.2 and past is None
    level = lambda clip: np.round(clip.reshape(len(clip), -1).mean(1) / 4).astype(int).tolist()  # noqa: E731
    assert level(a) == [6, 8, 10, 12, 14]  # instants 0.6, 0.8, ... 1.4 s
    assert level(b) == [41, 43, 45, 47, 49]  # after a seek
    assert level(late) == [53, 54, 56, 58, 59]  # 5.28 .. 5.92 s: to the end of the video
