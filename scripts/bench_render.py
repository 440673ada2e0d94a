"""Benchmark the atomic-world generator at the default size; prints JSON.

    python scripts/bench_render.py [--takes 12] [key=value ...]   (keys of MakeVideosConfig)

Reports end-to-end frames/s (simulation + truth checks + rendering, one process), render-only
ms/frame, and a projection of the default `make demo` dataset's wall time with `workers` processes.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from configs.cli import run_cli
from configs.loader import parse_cli
from envs.atomic_world.generate import MakeVideosConfig, _scenes, generate_take, plan_take


def main(argv: list[str] | None = None) -> int:
    cfg = parse_cli(MakeVideosConfig, argv, description=__doc__, flags={"--takes": ("takes", "takes to time; without --takes: 12, and the projection is for the config's takes")},
                    prog="bench_render.py")  # fmt: skip
    n = min(cfg.takes, 12) if "--takes" not in (argv or sys.argv) else cfg.takes
    w = cfg.world
    scenes = _scenes(w, cfg.seed)
    generate_take(w, cfg.seed, 0, scenes)  # warm-up: GL context, imports
    frames = clips = 0
    t0 = time.perf_counter()
    for i in range(n):
        _, _, out = generate_take(w, cfg.seed, i, scenes)
        clips += len(out)
        frames += sum(arr.shape[0] for _, _, views in out for arr in views.values())
    total = time.perf_counter() - t0

    # render-only: restore logged states of one take and render every view
    import mujoco  # after envs/: it picks the GL backend at import

    from envs.atomic_world.generate import _simulate

    plan = plan_take(w, cfg.seed, 0)
    sim, ranges, _ = _simulate(plan, scenes[plan.scene], w, np.random.default_rng(0))
    r = mujoco.Renderer(sim.model, w.size, w.size)
    snaps = sim.log[:: max(1, len(sim.log) // 32)][:32]
    t1 = time.perf_counter()
    sim.render(r, snaps, tuple(w.views))
    render_ms = (time.perf_counter() - t1) / (len(snaps) * len(w.views)) * 1e3
    r.close()

    per_take = total / n
    default = MakeVideosConfig()
    print(json.dumps({
        "size": w.size,
        "frames_per_clip": w.frames,
        "views": len(w.views),
        "takes_timed": n,
        "clips": clips,
        "frames_rendered": frames,
        "frames_per_s": round(frames / total, 1),
        "ms_per_frame_end_to_end": round(total / frames * 1e3, 2),
        "ms_per_frame_render_only": round(render_ms, 2),
        "s_per_take": round(per_take, 3),
        "projected_default_dataset_s": round(per_take * default.takes / default.workers, 1),
        "projected_for": {"takes": default.takes, "workers": default.workers},
        "goal_s": 600,
    }, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
