"""Each dataset adapter reads every layout its dataset was published in, names the one it found, and
lists the layouts and files it looked for when none matches (issue 25, item 2).

Fixtures are written here, in each layout, with PyAV (tests/fixtures/datasets/make_fixtures.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from envs.atomic_world.dataset import read_index
from envs.datasets.common import LayoutError
from envs.datasets.index import IndexConfig, format_summary, index_dataset
from tests.fixtures.datasets.make_fixtures import dump, make_ego_exo4d, write_video

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["Pushing something from left to right", "Picking something up"]
TRAIN = [{"id": "11", "label": "pushing a book from left to right", "template": "Pushing [something] from left to right",
          "placeholders": ["a book"]},
         {"id": "12", "label": "picking a cup up", "template": "Picking [something] up", "placeholders": ["a cup"]}]
VAL = [{"id": "21", "label": "picking a pen up", "template": "Picking [something] up", "placeholders": ["a pen"]}]
TEST = [{"id": "31"}]


def make_ssv2(root: Path, layout: str, videos: tuple[str, ...] = ("11", "12", "21")) -> Path:
    """A tiny SSv2 download in `layout` ("labels-dir" or "20bn"), with webm (VP9) videos."""
    if layout == "labels-dir":
        names = {"labels": "labels/labels.json", "train": "labels/train.json", "val": "labels/validation.json",
                 "test": "labels/test.json"}
    else:
        names = {k: f"something-something-v2-{stem}.json" for k, stem in
                 (("labels", "labels"), ("train", "train"), ("val", "validation"), ("test", "test"))}
    dump(root / names["labels"], {c: str(i) for i, c in enumerate(CLASSES)})
    dump(root / names["train"], TRAIN)
    dump(root / names["val"], VAL)
    dump(root / names["test"], TEST)
    for i, vid in enumerate(videos):
        write_video(root / "20bn-something-something-v2" / f"{vid}.webm", n=8, fps=8, seed=i, codec="libvpx-vp9")
    return root


def index(root: Path, out: Path, kind: str = "ssv2") -> dict:
    cfg = IndexConfig(kind=kind, root=str(root), out=str(out), frames=2, size=16, progress=False, threads=1)
    return index_dataset(cfg)


def _rows(out: Path) -> list[tuple]:
    df = read_index(out)
    return sorted(df[["clip_id", "split", "action", "object", "caption"]].itertuples(index=False, name=None))


@pytest.mark.parametrize("layout", ["labels-dir", "20bn"])
def test_ssv2_each_published_layout(tmp_path, layout):
    root = make_ssv2(tmp_path / "src", layout)
    s = index(root, tmp_path / "out")
    assert s["layout"].startswith(f"{layout} (")
    assert f"  layout: {layout} (" in format_summary(s).splitlines()[1]
    assert s["kept_by_split"] == {"train": 2, "val": 1} and s["problems"] == [] and s["dropped"] == {}
    assert _rows(tmp_path / "out") == [
        ("11", "train", "Pushing something from left to right", "a book", "pushing a book from left to right"),
        ("12", "train", "Picking something up", "a cup", "picking a cup up"),
        ("21", "val", "Picking something up", "a pen", "picking a pen up")]
    assert json.loads((tmp_path / "out" / "meta.json").read_text())["layout"] == layout


def test_ssv2_no_layout_lists_layouts_and_files(tmp_path):
    root = tmp_path / "src"
    write_video(root / "20bn-something-something-v2" / "11.webm", n=4, fps=8, codec="libvpx-vp9")
    dump(root / "labels" / "classes.json", {})  # a file no layout names
    with pytest.raises(LayoutError) as e:
        index(root, tmp_path / "out")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"ssv2: {root} matches no known layout; looked for ")
    for name in ("labels-dir", "20bn", "20bn-in-labels-dir", "labels/labels.json", "labels/validation.json",
                 "something-something-v2-labels.json", "something-something-v2-train.json",
                 "labels/something-something-v2-validation.json"):
        assert name in msg, name


def test_ssv2_annotation_naming_a_missing_video_is_one_line(tmp_path):
    root = make_ssv2(tmp_path / "src", "20bn", videos=("11", "21"))
    s = index(root, tmp_path / "out")
    assert s["problems"] == [f"MISSING {root / '20bn-something-something-v2' / '12.webm'}: video of train id 12"]
    assert s["dropped"] == {"missing video": 1} and s["kept_by_split"] == {"train": 1, "val": 1}


def test_cli_says_the_layout_and_refuses_an_unknown_one_in_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    root = make_ssv2(tmp_path / "src", "20bn")

    def cli(r: Path, out: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "scripts/index_dataset.py", "--kind", "ssv2", "--root", str(r),
                               "--out", str(tmp_path / out), "--frames", "2", "--size", "16", "progress=false",
                               "threads=1"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

    r = cli(root, "o1")
    assert r.returncode == 0, r.stderr
    assert "  layout: 20bn (original 20BN release, 2018); videos 20bn-something-something-v2/<id>.webm" in r.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    r = cli(empty, "o2")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: ssv2: {empty} matches no known layout; looked for")


def _to_v1(root: Path, drop_split_of: str = "") -> None:
    """Rewrite a v2 fixture's annotations as the v1 release had them: one atomic-descriptions file."""
    ann = root / "annotations"
    merged: dict = {}
    for sp in ("train", "val"):
        p = ann / f"atomic_descriptions_{sp}.json"
        merged.update(json.loads(p.read_text())["annotations"])
        p.unlink()
    dump(ann / "atomic_descriptions_latest.json", {"annotations": merged})
    if drop_split_of:
        splits = json.loads((ann / "splits.json").read_text())
        del splits["take_uid_to_split"][drop_split_of]
        dump(ann / "splits.json", splits)


def test_ego_exo4d_v1_and_v2_index_the_same_clips(tmp_path):
    v2 = make_ego_exo4d(tmp_path / "v2")
    s2 = index(v2, tmp_path / "o2", "ego_exo4d")
    assert s2["layout"].startswith("v2 (Ego-Exo4D release v2")
    v1 = make_ego_exo4d(tmp_path / "v1")
    _to_v1(v1)
    s1 = index(v1, tmp_path / "o1", "ego_exo4d")
    assert s1["layout"].startswith("v1 (Ego-Exo4D release v1")
    assert s1["kept_by_split"] == s2["kept_by_split"] and s1["dropped"] == s2["dropped"]
    assert _rows(tmp_path / "o1") == _rows(tmp_path / "o2")
    assert read_index(tmp_path / "o1")["keystep"].tolist() == read_index(tmp_path / "o2")["keystep"].tolist()


def test_ego_exo4d_v1_take_without_a_split_is_counted(tmp_path):
    root = make_ego_exo4d(tmp_path / "v1")
    _to_v1(root, drop_split_of="uid-c")
    s = index(root, tmp_path / "o", "ego_exo4d")
    assert s["dropped"]["take without a split in splits.json"] == 4  # uid-c's four descriptions
    assert "val" not in s["kept_by_split"]


def test_ego_exo4d_no_layout_lists_layouts_and_files(tmp_path):
    root = tmp_path / "src"
    dump(root / "takes.json", [])
    dump(root / "annotations" / "narrations_train.json", {})
    with pytest.raises(LayoutError) as e:
        index(root, tmp_path / "o", "ego_exo4d")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"ego_exo4d: {root} matches no known layout; looked for v2 (")
    for name in ("annotations/atomic_descriptions_train.json", "annotations/atomic_descriptions_val.json",
                 "annotations/atomic_descriptions_latest.json", "annotations/keystep_train.json", "v1 ("):
        assert name in msg, name


@pytest.mark.parametrize("kind, says", [("rh20t", "rh20t.github.io release"), ("bridge", "BridgeData V2 raw release"),
                                        ("charades_ego", "Charades-Ego v1 archive"),
                                        ("ntu120", "NTU RGB+D 120 official RGB download")])
def test_single_layout_adapters_name_their_layout(tmp_path, kind, says):
    from tests.fixtures.datasets.make_fixtures import MAKERS

    s = index(MAKERS[kind](tmp_path / "src"), tmp_path / "out", kind)
    assert s["layout"].startswith(says) and f"  layout: {says}" in format_summary(s)
