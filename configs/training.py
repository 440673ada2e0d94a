"""The one training loop of the project: data-parallel, checkpointed, resumable.

encoders/train.py (InvAct, RoboAct-CLIP, LAQ, ...) and vla/pretrain.py / vla/posttrain.py all run
through `fit`. A *method* is any object with

    method.model                                  # nn.Module (only its requires_grad params train)
    method.loss(model, step, device, rank, world) -> (loss tensor, {term: float})
    method.export(model, out: Path) -> None       # optional: final artefact, main process only

Data parallelism (`accelerate launch --num_processes N ...`, or `torchrun`): every rank builds the
same model from the same seed (and rank 0's parameters are broadcast once to make sure), draws
*its own part* of batch `step` (the method derives it from (seed, step, rank, world) alone, usually
`rank_slice` of the global batch), the gradients of the trainable parameters are averaged over
ranks with one all-reduce per step, and only the main process writes checkpoints, metrics and the
export. The all-reduce is explicit rather than a DDP wrapper because methods call sub-modules of
their model directly (heads, projections): DDP only synchronises what runs through its forward. Because the data depend on (seed, step) only, `--resume` continues with exactly the
batches an uninterrupted run would have seen.

Run folder: config.yaml (written by the caller before `fit`), metrics.jsonl, checkpoints/step_N/
(model.safetensors, optimizer.pt, state.json written last), plus whatever `export` writes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from configs.allocator import keep_freed_memory
from configs.runs import atomic_write, atomic_write_json
from configs.threads import ThreadResizer


class TrainingMethod(Protocol):
    model: nn.Module

    def loss(self, model: nn.Module, step: int, device: torch.device, rank: int = 0,
             world: int = 1) -> tuple[torch.Tensor, dict[str, float]]: ...


@dataclasses.dataclass
class LoopConfig:
    """The knobs `fit` needs; each entry point's config carries these fields under the same names."""

    steps: int = 1000
    lr: float = 1e-4
    weight_decay: float = 0.0
    ckpt_every: int = 250
    keep_checkpoints: int = 2
    log_every: int = 25
    resume: bool = False
    logger: str = "none"  # "none" | "wandb" (offline)
    grad_clip: float = 0.0  # 0: off
    trainable_only_checkpoints: bool = False  # save only requires_grad params (LoRA + heads)
    schedule: str = "constant"  # constant | cosine: lr * 0.5 (1 + cos(pi step / schedule_steps))
    schedule_steps: int = 0  # the cosine's horizon (0: `steps`; a run fitted in segments passes its total)

    @classmethod
    def of(cls, cfg: Any) -> LoopConfig:
        """Pick the loop fields out of any config dataclass that has them (others keep defaults)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: getattr(cfg, k) for k in names if hasattr(cfg, k)})


# -- ranks ----------------------------------------------------------------------------------------
def rank_slice(n: int, rank: int, world: int) -> slice:
    """The part of a global batch of `n` items that `rank` of `world` takes (contiguous, near-equal).

    Ranks take disjoint parts, and world=1 takes everything, so a 2-process run sees the same global
    batch as a 1-process run of the same seed."""
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} not in [0, {world})")
    per, extra = divmod(n, world)
    start = rank * per + min(rank, extra)
    return slice(start, start + per + (1 if rank < extra else 0))


def make_accelerator(mixed_precision: str | None = None):
    """An `accelerate.Accelerator`: bf16 on CUDA, fp32 on CPU; gloo between CPU processes.

    `cpu=True` without CUDA matters: accelerate only joins a multi-process CPU group (gloo) when
    told it is on the CPU; otherwise every rank of a 2-process launch trains alone as rank 0/1.
    Launch lines: `torchrun --nproc_per_node N SCRIPT ...` (CPU or GPU), or
    `accelerate launch --multi_gpu --num_processes N SCRIPT ...` (note: `accelerate launch --cpu
    --num_processes N` starts a single process)."""
    from accelerate import Accelerator

    cuda = torch.cuda.is_available()
    if mixed_precision is None:
        mixed_precision = "bf16" if cuda else "no"
    return Accelerator(mixed_precision=mixed_precision, cpu=not cuda)


# -- checkpoints ----------------------------------------------------------------------------------
def latest_checkpoint(out: str | Path) -> Path | None:
    """Newest complete `out/checkpoints/step_*` (state.json is written last), or None."""
    root = Path(out) / "checkpoints"
    ckpts = sorted(root.glob("step_*")) if root.is_dir() else []
    ckpts = [c for c in ckpts if (c / "state.json").is_file()]
    return ckpts[-1] if ckpts else None


def _state_to_save(model: nn.Module, trainable_only: bool) -> dict[str, torch.Tensor]:
    state = model.state_dict()
    if trainable_only:
        keep = {n for n, p in model.named_parameters() if p.requires_grad}
        state = {k: v for k, v in state.items() if k in keep}
    # clone + contiguous: safetensors refuses views and tensors sharing storage
    return {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}


def save_checkpoint(out: str | Path, step: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                    keep: int = 2, trainable_only: bool = False, extra: dict | None = None) -> Path:
    """Write `out/checkpoints/step_NNNNNN/` atomically file by file; state.json last marks it complete."""
    from safetensors.torch import save_file

    d = Path(out) / "checkpoints" / f"step_{step:06d}"
    d.mkdir(parents=True, exist_ok=True)
    state = _state_to_save(model, trainable_only)
    atomic_write(d / "model.safetensors", lambda p: save_file(state, str(p)))
    atomic_write(d / "optimizer.pt", lambda p: torch.save(optimizer.state_dict(), p))
    atomic_write_json(d / "state.json", {"step": step, "trainable_only": trainable_only,
                                         "torch_rng": torch.get_rng_state().tolist(), **(extra or {})})
    for old in sorted((Path(out) / "checkpoints").glob("step_*"))[:-max(1, keep)]:
        shutil.rmtree(old, ignore_errors=True)
    return d


def load_checkpoint(d: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> int:
    """Restore a checkpoint written by `save_checkpoint`; returns its step. A damaged file is one
    error naming it."""
    from safetensors.torch import load_file

    d = Path(d)
    try:
        state = json.loads((d / "state.json").read_text())
        weights = load_file(str(d / "model.safetensors"))
    except Exception as e:  # safetensors/json raise their own error types for a torn file
        raise ValueError(f"{d}: damaged checkpoint ({type(e).__name__}: {' '.join(str(e).split())})") from None
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected or (missing and not state.get("trainable_only")):
        raise ValueError(f"{d / 'model.safetensors'}: does not fit the model: missing {list(missing)[:5]}, "
                         f"unexpected {list(unexpected)[:5]}")
    if optimizer is not None:
        try:
            optimizer.load_state_dict(torch.load(d / "optimizer.pt", map_location="cpu", weights_only=True))
        except (OSError, RuntimeError, ValueError) as e:
            raise ValueError(f"{d / 'optimizer.pt'}: damaged optimizer state ({e})") from None
    torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))
    return int(state["step"])


_ANNOUNCED: set[Path] = set()  # run folders whose "no checkpoint yet" line was printed


def prepare_out(out: Path, resume: bool) -> Path | None:
    """Check the run folder against `resume`; returns the checkpoint to resume from (or None).
    Creates nothing: callers create the folder only after the whole config validated."""
    ckpt = latest_checkpoint(out) if resume else None
    if resume and ckpt is None and Path(out).resolve() not in _ANNOUNCED:
        # once per run folder and process: callers check the folder before `fit`, which checks it again
        _ANNOUNCED.add(Path(out).resolve())
        print(f"--resume: no checkpoint in {out} yet; starting from step 0")
    if not resume and latest_checkpoint(out) is not None:
        raise FileExistsError(f"{out} already holds checkpoints; pass --resume or choose another out=")
    return ckpt


# -- the loop -------------------------------------------------------------------------------------
def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def fit(method: Any, out: str | Path, loop: LoopConfig, *, desc: str = "train", progress: bool = True,
        accelerator: Any = None, log_config: dict | None = None,
        param_groups: Iterable[Any] | None = None, threads: int | None = None) -> Path:
    """Run (or resume) `loop.steps` optimisation steps of `method`; returns the run folder.

    The method's model must already have `requires_grad` set on exactly what trains. `threads` is
    the caller's `threads` config value: 0 (automatic) re-sizes torch's threads between steps as
    other processes come and go (`configs.threads.ThreadResizer`; metrics then log `threads`), a
    fixed N or $ATOMVLA_THREADS keeps them as they are, None leaves them alone."""
    from tqdm import tqdm

    keep_freed_memory()  # a step's tensors reuse the last step's memory instead of faulting it in again
    out = Path(out)
    acc = accelerator or make_accelerator()
    ckpt = prepare_out(out, loop.resume)
    model = method.model
    model.to(acc.device)  # before the optimiser exists, so resumed optimiser state lands on the device
    params = trainable_parameters(model)
    if not params:
        raise ValueError(f"{desc}: the model has no trainable parameters")
    groups = list(param_groups) if param_groups is not None else params  # e.g. per-group learning rates
    opt = torch.optim.AdamW(groups, lr=loop.lr, weight_decay=loop.weight_decay)
    if loop.schedule not in ("constant", "cosine"):
        raise ValueError(f"schedule must be constant or cosine, got {loop.schedule!r}")
    # per group (groups may carry their own lr), read before a checkpoint restores scheduled values
    base_lrs = [g["lr"] for g in opt.param_groups]
    start = load_checkpoint(ckpt, model, opt) if ckpt else 0
    horizon = max(1, loop.schedule_steps or loop.steps)
    model.train()
    main = acc.is_main_process
    rank, world = acc.process_index, acc.num_processes
    if world > 1:
        broadcast_parameters(model)
    resize = None if threads is None else ThreadResizer(threads, world if acc.device.type == "cpu" else 1)
    out.mkdir(parents=True, exist_ok=True)
    wb = None
    if loop.logger == "wandb" and main:
        import wandb

        wb = wandb.init(mode="offline", dir=str(out), config=log_config or {})
    metrics = (out / "metrics.jsonl").open("a") if main else None
    bar = tqdm(total=loop.steps, initial=start, desc=desc, unit="step", disable=not (progress and main))
    t0 = time.perf_counter()
    for step in range(start, loop.steps):
        with acc.autocast():
            loss, terms = method.loss(model, step, acc.device, rank, world)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if world > 1:
            average_gradients(params, world)
        if loop.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, loop.grad_clip)
        if loop.schedule == "cosine":  # a pure function of the step, so --resume continues the same curve
            factor = 0.5 * (1.0 + math.cos(math.pi * min(step, horizon) / horizon))
            for g, lr0 in zip(opt.param_groups, base_lrs):
                g["lr"] = lr0 * factor
        opt.step()
        if resize is not None:
            resize()  # cheap: measures at most every 10 s
        bar.update()
        if metrics is not None and ((step + 1) % loop.log_every == 0 or step == start):
            rec = {"step": step + 1, "loss": float(loss.detach()), **terms,
                   "s": round(time.perf_counter() - t0, 2), "world": world}
            if resize is not None and resize.enabled:
                rec["threads"] = torch.get_num_threads()
            metrics.write(json.dumps(rec) + "\n")
            metrics.flush()
            bar.set_postfix(loss=f"{rec['loss']:.3f}")
            if wb is not None:
                wb.log(rec, step=step + 1)
        if (step + 1) % loop.ckpt_every == 0 or step + 1 == loop.steps:
            acc.wait_for_everyone()
            if main:
                save_checkpoint(out, step + 1, model, opt, loop.keep_checkpoints,
                                trainable_only=loop.trainable_only_checkpoints)
    bar.close()
    if metrics is not None:
        metrics.close()
    acc.wait_for_everyone()
    model.eval()
    if main and hasattr(method, "export"):
        method.export(model, out)
    if wb is not None:
        wb.finish()
    acc.wait_for_everyone()
    return out


def logged_seconds(metrics: str | Path) -> float | None:
    """Training wall time in seconds from a run's metrics.jsonl, summed over its resumed segments.

    `fit` logs "s" from the start of each call, so a run resumed once logs two rising series; a row whose
    "s" is below its predecessor's starts a new segment. None when no row carries "s"."""
    p = Path(metrics)
    if not p.is_file():
        return None
    total, prev, seen = 0.0, 0.0, False
    for line in p.read_text().splitlines():
        s = json.loads(line).get("s") if line.strip() else None
        if s is None:
            continue
        if s < prev:
            total += prev
        prev, seen = float(s), True
    return round(total + prev, 2) if seen else None


def broadcast_parameters(model: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (same seed should already agree)."""
    import torch.distributed as dist

    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            dist.broadcast(t.data, src=0)


def average_gradients(params: list[nn.Parameter], world: int) -> None:
    """Mean of each parameter's gradient over ranks: one flat all-reduce (a missing grad counts as 0)."""
    import torch.distributed as dist

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    i = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[i : i + n].view_as(p).clone()
        i += n
