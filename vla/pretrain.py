"""Stage 2: latent-action pretraining of a VLA with LoRA (LAPA; invact.txt Appendix A.3).

    accelerate launch vla/pretrain.py --config configs/vla/pretrain.yaml latents=runs/vla/latents
    python vla/pretrain.py --config configs/vla/pretrain.yaml out=runs/vla/pretrain-x --resume

Input: a clip's first frame and its caption as the instruction (OpenVLA prompt); target: the clip's
stage-1 latent (vla/latents.py), standardised with the stored mean/std. "We finetune OpenVLA using
32-rank adapters ... We attach a single linear head that maps transformer tokens to the latent
action vector" (A.3): peft LoRA r=32, alpha=16 on every linear layer of the LM (configurable) plus
a linear head on the hidden state of the last instruction token. Loss: cosine or MSE for continuous
latents, cross-entropy when stage 1 stored discrete codes (LAPA's quantised latent actions).

Training runs through the project's one loop (configs/training.py `fit`): data-parallel under
`accelerate launch`, checkpoints of the trainable tensors only (LoRA + head), `--resume` with the
same batches. Run folder (`out`, default runs/vla/pretrain-<time>/): config.yaml, metrics.jsonl,
checkpoints/, results.json and the export `stage2/`:
    stage2.json            model spec, lm_id, latent dim / codebook, LoRA spec, encoder id + hash
    lora.safetensors       the LoRA tensors (names relative to the LM)
    latent_head.safetensors
    projector.safetensors  with train_projector=true (smol's projector is random init: there was no
                           Prismatic alignment stage, so stage 2 also aligns it)
The frozen weights are never copied: every registry model rebuilds them (seeded random parts).
Stage 3 (vla/posttrain.py init=<this run>) merges the LoRA into the LM and drops the head.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from configs.loader import parse_cli, save_config, to_dict
from configs.runs import atomic_write, atomic_write_json, read_json_fields, seed_everything
from vla.heads import LatentHead, LatentVLA, LoraSpec, add_lora, latent_loss, lora_state

STAGE2_DIR = "stage2"
STAGE2_FILE = "stage2.json"
FORMAT_VERSION = 1


@dataclasses.dataclass
class PretrainConfig:
    model: str = "smol"  # build_vla name: smol | tiny | openvla (model_args.path=DIR)
    model_args: dict[str, Any] = dataclasses.field(default_factory=dict)  # VLAConfig overrides
    latents: str = "runs/vla/latents"  # stage-1 folder (vla/latents.py --out)
    out: str = ""  # run folder; empty: runs/vla/pretrain-<time>
    seed: int = 0
    steps: int = 200
    batch: int = 8  # global batch (split across ranks)
    lr: float = 5e-4
    weight_decay: float = 0.0
    loss: str = "auto"  # auto (ce if the latents have codes, else cosine) | cosine | mse | ce
    lora: LoraSpec = dataclasses.field(default_factory=LoraSpec)
    ckpt_every: int = 100
    keep_checkpoints: int = 2
    log_every: int = 10
    resume: bool = False
    logger: str = "none"  # none | wandb (offline)
    grad_clip: float = 1.0
    train_projector: bool = False  # also train the vision->LM projector (random-init in smol)
    grad_checkpointing: bool = True  # only used on CUDA
    threads: int = 0  # torch threads; 0 = the free cores

    def validate(self) -> None:
        if self.steps < 1 or self.batch < 1 or self.ckpt_every < 1 or self.log_every < 1:
            raise ValueError("steps, batch, ckpt_every and log_every must be >= 1")
        if self.loss not in ("auto", "cosine", "mse", "ce"):
            raise ValueError(f"loss: {self.loss!r} is not one of auto, cosine, mse, ce")
        if self.logger not in ("none", "wandb"):
            raise ValueError(f"logger: {self.logger!r} is not 'none' or 'wandb'")
        self.lora.validate()


# -- shared with stage 3 ---------------------------------------------------------------------------
def build_base(model: str, model_args: dict[str, Any]) -> torch.nn.Module:
    """build_vla(model, **model_args) with a clear error for an unknown name or bad argument."""
    from vla.modeling import build_vla

    try:
        return build_vla(model, **model_args)
    except (KeyError, TypeError) as e:
        raise ValueError(f"model: cannot build VLA {model!r} with model_args={model_args}: {e}") from None


def save_tensors(path: Path, state: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    atomic_write(path, lambda p: save_file(state, str(p)))


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not path.is_file():
        raise FileNotFoundError(f"missing file {path}")
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for torn files
        raise ValueError(f"{path}: damaged safetensors file ({type(e).__name__}: {e})") from None


def module_state(module: torch.nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    return {prefix + k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}


def load_module_state(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """strict load with one error naming `source` (missing/unexpected/mis-shaped keys)."""
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"{source}: weights do not fit the model ({e})") from None


def check_resume_shapes(ckpt: Path | None, model: torch.nn.Module) -> None:
    """Before `fit` resumes: every checkpoint tensor must exist in the model with the same shape
    (e.g. a latents file of another dimension than the run's latent head) -> one error naming both."""
    if ckpt is None:
        return
    from safetensors import safe_open

    f = ckpt / "model.safetensors"
    own = model.state_dict()
    try:
        with safe_open(str(f), "pt") as sf:
            for k in sf.keys():
                shape = tuple(sf.get_slice(k).get_shape())
                if k not in own:
                    raise ValueError(f"{f}: key {k!r} is not in the model (another model/LoRA config?)")
                if tuple(own[k].shape) != shape:
                    raise ValueError(f"{f}: key {k!r} has shape {shape} but the model needs {tuple(own[k].shape)} "
                                     "(latent dim / chunk / LoRA rank differs from the checkpoint's run)")
    except OSError as e:
        raise ValueError(f"{f}: damaged checkpoint ({e})") from None


def already_done(out: Path, steps: int, export: Path) -> bool:
    """--resume on a finished run (export written, newest checkpoint at `steps`): nothing to redo."""
    from configs.training import latest_checkpoint

    ckpt = latest_checkpoint(out)
    if ckpt is None or not export.is_file() or not (out / "results.json").is_file():
        return False
    return int(json.loads((ckpt / "state.json").read_text())["step"]) >= steps


def run_dir(out: str, stage: str) -> Path:
    return Path(out or f"runs/vla/{stage}-{time.strftime('%Y%m%d-%H%M%S')}")


# -- the method ----------------------------------------------------------------------------------
class PretrainMethod:
    """`fit` method: LatentVLA (frozen VLA + LoRA + linear head); batch `step` from (seed, step)."""

    def __init__(self, cfg: PretrainConfig) -> None:
        from vla.data import load_latents

        self.cfg = cfg
        self.data = load_latents(cfg.latents)
        self.kind = cfg.loss if cfg.loss != "auto" else ("ce" if self.data.codes is not None else "cosine")
        if self.kind == "ce" and self.data.codes is None:
            raise ValueError(f"loss=ce: {cfg.latents} holds no discrete codes (use cosine or mse)")
        seed_everything(cfg.seed)
        vla = build_base(cfg.model, cfg.model_args)
        self.lora = add_lora(vla, cfg.lora)
        for p in vla.projector.parameters():
            p.requires_grad_(cfg.train_projector)
        codebook = self.data.codebook_size if self.kind == "ce" else 0
        if self.kind == "ce" and codebook < 2:
            raise ValueError(f"{cfg.latents}/latents.json: codebook_size must be >= 2 for discrete codes")
        # continuous: (B, D) latents; discrete: (B, G) codes -> (B, G, codebook) logits
        out_dim = self.data.codes.shape[1] if self.kind == "ce" else self.data.dim
        head = LatentHead(vla.hidden_size, out_dim, codebook)
        self.model = LatentVLA(vla, head)
        if torch.cuda.is_available() and cfg.grad_checkpointing:
            vla.lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    def loss(self, model: torch.nn.Module, step: int, device: torch.device, rank: int = 0,
             world: int = 1) -> tuple[torch.Tensor, dict[str, float]]:
        b = self.data.batch(self.cfg.batch, self.cfg.seed, step, rank, world)
        pred = model(b["images"], b["texts"])
        target = torch.from_numpy(b["targets"]).to(device)
        codes = None if b["codes"] is None else torch.from_numpy(b["codes"]).to(device)
        loss = latent_loss(pred, target, codes, self.kind)
        terms = {}
        if self.kind != "ce":
            terms["cos"] = float(torch.nn.functional.cosine_similarity(pred.detach(), target, dim=-1).mean())
        return loss, terms

    def export(self, model: torch.nn.Module, out: Path) -> None:
        vla = model.vla
        d = out / STAGE2_DIR
        d.mkdir(parents=True, exist_ok=True)
        save_tensors(d / "lora.safetensors", lora_state(vla.lm))
        save_tensors(d / "latent_head.safetensors", module_state(model.head))
        if self.cfg.train_projector:
            save_tensors(d / "projector.safetensors", module_state(vla.projector))
        meta = self.data.meta
        atomic_write_json(d / STAGE2_FILE, {
            "format_version": FORMAT_VERSION, "stage": 2, "model": self.cfg.model,
            "model_args": self.cfg.model_args, "lm_id": str(vla.lm_id), "hidden_size": int(vla.hidden_size),
            "latent_dim": self.data.dim, "codebook_size": int(model.head.codebook), "loss": self.kind,
            "lora": dataclasses.asdict(self.cfg.lora), "projector": self.cfg.train_projector,
            "encoder_id": meta.get("encoder_id"), "encoder_hash": meta.get("encoder_hash"),
            "latents": str(self.cfg.latents), "steps": self.cfg.steps,
        })


def read_stage2(run: str | Path) -> tuple[Path, dict[str, Any]]:
    """(stage2 dir, stage2.json) of a stage-2 run folder (or of its stage2/ folder itself)."""
    p = Path(run)
    d = p if (p / STAGE2_FILE).is_file() else p / STAGE2_DIR
    f = d / STAGE2_FILE
    if not f.is_file():
        raise FileNotFoundError(f"init={run}: no {STAGE2_DIR}/{STAGE2_FILE} (not a finished vla/pretrain.py run)")
    return d, read_json_fields(f, ("model", "lm_id", "lora"), "stage-2 export (JSON)")


def run_stage(cfg: Any, make_method: Any, *, stage: int, kind: str, export: str, desc: str, progress: bool,
              results: Any) -> Path:
    """The run-folder protocol both trained stages share: validate, skip a finished run, build the
    method (which checks every input before anything is written), check resume shapes, write the
    resolved config, `fit`, then `results.json` = common fields + `results(method, wall_s)`."""
    from configs.threads import apply_threads
    from configs.training import LoopConfig, fit, latest_checkpoint, make_accelerator

    cfg.validate()
    apply_threads(cfg.threads)
    out = run_dir(cfg.out, kind)
    if cfg.resume and already_done(out, cfg.steps, out / export):
        print(f"stage {stage}: {out} already finished {cfg.steps} steps (export in {(out / export).parent})")
        return out
    loop = LoopConfig.of(cfg)
    loop.trainable_only_checkpoints = True
    method = make_method(cfg)
    if cfg.resume:
        check_resume_shapes(latest_checkpoint(out), method.model)
    acc = make_accelerator()
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
    t0 = time.perf_counter()
    fit(method, out, loop, desc=desc, progress=progress, accelerator=acc, log_config=to_dict(cfg),
        threads=cfg.threads)  # re-sized between steps when another process starts (threads=0)
    if acc.is_main_process:
        wall = time.perf_counter() - t0
        lines = (out / "metrics.jsonl").read_text().splitlines()
        last = json.loads(lines[-1]) if lines else {}
        res = {"stage": stage, "final_loss": last.get("loss"), "steps": cfg.steps, "world": acc.num_processes,
               "wall_s": round(wall, 1), **results(method, wall)}
        atomic_write_json(out / "results.json", res)
        print(results_line(res, out / "results.json"))
    return out


def results_line(res: dict[str, Any], path: Path) -> str:
    """One line of a stage's results: its scalars; lists (stage 3's per-window held-out errors) stay
    in the results file, which the line names."""
    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    scalars = " ".join(f"{k}={fmt(v)}" for k, v in res.items() if k != "stage" and not isinstance(v, (list, dict)))
    lists = [k for k, v in res.items() if isinstance(v, (list, dict))]
    return f"stage {res.get('stage')} results ({path}{'; per-window: ' + ', '.join(lists) if lists else ''}): {scalars}"


def train(cfg: PretrainConfig, progress: bool = True) -> Path:
    """Run (or resume) stage 2; returns the run folder (export in <out>/stage2)."""
    return run_stage(cfg, PretrainMethod, stage=2, kind="pretrain", export=f"{STAGE2_DIR}/{STAGE2_FILE}",
                     desc="stage 2 latents", progress=progress,
                     results=lambda m, wall: {"loss_kind": m.kind,
                                              "samples_per_s": round(cfg.batch * cfg.steps / max(1e-9, wall), 3)})


FLAGS = {
    "--latents": ("latents", "stage-1 latents folder"),
    "--out": ("out", "run folder"),
    "--steps": ("steps", "training steps"),
    "--resume": ("resume", "continue from the newest checkpoint in out"),
}


def main(argv: list[str] | None = None) -> int:
    cfg = parse_cli(PretrainConfig, argv, description=__doc__, flags=FLAGS, prog="vla/pretrain.py")
    out = train(cfg)  # bad input (a missing latents folder, an unknown model): one line, exit 2 (run_cli)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"stage 2 run: {out}\nnext: python vla/posttrain.py --config configs/vla/posttrain.yaml init={out}")
    return 0


if __name__ == "__main__":
    from configs.cli import run_cli

    sys.exit(run_cli(main))
