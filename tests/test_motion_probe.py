"""The motion-input CNN probe (encoders/probes/motion.py): inputs, and one short run end to end."""

from __future__ import annotations

import json

import torch

from encoders.probes.motion import MotionProbeConfig, motion_input, run_motion_probe


def test_motion_inputs_cancel_a_static_background_and_keep_what_moved():
    torch.manual_seed(0)
    clip = torch.rand(1, 1, 3, 16, 16).expand(2, 4, 3, 16, 16).clone()  # 2 clips, one static random scene
    clip[1, 2:, :, 4:8, 4:8] = 1.0  # clip 1: a white square appears at t >= 2
    assert motion_input(clip, "rgb").shape == (2, 12, 16, 16)
    diff = motion_input(clip, "diff")
    assert diff.shape == (2, 18, 16, 16)
    assert diff[0].abs().max() == 0  # nothing moved: no input at all
    assert diff[1, :, 4:8, 4:8].abs().sum() > 0 and diff[1, :, 8:, 8:].abs().max() == 0
    masked = motion_input(clip, "masked")
    assert masked.shape == (2, 15, 16, 16)
    last = masked[1, -3:]  # f_{T-1} where anything moved: the square, nothing of the background
    assert torch.allclose(last[:, 4:8, 4:8], torch.ones(3, 4, 4)) and last[:, 8:, 8:].abs().max() == 0
    assert masked[0].abs().max() == 0
    ends = motion_input(clip, "ends")  # first, middle, last frame and last - first (the object stem's input)
    assert ends.shape == (2, 12, 16, 16)
    assert torch.equal(ends[1, :3], clip[1, 0]) and torch.equal(ends[1, 3:6], clip[1, 2])
    assert torch.equal(ends[1, 9:], clip[1, 3] - clip[1, 0]) and ends[0, 9:].abs().max() == 0


def test_motion_probe_runs_and_writes_results(small_world, tmp_path):
    out = tmp_path / "motion"
    cfg = MotionProbeConfig(data=str(small_world), modes=["diff", "rgb"], frames=4, width=8, steps=20,
                            batch_size=8, eval_every=10, seeds=[0, 1], out=str(out))
    res = run_motion_probe(cfg, log=lambda *_: None)
    assert set(res["modes"]) == {"diff", "rgb"} and set(res["modes"]["diff"]) == {"0", "1"}
    final = res["modes"]["diff"]["0"]["final"]
    assert final["step"] == 20 and len(final["heldout_scene"]) == 2  # action, object
    assert all(0.0 <= a <= 1.0 for r in ("fit", "train_scene_test", "heldout_scene") for a in final[r])
    assert json.loads((out / "results.json").read_text())["rows"] == res["rows"]
    assert "| diff |" in (out / "results.md").read_text() and (out / "config.yaml").exists()
