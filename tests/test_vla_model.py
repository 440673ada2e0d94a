"""VLA model registry: tiny shapes, extra queries, black/white images for every model, OpenVLA layout
loading (written here key by key from OpenVLA's HF layout, independent of the loader), estimate CLI."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from vla import VLAS, VLAConfig, build_vla

torch.set_num_threads(1)

BLACK_WHITE = np.stack([np.zeros((48, 64, 3), np.uint8), np.full((48, 64, 3), 255, np.uint8)])
INSTR = ["pick up the red cube", "put both the alphabet soup and the tomato sauce in the basket."]


# -- a tiny OpenVLA checkpoint in the Hugging Face layout ---------------------------------------------
DINO = dict(dim=24, depth=3, heads=2, mlp_hidden=48, patch=7)
SIGLIP = dict(dim=16, depth=3, heads=2, mlp_hidden=40, patch=7)
LM = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, vocab_size=320)
IMAGE = 28  # 4x4 patches of 7 px


def _vit_keys(prefix: str, s: dict, grid: int, dino: bool) -> dict[str, tuple[int, ...]]:
    """timm VisionTransformer keys: DINOv2 reg4 (cls + 4 registers, LayerScale as scale_factor) or
    SigLIP (no cls token, attention-pool head)."""
    d, h, p = s["dim"], s["mlp_hidden"], s["patch"]
    k: dict[str, tuple[int, ...]] = {}
    if dino:
        k[prefix + "cls_token"] = (1, 1, d)
        k[prefix + "reg_token"] = (1, 4, d)
    k[prefix + "pos_embed"] = (1, grid * grid, d)
    k[prefix + "patch_embed.proj.weight"] = (d, 3, p, p)
    k[prefix + "patch_embed.proj.bias"] = (d,)
    for i in range(s["depth"]):
        b = f"{prefix}blocks.{i}."
        k |= {b + "norm1.weight": (d,), b + "norm1.bias": (d,), b + "attn.qkv.weight": (3 * d, d),
              b + "attn.qkv.bias": (3 * d,), b + "attn.proj.weight": (d, d), b + "attn.proj.bias": (d,),
              b + "norm2.weight": (d,), b + "norm2.bias": (d,), b + "mlp.fc1.weight": (h, d),
              b + "mlp.fc1.bias": (h,), b + "mlp.fc2.weight": (d, h), b + "mlp.fc2.bias": (d,)}
        if dino:
            k |= {b + "ls1.scale_factor": (d,), b + "ls2.scale_factor": (d,)}
    k |= {prefix + "norm.weight": (d,), prefix + "norm.bias": (d,)}
    if not dino:
        a = prefix + "attn_pool."
        k |= {a + "latent": (1, 1, d), a + "q.weight": (d, d), a + "q.bias": (d,), a + "kv.weight": (2 * d, d),
              a + "kv.bias": (2 * d,), a + "proj.weight": (d, d), a + "proj.bias": (d,), a + "norm.weight": (d,),
              a + "norm.bias": (d,), a + "mlp.fc1.weight": (h, d), a + "mlp.fc1.bias": (h,),
              a + "mlp.fc2.weight": (d, h), a + "mlp.fc2.bias": (d,)}
    return k


def openvla_keys() -> dict[str, tuple[int, ...]]:
    grid = IMAGE // 7
    k = _vit_keys("vision_backbone.featurizer.", DINO, grid, dino=True)
    k |= _vit_keys("vision_backbone.fused_featurizer.", SIGLIP, grid, dino=False)
    c, dm = DINO["dim"] + SIGLIP["dim"], LM["hidden_size"]
    k |= {"projector.fc1.weight": (4 * c, c), "projector.fc1.bias": (4 * c,), "projector.fc2.weight": (dm, 4 * c),
          "projector.fc2.bias": (dm,), "projector.fc3.weight": (dm, dm), "projector.fc3.bias": (dm,)}
    v, f = LM["vocab_size"], LM["intermediate_size"]
    k["language_model.model.embed_tokens.weight"] = (v, dm)
    for i in range(LM["num_hidden_layers"]):
        b = f"language_model.model.layers.{i}."
        k |= {b + f"self_attn.{n}_proj.weight": (dm, dm) for n in "qkvo"}
        k |= {b + "mlp.gate_proj.weight": (f, dm), b + "mlp.up_proj.weight": (f, dm),
              b + "mlp.down_proj.weight": (dm, f), b + "input_layernorm.weight": (dm,),
              b + "post_attention_layernorm.weight": (dm,)}
    k |= {"language_model.model.norm.weight": (dm,), "language_model.lm_head.weight": (v, dm)}
    return k


def write_openvla(d: Path, edit=None) -> Path:
    """Write a tiny random OpenVLA checkpoint (bf16, two shards + index, config.json schema, tokenizer).

    `edit(tensors)` may change the tensor dict before writing (wrong shapes, missing keys...)."""
    from safetensors.torch import save_file
    from tokenizers.processors import TemplateProcessing

    from vla.lm import tiny_tokenizer

    d.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    tensors = {}
    for name, shape in openvla_keys().items():
        t = torch.randn(shape, generator=g) * 0.2
        if name.endswith(("norm1.weight", "norm2.weight", "norm.weight", "layernorm.weight")):
            t = 1.0 + 0.1 * t
        tensors[name] = t.to(torch.bfloat16)
    if edit is not None:
        edit(tensors)
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": [n for n in names if not n.startswith("language_model.")],
              "model-00002-of-00002.safetensors": [n for n in names if n.startswith("language_model.")]}
    weight_map = {}
    for fname, keys in shards.items():
        save_file({k: tensors[k].contiguous() for k in keys}, str(d / fname), metadata={"format": "pt"})
        weight_map |= {k: fname for k in keys}
    (d / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    tok = tiny_tokenizer()  # Llama's tokenizer adds <s>; mimic that so images go after BOS
    tok._tokenizer.post_processor = TemplateProcessing(single="[BOS] $A", special_tokens=[("[BOS]", 2)])
    tok.save_pretrained(d)
    config = {
        "architectures": ["OpenVLAForActionPrediction"], "model_type": "openvla",
        "vision_backbone_id": "dinosiglip-vit-so-224px", "llm_backbone_id": "llama2-7b-pure",
        "arch_specifier": "no-align+fused-gelu-mlp", "use_fused_vision_backbone": True,
        "image_resize_strategy": "resize-naive",
        "timm_model_ids": ["vit_large_patch14_reg4_dinov2.lvd142m", "vit_so400m_patch14_siglip_224"],
        "timm_override_act_layers": [None, None], "image_sizes": [IMAGE, IMAGE], "hf_llm_id": "meta-llama/Llama-2-7b-hf",
        "llm_max_length": 2048, "pad_token_id": 0, "pad_to_multiple_of": 64, "n_action_bins": 256,
        "norm_stats": {"bridge_orig": {"action": {"q01": [-1.0] * 7, "q99": [1.0] * 7, "mask": [True] * 7}}},
        "output_projector_states": False, "torch_dtype": "bfloat16", "transformers_version": "4.40.1",
        "text_config": {"model_type": "llama", "pad_token_id": 0, "torch_dtype": "bfloat16", **LM},
        "atomvla_vit_overrides": [DINO, SIGLIP],
    }
    (d / "config.json").write_text(json.dumps(config, indent=2))
    return d


@pytest.fixture(scope="module")
def openvla_dir(tmp_path_factory) -> Path:
    return write_openvla(tmp_path_factory.mktemp("openvla") / "ckpt")


@pytest.fixture(scope="module")
def tiny():
    return build_vla("tiny")


@pytest.fixture(scope="module")
def smol():
    # first use converts the offline GGUF into the cache (~20-60 s); later runs load the cache (seconds)
    return build_vla("smol")


# -- tiny -------------------------------------------------------------------------------------------------
def test_tiny_shapes_and_layout(tiny):
    assert tiny.image_size == 32 and tiny.cfg.image_size == 32 and tiny.num_image_tokens == 16
    pv = tiny.preprocess(BLACK_WHITE)
    assert pv.shape == (2, 3, 32, 32) and pv.dtype == torch.float32
    ids, mask = tiny.tokenize(INSTR)
    assert ids.dtype == torch.long and mask.dtype == torch.long and ids.shape == mask.shape
    assert mask[0, -1] == 0 and mask[1].all()  # right padding
    assert tiny.tokenizer.unk_token_id not in ids[mask.bool()].tolist()
    h = tiny(pv, ids, mask)
    assert h.shape == (2, 16 + ids.shape[1], tiny.hidden_size)
    last = tiny.last_text_index(mask)
    assert last.tolist() == (16 + mask.sum(1) - 1).tolist()
    assert tiny.lm.__class__.__name__ == "LlamaForCausalLM"
    assert tiny.lm_id.startswith("tiny-seed0")
    # same seed, same weights; another seed, another lm_id
    again = build_vla("tiny")
    assert torch.equal(again(pv, ids, mask), h)
    assert build_vla("tiny", seed=1).lm_id != tiny.lm_id


def test_extra_embeds_and_padding_invariance(tiny):
    pv = tiny.preprocess(BLACK_WHITE)
    ids, mask = tiny.tokenize(INSTR)
    q = torch.randn(2, 3, tiny.hidden_size)
    h = tiny(pv, ids, mask, extra_embeds=q)
    assert h.shape == (2, 16 + ids.shape[1] + 3, tiny.hidden_size)
    # extra queries only follow the text: the image/text states are those of a forward without them
    assert torch.allclose(h[:, :-3], tiny(pv, ids, mask), atol=1e-5)
    # a sample alone (no padding) gives the same queries and the same state after the instruction
    ids0, mask0 = tiny.tokenize(INSTR[:1])
    assert ids0.shape[1] < ids.shape[1]
    h0 = tiny(pv[:1], ids0, mask0, extra_embeds=q[:1])
    assert torch.allclose(h0[0, -3:], h[0, -3:], atol=1e-5)
    i, i0 = tiny.last_text_index(mask)[0], tiny.last_text_index(mask0)[0]
    assert torch.allclose(h0[0, i0], h[0, i], atol=1e-5)
    with pytest.raises(ValueError, match="extra_embeds"):
        tiny(pv, ids, mask, extra_embeds=torch.zeros(2, 3, tiny.hidden_size + 1))


def test_tiny_trains_and_freezes_vision(tiny):
    assert not any(p.requires_grad for p in tiny.vision.parameters())
    tiny.train()
    assert not tiny.vision.training and tiny.lm.training
    tiny.eval()
    pv = tiny.preprocess(BLACK_WHITE)
    ids, mask = tiny.tokenize(INSTR)
    tiny(pv, ids, mask).sum().backward()
    assert tiny.projector.fc1.weight.grad is not None
    tiny.zero_grad(set_to_none=True)


def test_unknown_name_lists_known():
    with pytest.raises(KeyError) as e:
        build_vla("gpt-vla")
    msg = str(e.value)
    assert "gpt-vla" in msg and "tiny" in msg and "smol" in msg and "openvla" in msg
    assert set(VLAS.names()) >= {"tiny", "smol", "openvla"}
    with pytest.raises(ValueError, match="unknown VLAConfig field 'imgsize'"):
        build_vla("tiny", imgsize=3)
    with pytest.raises(ValueError, match="needs path"):
        build_vla("openvla")


# -- black/white image for every registered model ---------------------------------------------------------
def _black_white_gap(model) -> float:
    pv = model.preprocess(BLACK_WHITE)
    ids, mask = model.tokenize([INSTR[0], INSTR[0]])
    with torch.no_grad():
        h = model(pv, ids, mask, extra_embeds=torch.zeros(2, 1, model.hidden_size, dtype=model.dtype))
    last = model.last_text_index(mask)
    # the state after the instruction and the extra query must both see the image
    gap_text = (h[0, last[0]] - h[1, last[1]]).abs().max().item()
    gap_query = (h[0, -1] - h[1, -1]).abs().max().item()
    return min(gap_text, gap_query)


@pytest.mark.parametrize("name", ["tiny", "smol", "openvla"])
def test_black_and_white_images_differ(name, request, openvla_dir):
    assert name in VLAS.names()
    model = {"tiny": lambda: request.getfixturevalue("tiny"), "smol": lambda: request.getfixturevalue("smol"),
             "openvla": lambda: build_vla(str(openvla_dir))}[name]()
    assert _black_white_gap(model) > 1e-3


def test_every_registered_model_is_covered():
    # a newly registered model must be added to the black/white test above
    assert set(VLAS.names()) == {"tiny", "smol", "openvla"}


# -- smol -------------------------------------------------------------------------------------------------
def test_smol_is_real_smollm2(smol):
    assert smol.lm.__class__.__name__ == "LlamaForCausalLM"
    assert smol.hidden_size == 576 and smol.lm.config.num_hidden_layers == 30
    assert smol.lm_id.startswith("smollm2-135m")
    assert smol.num_image_tokens == (smol.image_size // 32) ** 2
    assert not any(p.requires_grad for p in smol.vision.parameters())
    # the real weights know English: the next token after a familiar prefix is sensible
    ids = smol.tokenizer("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        nxt = smol.lm(input_ids=ids, logits_to_keep=1).logits[0, -1].argmax().item()
    assert "Paris" in smol.tokenizer.decode([nxt])
    # a CPU speed knob: keep the first K layers; the lm_id records the cut
    cut = build_vla("smol", lm_layers=4, image_size=96)
    assert len(cut.lm.model.layers) == 4 and cut.lm_id == smol.lm_id + "-l4" and cut.num_image_tokens == 9


def test_lm_cache_is_published_atomically(tmp_path, monkeypatch):
    import vla.lm as lm

    calls = []

    def fake(gguf, out):
        calls.append(out)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(lm, "_convert_gguf", fake)
    d = lm.smollm2_dir(tmp_path, verbose=False)
    assert (d / "atomvla_lm.json").is_file() and (d / "config.json").is_file()
    umask = os.umask(0)
    os.umask(umask)
    assert d.stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's private 0700
    assert lm.smollm2_dir(tmp_path, verbose=False) == d and len(calls) == 1  # converted once

    def killed(gguf, out):
        (out / "config.json").write_text("{}")
        raise RuntimeError("killed mid-conversion")

    monkeypatch.setattr(lm, "_convert_gguf", killed)
    shutil.rmtree(d)
    with pytest.raises(RuntimeError, match="killed"):
        lm.smollm2_dir(tmp_path, verbose=False)
    assert list((tmp_path / "lm").iterdir()) == []  # nothing half-written


# -- openvla layout -----------------------------------------------------------------------------------------
def test_openvla_tiny_layout_loads(openvla_dir):
    from safetensors import safe_open

    m = build_vla("openvla", path=str(openvla_dir))
    assert m.image_size == IMAGE and m.num_image_tokens == 16 and m.image_offset == 1  # after <BOS>
    assert m.hidden_size == LM["hidden_size"] and m.lm_id.startswith("openvla-")
    assert m.extra["n_action_bins"] == 256 and "bridge_orig" in m.extra["norm_stats"]
    with safe_open(str(openvla_dir / "model-00001-of-00002.safetensors"), "pt") as f:
        ref = f.get_tensor("vision_backbone.featurizer.blocks.1.ls1.scale_factor").float()
    assert torch.equal(m.vision.featurizer.blocks[1].ls1.scale_factor, ref)
    assert m.lm.config.rms_norm_eps == 1e-6  # the transformers-4.40 default OpenVLA relies on
    # unfrozen towers train everything the forward uses, nothing else (DDP needs every trainable param used)
    m2 = build_vla(str(openvla_dir), freeze_vision=False)
    m2.train()
    pv2 = m2.preprocess(BLACK_WHITE)
    ids2, mask2 = m2.tokenize(INSTR)
    m2(pv2, ids2, mask2).sum().backward()
    no_grad = [n for n, p in m2.vision.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad and m2.vision.featurizer.blocks[0].attn.qkv.weight.grad is not None
    assert not m2.vision.fused_featurizer.attn_pool.latent.requires_grad
    # OpenVLA reads the second-to-last block: the last block and the final norm change nothing
    pv = m.preprocess(BLACK_WHITE)
    ids, mask = m.tokenize(INSTR)
    h = m(pv, ids, mask)
    assert h.shape == (2, 16 + ids.shape[1], LM["hidden_size"])
    with torch.no_grad():
        for tower in (m.vision.featurizer, m.vision.fused_featurizer):
            for p in list(tower.blocks[-1].parameters()) + list(tower.norm.parameters()):
                p.add_(1.0)
    assert torch.equal(m(pv, ids, mask), h)
    with torch.no_grad():
        m.vision.featurizer.blocks[-2].mlp.fc2.bias.add_(1.0)
    assert not torch.allclose(m(pv, ids, mask), h)


def test_openvla_bad_checkpoints_name_the_key(tmp_path):
    def wrong_shape(t):
        t["projector.fc3.weight"] = torch.zeros(LM["hidden_size"], LM["hidden_size"] + 1, dtype=torch.bfloat16)

    def missing(t):
        del t["vision_backbone.featurizer.blocks.1.ls1.scale_factor"]

    def unexpected(t):
        t["vision_backbone.featurizer.mask_token"] = torch.zeros(1, DINO["dim"], dtype=torch.bfloat16)

    cases = [(wrong_shape, r"projector\.fc3\.weight.*shape"),
             (missing, r"missing key 'vision_backbone\.featurizer\.blocks\.1\.ls1\.scale_factor'"),
             (unexpected, r"unexpected key 'vision_backbone\.featurizer\.mask_token'")]
    for i, (edit, pattern) in enumerate(cases):
        d = write_openvla(tmp_path / f"bad{i}", edit=edit)
        with pytest.raises(KeyError, match=pattern):
            build_vla(str(d))
    d = write_openvla(tmp_path / "noconf")
    cfg = json.loads((d / "config.json").read_text())
    del cfg["llm_backbone_id"]
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="config.json: damaged OpenVLA config.*missing field 'llm_backbone_id'"):
        build_vla(VLAConfig(name="openvla", path=str(d)))


# -- estimate CLI -------------------------------------------------------------------------------------------
def test_estimate_openvla_7b(capsys):
    from vla.estimate import main

    main(["--model", "openvla-7b", "--lora-r", "32", "--batch", "16", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert 7.3e9 < out["parameters"]["total"] < 7.8e9
    lora = out["parameters"]["trainable"]
    assert 5e7 < lora < 2e8  # r=32 on every linear layer of a 7B Llama: ~80M
    assert out["memory_bytes"]["optimizer_state"] == 8 * lora  # AdamW: two fp32 moments
    act = out["activations_per_sample_bytes"]
    assert act["bf16"]["no_checkpointing"] > act["bf16"]["checkpointing"] > 0
    assert act["fp32"]["no_checkpointing"] == pytest.approx(2 * act["bf16"]["no_checkpointing"], rel=0.01)
    main(["--model", "openvla-7b", "--lora-r", "32", "--batch", "16"])
    text = capsys.readouterr().out
    assert "parameters" in text and "GiB" in text


# -- the timm-named ViT agrees with transformers' independent SigLIP / DINOv2-with-registers -------------
def _timm_to_hf(sd: dict, depth: int, layer: str, names: dict, extra: dict) -> dict:
    """timm ViT state dict -> transformers names (qkv split into q, k, v)."""
    out = dict(extra)
    for i in range(depth):
        b, h = f"blocks.{i}.", layer.format(i=i)
        q, k, v = sd[b + "attn.qkv.weight"].chunk(3)
        qb, kb, vb = sd[b + "attn.qkv.bias"].chunk(3)
        out |= {h + names["q"] + ".weight": q, h + names["k"] + ".weight": k, h + names["v"] + ".weight": v,
                h + names["q"] + ".bias": qb, h + names["k"] + ".bias": kb, h + names["v"] + ".bias": vb}
        for src, dst in names["rest"].items():
            if src.endswith("scale_factor"):  # LayerScale: one vector
                out[h + dst] = sd[b + src]
            else:
                out[h + dst + ".weight"], out[h + dst + ".bias"] = sd[b + src + ".weight"], sd[b + src + ".bias"]
    return out


def test_timm_vit_matches_transformers_siglip_and_dinov2():
    import dataclasses

    from transformers import (
        Dinov2WithRegistersConfig,
        Dinov2WithRegistersModel,
        SiglipVisionConfig,
        SiglipVisionModel,
    )

    from vla.openvla import TIMM_VITS, TimmViT

    torch.manual_seed(0)
    x = torch.randn(2, 3, IMAGE, IMAGE)
    common = dict(hidden_size=16, intermediate_size=40, num_hidden_layers=3, num_attention_heads=2,
                  image_size=IMAGE, patch_size=7, hidden_act="gelu", layer_norm_eps=1e-6)
    for tid in ("vit_so400m_patch14_siglip_224", "vit_large_patch14_reg4_dinov2.lvd142m"):
        mlp = 40 if "siglip" in tid else 48  # HF DINOv2 sets its MLP width by an integer ratio (3 x 16)
        spec = dataclasses.replace(TIMM_VITS[tid], dim=16, depth=3, heads=2, mlp_hidden=mlp, patch=7)
        vit = TimmViT(spec, IMAGE)
        with torch.no_grad():
            for p in vit.parameters():
                p.copy_(torch.randn_like(p) * 0.3)
        sd = vit.state_dict()
        rest = {"norm1": "layer_norm1", "norm2": "layer_norm2", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2",
                "attn.proj": "self_attn.out_proj"}
        if spec.pool == "map":
            hf = SiglipVisionModel(SiglipVisionConfig(**common)).eval()
            extra = {"embeddings.patch_embedding.weight": sd["patch_embed.proj.weight"],
                     "embeddings.patch_embedding.bias": sd["patch_embed.proj.bias"],
                     "embeddings.position_embedding.weight": sd["pos_embed"][0]}
            names = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "rest": rest}
            mapped = _timm_to_hf(sd, 3, "encoder.layers.{i}.", names, extra)
        else:
            hf = Dinov2WithRegistersModel(Dinov2WithRegistersConfig(**common, mlp_ratio=3, num_register_tokens=4)).eval()
            # timm's DINOv2-reg4 has no position embedding for the class token: give HF's a zero one
            pos = torch.cat([torch.zeros(1, 1, 16), sd["pos_embed"]], dim=1)
            extra = {"embeddings.cls_token": sd["cls_token"], "embeddings.register_tokens": sd["reg_token"],
                     "embeddings.position_embeddings": pos,
                     "embeddings.patch_embeddings.projection.weight": sd["patch_embed.proj.weight"],
                     "embeddings.patch_embeddings.projection.bias": sd["patch_embed.proj.bias"]}
            rest = {"norm1": "norm1", "norm2": "norm2", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2",
                    "attn.proj": "attention.o_proj", "ls1.scale_factor": "layer_scale1.lambda1",
                    "ls2.scale_factor": "layer_scale2.lambda1"}
            names = {"q": "attention.q_proj", "k": "attention.k_proj", "v": "attention.v_proj", "rest": rest}
            mapped = _timm_to_hf(sd, 3, "encoder.layer.{i}.", names, extra)
        missing, unexpected = hf.load_state_dict(mapped, strict=False)
        assert not unexpected
        # only the parts OpenVLA never reads may stay unmapped: final norms, pooling head, mask token
        assert all(k.startswith("head.") or k.endswith(("mask_token", "layernorm.weight", "layernorm.bias"))
                   for k in missing), missing
        with torch.no_grad():
            ours = vit(x)  # patch tokens of the second-to-last block
            ref = hf(pixel_values=x, output_hidden_states=True).hidden_states[2]  # [0] = embeddings
        ref = ref[:, vit.num_prefix:]
        assert ours.shape == ref.shape == (2, 16, 16)
        assert torch.allclose(ours, ref, atol=1e-4), (tid, (ours - ref).abs().max())
