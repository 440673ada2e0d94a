"""The VLA stages timed on this machine (stage-2 / stage-3 training samples/s, `act` latency, peak
memory) on synthetic inputs of the real shapes: the benchmark behind scripts/bench_vla.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import time
from typing import Any

import numpy as np
import torch

from configs.runs import atomic_write_json


@dataclasses.dataclass
class BenchConfig:
    model: str = "smol"
    image_size: int = 0  # 0 = the model's default
    batch: int = 4
    steps: int = 4  # timed training steps per stage
    warmup: int = 1
    act_calls: int = 10
    render_size: int = 128  # the env frame `act` receives before the protocol resize
    latent_dim: int = 64
    chunk: int = 8
    lora_r: int = 32
    lora_alpha: int = 16
    threads: int = 0
    out: str = ""  # JSON file; "" = stdout only


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def _time_steps(model: torch.nn.Module, loss_fn, steps: int, warmup: int) -> float:
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()
    for i in range(warmup + steps):
        if i == warmup:
            t0 = time.perf_counter()
        loss = loss_fn()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def bench_vla(cfg: BenchConfig) -> dict:
    """What scripts/bench_vla.py measures, for `cfg` (see its docstring)."""
    from configs.threads import apply_threads
    from vla.data import ActionStats
    from vla.heads import (
        ActionHead,
        ActionVLA,
        LatentHead,
        LatentVLA,
        LoraSpec,
        action_l1,
        add_lora,
        latent_loss,
    )
    from vla.modeling import build_vla
    from vla.policy import VLAPolicy

    load0 = os.getloadavg()
    threads = apply_threads(cfg.threads)
    rng = np.random.default_rng(0)
    args = {"image_size": cfg.image_size} if cfg.image_size else {}
    t0 = time.perf_counter()
    vla = build_vla(cfg.model, **args)
    build_s = time.perf_counter() - t0
    S, B = vla.image_size, cfg.batch
    images = rng.integers(0, 255, (B, S, S, 3), dtype=np.uint8)
    texts = ["put the cream cheese in the bowl", "open the middle drawer of the cabinet",
             "turn on the stove", "push the plate to the front of the stove"] * (B // 4 + 1)
    texts = texts[:B]
    res: dict = {"model": cfg.model, "lm_id": vla.lm_id, "image_size": S, "num_image_tokens": vla.num_image_tokens,
                 "hidden_size": vla.hidden_size, "parameters": sum(p.numel() for p in vla.parameters()),
                 "threads": threads, "cpus": os.cpu_count(), "batch": B, "build_s": round(build_s, 2)}

    # stage 2: LoRA + latent head, cosine loss
    lora = LoraSpec(r=cfg.lora_r, alpha=cfg.lora_alpha)
    add_lora(vla, lora)
    m2 = LatentVLA(vla, LatentHead(vla.hidden_size, cfg.latent_dim))
    target = torch.randn(B, cfg.latent_dim)
    dt = _time_steps(m2, lambda: latent_loss(m2(images, texts), target, None, "cosine"), cfg.steps, cfg.warmup)
    res["trainable_stage2"] = sum(p.numel() for p in m2.parameters() if p.requires_grad)
    res["stage2_samples_per_s"] = round(cfg.steps * B / dt, 3)
    res["stage2_s_per_step"] = round(dt / cfg.steps, 3)

    # stage 3: (fresh LoRA on the same LM: the cost is the same) + action head with proprio
    m3 = ActionVLA(vla, ActionHead(vla.hidden_size, cfg.chunk, 7, proprio_dim=8))
    for p in m2.head.parameters():
        p.requires_grad_(False)
    proprio = torch.randn(B, 8)
    acts = torch.rand(B, cfg.chunk, 7) * 2 - 1
    dt = _time_steps(m3, lambda: action_l1(m3(images, texts, proprio), acts), cfg.steps, cfg.warmup)
    res["stage3_samples_per_s"] = round(cfg.steps * B / dt, 3)
    res["stage3_s_per_step"] = round(dt / cfg.steps, 3)

    # act latency, as the evaluator calls it
    meta = {"chunk": cfg.chunk, "action_stats": ActionStats(-np.ones(7), np.ones(7)).to_dict(),
            "proprio_stats": {"mean": [0.0] * 8, "std": [1.0] * 8}, "proprio_dim": 8, "image_size": S}
    pol = VLAPolicy(m3, meta)
    frame = rng.integers(0, 255, (cfg.render_size, cfg.render_size, 3), dtype=np.uint8)
    obs = {"agentview_rgb": frame, "proprio": np.zeros(8, np.float32)}
    from envs import protocol

    lat = []
    for i in range(cfg.act_calls + 1):
        t = time.perf_counter()
        o = dict(obs, agentview_rgb=protocol.vla_image(frame, size=S, crop=False))  # the evaluator's resize
        a = pol.act(o, texts[0])
        if i:
            lat.append((time.perf_counter() - t) * 1000)
    assert a.shape == (cfg.chunk, 7)
    res["act_ms_median"] = round(float(np.median(lat)), 1)
    res["act_ms_per_env_step"] = round(float(np.median(lat)) / cfg.chunk, 1)
    res["render_size"] = cfg.render_size
    res["peak_rss_mb"] = _peak_mb()
    res["loadavg_start"] = [round(x, 2) for x in load0]
    res["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(res, indent=1))
    if cfg.out:
        atomic_write_json(cfg.out, res)
    return res


def tiny_vla_policy(chunk: int = 8) -> Any:
    """A random-init `tiny` VLA with a `chunk`-action head behind the real VLAPolicy class."""
    from vla.data import ActionStats
    from vla.heads import ActionHead, ActionVLA
    from vla.modeling import build_vla
    from vla.policy import VLAPolicy

    vla = build_vla("tiny")
    model = ActionVLA(vla, ActionHead(vla.hidden_size, chunk, 7, 0)).eval()
    meta = {"chunk": chunk, "action_stats": ActionStats(q01=-np.ones(7), q99=np.ones(7)).to_dict(),
            "image_size": int(vla.image_size), "center_crop": False, "gripper_convention": "env", "proprio_dim": 0}
    return VLAPolicy(model, meta)


def libero_vla_frames(steps: int, resolution: int) -> dict:
    """Frames rendered in one `steps`-step LIBERO episode per path (module docstring (2))."""
    from envs.libero_env import LiberoEnv
    from envs.rollout import EnvStepper, run_loop

    policy = tiny_vla_policy(8)
    out: dict[str, Any] = {"policy": "VLAPolicy, tiny random-init VLA, chunk 8, agentview only"}
    for name, render in (("old", True), ("new", False)):
        env = LiberoEnv("libero_goal", 0, resolution=resolution, render=render)
        stepper = EnvStepper(env)
        stepper.reset(trial=0)
        t0 = time.perf_counter()
        res = run_loop(stepper, policy, env.instruction, steps, seed=0, bind=env)
        wall = time.perf_counter() - t0
        # old: the two camera observables drawn inside every step and the reset; new: counted draws
        out[name] = {"steps": res.steps, "acts": res.acts, "wall_s": round(wall, 2),
                     "rendered_frames": 2 * (res.steps + 1) if render else stepper.rendered}
        env.close()
    out["frames_new_over_old"] = round(out["new"]["rendered_frames"] / out["old"]["rendered_frames"], 4)
    out["wall_speedup"] = round(out["old"]["wall_s"] / out["new"]["wall_s"], 2)
    return out
