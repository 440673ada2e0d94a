"""Streaming encoders (encoders/streaming.py): at every step the stream equals `encode` of the window.

For each encoder with hooks (invact, roboact_clip, laq, backbone_mean, flow_mean, with_frame) and the fallback
(random):
2 cameras, episodes shorter and longer than the window span (clamped starts), window lengths equal
to and different from the encoder's own frame count (lazy per-frame / per-pair work), after reset(),
and `episode_features` against per-window `encode`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from configs.loader import from_dict, to_dict
from encoders.streaming import EncoderStream, episode_features, has_stream_hooks, window_steps

TOL = 1e-5


def _build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if name == "invact":  # the real EfficientNet-Lite0 backbone (cross-attention to its tokens)
        from encoders.invact import InvActConfig, InvActEncoder

        cfg = from_dict(InvActConfig, {"dim": 32, "heads": 2, "depth": 1, "flow_size": 16, "frames": 4,
                                       "backbone": "efficientnet_lite0", "backbone_size": 64})  # fmt: skip
        return InvActEncoder(cfg).freeze()
    if name == "invact_rgb":  # RGB + flow tubelets, pixels backbone
        from encoders.invact import InvActConfig, InvActEncoder

        cfg = from_dict(InvActConfig, {"dim": 32, "heads": 2, "depth": 1, "flow_size": 16, "frames": 4,
                                       "modality": "rgb+flow", "backbone": "pixels", "backbone_size": 16})  # fmt: skip
        return InvActEncoder(cfg).freeze()
    if name.startswith("roboact_clip"):  # roboact_clip_motion: the pixel stems (motion "diff", object "pixels")
        from encoders.roboact.model import RoboActConfig, RoboActEncoder

        motion = {"motion": "diff", "motion_size": 16, "motion_width": 4, "action_input": "temporal",
                  "object_input": "pixels", "object_width": 4, "object_size": 16} if name.endswith("motion") else {}
        cfg = from_dict(RoboActConfig, {"dim": 16, "heads": 2, "attn_tokens": 2, "branch_dim": 8, "depth": 1,
                                        "frames": 4, "dropout": 0.0, "backbone": "pixels", "backbone_size": 16,
                                        **motion})  # fmt: skip
        enc = RoboActEncoder(cfg)
        with torch.no_grad():  # non-trivial feature statistics, as after training
            enc.feat_mean.uniform_(0.2, 0.6)
            enc.feat_std.uniform_(0.1, 0.3)
        return enc.freeze()
    if name == "with_frame":  # the tiny InvAct's clip + the current frame's backbone_mean
        from encoders.with_frame import WithFrameConfig, WithFrameEncoder

        inv = _build("invact")
        frame = {"name": "backbone_mean", "params": {"backbone": "efficientnet_lite0", "image_size": 64}}
        return WithFrameEncoder(WithFrameConfig(action={"name": "invact", "params": to_dict(inv.cfg)}, frame=frame)).freeze()
    if name == "laq":
        from encoders.laq.model import LAQConfig, LAQEncoder

        return LAQEncoder(LAQConfig(image_size=32, patch=8, dim=32, depth=1, temporal_depth=1, heads=2,
                                    quant_dim=16, codebook_size=8, code_tokens=4)).freeze()  # fmt: skip
    from encoders import build_encoder

    if name == "backbone_mean":
        return build_encoder("backbone_mean", backbone="efficientnet_lite0", image_size=64)
    if name == "flow_mean":
        return build_encoder("flow_mean", size=16, grid=2)
    return build_encoder("random", mode="projection", dim=16)


def _episode(n_t: int, views: int = 2, size: int = 32, seed: int = 0) -> list[np.ndarray]:
    """Smoothly moving squares on noise, one `(T, H, W, 3) uint8` video per camera (flow sees motion)."""
    rng = np.random.default_rng(seed)
    out = []
    for v in range(views):
        base = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
        vid = np.repeat(base[None], n_t, 0)
        for t in range(n_t):
            y, x = 4 + (t + 3 * v) % (size - 12), 2 + (2 * t) % (size - 12)
            vid[t, y : y + 8, x : x + 8] = (200, 60 + 40 * v, 30)
        out.append(vid)
    return out


def _reference(enc, videos: list[np.ndarray], t: int, frames: int, stride: int) -> np.ndarray:
    """The old path: `encode` of each camera's window `(1, T, 3, H, W)`, one camera at a time."""
    idx = window_steps(t, frames, stride)
    rows = []
    with torch.no_grad():
        for vid in videos:
            video = torch.from_numpy(vid[idx])[None].permute(0, 1, 4, 2, 3).contiguous()
            rows.append(enc.encode(video).numpy()[0])
    return np.stack(rows)


ENCODERS = ["invact", "invact_rgb", "roboact_clip", "roboact_clip_motion", "laq", "backbone_mean", "flow_mean", "random",
            "with_frame"]


@pytest.mark.parametrize("name", ENCODERS)
@pytest.mark.parametrize("frames,stride", [(4, 2), (6, 1)])
def test_stream_equals_encode_of_each_window(name, frames, stride):
    """(4, 2): window length = the encoders' frame count (4); (6, 1): it differs, so each window
    samples frames at uneven gaps and the stream computes missing frame/pair work lazily."""
    enc = _build(name)
    assert has_stream_hooks(enc, frames) == (name != "random")
    span = (frames - 1) * stride + 1
    stream = EncoderStream(enc, frames=frames, stride=stride, views=2)
    worst = 0.0
    for n_t, seed in ((span - 3, 1), (span + 6, 2)):  # shorter and longer than the span; reset between
        stream.reset()
        videos = _episode(n_t, seed=seed)
        for t in range(n_t):
            got = stream.push(np.stack([v[t] for v in videos]))
            assert got.shape == (2, enc.dim) and got.dtype == np.float32
            err = float(np.abs(got - _reference(enc, videos, t, frames, stride)).max())
            worst = max(worst, err)
            assert err <= TOL, f"{name} step {t} of {n_t}: max abs error {err:.2e}"
    print(f"{name} frames={frames} stride={stride}: max abs error {worst:.2e}")


@pytest.mark.parametrize("name", ["invact", "laq", "backbone_mean", "random", "with_frame"])
def test_episode_features_equal_per_window_encode(name):
    enc = _build(name)
    videos = _episode(11, seed=3)
    feats = episode_features(enc, videos, frames=4, stride=2, batch=4, chunk=5)  # blocks and chunks split the episode
    assert feats.shape == (11, 2 * enc.dim) and feats.dtype == np.float32
    ref = np.stack([_reference(enc, videos, t, 4, 2).reshape(-1) for t in range(11)])
    assert np.abs(feats - ref).max() <= TOL
    stream = EncoderStream(enc, frames=4, stride=2, views=2)
    rows = np.stack([stream.push([v[t] for v in videos]).reshape(-1) for t in range(11)])
    assert np.abs(feats - rows).max() <= TOL


def test_one_camera_with_several_threads_is_exact():
    """A one-camera stream runs the backbone on single frames; with >1 torch thread oneDNN computes a
    lone image differently from one inside a batch (~2e-5), which `Backbone.extract` pads away."""
    enc = _build("backbone_mean")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        videos = _episode(9, views=1, seed=6)
        stream = EncoderStream(enc, frames=4, stride=2, views=1)
        for t in range(9):
            got = stream.push(videos[0][t][None])
            assert np.abs(got - _reference(enc, videos, t, 4, 2)).max() <= TOL, t
    finally:
        torch.set_num_threads(before)


def test_stream_does_only_the_new_frames_work():
    """After the first window, each push runs the frame hook on one frame per camera and the pair
    hook on one pair per camera (window length = the encoder's frame count)."""
    enc = _build("invact_rgb")
    calls = {"frames": [], "pairs": []}
    frame_work, pair_work = enc.frame_work, enc.pair_work
    enc.frame_work = lambda x: calls["frames"].append(len(x)) or frame_work(x)
    enc.pair_work = lambda a, b: calls["pairs"].append(len(a["small"])) or pair_work(a, b)
    stream = EncoderStream(enc, frames=4, stride=2, views=2)
    for t, img in enumerate(_episode(12)[0]):  # noqa: B007 - t names the failing step
        calls["frames"].clear()
        calls["pairs"].clear()
        stream.push([img, img[::-1].copy()])
        assert calls["frames"] == [2], t  # all cameras in one batch
        assert calls["pairs"] == [2], t  # step 0: the (0, 0) pair; later (t - 2, t) (or (0, t) at the start)


def test_stream_windows_are_the_dataset_windows():
    """The stream's windows are the demo EpisodeDataset's camera windows (`frame_offsets`): the frames
    `window_steps` picks are the frames `EpisodeDataset.window` returns, at every step of an episode
    shorter and one longer than the window span."""
    from envs.episodes import Episode, EpisodeDataset, frame_offsets

    for frames, stride in ((1, 1), (3, 2), (8, 2), (4, 3)):
        span = (frames - 1) * stride + 1
        for n_t in (span, span + 7):
            ids = np.arange(n_t, dtype=np.int64)  # the "frame" of step t is t
            ep = Episode({"ids": ids, "action": np.zeros((n_t, 1), np.float32)}, "", "mem:demo_0")
            ds = EpisodeDataset([ep], {"ids": frame_offsets(frames, stride)})
            for t in range(n_t):
                assert window_steps(t, frames, stride).tolist() == ds.window(0, t, "ids")[0].tolist(), (frames, t)
    assert window_steps(3, 3, 2).tolist() == [0, 1, 3]  # clamped at the episode start


def test_bad_input_is_named():
    stream = EncoderStream(_build("random"), frames=3, stride=1, views=2)
    with pytest.raises(ValueError, match="expected 2 frames"):
        stream.push(np.zeros((3, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="camera 1 frame must be"):
        stream.push([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.float32)])
    with pytest.raises(ValueError, match="same, non-zero number of frames"):
        episode_features(stream.encoder, [np.zeros((4, 8, 8, 3), np.uint8), np.zeros((5, 8, 8, 3), np.uint8)], 3, 1)


def test_head_policy_features_are_the_per_camera_windows_and_reset_restarts():
    """EncoderHeadPolicy (one stream over both cameras, frames resized to frame_size) sees the concatenated
    `encode` of each camera's window at every `act`; reset() starts the next episode at step 0."""
    from policies.heads.data import WindowConfig
    from policies.heads.model import HeadConfig, HeadNetwork
    from policies.heads.policy import EncoderHeadPolicy

    enc = _build("laq")
    head = HeadNetwork(HeadConfig(feature_dim=2 * enc.dim, proprio_dim=3)).eval()
    policy = EncoderHeadPolicy(enc, head, WindowConfig(frames=4, stride=2), frame_size=32)
    for seed in (4, 5):  # two episodes on one policy
        policy.reset()
        big = [np.repeat(np.repeat(v, 2, 1), 2, 2) for v in _episode(9, seed=seed)]  # 64 px -> resized to 32
        small = [np.stack([policy._frame(f, "x") for f in v]) for v in big]
        for t in range(9):
            obs = {"agentview_rgb": big[0][t], "eye_in_hand_rgb": big[1][t], "proprio": np.zeros(3, np.float32)}
            assert policy.act(obs, "").shape == (7,)
            ref = _reference(enc, small, t, 4, 2).reshape(-1)
            assert np.abs(policy._feats[t] - ref).max() <= TOL, (seed, t)  # _feats: {episode step: features}
