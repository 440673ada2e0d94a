"""Train an action encoder on a clip index, checkpoint, resume, and export it for `build_encoder`.

    accelerate launch encoders/train.py --config configs/encoder/invact.yaml
    python encoders/train.py --config configs/encoder/invact.yaml data=/tmp/aw steps=200
    python encoders/train.py --config configs/encoder/invact.yaml out=runs/encoder/x --resume

Run folder (`out`, default runs/encoder/<method>-<time>/): config.yaml (resolved), metrics.jsonl,
checkpoints/step_NNNNNN/ (weights, optimizer, step; the last `keep_checkpoints` are kept), and
encoder/ (the final `save_pretrained` export: config.json + model.safetensors).

Data order depends only on (seed, step), so `--resume` continues with exactly the batches an
uninterrupted run would have seen. AdamW at a constant learning rate (invact.txt App. B.1); bf16
autocast when a GPU is present; logging to metrics.jsonl, tqdm, and wandb (offline) on request.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from configs.loader import parse_cli, save_config
from configs.runs import atomic_write, atomic_write_json, seed_everything


@dataclasses.dataclass
class TrainConfig:
    method: str = "invact"
    data: str = "data/atomic_world"
    out: str = ""  # run folder; empty: runs/encoder/<method>-<time>
    seed: int = 0
    steps: int = 1500
    lr: float = 1e-4
    weight_decay: float = 0.05
    batch_quads: int = 4  # quadruplets per batch: 4 * batch_quads ego-exo pairs
    ckpt_every: int = 250
    keep_checkpoints: int = 2
    log_every: int = 25
    resume: bool = False
    text_encoder: str = "minilm"
    threads: int = 2
    logger: str = "none"  # "none" | "wandb" (always offline: nothing leaves the machine)
    cache_dir: str = ""  # prepared-input cache root; empty: $ATOMVLA_CACHE or .cache/atomvla
    model: dict[str, Any] = dataclasses.field(default_factory=dict)  # the method's model config
    loss: dict[str, Any] = dataclasses.field(default_factory=dict)  # the method's loss config

    def validate(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method: {self.method!r} is not one of {sorted(METHODS)}")
        if self.steps < 1 or self.batch_quads < 1 or self.ckpt_every < 1 or self.log_every < 1:
            raise ValueError("steps, batch_quads, ckpt_every and log_every must be >= 1")
        if self.logger not in ("none", "wandb"):
            raise ValueError(f"logger: {self.logger!r} is not 'none' or 'wandb'")


# method name -> "module:Class". A method takes the TrainConfig, exposes `.model` (an ActionEncoder)
# and `loss(model, step, device) -> (loss, {term: value})`, and draws batch `step` from (seed, step)
# alone so that resumed runs see the same data.
METHODS = {"invact": "encoders.invact_train:InvActMethod", "roboact_clip": "encoders.roboact_train:RoboActMethod"}


def method_class(name: str):
    import importlib

    if name not in METHODS:
        raise ValueError(f"unknown training method {name!r}; known: {sorted(METHODS)}")
    module, cls = METHODS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def _latest_checkpoint(out: Path) -> Path | None:
    ckpts = sorted((out / "checkpoints").glob("step_*")) if (out / "checkpoints").is_dir() else []
    ckpts = [c for c in ckpts if (c / "state.json").is_file()]  # state.json is written last
    return ckpts[-1] if ckpts else None


def save_checkpoint(out: Path, step: int, model, optimizer, keep: int) -> Path:
    from safetensors.torch import save_file

    d = out / "checkpoints" / f"step_{step:06d}"
    d.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    atomic_write(d / "model.safetensors", lambda p: save_file(state, str(p)))
    atomic_write(d / "optimizer.pt", lambda p: torch.save(optimizer.state_dict(), p))
    atomic_write_json(d / "state.json", {"step": step, "torch_rng": torch.get_rng_state().tolist()})
    for old in sorted((out / "checkpoints").glob("step_*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return d


def load_checkpoint(d: Path, model, optimizer) -> int:
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(d / "model.safetensors")))
    optimizer.load_state_dict(torch.load(d / "optimizer.pt", map_location="cpu", weights_only=True))
    state = json.loads((d / "state.json").read_text())
    torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))
    return int(state["step"])


def train(cfg: TrainConfig, progress: bool = True) -> Path:
    """Run (or resume) training; returns the run folder. The exported encoder is in `<out>/encoder`."""
    from accelerate import Accelerator
    from tqdm import tqdm

    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    out = Path(cfg.out or f"runs/encoder/{cfg.method}-{time.strftime('%Y%m%d-%H%M%S')}")
    ckpt = _latest_checkpoint(out) if cfg.resume else None
    if cfg.resume and ckpt is None:
        print(f"--resume: no checkpoint in {out} yet; starting from step 0")
    if not cfg.resume and _latest_checkpoint(out) is not None:
        raise FileExistsError(f"{out} already holds checkpoints; pass --resume or choose another out=")
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")

    acc = Accelerator(mixed_precision="bf16" if torch.cuda.is_available() else "no")
    method = method_class(cfg.method)(cfg)
    model = method.model
    model.train()
    for p in model.parameters():
        p.requires_grad_(True)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay)
    start = load_checkpoint(ckpt, model, opt) if ckpt else 0
    model, opt = acc.prepare(model, opt)
    wb = None
    if cfg.logger == "wandb":
        import wandb

        wb = wandb.init(mode="offline", dir=str(out), config=dataclasses.asdict(cfg))
    metrics = (out / "metrics.jsonl").open("a")
    bar = tqdm(total=cfg.steps, initial=start, desc=f"train {cfg.method}", unit="step", disable=not progress)
    t0 = time.perf_counter()
    for step in range(start, cfg.steps):
        with acc.autocast():
            loss, terms = method.loss(model, step, acc.device)
        opt.zero_grad(set_to_none=True)
        acc.backward(loss)
        opt.step()
        bar.update()
        if (step + 1) % cfg.log_every == 0 or step == start:
            rec = {"step": step + 1, "loss": float(loss.detach()), **terms, "s": round(time.perf_counter() - t0, 2)}
            metrics.write(json.dumps(rec) + "\n")
            metrics.flush()
            bar.set_postfix(loss=f"{rec['loss']:.3f}")
            if wb is not None:
                wb.log(rec, step=step + 1)
        if (step + 1) % cfg.ckpt_every == 0 or step + 1 == cfg.steps:
            save_checkpoint(out, step + 1, acc.unwrap_model(model), opt, cfg.keep_checkpoints)
    bar.close()
    metrics.close()
    final = acc.unwrap_model(model)
    final.eval()
    final.save_pretrained(out / "encoder")
    if wb is not None:
        wb.finish()
    return out


def loss_at(cfg: TrainConfig, step: int, model=None) -> float:
    """The training loss of batch `step` for `model` (the method's freshly built model if None)."""
    method = method_class(cfg.method)(cfg)
    m = model if model is not None else method.model
    with torch.no_grad():
        return float(method.loss(m, step, torch.device("cpu"))[0])


FLAGS = {
    "--data": ("data", "dataset folder (index.parquet)"),
    "--out": ("out", "run folder"),
    "--steps": ("steps", "training steps"),
    "--seed": ("seed", "seed"),
    "--resume": ("resume", "continue from the newest checkpoint in out"),
}


def main(argv: list[str] | None = None) -> int:
    cfg = parse_cli(TrainConfig, argv, description=__doc__, flags=FLAGS, prog="encoders/train.py")
    out = train(cfg)
    print(f"run folder: {out}\nexported encoder: {out / 'encoder'} (use encoder={out / 'encoder'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
