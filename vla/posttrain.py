"""Stage 3: robot post-training -> a VLAPolicy checkpoint (invact.txt A.3; OpenVLA-OFT action head).

    accelerate launch vla/posttrain.py --config configs/vla/posttrain.yaml init=runs/vla/pretrain-x
    python vla/posttrain.py --config configs/vla/posttrain.yaml init=none demos=runs/demos/goal
    python envs/eval_libero.py --suite libero_goal --tasks 0,5,6,7 --policy <out>/policy
    python vla/posttrain.py --summary <out> [EVAL_DIR [STAGE2_RUN [LATENTS_DIR]]]   # one summary

"We remove the latent-action head, add a new 32-rank LoRA, and finetune on LIBERO to predict
continuous robot embodiment actions ... We add a new trainable output layer that maps transformer
tokens to robot actions" (A.3). Concretely: the stage-2 LoRA is merged into the LM (peft
merge_and_unload), the latent head is dropped, a fresh LoRA (B = 0: outputs unchanged at step 0)
and an ActionHead are added: K learned action queries (+ one projected proprio embedding) appended
after the instruction, their hidden states -> a (K, 7) chunk, trained with L1 on q01/q99-normalised
actions (OpenVLA-OFT). Images pass through the evaluator's transform (envs.protocol.vla_image).
`cameras` lists the demo cameras read (their visual tokens concatenated in camera order before the
text) and `execution` how the evaluator runs the chunks (open_loop | ensemble): vla/views.py.

Run folder (`out`, default runs/vla/posttrain-<time>/): config.yaml, metrics.jsonl, checkpoints/,
results.json (held-out demo action L1) and the policy export `policy/`:
    policy.json              {"policy_type": "vla", model spec, lm_id, LoRA specs, chunk K, proprio,
                             action q01/q99, proprio mean/std, image_size, center_crop, gripper "env",
                             cameras, execution}
    trainable.safetensors    stage-3 LoRA ("lm.*") + action head ("head.*") + projector ("projector.*")
    stage2_lora.safetensors  the stage-2 LoRA (copied), re-merged into the registry's LM at load
Choice: the LM itself is never copied. Every registry model rebuilds its frozen weights exactly
(smol: the cached SmolLM2 safetensors + ImageNet EfficientNet + seeded projector init; tiny: seeded),
and `lm_id` in policy.json is checked at load. A policy dir costs two LoRAs (~40 MB for smol at
r=32), not a 135M-parameter model (~540 MB).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from configs.loader import parse_cli
from configs.runs import atomic_write_json, read_json_fields, seed_everything
from envs.protocol import ACTION_DIM, PROPRIO_DIM
from vla.heads import (
    ActionHead,
    ActionVLA,
    LoraSpec,
    action_l1,
    add_lora,
    load_lora_state,
    lora_state,
    merge_lora,
)
from vla.pretrain import (
    build_base,
    load_module_state,
    load_tensors,
    module_state,
    read_stage2,
    run_stage,
    save_tensors,
)
from vla.views import DEFAULT_CAMERAS, DEFAULT_EXECUTION, check_cameras, checkpoint_views, execution_name

POLICY_DIR = "policy"
POLICY_FILE = "policy.json"
FORMAT_VERSION = 1


@dataclasses.dataclass
class PosttrainConfig:
    init: str = "none"  # a stage-2 run folder (vla/pretrain.py out) or none (no latent pretraining)
    model: str = ""  # build_vla name; "" = the stage-2 run's model (smol when init=none)
    model_args: dict[str, Any] = dataclasses.field(default_factory=dict)  # VLAConfig overrides
    demos: str = "runs/demos/goal"  # hdf5 file(s), folder(s) or LeRobot folder(s), comma-separated
    out: str = ""  # run folder; empty: runs/vla/posttrain-<time>
    seed: int = 0
    steps: int = 300
    batch: int = 8  # global batch (split across ranks)
    lr: float = 5e-4
    weight_decay: float = 0.0
    chunk: int = 8  # K actions per prediction
    # demo cameras read, in this order (vla/views.py); evaluation renders the same ones
    cameras: list[str] = dataclasses.field(default_factory=lambda: list(DEFAULT_CAMERAS))
    execution: str = DEFAULT_EXECUTION  # open_loop (OpenVLA-OFT) | ensemble (ACT temporal ensembling)
    proprio: bool = True  # project the robot state into one extra embedding before the queries
    image_size: int = 0  # 0 = the model's input size
    center_crop: bool = False  # protocol centre crop (90% area) in training and evaluation
    val_demos: int = 1  # held out per demo file for the action-L1 report
    val_windows: int = 256  # at most this many held-out windows are scored
    max_demos: int = 0  # demos read per file; 0 = all
    lora: LoraSpec = dataclasses.field(default_factory=LoraSpec)
    ckpt_every: int = 100
    keep_checkpoints: int = 2
    log_every: int = 10
    resume: bool = False
    logger: str = "none"
    grad_clip: float = 1.0
    train_projector: bool = False  # also train the vision->LM projector
    grad_checkpointing: bool = True  # only used on CUDA
    threads: int = 0

    def validate(self) -> None:
        if self.steps < 1 or self.batch < 1 or self.chunk < 1 or self.ckpt_every < 1 or self.log_every < 1:
            raise ValueError("steps, batch, chunk, ckpt_every and log_every must be >= 1")
        if self.logger not in ("none", "wandb"):
            raise ValueError(f"logger: {self.logger!r} is not 'none' or 'wandb'")
        self.lora.validate()
        check_cameras(self.cameras)
        execution_name(self.execution)


def apply_stage2(vla: torch.nn.Module, stage2_dir: Path, meta: dict[str, Any], lora_file: str = "lora.safetensors") -> None:
    """Load a stage-2 export into a freshly built VLA and merge its LoRA into the LM weights
    (W <- W + alpha/r B A, peft merge_and_unload); the latent head is not loaded (A.3: "We remove
    the latent-action head")."""
    handle = add_lora(vla, LoraSpec(**meta["lora"]))
    if meta.get("projector"):
        f = stage2_dir / "projector.safetensors"
        load_module_state(vla.projector, load_tensors(f), str(f))
    load_lora_state(vla.lm, load_tensors(stage2_dir / lora_file), str(stage2_dir / lora_file))
    merge_lora(vla, handle)


def resolve_model(cfg: PosttrainConfig) -> tuple[str, dict[str, Any], Path | None, dict[str, Any] | None]:
    """(model, model_args, stage2 dir, stage2 meta); a stage-2 run of another LM is an error."""
    if cfg.init in ("", "none"):
        return cfg.model or "smol", cfg.model_args, None, None
    d, meta = read_stage2(cfg.init)
    model = cfg.model or meta["model"]
    args = cfg.model_args or meta.get("model_args", {})
    return model, args, d, meta


class PosttrainMethod:
    """`fit` method: ActionVLA (merged stage-2 LM + fresh LoRA + ActionHead); L1 on action chunks."""

    def __init__(self, cfg: PosttrainConfig) -> None:
        from envs.episodes import episode_files, split_episodes
        from vla.data import DemoSet, read_demos

        self.cfg = cfg
        episode_files(cfg.demos)  # a missing demo file: one error before the model is built
        model, args, s2_dir, s2 = resolve_model(cfg)
        seed_everything(cfg.seed)
        vla = build_base(model, args)
        if s2 is not None:
            if str(s2["lm_id"]) != str(vla.lm_id):
                raise ValueError(f"{s2_dir / 'stage2.json'}: lm_id {s2['lm_id']!r} differs from the model's "
                                 f"{vla.lm_id!r} (model={model}); a stage-2 LoRA only fits the LM it was trained on")
            apply_stage2(vla, s2_dir, s2)
        self.model_spec, self.stage2_dir, self.stage2 = (model, args), s2_dir, s2
        self.image_size = cfg.image_size or int(vla.image_size)
        cams = check_cameras(cfg.cameras)
        train_eps, val_eps = split_episodes(read_demos(cfg.demos, self.image_size, cfg.center_crop, cfg.max_demos,
                                                       cams), cfg.val_demos)
        self.data = DemoSet(train_eps, cfg.chunk, cameras=cams)
        self.val = DemoSet(val_eps, cfg.chunk, self.data.stats, self.data.proprio_stats, cams) if val_eps else None
        self.lora = add_lora(vla, cfg.lora)
        for p in vla.projector.parameters():
            p.requires_grad_(cfg.train_projector)
        head = ActionHead(vla.hidden_size, cfg.chunk, ACTION_DIM, PROPRIO_DIM if cfg.proprio else 0)
        self.model = ActionVLA(vla, head)
        if torch.cuda.is_available() and cfg.grad_checkpointing:
            vla.lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    def loss(self, model: torch.nn.Module, step: int, device: torch.device, rank: int = 0,
             world: int = 1) -> tuple[torch.Tensor, dict[str, float]]:
        b = self.data.batch(self.cfg.batch, self.cfg.seed, step, rank, world)
        proprio = torch.from_numpy(b["proprio"]).to(device) if self.cfg.proprio else None
        pred = model(b["images"], b["texts"], proprio)
        return action_l1(pred, torch.from_numpy(b["actions"]).to(device)), {}

    @torch.no_grad()
    def heldout_l1(self, model: torch.nn.Module, batch: int = 16) -> dict[str, Any]:
        """Held-out windows: L1 of the model vs. of the train-mean action (a constant predictor), in
        normalised units and in raw env-action units (all 7 dims, the gripper's +-1 included)."""
        if self.val is None:
            return {}
        n = len(self.val)
        idx = np.unique(np.linspace(0, n - 1, min(n, self.cfg.val_windows)).astype(int))
        mean_norm = self.data.stats.normalize(np.concatenate([e.data["action"] for e in self.data.episodes]).mean(0))
        model.eval()
        errs, base, raw_errs, raw_base = [], [], [], []
        for s in range(0, len(idx), batch):
            b = self.val.items(idx[s: s + batch])
            proprio = torch.from_numpy(b["proprio"]) if self.cfg.proprio else None
            dev = model.head.queries.device
            pred = model(b["images"], b["texts"], None if proprio is None else proprio.to(dev)).float().cpu().numpy()
            errs.append(np.abs(pred - b["actions"]).mean(axis=(1, 2)))
            base.append(np.abs(mean_norm - b["actions"]).mean(axis=(1, 2)))
            true_raw = self.data.stats.unnormalize(b["actions"])
            raw_errs.append(np.abs(self.data.stats.unnormalize(pred) - true_raw).mean(axis=(1, 2)))
            raw_base.append(np.abs(self.data.stats.unnormalize(np.broadcast_to(mean_norm, pred.shape)) - true_raw)
                            .mean(axis=(1, 2)))
        return {"heldout_windows": int(len(idx)), "heldout_demos": len(self.val.episodes),
                # per window, for intervals over held-out demos (scripts/compare_vla_pretraining.py)
                "heldout_window_demo": self.val.index[idx, 0].tolist(),
                "heldout_l1_norm_per_window": [round(float(v), 6) for v in np.concatenate(errs)],
                "heldout_l1_norm_baseline_per_window": [round(float(v), 6) for v in np.concatenate(base)],
                "heldout_l1_norm": float(np.concatenate(errs).mean()),
                "heldout_l1_norm_mean_baseline": float(np.concatenate(base).mean()),
                "heldout_l1_raw": float(np.concatenate(raw_errs).mean()),
                "heldout_l1_raw_mean_baseline": float(np.concatenate(raw_base).mean())}

    def policy_meta(self, vla: torch.nn.Module) -> dict[str, Any]:
        cfg = self.cfg
        return {
            "policy_type": "vla", "format_version": FORMAT_VERSION,
            "model": self.model_spec[0], "model_args": self.model_spec[1], "lm_id": str(vla.lm_id),
            "hidden_size": int(vla.hidden_size),
            "stage2": None if self.stage2 is None else {"lora": self.stage2["lora"]},
            "init": cfg.init, "encoder_id": (self.stage2 or {}).get("encoder_id"),
            "lora": dataclasses.asdict(cfg.lora), "chunk": cfg.chunk, "action_dim": ACTION_DIM,
            "proprio_dim": PROPRIO_DIM if cfg.proprio else 0,
            "action_stats": self.data.stats.to_dict(), "proprio_stats": self.data.proprio_stats,
            "image_size": self.image_size, "center_crop": cfg.center_crop, "gripper_convention": "env",
            "cameras": list(cfg.cameras), "execution": execution_name(cfg.execution),
            "demos": cfg.demos, "steps": cfg.steps,
        }

    def export(self, model: torch.nn.Module, out: Path) -> None:
        vla = model.vla
        d = out / POLICY_DIR
        d.mkdir(parents=True, exist_ok=True)
        trainable = {f"lm.{k}": v for k, v in lora_state(vla.lm).items()}
        trainable |= module_state(model.head, "head.") | module_state(vla.projector, "projector.")
        save_tensors(d / "trainable.safetensors", trainable)
        if self.stage2 is not None:
            shutil.copyfile(self.stage2_dir / "lora.safetensors", d / "stage2_lora.safetensors")
        atomic_write_json(d / POLICY_FILE, self.policy_meta(vla))  # last: marks it complete


def load_action_vla(path: str | Path) -> tuple[ActionVLA, dict[str, Any]]:
    """Rebuild the stage-3 model from a policy directory written by `PosttrainMethod.export`."""
    d = Path(path)
    f = d / POLICY_FILE
    if not f.is_file():
        raise FileNotFoundError(f"{d}: no {POLICY_FILE} (not a vla/posttrain.py policy export)")
    meta = read_json_fields(f, ("model", "lm_id", "lora", "chunk", "action_stats", "image_size"),
                            "VLA policy export (JSON)")
    vla = build_base(meta["model"], meta.get("model_args", {}))
    if str(vla.lm_id) != str(meta["lm_id"]):
        raise ValueError(f"{f}: lm_id {meta['lm_id']!r} but model {meta['model']!r} builds {vla.lm_id!r}")
    if meta.get("stage2"):
        apply_stage2(vla, d, {"lora": meta["stage2"]["lora"]}, lora_file="stage2_lora.safetensors")
    add_lora(vla, LoraSpec(**meta["lora"]))
    state = load_tensors(d / "trainable.safetensors")
    src = str(d / "trainable.safetensors")
    load_lora_state(vla.lm, {k[3:]: v for k, v in state.items() if k.startswith("lm.")}, src)
    load_module_state(vla.projector, {k[10:]: v for k, v in state.items() if k.startswith("projector.")}, src)
    head = ActionHead(vla.hidden_size, int(meta["chunk"]), int(meta.get("action_dim", 7)), int(meta.get("proprio_dim", 0)))
    load_module_state(head, {k[5:]: v for k, v in state.items() if k.startswith("head.")}, src)
    model = ActionVLA(vla, head).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    cams, execution = checkpoint_views(meta, str(f))  # an export from before these keys: agentview, open loop
    return model, {**meta, "cameras": list(cams), "execution": execution}


def train(cfg: PosttrainConfig, progress: bool = True) -> Path:
    """Run (or resume) stage 3; returns the run folder (policy export in <out>/policy)."""

    def results(method: PosttrainMethod, wall: float) -> dict[str, Any]:
        return {"init": cfg.init, "train_demos": len(method.data.episodes), "train_windows": len(method.data),
                **method.heldout_l1(method.model)}

    # PosttrainMethod reads + checks demos, stage 2 and the model before anything is written
    return run_stage(cfg, PosttrainMethod, stage=3, kind="posttrain", export=f"{POLICY_DIR}/{POLICY_FILE}",
                     desc="stage 3 actions", progress=progress, results=results)


FLAGS = {
    "--init": ("init", "stage-2 run folder, or none"),
    "--demos": ("demos", "demo hdf5 file(s), folder(s) or LeRobot dataset folder"),
    "--out": ("out", "run folder"),
    "--steps": ("steps", "training steps"),
    "--resume": ("resume", "continue from the newest checkpoint in out"),
}


def summary(run: str | Path, eval_dir: str | Path = "", stage2: str | Path = "", latents: str | Path = "") -> str:
    """One text block over the whole pipeline: stage 1 rows, stage 2 loss, stage 3 held-out L1 (vs
    the mean-action baseline), LIBERO success per task (if `eval_dir` holds results.json)."""

    def load(p: Path) -> dict:
        try:
            return json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            return {}

    lines = ["== VLA pipeline summary =="]
    if latents:
        m = load(Path(latents) / "latents.json")
        lines.append(f"stage 1  latents: {m.get('n')} rows x {m.get('dim')} dims, encoder {m.get('encoder_id')} "
                     f"({m.get('encoder_hash')})")
    if stage2:
        r2 = load(Path(stage2) / "results.json")
        lines.append(f"stage 2  {r2.get('steps')} steps, final {r2.get('loss_kind')} loss {float(r2.get('final_loss') or 0):.4f}, "
                     f"{r2.get('samples_per_s')} samples/s")
    if not (Path(run) / "results.json").is_file():
        raise FileNotFoundError(f"--summary {run}: no results.json (not a finished vla/posttrain.py run)")
    r3 = load(Path(run) / "results.json")
    if r3:
        lines.append(f"stage 3  {r3.get('steps')} steps on {r3.get('train_demos')} demos, final L1 {float(r3.get('final_loss') or 0):.4f}")
        if "heldout_l1_norm" in r3:
            lines.append(f"         held-out action L1 (normalised): {r3['heldout_l1_norm']:.4f} vs mean-action "
                         f"baseline {r3['heldout_l1_norm_mean_baseline']:.4f} ({r3['heldout_demos']} demos)")
    ev = load(Path(eval_dir) / "results.json") if eval_dir else {}
    for t in ev.get("tasks", []):
        lines.append(f"LIBERO   {ev.get('suite')} task {t['task_id']} {t['name']}: {t['successes']}/{t['n']}")
    if ev:
        o = ev["overall"]
        lines.append(f"LIBERO   overall {o['successes']}/{o['n']} = {100 * o['success_rate']:.1f}% "
                     f"(95% CI {100 * o['ci95'][0]:.1f}-{100 * o['ci95'][1]:.1f})")
    lines.append(f"policy   {Path(run) / POLICY_DIR}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--summary":  # --summary RUN [EVAL_DIR [STAGE2_RUN [LATENTS]]]
        print(summary(*argv[1:5]))
        return 0
    cfg = parse_cli(PosttrainConfig, argv, description=__doc__, flags=FLAGS, prog="vla/posttrain.py")
    out = train(cfg)  # bad input (missing demos, a stage-2 run that is not one): one line, exit 2 (run_cli)
    print(f"stage 3 run: {out}\npolicy: {out / POLICY_DIR} "
          f"(python envs/eval_libero.py --policy {out / POLICY_DIR} ...)")
    return 0


if __name__ == "__main__":
    from configs.cli import run_cli

    sys.exit(run_cli(main))
