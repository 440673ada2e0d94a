"""`with_frame` (encoders/with_frame.py): an action encoder's clip embedding beside the last frame's.

Streaming equality with `encode` is in tests/test_streaming.py (its encoder list holds `with_frame`).
"""

from __future__ import annotations

import shutil

import pytest
import torch

from configs.loader import to_dict
from encoders import build_encoder

FRAME = {"name": "backbone_mean", "params": {"backbone": "efficientnet_lite0", "image_size": 64}}


def _invact(tmp_path):
    from encoders.invact import InvActConfig, InvActEncoder

    torch.manual_seed(0)
    enc = InvActEncoder(InvActConfig(dim=32, heads=2, depth=1, flow_size=16, frames=4, backbone="efficientnet_lite0",
                                     backbone_size=64)).freeze()
    with torch.no_grad():  # weights that differ from a fresh init, so a lost load shows
        for p in enc.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return enc, enc.save_pretrained(tmp_path / "invact")


def _video(b: int = 2, t: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 255, (b, t, 3, 48, 48), generator=g, dtype=torch.uint8)


def test_encode_is_the_clip_embedding_beside_the_last_frames(tmp_path):
    inv, inv_dir = _invact(tmp_path)
    enc = build_encoder("with_frame", action=str(inv_dir), frame=FRAME)
    frame = build_encoder(FRAME)
    video = _video()
    with torch.no_grad():
        out = enc.encode(video)
        want = torch.cat([inv.encode(video), frame.encode(video[:, -1:])], 1)
    assert enc.dim == inv.dim + frame.dim and out.shape == (2, enc.dim)
    assert torch.allclose(out, want, atol=1e-5)
    # the frame part reads the last frame only: earlier frames change only the clip part
    changed = video.clone()
    changed[:, 0] = 255 - changed[:, 0]
    with torch.no_grad():
        out2 = enc.encode(changed)
    assert torch.allclose(out2[:, inv.dim:], out[:, inv.dim:], atol=1e-6)
    assert not torch.allclose(out2[:, : inv.dim], out[:, : inv.dim], atol=1e-4)


def test_saved_encoder_loads_without_the_directory_it_was_built_from(tmp_path):
    inv, inv_dir = _invact(tmp_path)
    enc = build_encoder("with_frame", action=str(inv_dir), frame=FRAME)
    assert enc.cfg.action == {"name": "invact", "params": to_dict(inv.cfg)}  # self-contained, no path
    saved = enc.save_pretrained(tmp_path / "with_frame")
    shutil.rmtree(inv_dir)
    back = build_encoder(str(saved))
    video = _video(seed=1)
    with torch.no_grad():
        assert torch.allclose(back.encode(video), enc.encode(video), atol=1e-6)


def test_bad_parts_are_one_line(tmp_path):
    with pytest.raises(ValueError, match="with_frame: action must name an encoder"):
        build_encoder("with_frame")
    _, inv_dir = _invact(tmp_path)
    with pytest.raises(ValueError, match="frame encoder 'flow_mean' reads frame pairs"):
        build_encoder("with_frame", action=str(inv_dir), frame="flow_mean")
    with pytest.raises(FileNotFoundError, match="no_such_dir"):
        build_encoder("with_frame", action=str(tmp_path / "no_such_dir"))


def test_a_policy_head_trains_on_it_from_a_yaml_spec_and_reloads_without_the_parts(tmp_path):
    """policies/train.py with `encoder=<with_frame YAML>`: the head's features are the two parts side by
    side for both cameras, and the saved policy acts the same once the InvAct directory is gone."""
    import numpy as np

    from envs.policy_api import build_policy
    from policies.train import TrainHeadConfig, train
    from tests.test_policy_heads import _write_demos

    inv, inv_dir = _invact(tmp_path)
    spec = tmp_path / "with_frame.yaml"
    spec.write_text(f"name: with_frame\nparams:\n  action: {inv_dir}\n  frame:\n    name: backbone_mean\n"
                    "    params: {backbone: efficientnet_lite0, image_size: 64}\n")
    demos = _write_demos(tmp_path / "demos", n_demos=2, T=10, size=32)
    cfg = TrainHeadConfig(env="kitchen", task="micro", encoder=str(spec), demos=str(demos), max_demos=2, steps=20,
                          frames=4, stride=2, eval_episodes=0, feature_proj=8, out=str(tmp_path / "run"),
                          cache_root=str(tmp_path / "cache"), progress=False, threads=1)
    train(cfg)
    policy = build_policy(str(tmp_path / "run" / "policy"))
    assert policy.head.cfg.feature_dim == 2 * (inv.dim + 1280)
    rng = np.random.default_rng(0)
    obs = [{"agentview_rgb": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8),
            "eye_in_hand_rgb": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8),
            "proprio": rng.normal(size=12).astype(np.float32)} for _ in range(5)]
    policy.reset()
    before = [policy.act(o, "") for o in obs]
    shutil.rmtree(inv_dir)
    again = build_policy(str(tmp_path / "run" / "policy"))
    again.reset()
    np.testing.assert_allclose(np.stack([again.act(o, "") for o in obs]), np.stack(before), atol=1e-6)
