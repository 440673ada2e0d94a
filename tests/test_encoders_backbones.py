"""Image backbones (real EfficientNet-Lite0 weights, pixels, tiny random HF models) and text encoders."""

from __future__ import annotations

import pytest
import torch

from encoders import available_backbones, build_backbone, build_encoder, build_text_encoder


def video(b: int = 2, t: int = 3, size: int = 40, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, t, 3, size, size), dtype=torch.uint8, generator=g)


def test_registry_lists_backbones():
    names = available_backbones()
    assert "efficientnet_lite0" in names and "pixels" in names and any(n.startswith("hf:") for n in names)


def test_efficientnet_lite0_real_weights_shapes_and_determinism():
    bb = build_backbone("efficientnet_lite0", image_size=64)
    tok, pooled = bb.extract(video())
    assert tok.shape == (2, 3, 4, 1280) and pooled.shape == (2, 3, 1280)
    assert torch.allclose(pooled, tok.mean(2), atol=1e-5)
    # frame batching must not change results (batch-norm in eval mode, no cross-frame mixing)
    _, pooled1 = bb.extract(video(), batch_size=1, tokens=False)
    assert torch.allclose(pooled, pooled1, atol=1e-4)
    # pretrained weights: conv stem is not at init scale, and features differ across images
    assert pooled[0, 0].std() > 0 and not torch.allclose(pooled[0, 0], pooled[1, 0])
    with pytest.raises(ValueError, match="multiple of 32"):
        build_backbone("efficientnet_lite0", image_size=50)


def test_efficientnet_sees_content_not_noise():
    # two renders of the same scene should be closer than a render of a different scene
    bb = build_backbone("efficientnet_lite0", image_size=64)
    g = torch.Generator().manual_seed(1)
    a = torch.randint(0, 256, (1, 1, 3, 64, 64), dtype=torch.uint8, generator=g)
    a_shift = torch.roll(a, shifts=2, dims=-1)
    b = torch.zeros_like(a)
    b[..., 16:48, 16:48] = 255
    _, p = bb.extract(torch.cat([a, a_shift, b]), tokens=False)
    p = torch.nn.functional.normalize(p[:, 0], dim=-1)
    assert (p[0] @ p[1]) > (p[0] @ p[2])


def test_pixels_backbone_is_patchified_input():
    bb = build_backbone("pixels", image_size=16)
    v = torch.zeros(1, 1, 3, 16, 16, dtype=torch.uint8)
    v[..., :8, :8] = 255  # top-left patch white
    tok, pooled = bb.extract(v)
    assert tok.shape == (1, 1, 4, 192)
    assert tok[0, 0, 0].min() == 1.0 and tok[0, 0, 1:].max() == 0.0
    assert pooled[0, 0].mean() == pytest.approx(0.25)


def _tiny_vision(kind: str, d):
    from transformers import CLIPVisionConfig, CLIPVisionModel, Dinov2Config, Dinov2Model

    kw = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
              image_size=32, patch_size=8)
    torch.manual_seed(0)
    model = CLIPVisionModel(CLIPVisionConfig(**kw)) if kind == "clip" else Dinov2Model(Dinov2Config(**kw))
    model.save_pretrained(d)
    return model


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["clip", "dinov2"])
def test_hf_vision_backbone_from_local_dir(tmp_path, kind):
    model = _tiny_vision(kind, tmp_path / kind)
    bb = build_backbone(f"hf:{tmp_path / kind}")
    assert bb.dim == 32 and bb.image_size == 32
    v = video(size=32)
    tok, pooled = bb.extract(v)
    assert tok.shape == (2, 3, 16, 32)  # 4x4 patches, CLS dropped
    assert pooled.shape == (2, 3, 32)
    # tokens equal the model's own last-layer patch tokens on the same normalised input
    x = bb.preprocess(v[0])
    with torch.no_grad():
        ref = model.eval()(pixel_values=x).last_hidden_state[:, -16:]
    assert torch.allclose(tok[0], ref, atol=1e-5)
    # other input sizes interpolate position embeddings
    tok48, _ = build_backbone(f"hf:{tmp_path / kind}", image_size=48).extract(v)
    assert tok48.shape == (2, 3, 36, 32)
    # and it plugs into an ActionEncoder by config, and survives a save/load round trip
    enc = build_encoder("backbone_mean", backbone=f"hf:{tmp_path / kind}")
    enc.save_pretrained(tmp_path / "enc")
    assert torch.equal(build_encoder(str(tmp_path / "enc")).encode(v), enc.encode(v))


def test_hf_backbone_bad_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="hf backbone directory not found"):
        build_backbone(f"hf:{tmp_path / 'none'}")
    (tmp_path / "x").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        build_backbone(f"hf:{tmp_path / 'x'}")
    with pytest.raises(KeyError, match="unknown backbone 'vgg'"):
        build_backbone("vgg")


def test_backbone_rejects_bad_video():
    bb = build_backbone("pixels")
    with pytest.raises(TypeError, match="uint8"):
        bb.extract(video().float())


@pytest.fixture(scope="module")
def minilm():
    return build_text_encoder("minilm")


def test_minilm_real_sentence_embeddings(minilm):
    e = minilm.encode(["a person cuts a tomato", "someone slices a tomato", "the robot opens the drawer"])
    assert e.shape == (3, 384)
    assert torch.allclose(e.norm(dim=-1), torch.ones(3), atol=1e-5)
    sim = e @ e.T
    assert sim[0, 1] > sim[0, 2] + 0.2  # paraphrase much closer than an unrelated sentence
    # batching does not change embeddings
    assert torch.allclose(minilm.encode(["a person cuts a tomato"]), e[:1], atol=1e-5)
    with pytest.raises(TypeError, match="list of strings"):
        minilm.encode([1, 2])


def test_hf_clip_text_from_local_dir(tmp_path):
    from transformers import AutoTokenizer, CLIPTextConfig, CLIPTextModelWithProjection

    from encoders.text import minilm_dir

    tok = AutoTokenizer.from_pretrained(minilm_dir(), local_files_only=True)
    cfg = CLIPTextConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                         num_attention_heads=4, projection_dim=16, max_position_embeddings=32,
                         eos_token_id=tok.sep_token_id, pad_token_id=tok.pad_token_id, bos_token_id=tok.cls_token_id)
    torch.manual_seed(0)
    CLIPTextModelWithProjection(cfg).save_pretrained(tmp_path / "clip")
    tok.save_pretrained(tmp_path / "clip")
    enc = build_text_encoder(f"hf_clip_text:{tmp_path / 'clip'}")
    e = enc.encode(["push the cube", "pull the cube", "push the cube"])
    assert e.shape == (3, 16)
    assert torch.allclose(e[0], e[2], atol=1e-5) and not torch.allclose(e[0], e[1], atol=1e-3)
    with pytest.raises(FileNotFoundError, match="hf_clip_text directory not found"):
        build_text_encoder(f"hf_clip_text:{tmp_path / 'none'}")
    with pytest.raises(KeyError, match="unknown text encoder 'bert'"):
        build_text_encoder("bert")
