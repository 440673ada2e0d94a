"""Feature and flow caches (hit/miss/invalidation) and optical flow correctness."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from encoders.backbones import build_backbone
from encoders.features import backbone_features, dataset_key, flow_maps
from encoders.flow import compute_flow, compute_flow_batch, raft_available
from envs.atomic_world.toy import make_toy_dataset


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy_dataset(tmp_path_factory.mktemp("toy"), scenes=2, takes_per_scene=1, frames=4, size=32)


class CountingPixels(torch.nn.Module):
    """Wraps a real backbone and counts frames it is asked to process."""

    def __init__(self, image_size: int = 16):
        super().__init__()
        self.inner = build_backbone("pixels", image_size=image_size)
        self.spec, self.dim, self.image_size = "pixels", self.inner.dim, self.inner.image_size
        self.frames_seen = 0

    def cache_key(self) -> str:
        return self.inner.cache_key()

    def extract(self, video, batch_size=64, tokens=True):
        self.frames_seen += video.shape[0] * video.shape[1]
        return self.inner.extract(video, batch_size, tokens)


def test_feature_cache_miss_then_hit_memmapped(toy, tmp_path):
    bb = CountingPixels()
    first = backbone_features(bb, toy, "val", tokens=True, cache_root=tmp_path)
    n = len(first.index)
    assert not first.from_cache and bb.frames_seen == n * 4
    assert first.arrays["pooled"].shape == (n, 4, 192) and first.arrays["tokens"].shape == (n, 4, 4, 192)
    assert sorted(p.name for p in first.cache_dir.iterdir()) == ["val.json", "val.pooled.npy", "val.tokens.npy"]
    again = backbone_features(bb, toy, "val", tokens=True, cache_root=tmp_path)
    assert again.from_cache and bb.frames_seen == n * 4  # nothing recomputed
    assert isinstance(again.arrays["pooled"], np.memmap)
    np.testing.assert_array_equal(again.arrays["pooled"], first.arrays["pooled"])
    # values are the backbone's own output, in index order
    from envs.atomic_world.dataset import load_clip

    clip = torch.from_numpy(load_clip(toy / again.index["path"][3])).permute(0, 3, 1, 2)[None]
    _, ref = bb.inner.extract(clip)
    np.testing.assert_allclose(again.arrays["pooled"][3], ref[0].numpy(), atol=1e-6)
    # pooled-only request reuses the entry that has tokens
    assert backbone_features(bb, toy, "val", cache_root=tmp_path).from_cache
    # view filter selects rows from the cached split
    ego = backbone_features(bb, toy, "val", views=("ego",), cache_root=tmp_path)
    assert ego.from_cache and set(ego.index["view"]) == {"ego"} and len(ego.index) == n // 2


def test_feature_cache_keyed_by_frame_size_and_dataset(toy, tmp_path):
    bb16 = CountingPixels(16)
    backbone_features(bb16, toy, "val", cache_root=tmp_path)
    bb32 = CountingPixels(32)
    res = backbone_features(bb32, toy, "val", cache_root=tmp_path)
    assert not res.from_cache and bb32.frames_seen > 0 and "32px" in str(res.cache_dir)
    # a regenerated dataset (different index) gets a new key
    key = dataset_key(toy)
    other = make_toy_dataset(tmp_path / "toy", scenes=2, takes_per_scene=1, frames=4, size=32, seed=5, split="train")
    assert dataset_key(other) != key


def test_incomplete_cache_entry_is_recomputed(toy, tmp_path):
    bb = CountingPixels()
    res = backbone_features(bb, toy, "val", cache_root=tmp_path)
    (res.cache_dir / "val.pooled.npy").unlink()  # e.g. a run killed between files
    seen = bb.frames_seen
    assert not backbone_features(bb, toy, "val", cache_root=tmp_path).from_cache
    assert bb.frames_seen == 2 * seen


def _moving_square(dx: int, dy: int, t: int = 4, size: int = 48) -> np.ndarray:
    rng = np.random.default_rng(0)
    tex = rng.integers(0, 256, (14, 14, 3), dtype=np.uint8)
    frames = np.full((t, size, size, 3), 40, np.uint8)
    for i in range(t):
        y, x = 17 + dy * i, 17 + dx * i
        frames[i, y : y + 14, x : x + 14] = tex
    return frames


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_flow_channels_are_dx_dy_magnitude(method):
    f = compute_flow(_moving_square(2, 0), method)
    assert f.shape == (3, 48, 48, 3) and f.dtype == np.float32
    centre = f[:, 21:28, 21:28].reshape(-1, 3).mean(0)
    assert centre[0] > 1.0 and abs(centre[1]) < 0.5  # moving right: +dx, ~0 dy
    np.testing.assert_allclose(f[..., 2], np.hypot(f[..., 0], f[..., 1]), rtol=1e-5, atol=1e-6)
    down = compute_flow(_moving_square(0, 2), method)[:, 21:28, 21:28].reshape(-1, 3).mean(0)
    assert down[1] > 1.0 and abs(down[0]) < 0.5  # moving down: +dy
    static = compute_flow(np.repeat(_moving_square(0, 0)[:1], 3, 0), method)
    assert np.abs(static).max() < 0.1


def test_flow_bad_inputs_and_raft_optional():
    with pytest.raises(ValueError, match="at least 2 frames"):
        compute_flow(np.zeros((1, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match=r"channels-first"):
        compute_flow(np.zeros((2, 3, 8, 8), np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        compute_flow(np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="unknown flow method 'lk'"):
        compute_flow(np.zeros((2, 8, 8, 3), np.uint8), "lk")
    if not raft_available():
        with pytest.raises(ImportError, match="torchvision"):
            compute_flow(np.zeros((2, 8, 8, 3), np.uint8), "raft")
    v = torch.from_numpy(_moving_square(2, 0)).permute(0, 3, 1, 2)[None]
    assert compute_flow_batch(v, size=32).shape == (1, 3, 32, 32, 3)


def test_flow_cache_hit(toy, tmp_path, monkeypatch):
    first = flow_maps(toy, "val", size=32, cache_root=tmp_path)
    assert not first.from_cache and first.arrays["flow"].shape == (len(first.index), 3, 32, 32, 3)
    import encoders.flow as flow_mod

    def boom(*a, **k):
        raise AssertionError("flow recomputed on a cache hit")

    monkeypatch.setattr(flow_mod, "compute_flow", boom)
    again = flow_maps(toy, "val", size=32, cache_root=tmp_path)
    assert again.from_cache
    np.testing.assert_array_equal(again.arrays["flow"], first.arrays["flow"])


@pytest.mark.parametrize("name,params,atol", [
    ("backbone_mean", {"backbone": "pixels"}, 1e-5),
    ("flow_mean", {"size": 32, "grid": 2}, 2e-2),  # the flow cache is float16
])
def test_cached_dataset_embeddings_equal_encode(toy, tmp_path, name, params, atol):
    from encoders import ActionEncoder, build_encoder

    enc = build_encoder(name, **params)
    index, cached = enc.embed_dataset(toy, "val", cache_root=tmp_path)
    # the base class's default: plain `encode` over every clip, no cache
    index2, direct = ActionEncoder.embed_dataset(enc, toy, "val", None, batch_size=3)
    assert index["path"].tolist() == index2["path"].tolist()
    np.testing.assert_allclose(cached, direct, atol=atol, rtol=1e-3)
    _, again = enc.embed_dataset(toy, "val", cache_root=tmp_path)
    np.testing.assert_array_equal(cached, again)


def test_failed_extraction_leaves_no_cache_entry(toy, tmp_path):
    class Failing(CountingPixels):
        def extract(self, video, batch_size=64, tokens=True):
            if self.frames_seen:
                raise RuntimeError("backbone died")
            return super().extract(video, batch_size, tokens)

    with pytest.raises(RuntimeError, match="backbone died"):
        backbone_features(Failing(), toy, "val", tokens=True, cache_root=tmp_path, batch_size=2)
    leftovers = [p for p in (tmp_path / "features").rglob("*") if p.is_file()]
    assert leftovers == []
    assert not backbone_features(CountingPixels(), toy, "val", cache_root=tmp_path).from_cache


def test_partial_files_are_per_process(toy, tmp_path):
    """While an entry is computed its arrays stream into partial files named with the process id, so
    two runs filling the same cache entry at once never write into one file."""
    seen: list[str] = []

    class Watching(CountingPixels):
        def extract(self, video, batch_size=64, tokens=True):
            seen.extend(p.name for p in (tmp_path / "features").rglob("*.partial.npy"))
            return super().extract(video, batch_size, tokens)

    res = backbone_features(Watching(), toy, "val", tokens=True, cache_root=tmp_path, batch_size=2)
    assert seen and set(seen) == {f".val.{n}.{os.getpid()}.partial.npy" for n in ("pooled", "tokens")}
    assert sorted(p.name for p in res.cache_dir.iterdir()) == ["val.json", "val.pooled.npy", "val.tokens.npy"]
