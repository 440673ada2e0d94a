"""LAQ (encoders/laq/): shapes, NSVQ gradients, dead-code replacement, persistence, training + resume."""

import json

import numpy as np
import pytest
import torch

from configs.loader import ConfigError, from_dict

TINY = {"image_size": 32, "patch": 8, "dim": 32, "depth": 1, "temporal_depth": 1, "heads": 2, "quant_dim": 16,
        "codebook_size": 8, "code_tokens": 4}  # fmt: skip


def _model(**kw):
    from encoders.laq.model import LAQConfig, LAQEncoder

    torch.manual_seed(0)
    m = LAQEncoder(LAQConfig(**{**TINY, **kw}))
    for p in m.parameters():
        p.requires_grad_(True)
    return m.train()


def _video(b=3, t=5, size=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, t, 3, size, size), generator=g, dtype=torch.uint8)


@pytest.fixture(scope="module")
def toy_world(tmp_path_factory):
    from envs.atomic_world.toy import make_toy_dataset

    return make_toy_dataset(tmp_path_factory.mktemp("laq") / "toy", scenes=2, takes_per_scene=1, frames=6, size=32,
                            split="train")


def test_forward_backward_and_reconstruction_shapes():
    m = _model()
    pairs = m.pairs(_video())
    assert pairs.shape == (3, 2, 3, 32, 32) and pairs.dtype == torch.uint8  # resized 40 -> 32
    out = m.forward_pairs(pairs)
    assert out["recon"].shape == out["target"].shape == (3, 3, 32, 32)
    assert out["indices"].shape == (3, 4) and out["delta"].shape == (3, 4, 16)
    torch.nn.functional.mse_loss(out["recon"], out["target"]).backward()
    for name in ("patch_embed.1.weight", "pos", "vq.down.0.weight", "vq.codebook", "dec_spatial.layers.0.multihead_attn.in_proj_weight",
                 "to_pixels.weight"):  # fmt: skip
        g = dict(m.named_parameters())[name].grad
        assert g is not None and g.abs().sum() > 0, name
    assert m.reconstruct(_video()).shape == (3, 3, 32, 32)
    assert m.decode_codes(_video()[:, 0], torch.zeros(3, 4, dtype=torch.long)).shape == (3, 3, 32, 32)


def test_nsvq_gradients_reach_the_encoder_only_through_the_noise_substitution():
    # the decoder sees frame t detached, so the encoder's only path to the loss is the quantiser
    enc = ("enc_spatial.layers.0.self_attn.in_proj_weight", "enc_temporal.layers.0.linear1.weight", "vq.project_in.weight")
    for noise in (True, False):
        m = _model()
        out = m.forward_pairs(m.pairs(_video()), noise=noise)
        torch.nn.functional.mse_loss(out["recon"], out["target"]).backward()
        params = dict(m.named_parameters())
        for name in enc:
            g = params[name].grad
            if noise:
                assert g is not None and g.abs().sum() > 0, name
            else:  # hard codes: argmin blocks the gradient (why NSVQ exists)
                assert g is None or g.abs().sum() == 0, name
        # NSVQ: the codebook learns through |x - q| with noise; with hard codes it learns directly
        assert params["vq.codebook"].grad.abs().sum() > 0


def test_nsvq_output_has_the_quantisation_error_norm():
    m = _model()
    first, last = m.encode_pair(m.pairs(_video()))
    x = m.vq.delta(first, last)
    idx = m.vq.nearest(x)
    y = m.vq.substitute(x, idx, torch.Generator().manual_seed(1))
    err = (x - m.vq.codebook[idx]).norm(dim=-1)
    assert torch.allclose((y - x).norm(dim=-1), err, rtol=1e-4, atol=1e-6)


def test_code_replacement_revives_a_dead_code():
    from encoders.laq.nsvq import NSVQ, perplexity

    torch.manual_seed(0)
    vq = NSVQ(dim=8, quant_dim=4, codebook_size=4, code_tokens=1, grid=2)
    x = torch.randn(64, 4)
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[1.0, 0, 0, 0], [-1.0, 0, 0, 0], [0, 1.0, 0, 0], [100.0, 100, 100, 100]]))
    idx = vq.nearest(x)
    assert (idx != 3).all()  # code 3 is dead
    vq.usage += vq.counts(idx)
    assert vq.dead_codes(0.01).tolist() == [3]
    before = vq.codebook.detach().clone()
    assert vq.replace_dead(x, 0.01, torch.Generator().manual_seed(0)) == 1
    assert vq.usage.sum() == 0  # the window restarts
    assert torch.equal(vq.codebook[:3], before[:3]) and not torch.equal(vq.codebook[3], before[3])
    assert any(torch.equal(vq.codebook[3], r) for r in x)  # it became an encoder output...
    idx2 = vq.nearest(x)
    assert (idx2 == 3).any()  # ...so it is used now
    assert perplexity(vq.counts(idx2)) > perplexity(vq.counts(idx))
    # deterministic given the generator seed
    vq2 = NSVQ(dim=8, quant_dim=4, codebook_size=4, code_tokens=1, grid=2)
    with torch.no_grad():
        vq2.codebook.copy_(before)
    vq2.usage += vq2.counts(idx)
    vq2.replace_dead(x, 0.01, torch.Generator().manual_seed(0))
    assert torch.equal(vq2.codebook, vq.codebook)


def test_build_encoder_codes_and_save_load_round_trip(tmp_path):
    from encoders.base import build_encoder

    enc = build_encoder("laq", **TINY)
    assert type(enc).__name__ == "LAQEncoder" and enc.dim == 4 * 16 and enc.num_latent_actions == 8**4
    v = _video(b=4)
    codes = enc.codes(v)
    assert codes.shape == (4, 4) and codes.dtype == torch.long and 0 <= codes.min() and codes.max() < 8
    e = enc.encode(v)
    assert e.shape == (4, 64) and torch.equal(e, enc.code_embeddings(codes))
    flat = enc.flat_code(codes)
    assert flat.shape == (4,) and (flat < 8**4).all()
    assert enc.flat_code(torch.tensor([[7, 7, 7, 7], [0, 0, 0, 1]])).tolist() == [4095, 1]
    enc.save_pretrained(tmp_path / "laq")
    back = build_encoder(str(tmp_path / "laq"))
    assert torch.equal(back.codes(v), codes) and torch.equal(back.encode(v), e)
    with pytest.raises(ValueError, match="code_tokens"):
        build_encoder("laq", **{**TINY, "code_tokens": 3})
    with pytest.raises(ValueError, match="patch"):
        build_encoder("laq", **{**TINY, "image_size": 30})


def _train_cfg(root, out, steps, **kw):
    from encoders.train import TrainConfig

    d = {"method": "laq", "data": str(root), "out": str(out), "steps": steps, "lr": 1e-3, "ckpt_every": 2,
         "log_every": 1, "threads": 1, "cache_dir": str(root.parent / "cache"), "model": dict(TINY),
         "loss": {"batch_size": 6, "replace_every": 2, "replace_stop": 1.0, "discard_threshold": 0.05}}  # fmt: skip
    for k, v in kw.items():
        d[k] = {**d[k], **v} if isinstance(v, dict) else v
    return from_dict(TrainConfig, d, source="test")


def test_train_logs_codebook_usage_exports_and_resumes_exactly(toy_world, tmp_path):
    from encoders.base import build_encoder
    from encoders.train import train

    out = train(_train_cfg(toy_world, tmp_path / "run", 4), progress=False)
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [1, 2, 3, 4]
    assert {"recon", "perplexity", "codes_used", "dead_codes", "replaced"} <= set(recs[-1])
    assert all(1.0 <= r["perplexity"] <= 8.0 for r in recs)
    assert recs[-1]["replaced_total"] == sum(r["replaced"] for r in recs) > 0  # random init: dead codes get replaced
    enc = build_encoder(str(out / "encoder"))
    assert not any(p.requires_grad for p in enc.parameters())
    assert enc.codes(_video(t=6, size=32)).shape == (3, 4)

    out2 = tmp_path / "run2"
    train(_train_cfg(toy_world, out2, 2), progress=False)
    train(_train_cfg(toy_world, out2, 4, resume=True), progress=False)
    a = build_encoder(str(out / "encoder")).state_dict()
    b = build_encoder(str(out2 / "encoder")).state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_batches_depend_on_seed_and_step_and_split_over_ranks(toy_world, tmp_path):
    from encoders.laq.method import LAQMethod

    m = LAQMethod(_train_cfg(toy_world, tmp_path / "x", 4, loss={"offset": 2}))
    r3, a3, b3 = m.batch(3)
    assert np.array_equal(r3, m.batch(3)[0]) and not np.array_equal(r3, m.batch(4)[0])
    assert (b3 - a3 == 2).all() and (a3 >= 0).all() and (b3 <= 5).all()
    assert m.frames.shape[1:] == (6, 3, 32, 32)
    _, a, b = LAQMethod(_train_cfg(toy_world, tmp_path / "y", 4)).batch(0)
    assert (a == 0).all() and (b == 5).all()  # offset 0: first and last frame
    with pytest.raises((ConfigError, ValueError), match="replace_stop"):
        _train_cfg(toy_world, tmp_path / "z", 4, loss={"replace_stop": 2.0})


def test_config_files_parse():
    from configs.loader import read_yaml
    from encoders.train import TrainConfig

    for name in ("laq", "laq_tiny"):
        cfg = from_dict(TrainConfig, read_yaml(f"configs/encoder/{name}.yaml"), source=name)
        assert cfg.method == "laq"


PROBE = '''
import hashlib, json, sys
from pathlib import Path
from configs.loader import load_config
from configs.training import LoopConfig, fit
from encoders.train import TrainConfig, setup_run

cfg = load_config(TrainConfig, sys.argv[1])
acc, out, method = setup_run(cfg)
fit(method, out, LoopConfig.of(cfg), progress=False, accelerator=acc)
state = method.model.state_dict()
digest = hashlib.sha1(b"".join(state[k].detach().cpu().contiguous().numpy().tobytes() for k in sorted(state)))
Path(sys.argv[2]).mkdir(parents=True, exist_ok=True)
(Path(sys.argv[2]) / f"rank{acc.process_index}.json").write_text(json.dumps({
    "world": acc.num_processes, "sha1": digest.hexdigest(), "replaced": int(method.model.vq.replaced_total)}))
'''


@pytest.mark.slow
def test_two_processes_stay_identical_through_code_replacement(toy_world, tmp_path):
    import yaml
    from dist_launch import launch_cpu

    cfg = _train_cfg(toy_world, tmp_path / "run", 4)
    d = {k: getattr(cfg, k) for k in ("method", "data", "out", "steps", "lr", "ckpt_every", "log_every", "threads",
                                        "cache_dir", "model", "loss")}  # fmt: skip
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(d))
    (tmp_path / "probe.py").write_text(PROBE)
    launch_cpu(tmp_path / "probe.py", [str(tmp_path / "cfg.yaml"), str(tmp_path / "report")])
    r0, r1 = (json.loads((tmp_path / "report" / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2
    assert r0["replaced"] == r1["replaced"] > 0  # replacements happened, the same on both ranks
    assert r0["sha1"] == r1["sha1"]  # codebook, usage counts and weights identical on both ranks


def test_stage1_records_laq_codes_for_cross_entropy(small_world, tmp_path):
    from encoders import build_encoder
    from vla.latents import main as latents_main

    enc = build_encoder("laq", image_size=32, patch=8, dim=32, depth=1, temporal_depth=1, heads=2)
    d = enc.save_pretrained(tmp_path / "laq")
    latents_main(["--encoder", str(d), "--data", str(small_world), "--out", str(tmp_path / "lat")])
    meta = json.loads((tmp_path / "lat" / "latents.json").read_text())
    assert meta["codebook_size"] == 8  # what stage 2 needs for its cross-entropy
