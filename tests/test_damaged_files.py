"""Damaged or missing inputs are one line naming the file; --resume repairs a damaged dataset."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from configs.runs import DamagedFileError
from envs.atomic_world.dataset import load_clip, read_index, save_clip

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.fixture()
def clips(tmp_path):
    ok = save_clip(tmp_path / "ok.npz", np.zeros((4, 8, 8, 3), np.uint8))
    raw = ok.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "empty.npz").write_bytes(b"")
    (tmp_path / "random.npz").write_bytes(bytes(range(256)) * 4)
    return tmp_path


@pytest.mark.parametrize("name,reason", [
    ("trunc.npz", "BadZipFile"), ("empty.npz", "empty file"), ("random.npz", "not a zip archive"),
])
def test_damaged_clip_is_one_line_naming_the_file(clips, name, reason):
    with pytest.raises(DamagedFileError) as e:
        load_clip(clips / name)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(clips / name)) and reason in msg
    assert "pickle" not in msg  # numpy's misleading allow_pickle hint is not repeated


def test_wrong_array_in_clip_is_named(tmp_path):
    np.savez(tmp_path / "x.npz", frames=np.zeros((4, 8, 8), np.float32))
    with pytest.raises(DamagedFileError, match=r"x.npz: damaged clip file.*\(T, H, W, 3\) uint8"):
        load_clip(tmp_path / "x.npz")


def _run(*args, check=False):
    res = subprocess.run([sys.executable, *map(str, args)], cwd=REPO, capture_output=True, text=True)
    if check and res.returncode:
        raise AssertionError(res.stdout + res.stderr)
    return res


@pytest.mark.slow
def test_resume_repairs_a_damaged_clip_and_check_dataset_reports_it(small_world, tmp_path):
    data = tmp_path / "aw"
    shutil.copytree(small_world, data)
    assert _run("scripts/check_dataset.py", data).returncode == 0
    victim = data / read_index(data)["path"].iloc[3]
    victim.write_bytes(victim.read_bytes()[:100])  # truncated
    missing = data / read_index(data)["path"].iloc[10]
    missing.unlink()
    res = _run("scripts/check_dataset.py", data, "--full")
    assert res.returncode == 1
    assert f"{victim}: damaged clip file" in res.stdout and f"{missing}: missing clip file" in res.stdout
    cfg = json.loads((data / "meta.json").read_text())["config"]
    res = _run("scripts/make_atomic_videos.py", "--out", data, "--resume", f"takes={cfg['takes']}",
               f"seed={cfg['seed']}", "--config", data / "config.yaml", check=True)
    assert "regenerating take" in res.stdout
    assert _run("scripts/check_dataset.py", data, "--full").returncode == 0
    load_clip(victim)
    # byte-identical regeneration: the dataset is deterministic per seed
    assert victim.read_bytes() == (small_world / victim.relative_to(data)).read_bytes()


def test_cli_input_errors_are_one_line_and_create_nothing(tmp_path):
    out = tmp_path / "run"
    res = _run("encoders/train.py", "--config", "configs/encoder/invact.yaml", f"data={tmp_path / 'nope'}", f"out={out}")
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0
    assert res.stderr.startswith("error: data: dataset folder") and str(tmp_path / "nope") in res.stderr
    assert not out.exists()
    res = _run("scripts/check_dataset.py", tmp_path / "nope")
    assert res.returncode == 2 and "does not exist" in res.stderr and "Traceback" not in res.stderr


def test_damaged_encoder_export_and_checkpoint_are_named(tmp_path):
    import torch

    from configs.training import load_checkpoint, save_checkpoint
    from encoders import build_encoder

    enc = build_encoder("random", dim=8, mode="projection")
    d = enc.save_pretrained(tmp_path / "enc")
    (d / "model.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(DamagedFileError, match=r"enc/model.safetensors: damaged encoder weights"):
        build_encoder(str(d))
    (d / "config.json").write_text("{not json")
    with pytest.raises(DamagedFileError, match=r"enc/config.json: damaged encoder config"):
        build_encoder(str(d))
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    ck = save_checkpoint(tmp_path / "run", 5, model, opt)
    assert load_checkpoint(ck, model, opt) == 5
    (ck / "model.safetensors").write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"step_000005: damaged checkpoint"):
        load_checkpoint(ck, model, opt)


def test_damaged_feature_cache_is_recomputed(tmp_path, capsys):
    import pandas as pd

    from encoders.features import cached_arrays

    index = pd.DataFrame({"path": ["a", "b"]})
    calls = []

    def compute():
        calls.append(1)
        return {"x": np.arange(6, dtype=np.float32).reshape(2, 3)}

    first = cached_arrays(tmp_path / "c", "val", index, ("x",), compute, {})
    assert not first.from_cache and len(calls) == 1
    assert cached_arrays(tmp_path / "c", "val", index, ("x",), compute, {}).from_cache
    (tmp_path / "c" / "val.x.npy").write_bytes(b"\x93NUMPY garbage")
    again = cached_arrays(tmp_path / "c", "val", index, ("x",), compute, {})
    assert len(calls) == 2 and "damaged entry, recomputing" in capsys.readouterr().out
    np.testing.assert_array_equal(again.arrays["x"], np.arange(6, dtype=np.float32).reshape(2, 3))


def test_damaged_demo_file_is_named(tmp_path):
    from envs.demos import DemoReader

    (tmp_path / "bad.hdf5").write_bytes(b"not an hdf5 file at all")
    with pytest.raises(DamagedFileError, match=r"bad.hdf5: damaged demo file \(hdf5\): file signature not found"):
        DemoReader(tmp_path / "bad.hdf5")
