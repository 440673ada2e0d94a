"""Train an action encoder on a clip index, checkpoint, resume, and export it for `build_encoder`.

    python encoders/train.py --config configs/encoder/invact.yaml data=/tmp/aw steps=200
    python encoders/train.py --config configs/encoder/invact.yaml out=runs/encoder/x --resume
    python encoders/train.py --config configs/encoder/invact_mix.yaml     # atomic world + LIBERO clips, 0.7 / 0.3
    accelerate launch encoders/train.py --config configs/encoder/invact.yaml        # 1 process
    torchrun --standalone --nproc_per_node 2 encoders/train.py --config ... out=runs/encoder/x   # 2 CPU processes
    accelerate launch --multi_gpu --num_processes 4 encoders/train.py --config ... out=...        # 4 GPUs

Data parallel: every process trains on its own part of each global batch (batch_quads quadruplets,
split by whole quadruplets), gradients are averaged, only the main process writes files.
(`accelerate launch --cpu --num_processes 2` starts ONE process: use torchrun on CPU.)

Run folder (`out`, default runs/encoder/<method>-<time>/): config.yaml (resolved), metrics.jsonl,
checkpoints/step_NNNNNN/ (weights, optimizer, step; the last `keep_checkpoints` are kept), and
encoder/ (the final `save_pretrained` export: config.json + model.safetensors).

Several datasets: `data=[A,B] data_weights=[0.7,0.3]` (empty weights: equal). They are joined
into one mix folder under the cache root (envs/datasets/mix.py: vocabularies joined, ids kept
unique) and the method's batch sampler draws each quadruplet / clip from source k with probability
weight k, whatever the sources' sizes.

Data order depends only on (seed, step), so `--resume` continues with exactly the batches an
uninterrupted run would have seen. AdamW at a constant learning rate (invact.txt App. B.1); bf16
autocast when a GPU is present; logging to metrics.jsonl, tqdm, and wandb (offline) on request.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import torch

from configs.cli import run_cli
from configs.loader import ConfigError, from_dict, parse_cli, save_config
from configs.runs import seed_everything
from configs.threads import apply_threads
from configs.training import LoopConfig, fit, make_accelerator, prepare_out
from encoders.methods import METHODS, method_class, sections_help


@dataclasses.dataclass
class TrainConfig:
    method: str = "invact"
    data: str | list[str] = "runs/demo/atomic_world"  # a dataset folder, or a list of them to mix
    data_weights: list[float] = dataclasses.field(default_factory=list)  # one per data folder; empty: equal
    out: str = ""  # run folder; empty: runs/encoder/<method>-<time>
    seed: int = 0
    steps: int = 1500
    lr: float = 1e-4
    weight_decay: float = 0.05
    batch_quads: int = 4  # quadruplets per global batch: 4 * batch_quads ego-exo pairs, split over ranks
    ckpt_every: int = 250
    keep_checkpoints: int = 2
    log_every: int = 25
    resume: bool = False
    text_encoder: str = "minilm"
    threads: int = 0  # torch intra-op threads per process; 0: the free cores / processes (configs/threads.py)
    logger: str = "none"  # "none" | "wandb" (always offline: nothing leaves the machine)
    cache_dir: str = ""  # prepared-input cache root; empty: $ATOMVLA_CACHE or .cache/atomvla
    # The method's typed sections (see `--help` for their keys): checked against the method's
    # dataclasses in validate(), i.e. when the config is parsed, before any file is written.
    model: dict[str, Any] = dataclasses.field(default_factory=dict)
    loss: dict[str, Any] = dataclasses.field(default_factory=dict)

    def validate(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method: {self.method!r} is not one of {METHODS.names()}")
        if self.steps < 1 or self.batch_quads < 1 or self.ckpt_every < 1 or self.log_every < 1:
            raise ValueError("steps, batch_quads, ckpt_every and log_every must be >= 1")
        if self.logger not in ("none", "wandb"):
            raise ValueError(f"logger: {self.logger!r} is not 'none' or 'wandb'")
        if self.threads < 0:
            raise ValueError(f"threads: must be >= 0 (0 = automatic), got {self.threads}")
        from envs.datasets.mix import check_weights

        roots = data_roots(self)
        if len(roots) == 1 and len(self.data_weights) > 1:
            raise ValueError(f"data_weights: {len(self.data_weights)} weights for 1 dataset in data")
        check_weights(roots, self.data_weights)
        cls = method_class(self.method)
        try:
            # fields the method derives from the dataset (e.g. num_verbs) keep their defaults here
            from_dict(cls.model_config, self.model, prefix="model.")
            from_dict(cls.loss_config, self.loss, prefix="loss.")
        except ConfigError as e:
            raise ConfigError(f"{e} (method {self.method!r})", key=e.key) from None


def data_roots(cfg: TrainConfig) -> list[str]:
    """The dataset folders of `cfg.data` (one folder or a list)."""
    return [cfg.data] if isinstance(cfg.data, str) else [str(d) for d in cfg.data]


def resolve_data(cfg: TrainConfig) -> TrainConfig:
    """`cfg` with `data` one folder: the folder itself, or the mix folder of several (envs/datasets/mix.py)."""
    roots = data_roots(cfg)
    for r in roots:
        if not Path(r).is_dir():
            raise FileNotFoundError(f"data: dataset folder {r} does not exist")
    if len(roots) == 1:
        return dataclasses.replace(cfg, data=roots[0])
    from encoders.features import default_cache_root
    from envs.datasets.mix import mix_datasets

    mix = mix_datasets(roots, cfg.data_weights, cfg.cache_dir or default_cache_root())
    return dataclasses.replace(cfg, data=str(mix))


def setup_run(cfg: TrainConfig) -> tuple[Any, Path, Any]:
    """(accelerator, run folder, training method) for `cfg`: threads sized, inputs checked, resolved
    config written by the main process. Nothing is created before the inputs validated."""
    acc = make_accelerator()
    apply_threads(cfg.threads, workers=acc.num_processes if acc.device.type == "cpu" else 1)
    seed_everything(cfg.seed)
    out = Path(cfg.out or f"runs/encoder/{cfg.method}-{time.strftime('%Y%m%d-%H%M%S')}")
    if acc.num_processes > 1 and not cfg.out:
        raise ValueError("out: set an explicit run folder when launching several processes "
                         "(each would otherwise pick its own time-stamped folder)")
    prepare_out(out, cfg.resume)  # refuses a non-resume run into a folder with checkpoints
    with acc.main_process_first():  # one process fills the prepared-input caches, the others read them
        method = method_class(cfg.method)(resolve_data(cfg))
    for p in method.model.parameters():
        p.requires_grad_(True)
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
    return acc, out, method


def train(cfg: TrainConfig, progress: bool = True) -> Path:
    """Run (or resume) training; returns the run folder. The exported encoder is in `<out>/encoder`.

    Launched with N processes (`torchrun --nproc_per_node N` / `accelerate launch --multi_gpu
    --num_processes N`), every rank trains on its own part of each batch and only the main process
    writes files (configs/training.py)."""
    acc, out, method = setup_run(cfg)
    # threads=0 re-sizes torch's threads between steps when other processes start or stop (ThreadResizer)
    return fit(method, out, LoopConfig.of(cfg), desc=f"train {cfg.method}", progress=progress,
               accelerator=acc, log_config=dataclasses.asdict(cfg), threads=cfg.threads)


def loss_at(cfg: TrainConfig, step: int, model=None) -> float:
    """The training loss of batch `step` for `model` (the method's freshly built model if None)."""
    method = method_class(cfg.method)(resolve_data(cfg))
    m = model if model is not None else method.model
    with torch.no_grad():
        return float(method.loss(m, step, torch.device("cpu"))[0])


FLAGS = {
    "--data": ("data", "dataset folder (index.parquet); several: data=[A,B] data_weights=[0.7,0.3]"),
    "--out": ("out", "run folder"),
    "--steps": ("steps", "training steps"),
    "--seed": ("seed", "seed"),
    "--resume": ("resume", "continue from the newest checkpoint in out"),
}


def main(argv: list[str] | None = None) -> int:
    cfg = parse_cli(TrainConfig, argv, description=__doc__ + "\n" + sections_help(), flags=FLAGS,
                    prog="encoders/train.py")
    out = train(cfg)
    print(f"run folder: {out}\nexported encoder: {out / 'encoder'} (use encoder={out / 'encoder'})")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
