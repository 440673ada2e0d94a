"""The policy-side benchmarks of scripts/bench_policy.py (issue 21): per-step `EncoderHeadPolicy.act` latency: full re-encode of every window (old path) vs the encoder stream.

    python scripts/bench_policy.py                                   # JSON to stdout
    python scripts/bench_policy.py --out docs/results/bench_policy_act.json

Both paths run side by side on the same synthetic episode (moving squares on noise, two cameras,
`size` px), interleaved step by step so load changes hit both alike, after `warmup` steps each.
Old path: `encoder.encode` of each camera's `(1, frames, 3, H, W)` window at every step (what
`EncoderHeadPolicy.features` did before encoders/streaming.py). New path: `EncoderHeadPolicy` as it is (one
`EncoderStream` over all cameras). Encoders: InvAct with the `model` section of
configs/encoder/invact.yaml (random init: latency does not depend on the weights) and
configs/encoder/backbone_mean.yaml. The head is a random-init mlp head.

LIBERO (`libero_steps` > 0), through the rollout loop (envs/rollout.py) on libero_goal task 0, one
episode per path: (1) the head with `libero_encoder`, both cameras: old = the env renders both
cameras inside every step (render=True, as before) + full re-encode; new = the loop renders the
policy's cameras when it acts + the stream; episode wall time. (2) a random-init `tiny` VLA behind
the real VLAPolicy class (chunk 8, agentview only): frames rendered per episode, old = both
cameras inside every step, new = the loop's count; the weights do not change either count.

Also timed once per encoder (`episode_steps` > 0): training-time feature extraction of one episode,
per-window `encode` in batches of 32 windows per camera (what policies/heads/data.py's
`embed_windows` did before the stream) vs `encoders.streaming.episode_features`, and their max abs difference.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from configs.runs import seed_everything
from configs.threads import apply_threads, available_cores


@dataclasses.dataclass
class BenchPolicyConfig:
    encoders: list[str] = dataclasses.field(default_factory=lambda: ["invact", "backbone_mean"])
    frames: int = 8  # window frames
    stride: int = 2  # env steps between window frames
    size: int = 128  # camera frame side (px)
    steps: int = 40  # measured steps per path
    warmup: int = 5  # unmeasured first steps per path (lazy init, allocator, the clamped start)
    episode_steps: int = 60  # training-time extraction comparison on an episode of this length; 0: skip
    proprio_dim: int = 12
    libero_steps: int = 150  # one LIBERO episode (libero_goal task 0) per path for the head and the VLA; 0: skip
    libero_resolution: int = 128  # camera size of that episode
    libero_encoder: str = "invact"
    threads: int = 0  # torch threads; 0: the cores free to this process (configs/threads.py)
    seed: int = 0
    out: str = ""  # optional JSON path


def build_bench_encoder(name: str) -> Any:
    """`invact`: InvActConfig from configs/encoder/invact.yaml's `model` (random init); other names:
    configs/encoder/NAME.yaml (EncoderSpec form)."""
    from configs.loader import from_dict, read_yaml
    from encoders import build_encoder

    root = Path(__file__).resolve().parents[1] / "configs" / "encoder"
    if name == "invact":
        from encoders.invact import InvActConfig, InvActEncoder

        return InvActEncoder(from_dict(InvActConfig, read_yaml(root / "invact.yaml")["model"])).freeze()
    return build_encoder(str(root / f"{name}.yaml"))


def synthetic_episode(n: int, size: int, seed: int) -> list[dict[str, np.ndarray]]:
    """`n` observations with two `(size, size, 3) uint8` camera frames (a moving square on noise) + proprio."""
    rng = np.random.default_rng(seed)
    bases = [rng.integers(0, 90, (size, size, 3), dtype=np.uint8) for _ in range(2)]
    obs = []
    for t in range(n):
        o = {}
        for v, key in enumerate(("agentview_rgb", "eye_in_hand_rgb")):
            img = bases[v].copy()
            s = size // 6
            y, x = (3 * t + 7 * v) % (size - s), (5 * t) % (size - s)
            img[y : y + s, x : x + s] = (220, 80 + 60 * v, 40)
            o[key] = img
        o["proprio"] = rng.normal(size=12).astype(np.float32)
        obs.append(o)
    return obs


def legacy_policy_cls() -> type:
    """`EncoderHeadPolicy` with the pre-streaming `features`: each camera's window re-encoded at every step."""
    import torch

    from encoders.streaming import window_steps
    from policies.heads.policy import EncoderHeadPolicy

    class FullReencodePolicy(EncoderHeadPolicy):
        def reset(self) -> None:
            super().reset()
            self._frames: dict[str, list[np.ndarray]] = {v: [] for v in self.window.views}

        def features(self, obs: dict, step: int | None = None) -> np.ndarray:
            span = (self.window.frames - 1) * self.window.stride + 1
            parts = []
            for v in self.window.views:
                hist = self._frames[v]
                hist.append(self._frame(obs[v], v))
                del hist[:-span]
                idx = window_steps(len(hist) - 1, self.window.frames, self.window.stride)
                video = torch.from_numpy(np.stack([hist[i] for i in idx]))[None].permute(0, 1, 4, 2, 3).contiguous()
                with torch.no_grad():
                    parts.append(self.encoder.encode(video).float().cpu().numpy()[0])
            return np.concatenate(parts).astype(np.float32)

    return FullReencodePolicy


def extraction(enc: Any, episode: list[dict[str, np.ndarray]], frames: int, stride: int) -> dict:
    """Seconds to embed every step's windows of one episode: per-window encode vs episode_features."""
    import torch

    from encoders.streaming import episode_features, window_steps

    videos = [np.stack([o[k] for o in episode]) for k in ("agentview_rgb", "eye_in_hand_rgb")]
    idx = np.stack([window_steps(t, frames, stride) for t in range(len(episode))])
    t0 = time.perf_counter()
    parts = []
    with torch.no_grad():
        for vid in videos:
            rows = [enc.encode(torch.from_numpy(vid[idx[s : s + 32]]).permute(0, 1, 4, 2, 3).contiguous()).numpy()
                    for s in range(0, len(idx), 32)]
            parts.append(np.concatenate(rows))
    old_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    new = episode_features(enc, videos, frames, stride)
    new_s = time.perf_counter() - t0
    return {"steps": len(episode), "per_window_encode_s": round(old_s, 2), "episode_features_s": round(new_s, 2),
            "speedup": round(old_s / new_s, 2), "max_abs_diff": float(np.abs(np.concatenate(parts, 1) - new).max())}


def libero_head_episode(enc: Any, head: Any, window: Any, legacy: type, steps: int, resolution: int) -> dict:
    """Wall time of one `steps`-step LIBERO episode per path (module docstring (1)), same head."""
    from envs.libero_env import LiberoEnv
    from envs.rollout import EnvStepper, run_loop
    from policies.heads.model import HeadConfig, HeadNetwork
    from policies.heads.policy import EncoderHeadPolicy

    # the same features with an 8-action chunk, executed receding: the loop renders only the frames
    # the coming windows read (every other step at stride 2), not a claim about the chunk-1 head
    chunked = HeadNetwork(HeadConfig(**{**dataclasses.asdict(head.cfg), "chunk": 8})).eval()
    out: dict[str, Any] = {}
    for name, cls, render, net in (("old", legacy, True, head), ("new", EncoderHeadPolicy, False, head),
                                   ("new_chunk8_receding", EncoderHeadPolicy, False, chunked)):
        env = LiberoEnv("libero_goal", 0, resolution=resolution, render=render)
        pol = cls(enc, net, window, env="libero", frame_size=resolution)
        stepper = EnvStepper(env)
        stepper.reset(trial=0)
        t0 = time.perf_counter()
        res = run_loop(stepper, pol, env.instruction, steps, seed=0, bind=env)
        wall = time.perf_counter() - t0
        out[name] = {"steps": res.steps, "wall_s": round(wall, 2), "ms_per_step": round(1e3 * wall / res.steps, 1),
                     "rendered_frames": 2 * (res.steps + 1) if render else stepper.rendered}
        env.close()
    out["speedup"] = round(out["old"]["wall_s"] / out["new"]["wall_s"], 2)
    out["speedup_chunk8"] = round(out["old"]["wall_s"] / out["new_chunk8_receding"]["wall_s"], 2)
    return out


def stats_ms(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"median_ms": round(float(np.median(a)), 2), "p90_ms": round(float(np.percentile(a, 90)), 2),
            "mean_ms": round(float(a.mean()), 2), "n": len(ms)}


def load_now() -> dict:
    la = os.getloadavg()
    return {"loadavg_1_5_15": [round(x, 2) for x in la]}


def run_policy_bench(cfg: BenchPolicyConfig) -> dict:
    """Everything in the module docstring but the VLA frame count (vla/bench.py); returns the JSON dict."""
    import torch

    from policies.heads.data import WindowConfig
    from policies.heads.model import HeadConfig, HeadNetwork
    from policies.heads.policy import EncoderHeadPolicy

    threads = apply_threads(cfg.threads)
    seed_everything(cfg.seed)
    window = WindowConfig(frames=cfg.frames, stride=cfg.stride)
    episode = synthetic_episode(cfg.warmup + cfg.steps, cfg.size, cfg.seed)
    legacy = legacy_policy_cls()
    result: dict = {"config": dataclasses.asdict(cfg), "cpu_count": os.cpu_count(), "available_cores": available_cores(),
                    "torch_threads": torch.get_num_threads(), "threads_applied": threads,
                    "load_before": load_now(), "encoders": {}}  # fmt: skip
    for name in cfg.encoders:
        enc = build_bench_encoder(name)
        torch.manual_seed(cfg.seed)
        head = HeadNetwork(HeadConfig(feature_dim=len(window.views) * enc.dim, proprio_dim=cfg.proprio_dim)).eval()
        old = legacy(enc, head, window, frame_size=cfg.size)
        new = EncoderHeadPolicy(enc, head, window, frame_size=cfg.size)
        times: dict[str, list[float]] = {"old": [], "new": []}
        diff = 0.0
        for t, obs in enumerate(episode):
            acts = {}
            for key, pol in (("old", old), ("new", new)) if t % 2 else (("new", new), ("old", old)):
                t0 = time.perf_counter()
                acts[key] = pol.act(obs, "")
                if t >= cfg.warmup:
                    times[key].append((time.perf_counter() - t0) * 1e3)
            diff = max(diff, float(np.abs(acts["old"] - acts["new"]).max()))
        res = {"dim": enc.dim, "old_full_reencode": stats_ms(times["old"]), "new_stream": stats_ms(times["new"]),
               "max_abs_action_diff": diff}
        res["speedup_median"] = round(res["old_full_reencode"]["median_ms"] / res["new_stream"]["median_ms"], 2)
        res["speedup_p90"] = round(res["old_full_reencode"]["p90_ms"] / res["new_stream"]["p90_ms"], 2)
        if cfg.episode_steps > 0:
            res["extraction"] = extraction(enc, synthetic_episode(cfg.episode_steps, cfg.size, cfg.seed + 1),
                                           cfg.frames, cfg.stride)
        if name == "invact":
            res["note"] = "random init (configs/encoder/invact.yaml model section); latency does not depend on weights"
        if cfg.libero_steps > 0 and name == cfg.libero_encoder:
            lhead = HeadNetwork(HeadConfig(feature_dim=len(window.views) * enc.dim, proprio_dim=8)).eval()
            result["libero_head_episode"] = {"encoder": name, "resolution": cfg.libero_resolution,
                                             **libero_head_episode(enc, lhead, window, legacy, cfg.libero_steps,
                                                                   cfg.libero_resolution)}
        result["encoders"][name] = res
    return result


