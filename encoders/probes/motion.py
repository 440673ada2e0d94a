"""A small CNN trained from pixels on frame differences: does a motion input generalise to unseen scenes?

Issue 23 §2 lists "a motion input (flow or frame differences)" among the candidate fixes for
RoboAct-CLIP's held-out-scene gap. The linear probes of `factors.py` read frozen ImageNet features
and reach ~35-45 % action / ~45-60 % object on held-out scenes. This probe asks a different
question: with a trainable stem, which input carries the factor across scenes?

    python encoders/probe.py motion --config configs/probe/motion.yaml

Input modes, from the same `frames` uniformly spaced frames `f_0 .. f_{T-1}` (each `(3, H, W)`
in [0, 1]):

    rgb     the frames themselves                                                        (3T, H, W)
    diff    f_t - f_0 and f_t - f_{t-1}, t >= 1: motion only, a static background cancels  (6(T-1), H, W)
    masked  f_t - f_0, t >= 1, and f_0, f_{T-1} where anything moved (|f_t - f_0| > mask_threshold):
            motion plus the appearance of what moved, without the background            (3(T-1) + 6, H, W)
    ends    f_0, f_{T//2}, f_{T-1} and f_{T-1} - f_0: RoboAct-CLIP's `object_input: pixels` stem input (12, H, W)

The CNN (4 strided convs, mean + max pooled) has one linear head per label (cross-entropy, summed).
It is trained on the `fit` rows with brightness jitter and random shifts, and scored on the rows of
`factors.select_rows`: fit, train scenes' held-out takes, held-out scenes. Every mode runs for each
seed, so the table can show seed spread. CPU: one 96 px mode, 1500 steps, ~6-10 min on one core.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from encoders.pixel_motion import conv_stem, ends_input, mean_max_pool
from encoders.probes.data import frame_indices
from encoders.probes.factors import probe_rows, thin_fit, write_probe_outputs

MODES = ("rgb", "diff", "masked", "ends")
ROLES = ("fit", "train_scene_test", "heldout_scene")


@dataclasses.dataclass
class MotionProbeConfig:
    """`python encoders/probe.py motion --config configs/probe/motion.yaml`."""

    data: str = "runs/demo/atomic_world"
    modes: list[str] = dataclasses.field(default_factory=lambda: list(MODES))
    labels: list[str] = dataclasses.field(default_factory=lambda: ["action", "object"])
    frames: int = 6  # uniformly spaced, first and last included
    mask_threshold: float = 0.08  # per-pixel max |f_t - f_0| over colour and time that counts as motion
    width: int = 32  # channels of the first conv (then 2x, 2x, 4x)
    steps: int = 1500
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    shift: int = 6  # random shift of the whole clip, pixels
    test_every: int = 3  # as factors.py: a random 1/test_every of the train-split takes is the train-scene test set
    seeds: list[int] = dataclasses.field(default_factory=lambda: [0])
    eval_every: int = 500
    fit_scenes: int = 0  # > 0: fit on the takes of this many training scenes only (the test sets stay)
    fit_take_stride: int = 1  # > 1: fit on 1/stride of the fit takes (the test sets stay)
    threads: int = 1
    out: str = "runs/probe/motion"

    def validate(self) -> None:
        bad = [m for m in self.modes if m not in MODES]
        if bad:
            raise ValueError(f"modes: {bad} not in {list(MODES)}")
        if self.frames < 2:
            raise ValueError(f"frames: need >= 2 (first and last), got {self.frames}")
        if self.steps < 1 or self.batch_size < 1 or not self.seeds:
            raise ValueError("steps and batch_size must be >= 1, and seeds non-empty")
        if self.fit_scenes < 0 or self.fit_take_stride < 1:
            raise ValueError(f"fit_scenes must be >= 0 and fit_take_stride >= 1, got {self.fit_scenes}, "
                             f"{self.fit_take_stride}")


def motion_input(frames: torch.Tensor, mode: str, mask_threshold: float = 0.08) -> torch.Tensor:
    """`frames (B, T, 3, H, W)` in [0, 1] -> the CNN input `(B, C, H, W)` of `mode` (module docstring)."""
    b, t, _, h, w = frames.shape
    if mode == "rgb":
        x = frames
    elif mode == "diff":
        x = torch.cat([frames[:, 1:] - frames[:, :1], frames[:, 1:] - frames[:, :-1]], 1)
    elif mode == "masked":
        d = frames[:, 1:] - frames[:, :1]
        moved = (d.abs().amax(dim=(1, 2), keepdim=True) > mask_threshold).to(frames.dtype)  # (B, 1, 1, H, W)
        x = torch.cat([d, frames[:, :1] * moved, frames[:, -1:] * moved], 1)
    elif mode == "ends":
        return ends_input(frames)
    else:
        raise ValueError(f"mode: {mode!r} not in {list(MODES)}")
    return x.reshape(b, -1, h, w)


class MotionCNN(nn.Module):
    """`(B, C, H, W)` -> one logit vector per label; 4 stride-2 convs, mean and max pooled."""

    def __init__(self, in_ch: int, classes: list[int], width: int = 32) -> None:
        super().__init__()
        self.stem = conv_stem(in_ch, width)
        self.heads = nn.ModuleList(nn.Linear(8 * width, k) for k in classes)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = mean_max_pool(self.stem(x))
        return [head(h) for head in self.heads]


def load_frames(root: str | Path, rows, frames: int) -> torch.Tensor:
    """`(M, frames, 3, H, W)` uint8 of `rows`' clips at `frames` uniformly spaced frames."""
    from encoders.features import iter_clip_batches

    out, idx = None, None
    for start, video in iter_clip_batches(root, rows, 64):
        if out is None:  # filled in place: a list then a concatenation would hold the clips twice
            idx = torch.from_numpy(frame_indices(video.shape[1], frames))
            out = torch.empty((len(rows), frames, *video.shape[2:]), dtype=video.dtype)
        out[start:start + len(video)] = video[:, idx]
    return out


def _inputs(video: torch.Tensor, rows: torch.Tensor, mode: str, cfg: MotionProbeConfig) -> torch.Tensor:
    """The CNN input of `video[rows]` (uint8 clips), made per batch so that memory stays at the clips'."""
    return motion_input(video[rows].float() / 255.0, mode, cfg.mask_threshold)


def _scores(model: MotionCNN, video: torch.Tensor, ys: torch.Tensor, roles: dict[str, np.ndarray], mode: str,
            cfg: MotionProbeConfig, batch: int = 128) -> dict[str, list[float]]:
    scored = np.unique(np.concatenate(list(roles.values())))
    preds = torch.zeros(len(video), ys.shape[1], dtype=torch.long)
    model.eval()
    with torch.no_grad():
        for i in range(0, len(scored), batch):
            b = torch.from_numpy(scored[i:i + batch])
            preds[b] = torch.stack([o.argmax(1) for o in model(_inputs(video, b, mode, cfg))], 1)
    model.train()
    return {r: [float((preds[v, j] == ys[v, j]).float().mean()) for j in range(ys.shape[1])]
            for r, v in roles.items()}


def train_mode(video: torch.Tensor, ys: torch.Tensor, classes: list[int], roles: dict[str, np.ndarray], mode: str,
               seed: int, cfg: MotionProbeConfig, log=print) -> dict:
    """Train one MotionCNN on the fit rows; accuracies per role and label at every `eval_every` steps."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    in_ch = int(_inputs(video, torch.arange(1), mode, cfg).shape[1])
    model = MotionCNN(in_ch, classes, cfg.width)
    opt = torch.optim.AdamW(model.parameters(), cfg.lr, weight_decay=cfg.weight_decay)
    fit = torch.from_numpy(roles["fit"])
    curve, t0 = [], time.perf_counter()
    for step in range(1, cfg.steps + 1):
        b = fit[torch.randint(len(fit), (cfg.batch_size,))]
        xb = _inputs(video, b, mode, cfg) * (0.8 + 0.4 * torch.rand(len(b), 1, 1, 1))  # brightness: scenes differ in lighting
        dx, dy = (int(v) for v in rng.integers(-cfg.shift, cfg.shift + 1, 2))
        xb = torch.roll(xb, (dx, dy), (2, 3))
        loss = sum(F.cross_entropy(o, ys[b, j]) for j, o in enumerate(model(xb)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % cfg.eval_every == 0 or step == cfg.steps:
            acc = _scores(model, video, ys, roles, mode, cfg)
            curve.append({"step": step, "loss": round(loss.item(), 4), **acc})
            log(f"  {mode} seed {seed} step {step}: loss {loss.item():.3f}  " + "  ".join(
                f"{lab} {acc['train_scene_test'][j]:.2f}/{acc['heldout_scene'][j]:.2f}"
                for j, lab in enumerate(cfg.labels)) + f"  ({time.perf_counter() - t0:.0f}s)")
    return {"final": curve[-1], "curve": curve, "in_channels": in_ch,
            "seconds": round(time.perf_counter() - t0, 1)}


def markdown(result: dict) -> str:
    labels = result["config"]["labels"]
    lines = ["# Motion-input CNN probe (encoders/probes/motion.py)", "",
             f"Rows: {result['rows']}. Cells: accuracy % at the last step, train-scene held-out takes / "
             "**held-out scenes**, one column per seed.", "",
             "| mode | in ch | " + " | ".join(f"{lab} (per seed)" for lab in labels) + " | s / seed |",
             "|---|---:|" + "---|" * len(labels) + "---:|"]
    for mode, runs in result["modes"].items():
        cells = []
        for j in range(len(labels)):
            cells.append(", ".join(f"{100 * r['final']['train_scene_test'][j]:.1f} / "
                                   f"**{100 * r['final']['heldout_scene'][j]:.1f}**" for r in runs.values()))
        secs = np.mean([r["seconds"] for r in runs.values()])
        lines.append(f"| {mode} | {next(iter(runs.values()))['in_channels']} | " + " | ".join(cells)
                     + f" | {secs:.0f} |")
    return "\n".join(lines) + "\n"


def run_motion_probe(cfg: MotionProbeConfig, log=print) -> dict:
    """Load the clips once, train every (mode, seed), write results.json / results.md / config.yaml."""
    cfg.validate()
    torch.set_num_threads(max(1, cfg.threads))
    t0, load0 = time.perf_counter(), os.getloadavg()
    meta, rows, roles = probe_rows(cfg.data, cfg.labels, cfg.test_every)
    roles = thin_fit(rows, roles, cfg.fit_take_stride, cfg.fit_scenes)
    classes = [len(meta["vocab"][lab]) for lab in cfg.labels]
    ys = torch.tensor(np.stack([[meta["vocab"][lab].index(v) for v in rows[lab]] for lab in cfg.labels], 1))
    video = load_frames(cfg.data, rows, cfg.frames)
    log(f"rows: {len(rows)} clip-views ({', '.join(f'{r} {len(v)}' for r, v in roles.items())}); "
        f"clips {tuple(video.shape)} loaded in {time.perf_counter() - t0:.0f}s")
    result: dict = {"rows": {r: int(len(v)) for r, v in roles.items()}, "modes": {}}
    for mode in cfg.modes:
        result["modes"][mode] = {str(s): train_mode(video, ys, classes, roles, mode, s, cfg, log) for s in cfg.seeds}
    write_probe_outputs(cfg, result, markdown, t0, load0, log)
    return result
