"""The atomic-world generator timed at the default size (end-to-end frames/s, render-only ms/frame,
projected `make demo` dataset time): the benchmark behind scripts/bench_render.py.
"""

from __future__ import annotations

import json
import time

import numpy as np

from envs.atomic_world.generate import MakeVideosConfig, _scenes, generate_take, plan_take


def bench_render(cfg: MakeVideosConfig, takes: int) -> int:
    """What scripts/bench_render.py measures, for `cfg`, timing `takes` takes (see its docstring)."""
    n = takes
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
