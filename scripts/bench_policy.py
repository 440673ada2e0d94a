"""Per-step `EncoderHeadPolicy.act` latency: full re-encode of every window (old path) vs the encoder stream.

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

import json
import os
import sys

from configs.cli import run_cli
from configs.loader import parse_cli
from configs.runs import atomic_write_json
from policies.bench import BenchPolicyConfig, run_policy_bench
from vla.bench import libero_vla_frames


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_cli(BenchPolicyConfig, argv, prog="scripts/bench_policy.py", description=__doc__.split("\n")[0],
                    flags={"--out": ("out", "JSON output path"), "--steps": ("steps", "measured steps per path")})
    result = run_policy_bench(cfg)
    if cfg.libero_steps > 0:
        result["libero_vla_episode"] = {"resolution": cfg.libero_resolution,
                                        **libero_vla_frames(cfg.libero_steps, cfg.libero_resolution)}
    result["load_after"] = {"loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()]}
    if cfg.out:
        atomic_write_json(cfg.out, result)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    sys.exit(run_cli(main))
