"""ActionEncoder API: registry, build_encoder forms, save/load round-trip, input validation."""

from __future__ import annotations

import json

import pytest
import torch

from encoders import ActionEncoder, EncoderSpec, available_encoders, build_encoder
from encoders.baselines import BackboneMeanConfig, RandomConfig


def video(b: int = 2, t: int = 4, size: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, t, 3, size, size), dtype=torch.uint8, generator=g)


def test_registry_has_baselines():
    assert {"backbone_mean", "flow_mean", "random"} <= set(available_encoders())


@pytest.mark.parametrize("name,params,dim", [
    ("backbone_mean", {"backbone": "pixels"}, 192),
    ("flow_mean", {"size": 32, "grid": 2}, 24),
    ("random", {"dim": 16}, 16),
])
def test_encode_shapes_and_frozen(name, params, dim):
    enc = build_encoder(name, **params)
    assert isinstance(enc, ActionEncoder) and not enc.training
    out = enc.encode(video())
    assert out.shape == (2, dim) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert all(not p.requires_grad for p in enc.parameters())


def test_build_forms_agree():
    v = video()
    a = build_encoder("backbone_mean", backbone="pixels").encode(v)
    b = build_encoder(BackboneMeanConfig(backbone="pixels")).encode(v)
    c = build_encoder(EncoderSpec(name="backbone_mean", params={"backbone": "pixels"})).encode(v)
    d = build_encoder({"name": "backbone_mean", "params": {"backbone": "pixels"}}).encode(v)
    for x in (b, c, d):
        assert torch.equal(a, x)


def test_default_backbone_mean_is_efficientnet():
    enc = build_encoder("backbone_mean", image_size=64)
    assert enc.backbone().spec == "efficientnet_lite0" and enc.dim == 1280
    out = enc.encode(video(1, 2, 48))
    assert out.shape == (1, 1280)


@pytest.mark.parametrize("name,params", [
    ("random", {"mode": "projection", "dim": 8, "image_size": 8}),
    ("backbone_mean", {"backbone": "pixels"}),
    ("flow_mean", {"method": "farneback", "size": 32, "grid": 2}),
])
def test_save_load_round_trip_identical(tmp_path, name, params):
    enc = build_encoder(name, **params)
    if name == "random":
        # change the weights away from what the config alone would rebuild: loading must restore them
        enc.proj.add_(torch.randn_like(enc.proj))
    v = video()
    enc.save_pretrained(tmp_path / "enc")
    meta = json.loads((tmp_path / "enc" / "config.json").read_text())
    assert meta["encoder"] == name and meta["config"] == {**meta["config"], **params}
    assert (tmp_path / "enc" / "model.safetensors").is_file()
    back = build_encoder(str(tmp_path / "enc"))
    assert type(back) is type(enc)
    assert torch.equal(enc.encode(v), back.encode(v))
    assert torch.equal(ActionEncoder.from_pretrained(tmp_path / "enc").encode(v), enc.encode(v))


def test_random_hash_mode_is_content_keyed():
    enc = build_encoder("random", dim=32)
    v = video(3)
    v[2] = v[0]
    out = enc.encode(v)
    assert torch.equal(out[0], out[2])
    assert not torch.allclose(out[0], out[1])
    assert not torch.equal(out, build_encoder("random", dim=32, seed=1).encode(v))


def test_bad_video_inputs_name_the_problem():
    enc = build_encoder("random", dim=4)
    with pytest.raises(TypeError, match="uint8"):
        enc.encode(video().float())
    with pytest.raises(ValueError, match=r"5 dims \(B, T, C, H, W\).*\(4, 3, 32, 32\)"):
        enc.encode(video()[0])
    with pytest.raises(ValueError, match="channels-last"):
        enc.encode(video().permute(0, 1, 3, 4, 2).contiguous())
    with pytest.raises(TypeError, match="torch.Tensor"):
        enc.encode(video().numpy())
    with pytest.raises(ValueError, match="T >= 2"):
        build_encoder("flow_mean").encode(video(1, 1))


def test_bad_specs_name_the_problem(tmp_path):
    with pytest.raises(KeyError, match="unknown encoder 'nope'.*backbone_mean"):
        build_encoder("nope")
    with pytest.raises(FileNotFoundError, match="encoder directory not found"):
        build_encoder(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        build_encoder(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="unknown config key 'bogus'"):
        build_encoder("random", bogus=1)
    with pytest.raises(ValueError, match="flow_mean: method"):
        build_encoder("flow_mean", method="lucas")
    with pytest.raises(KeyError, match="unknown backbone 'resnet'"):
        build_encoder("backbone_mean", backbone="resnet")
    with pytest.raises(FileNotFoundError, match="hf backbone directory not found"):
        build_encoder("backbone_mean", backbone=f"hf:{tmp_path}/nothing")
    # a saved dir whose weights do not match the config is refused, naming the file
    enc = build_encoder("random", mode="projection", dim=4, image_size=4)
    enc.save_pretrained(tmp_path / "r")
    meta = json.loads((tmp_path / "r" / "config.json").read_text())
    meta["config"]["image_size"] = 8
    (tmp_path / "r" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"model.safetensors: weights do not fit(.|\n)*proj"):
        build_encoder(str(tmp_path / "r"))


def test_config_validation_for_dataclass_form():
    with pytest.raises(ValueError, match="dim"):
        build_encoder(RandomConfig(dim=0))


def test_yaml_configs_build(tmp_path):
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "configs" / "encoder"
    # only the EncoderSpec files of this module (other files in the folder may be training configs)
    names = {n: build_encoder(root / f"{n}.yaml") for n in ("flow_mean", "random", "pixels_mean")}
    assert names["flow_mean"].registry_name == "flow_mean" and names["pixels_mean"].dim == 192
    (tmp_path / "e.yaml").write_text("name: random\nparams: {dim: 7}\n")
    assert build_encoder(str(tmp_path / "e.yaml")).dim == 7
    (tmp_path / "bad.yaml").write_text("name: random\nparamz: {}\n")
    with pytest.raises(ValueError, match="unknown config key 'paramz'.*bad.yaml"):
        build_encoder(tmp_path / "bad.yaml")


def test_spatial_softmax_keypoints_follow_the_peak():
    """backbone_spatial's keypoints: a channel peaking at grid cell (row 0, col 3) of a 4 x 4 grid has
    its expected (x, y) near (1, -1); a flat channel sits at the centre (0, 0)."""
    from encoders.baselines import spatial_softmax

    tok = torch.zeros(1, 16, 2)
    tok[0, 3, 0] = 20.0  # row 0, col 3: x = +1, y = -1
    k = spatial_softmax(tok)
    assert k.shape == (1, 4)
    assert torch.allclose(k[0, [0, 2]], torch.tensor([1.0, -1.0]), atol=1e-3)
    assert torch.allclose(k[0, [1, 3]], torch.zeros(2), atol=1e-6)
    with pytest.raises(ValueError, match="no square grid"):
        spatial_softmax(torch.zeros(1, 15, 2))
