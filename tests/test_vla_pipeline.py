"""The three-stage VLA pipeline (vla/latents.py -> vla/pretrain.py -> vla/posttrain.py -> VLAPolicy)
on the random-init `tiny` model: what trains, LoRA merge, save/load, normalisation, resume, the
evaluator, data parallelism and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from configs.loader import from_dict

ACTION_DIM = 7


# -- fixtures: a tiny clip index, tiny demos, a stage-2 run ---------------------------------------
def make_clip_index(root: Path, n: int = 6, frames: int = 6, size: int = 32) -> Path:
    from envs.atomic_world.dataset import INDEX_COLUMNS, save_clip, write_index

    rng = np.random.default_rng(0)
    rows = []
    verbs = ["push the cube", "pull the mug", "open the drawer"]
    for i in range(n):
        path = f"clips/t{i}/c0_ego.npz"
        save_clip(root / path, rng.integers(0, 255, (frames, size, size, 3), dtype=np.uint8))
        row = {c: "" for c in INDEX_COLUMNS}
        row.update(take_id=i, clip_id=0, view="ego", split="train", caption=f"the robot {verbs[i % 3]}",
                   keystep_id=-1, segment_index=0, start_frame=0, end_frame=frames, path=path)
        rows.append(row)
    write_index(root, rows)
    return root


def make_demos(root: Path, files: int = 2, demos: int = 3, T: int = 12, size: int = 32) -> Path:
    from envs.demos import Demo, DemoWriter

    rng = np.random.default_rng(1)
    for f in range(files):
        w = DemoWriter(root / f"task{f}_demo.hdf5", problem_info={"language_instruction": f"turn on stove {f}"})
        for _ in range(demos):
            w.add(Demo(
                actions=np.c_[rng.uniform(-0.5, 0.5, (T, 6)), rng.choice([-1.0, 1.0], (T, 1))],
                obs={"agentview_rgb": rng.integers(0, 255, (T, size, size, 3), dtype=np.uint8),
                     "eye_in_hand_rgb": rng.integers(0, 255, (T, size, size, 3), dtype=np.uint8),
                     "ee_pos": rng.normal(size=(T, 3)).astype(np.float32),
                     "ee_ori": rng.normal(size=(T, 3)).astype(np.float32),
                     "gripper_states": rng.normal(size=(T, 2)).astype(np.float32)},
                states=np.zeros((T, 3)), rewards=np.zeros(T, np.uint8), dones=np.zeros(T, np.uint8),
                instruction=f"turn on stove {f}"))
        w.flush()
    return root


def latents_cfg(tmp: Path, out: Path, dim: int = 16, **kw):
    from vla.latents import LatentsConfig

    return from_dict(LatentsConfig, {"encoder": "random", "encoder_args": {"dim": dim, "mode": "projection"},
                                     "data": str(tmp / "aw"), "out": str(out), "progress": False, "chunk": 4,
                                     "batch": 2, "threads": 1, **kw})


def pretrain_cfg(latents: Path, out: Path, **kw):
    from vla.pretrain import PretrainConfig

    return from_dict(PretrainConfig, {"model": "tiny", "latents": str(latents), "out": str(out), "steps": 3,
                                      "batch": 2, "lora": {"r": 4, "alpha": 8}, "log_every": 1,
                                      "ckpt_every": 2, "threads": 1, **kw})


def posttrain_cfg(init: str, demos: Path, out: Path, **kw):
    from vla.posttrain import PosttrainConfig

    return from_dict(PosttrainConfig, {"init": init, "model": "tiny", "demos": str(demos), "out": str(out),
                                       "steps": 2, "batch": 2, "chunk": 4, "lora": {"r": 4, "alpha": 8},
                                       "log_every": 1, "ckpt_every": 2, "threads": 1, "val_windows": 4, **kw})


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> dict[str, Path]:
    """Clip index + demos + stage-1 latents + a finished 3-step stage-2 run, shared by the tests."""
    from vla.latents import run
    from vla.pretrain import train

    tmp = tmp_path_factory.mktemp("vla")
    make_clip_index(tmp / "aw")
    make_demos(tmp / "demos")
    lat = run(latents_cfg(tmp, tmp / "lat"))
    s2 = train(pretrain_cfg(lat, tmp / "s2"), progress=False)
    return {"tmp": tmp, "latents": lat, "stage2": s2, "demos": tmp / "demos"}


def _losses(run: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())}


# -- stage 1 --------------------------------------------------------------------------------------
def test_latents_manifest_cache_resume_and_demo_windows(work, monkeypatch):
    import vla.latents as L

    lat = work["latents"]
    meta = json.loads((lat / "latents.json").read_text())
    assert meta["n"] == 6 and meta["dim"] == 16 and len(meta["mean"]) == len(meta["std"]) == 16
    assert meta["encoder"] == "random" and len(meta["encoder_hash"]) == 16
    with np.load(lat / "latents.npz") as z:
        assert z["frames"].shape == (6, 32, 32, 3) and z["latents"].shape == (6, 16)
        np.testing.assert_allclose(z["latents"].mean(0), meta["mean"], atol=1e-5)
    mtime = (lat / "latents.npz").stat().st_mtime_ns
    L.run(latents_cfg(work["tmp"], lat))  # same encoder hash and rows: cached, nothing rewritten
    assert (lat / "latents.npz").stat().st_mtime_ns == mtime

    # clips + demo windows; a crash after the first chunk resumes from it
    out = work["tmp"] / "lat_demo"
    cfg = latents_cfg(work["tmp"], out, demos=str(work["demos"]), window=4, stride=4, demo_size=32)
    real, calls = L.encode_rows, []

    def crash_second(enc, rows, c, readers):
        calls.append(len(rows))
        if len(calls) == 2:
            raise RuntimeError("killed")
        return real(enc, rows, c, readers)

    monkeypatch.setattr(L, "encode_rows", crash_second)
    with pytest.raises(RuntimeError, match="killed"):
        L.run(cfg)
    assert not (out / "latents.json").exists() and len(list(out.glob("chunks/*/part_*.npz"))) == 1
    assert len(list(out.glob("chunks/*/clips.npz"))) == 1
    calls.clear()
    monkeypatch.setattr(L, "encode_rows", lambda *a: (calls.append(1), real(*a))[1])
    monkeypatch.setattr(L, "encode_clips", lambda *a: pytest.fail("finished clips recomputed"))
    L.run(cfg)
    meta = json.loads((out / "latents.json").read_text())
    assert meta["sources"] == {"clip": 6, "demo": 2 * 3 * 3}  # 12-step demos, windows of 4 every 4
    assert len(calls) == -(-18 // 4) - 1  # demo chunks of 4; the finished one was not recomputed
    with np.load(out / "latents.npz") as z:
        assert z["latents"].shape == (24, 16) and list(z["source"][:6]) == ["clip"] * 6
        # the first demo's windows start at t = 0, 4, 8 (demo frames are already 32x32: no resize)
        from envs.episodes import read_episodes

        ep0 = read_episodes(work["demos"] / "task0_demo.hdf5", keys=("agentview_rgb", "action"))[0]
        np.testing.assert_array_equal(z["frames"][6:9], ep0.data["agentview_rgb"][[0, 4, 8]])


# -- normalisation ---------------------------------------------------------------------------------
def test_action_stats_round_trip():
    from vla.data import ActionStats

    rng = np.random.default_rng(0)
    a = np.c_[rng.normal(0, 0.3, (500, 6)), rng.choice([-1.0, 1.0], (500, 1))]
    a[:, 2] = 0.25  # a constant dimension passes through unchanged
    st = ActionStats.fit(a)
    x = st.normalize(a)
    assert x.shape == a.shape and np.abs(x).max() <= 1.0 and np.all(x[:, 2] == np.float32(0.25))
    inside = np.all((a >= st.q01) & (a <= st.q99), axis=1)
    np.testing.assert_allclose(st.unnormalize(x)[inside], a[inside], atol=1e-5)
    back = ActionStats.from_dict(json.loads(json.dumps(st.to_dict())))
    np.testing.assert_array_equal(back.normalize(a), x)


# -- stage 3 data ----------------------------------------------------------------------------------
def test_demoset_reads_envs_episodes_and_pads_the_last_chunk(work, tmp_path):
    import h5py

    from envs import protocol
    from envs.episodes import read_episodes
    from vla.data import DemoSet, read_demos

    ref = read_episodes(work["demos"], keys=("agentview_rgb", "proprio", "action"))
    ds = DemoSet(read_demos(work["demos"], image_size=16, center_crop=False), chunk=4)
    assert [e.source for e in ds.episodes] == [e.source for e in ref] and len(ds) == 6 * 12
    e, T = 4, 12  # task1_demo.hdf5:demo_1
    rows = [int(np.flatnonzero((ds.index[:, 0] == e) & (ds.index[:, 1] == t))[0]) for t in (0, T - 2, T - 1)]
    b = ds.items(np.array(rows))
    with h5py.File(work["demos"] / "task1_demo.hdf5") as f:  # the values on disk, not through any reader
        acts = f["data/demo_1/actions"][...]
        prop = np.concatenate([f[f"data/demo_1/obs/{k}"][...] for k in protocol.PROPRIO_KEYS], 1)
    norm = ds.stats.normalize
    np.testing.assert_allclose(b["actions"][0], norm(acts[0:4]), atol=1e-6)
    np.testing.assert_allclose(b["actions"][1], norm(acts[[10, 11, 11, 11]]), atol=1e-6)  # past the end: a[T-1]
    np.testing.assert_allclose(b["actions"][2], norm(np.repeat(acts[-1:], 4, 0)), atol=1e-6)
    all_prop = np.concatenate([r.data["proprio"] for r in ref])
    np.testing.assert_allclose(ds.proprio_stats["mean"], all_prop.mean(0), atol=1e-5)
    np.testing.assert_allclose(b["proprio"], (prop[[0, 10, 11]] - all_prop.mean(0)) / (all_prop.std(0) + 1e-6), atol=1e-4)
    want = [protocol.vla_image(ref[e].data["agentview_rgb"][t], size=16, crop=False) for t in (0, 10, 11)]
    np.testing.assert_array_equal(b["images"][:, 0], np.stack(want))
    assert b["texts"] == ["turn on stove 1"] * 3 and b["images"].shape == (3, 1, 16, 16, 3)  # (b, V, S, S, 3)
    # another action size: one error naming file:demo
    bad = make_demos(tmp_path, files=1, demos=1) / "task0_demo.hdf5"
    with h5py.File(bad, "a") as f:
        a = f["data/demo_0/actions"][...]
        del f["data/demo_0/actions"]
        f["data/demo_0/actions"] = a[:, :6]
    with pytest.raises(ValueError, match=r"task0_demo.hdf5:demo_0: action has shape \(12, 6\), expected \(T, 7\)"):
        read_demos(bad, image_size=16, center_crop=False)


# -- stage 2 ---------------------------------------------------------------------------------------
def test_stage2_trains_only_lora_and_head_and_resumes(work):
    from vla.pretrain import PretrainMethod, train

    m = PretrainMethod(pretrain_cfg(work["latents"], work["tmp"] / "unused"))
    names = [n for n, p in m.model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n or n.startswith("head.") for n in names)
    assert any(n.startswith("head.") for n in names) and any("lora_" in n for n in names)
    assert not any(p.requires_grad for n, p in m.model.vla.named_parameters() if "lora_" not in n)
    m2 = PretrainMethod(pretrain_cfg(work["latents"], work["tmp"] / "unused", train_projector=True))
    extra = {n for n, p in m2.model.named_parameters() if p.requires_grad} - set(names)
    assert extra and all(n.startswith("vla.projector.") for n in extra)

    full = work["stage2"]
    exp = full / "stage2"
    meta = json.loads((exp / "stage2.json").read_text())
    assert meta["latent_dim"] == 16 and meta["lora"]["r"] == 4 and meta["loss"] == "cosine"
    # resume: 2 steps, then --resume to 3 gives the uninterrupted run's step-3 loss
    part = work["tmp"] / "s2_part"
    train(pretrain_cfg(work["latents"], part, steps=2), progress=False)
    train(pretrain_cfg(work["latents"], part, steps=3, resume=True), progress=False)
    assert _losses(part)[3] == pytest.approx(_losses(full)[3], rel=1e-5, abs=1e-6)


def test_merge_then_new_lora_keeps_outputs():
    from vla.heads import LoraSpec, add_lora, merge_lora
    from vla.modeling import build_vla

    torch.manual_seed(0)
    vla = build_vla("tiny").eval()
    handle = add_lora(vla, LoraSpec(r=4, alpha=8))
    for n, p in vla.lm.named_parameters():
        if "lora_B" in n:  # a trained stage-2 LoRA (B = 0 at init would make the test vacuous)
            p.data.normal_(0, 0.05)
    img = np.random.default_rng(0).integers(0, 255, (2, 48, 48, 3), dtype=np.uint8)
    ids, mask = vla.tokenize(["open the drawer", "push the plate to the front"])
    with torch.no_grad():
        before = vla(vla.preprocess(img), ids, mask)
        merge_lora(vla, handle)
        merged = vla(vla.preprocess(img), ids, mask)
        add_lora(vla, LoraSpec(r=4, alpha=8))
        fresh = vla(vla.preprocess(img), ids, mask)
    assert not any("lora_" in n for n, _ in vla.lm.named_parameters() if "default" not in n)
    torch.testing.assert_close(merged, before, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(fresh, merged, atol=1e-6, rtol=1e-6)


# -- stage 3 + policy -----------------------------------------------------------------------------
def test_stage3_export_load_identical_actions_and_eval(work):
    from envs.eval_libero import LiberoEvalConfig, episode_path, evaluate
    from envs.policy_api import build_policy
    from vla.policy import VLAPolicy
    from vla.posttrain import PosttrainMethod, train

    out = train(posttrain_cfg(str(work["stage2"]), work["demos"], work["tmp"] / "s3"), progress=False)
    res = json.loads((out / "results.json").read_text())
    assert res["heldout_demos"] == 2 and np.isfinite(res["heldout_l1_norm"])
    pdir = out / "policy"
    meta = json.loads((pdir / "policy.json").read_text())
    assert meta["policy_type"] == "vla" and meta["chunk"] == 4 and meta["proprio_dim"] == 8

    # the model in memory and the reloaded policy give identical actions
    m = PosttrainMethod(posttrain_cfg(str(work["stage2"]), work["demos"], work["tmp"] / "unused"))
    names = [n for n, p in m.model.named_parameters() if p.requires_grad]
    assert all("lora_" in n or n.startswith("head.") for n in names)
    from vla.posttrain import load_action_vla

    model, _ = load_action_vla(pdir)
    pol = build_policy(str(pdir))
    assert isinstance(pol, VLAPolicy)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (pol.image_size, pol.image_size, 3), dtype=np.uint8)
    prop = rng.normal(size=8).astype(np.float32)
    a1 = pol.act({"agentview_rgb": img, "proprio": prop}, "turn on stove 0")
    pol2 = VLAPolicy.from_pretrained(pdir)
    a2 = pol2.act({"agentview_rgb": img, "proprio": prop}, "turn on stove 0")
    assert a1.shape == (4, ACTION_DIM) and np.all(np.isfinite(a1))
    np.testing.assert_array_equal(a1, a2)
    st = pol.stats
    assert np.all(a1 >= st.q01 - 1e-9) and np.all(a1 <= st.q99 + 1e-9)

    # one short LIBERO episode through the evaluator, loading the policy from its directory
    ev = work["tmp"] / "ev"
    cfg = LiberoEvalConfig(suite="libero_goal", policy=str(pdir), trials=1, tasks="7", max_steps=5, resolution=64,
                     out=str(ev), progress=False, video=False)
    r = evaluate(cfg)
    rec = json.loads(episode_path(ev, "libero_goal", 7, 0).read_text())
    assert rec["status"] == "ok", rec.get("traceback")
    assert rec["steps"] == 5 and rec["vla_calls"] == 2 and r["overall"]["errors"] == 0  # chunks of 4


# -- bad input -------------------------------------------------------------------------------------
def test_bad_inputs_are_named_and_write_nothing(work):
    import h5py

    from vla.posttrain import train as post
    from vla.pretrain import train as pre

    tmp = work["tmp"]
    s3 = tmp / "bad_s3"
    with pytest.raises(FileNotFoundError, match="nope.hdf5"):
        post(posttrain_cfg("none", tmp / "nope.hdf5", s3), progress=False)
    junk = tmp / "junk_demo.hdf5"
    junk.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(ValueError, match="junk_demo.hdf5"):
        post(posttrain_cfg("none", junk, s3), progress=False)
    nan = tmp / "nan" / "x_demo.hdf5"
    make_demos(nan.parent, files=1, demos=2)
    src = next(nan.parent.glob("*.hdf5"))
    with h5py.File(src, "a") as f:
        a = f["data/demo_1/actions"][...]
        a[3, 2] = np.nan
        f["data/demo_1/actions"][...] = a
    with pytest.raises(ValueError, match=r"nan/task0_demo.hdf5:demo_1: non-finite action at step 3"):
        post(posttrain_cfg("none", src, s3), progress=False)
    with pytest.raises(ValueError, match="no_such_vla"):
        post(posttrain_cfg("none", work["demos"], s3, model="no_such_vla"), progress=False)
    # a stage-2 run of another LM
    other = tmp / "s2_other"
    import shutil

    shutil.copytree(work["stage2"] / "stage2", other / "stage2")
    meta = json.loads((other / "stage2" / "stage2.json").read_text())
    meta["lm_id"] = "some-other-lm"
    (other / "stage2" / "stage2.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="lm_id"):
        post(posttrain_cfg(str(other), work["demos"], s3), progress=False)
    assert not s3.exists()
    # resuming a stage-2 run on latents of another dimension
    from vla.latents import run

    lat8 = run(latents_cfg(tmp, tmp / "lat8", dim=8))
    part = tmp / "s2_dim"
    pre(pretrain_cfg(work["latents"], part, steps=2), progress=False)
    with pytest.raises(ValueError, match=r"head\.proj\.(weight|bias).*latent dim"):
        pre(pretrain_cfg(lat8, part, steps=3, resume=True), progress=False)
    with pytest.raises(FileNotFoundError, match="latents.json"):
        pre(pretrain_cfg(tmp / "no_latents", tmp / "s2_none"), progress=False)
    assert not (tmp / "s2_none").exists()


# -- data parallel ---------------------------------------------------------------------------------
def test_batches_split_across_ranks(work):
    from vla.data import load_latents

    ds = load_latents(work["latents"])
    full = ds.batch(4, seed=0, step=5)
    parts = [ds.batch(4, seed=0, step=5, rank=r, world=2) for r in range(2)]
    assert parts[0]["texts"] + parts[1]["texts"] == full["texts"]
    np.testing.assert_array_equal(np.concatenate([p["targets"] for p in parts]), full["targets"])


def test_two_process_stage2_matches_one_process(work):
    """2 CPU processes (torchrun, gloo): each rank takes half of every global batch, gradients are
    all-reduced, only rank 0 writes -- the LoRA after 2 steps equals the 1-process run's."""
    from dist_launch import REPO, launch_cpu
    from safetensors.torch import load_file

    from vla.pretrain import train

    tmp = work["tmp"]
    one = train(pretrain_cfg(work["latents"], tmp / "dp1", steps=2, batch=4), progress=False)
    launch_cpu(REPO / "vla" / "pretrain.py",
               ["--config", str(REPO / "configs" / "vla" / "pretrain_tiny.yaml"), f"latents={work['latents']}",
                f"out={tmp / 'dp2'}", "steps=2", "batch=4", "ckpt_every=2", "lora.r=4", "lora.alpha=8", "threads=1"],
               timeout=300)
    recs = [json.loads(x) for x in (tmp / "dp2" / "metrics.jsonl").read_text().splitlines()]
    assert [x["world"] for x in recs] == [2, 2]  # written once (rank 0 only), by a 2-process run
    a = load_file(str(one / "stage2" / "lora.safetensors"))
    b = load_file(str(tmp / "dp2" / "stage2" / "lora.safetensors"))
    assert a.keys() == b.keys()
    assert any(float(v.abs().max()) > 0 for k, v in a.items() if "lora_B" in k)  # it trained
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=2e-5, rtol=1e-4)


def test_vla_configs_load():
    from configs.loader import load_config
    from vla.posttrain import PosttrainConfig
    from vla.pretrain import PretrainConfig

    root = Path(__file__).resolve().parents[1] / "configs" / "vla"
    for name, cls in [("pretrain", PretrainConfig), ("posttrain", PosttrainConfig)]:
        full = load_config(cls, root / f"{name}.yaml")
        tiny = load_config(cls, root / f"{name}_tiny.yaml")
        assert full.lora.r == 32 and full.lora.alpha == 16 and full.lora.targets == ["all-linear"]
        assert tiny.model == "tiny" and tiny.lora.r == 4 and tiny.steps < full.steps
    assert load_config(PosttrainConfig, root / "posttrain.yaml").chunk == 8


def test_discrete_codes_train_with_cross_entropy(work):
    """A latents file with `codes` (a LAQ-style quantiser) makes stage 2 a classification (LAPA)."""
    import shutil

    from vla.pretrain import PretrainMethod

    src, dst = work["latents"], work["tmp"] / "lat_codes"
    shutil.copytree(src, dst)
    with np.load(dst / "latents.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["codes"] = np.random.default_rng(0).integers(0, 8, (len(arrays["latents"]), 4))
    np.savez(dst / "latents.npz", **arrays)
    meta = json.loads((dst / "latents.json").read_text())
    (dst / "latents.json").write_text(json.dumps({**meta, "codebook_size": 8}))
    m = PretrainMethod(pretrain_cfg(dst, work["tmp"] / "unused"))
    assert m.kind == "ce" and m.model.head.codebook == 8
    loss, _ = m.loss(m.model, 0, torch.device("cpu"))
    assert loss.ndim == 0 and abs(float(loss) - np.log(8)) < 1.0  # ~log(codebook) at init
    loss.backward()
    assert m.model.head.proj.weight.grad is not None
