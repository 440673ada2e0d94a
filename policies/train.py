"""Train a policy head on frozen encoder features + proprio by behaviour cloning, evaluating as it goes.

    python policies/train.py --env kitchen --task micro --encoder invact --demos runs/demos/kitchen
    python policies/train.py --env kitchen --task micro --encoder runs/demo/invact/encoder --demos D out=runs/policy/x
    python policies/train.py --env libero --suite libero_goal --task 0,5,6,7 --encoder roboact_clip --demos D \
        eval="libero_10:7;libero_spatial:4"          # the held-out T5/T6, trained on T1-T4 only
    python policies/train.py ... --resume             # continue a killed run (same out=)

The protocol (R3M's, used by roboact_clip Sec. IV-B): the encoder is frozen (`build_encoder`: any
registered name or exported directory), its features of the current frame window(s) are
concatenated with the robot state, and a BatchNorm + MLP(256, 256) head is trained with MSE on the
demo actions, batch 32, lr 1e-3. Every `eval_every` steps the head is exported and rolled out
`eval_episodes` times per task in the env's evaluator (envs/eval_kitchen.py, envs/eval_libero.py);
results.json reports every evaluation, the *maximum* over them (the protocol's number) and the final one.

Evaluation is on by default (recipes depend on it) and usually takes longer than the training:
`eval_episodes=10` rollouts per task every `eval_every=500` steps and at the end (`--steps 20` on
Kitchen: minutes of rollouts for seconds of training). `eval_episodes=0` trains only (and exports
the policy); a run says at start how many evaluations it will do.

Training runs through the project's loop (configs.training.fit) in segments of `eval_every` steps:
segment k is `fit(steps=k*eval_every, resume=True)`, so checkpoints, metrics.jsonl and --resume are
the loop's own; a finished evaluation (evals/step_N/results.json) is never rerun.

Run folder (out=): config.yaml, metrics.jsonl, checkpoints/, policy/ (the latest export, a
`--policy` directory for both evaluators), evals/step_N/ (evaluator outputs), results.json/.md.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from configs.loader import parse_cli, save_config
from configs.runs import atomic_write_json, atomic_write_text


@dataclasses.dataclass
class TrainHeadConfig:
    env: str = "kitchen"  # kitchen | libero
    task: str = "micro"  # kitchen: all | knob,door,light,micro,slide | ids; libero: ids, e.g. 0,5,6,7
    suite: str = "libero_goal"  # libero only
    eval: str = ""  # where to evaluate: "" = the training tasks; libero: "suite:ids;suite:ids"; kitchen: tasks
    encoder: str = "random"  # registered encoder name or exported encoder directory; "none": proprio only
    demos: str = "runs/demos/kitchen"
    max_demos: int = 25  # demos per task (R3M: 25 for Kitchen)
    out: str = ""  # "" = runs/policy/<env>-<task>-<encoder>-s<seed>
    seed: int = 0
    steps: int = 2000
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    head: str = "mlp"  # mlp (R3M: BatchNorm + MLP(256,256)) | step (temporal head over `history` windows)
    hidden: tuple[int, ...] = (256, 256)
    history: int = 1
    instruction: str = ""  # "" = unconditioned; a text encoder spec ("minilm") conditions the head on the instruction
    condition: str = "concat"  # concat | film: how the instruction embedding enters the head
    chunk: int = 1  # actions predicted per step (OpenVLA-OFT: 8); trained on a[t : t + chunk], edge-padded
    execution: str = "receding"  # receding (execute the chunk, then act again) | ensemble (ACT temporal ensembling)
    ensemble_decay: float = 0.01  # ACT's m
    loss: str = "mse"  # mse (R3M) | l1 (OpenVLA-OFT)
    proprio: bool = True  # False: the head does not see the robot state (ablation)
    feature_proj: int = 0  # > 0: project the encoder features to this many dims first (a bottleneck)
    feature_dropout: float = 0.0  # dropout on the (projected) encoder features while training
    feature_eps: float = 1e-5  # variance floor of the feature BatchNorm before the projection
    norm: str = "batch"  # batch (R3M's BatchNorm over the head input) | standard (fixed demo statistics)
    schedule: str = "constant"  # constant (R3M) | cosine over `steps`
    augment: int = 0  # randomly shifted copies of the demo videos, embedded once and cached (0: none)
    shift_pad: int = 4  # DrQ random shift: up to this many px in each direction
    augment_seed: int = 0  # copy k uses seed augment_seed + k (fixed across training seeds: the cache is shared)
    frames: int = 8  # frames per encoder window
    stride: int = 2  # env steps between window frames
    views: tuple[str, ...] = ("agentview_rgb", "eye_in_hand_rgb")
    eval_every: int = 500  # K: evaluate every K steps (and at the end); 0 = only at the end
    eval_episodes: int = 10  # M rollouts per task per evaluation; 0 = no rollouts
    eval_workers: int = 1
    eval_max_steps: int = 0  # 0 = the benchmark's protocol value
    eval_seed: int = 100  # env seed of the evaluations (demos use other seeds)
    video: bool = False
    ckpt_every: int = 500
    keep_checkpoints: int = 1
    log_every: int = 50
    resume: bool = False
    threads: int = 0
    cache_root: str = ""
    progress: bool = True

    def validate(self) -> None:
        from policies.heads.model import CHOICES, check_choices

        check_choices(self, {"env": ("kitchen", "libero"), "execution": ("receding", "ensemble"),
                             "loss": ("mse", "l1"), "schedule": ("constant", "cosine"), "head": CHOICES["kind"],
                             "norm": CHOICES["norm"], "condition": CHOICES["condition"]})
        for name, low in (("steps", 1), ("batch_size", 1), ("max_demos", 0), ("eval_every", 0), ("eval_episodes", 0),
                          ("history", 1), ("frames", 1), ("stride", 1), ("eval_workers", 1), ("chunk", 1)):
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        self.task_ids()

    def task_ids(self) -> list[int]:
        if self.env == "kitchen":
            from envs.kitchen import parse_kitchen_tasks

            return parse_kitchen_tasks(self.task)
        from envs.evaluator import parse_tasks

        if str(self.task).strip() in ("all", ""):
            raise ValueError("libero: name the training task ids, e.g. task=0,5,6,7")
        return parse_tasks(self.task, 10**6)

    def default_out(self) -> str:
        enc = Path(self.encoder).name if ("/" in self.encoder or Path(self.encoder).is_dir()) else self.encoder
        task = str(self.task).replace(",", "_")
        return f"runs/policy/{self.env}-{task}-{enc}-s{self.seed}"


def build_frozen_encoder(spec: str) -> Any:
    """`build_encoder(spec)`, frozen; any failure is one error naming the encoder."""
    from encoders import build_encoder

    try:
        return build_encoder(spec).freeze()
    except Exception as e:  # noqa: BLE001 - re-raised with the encoder's name
        raise ValueError(f"encoder {spec!r} cannot be built: {type(e).__name__}: {e}") from None


class HeadMethod:
    """The `fit` method: MSE behaviour cloning of the head on cached features (batch from (seed, step))."""

    def __init__(self, cfg: TrainHeadConfig, data: Any, encoder: Any, window: Any, frame_size: int,
                 cameras: list[str] | None = None) -> None:
        import torch

        from policies.heads.model import HeadConfig, HeadNetwork

        self.cfg, self.data, self.encoder, self.window, self.frame_size = cfg, data, encoder, window, frame_size
        self.cameras = list(cameras or [])  # the demos' cameras (Kitchen: ["default", <second view>])
        if data.history != cfg.history:  # the dataset's history window is the one the head is trained on
            raise ValueError(f"the dataset's feature history is {data.history} steps, the head's {cfg.history}: "
                             "build_dataset(..., history=cfg.history)")
        torch.manual_seed(cfg.seed)
        self._t = instruction_embeddings(cfg.instruction, data.instructions) if cfg.instruction else None
        self.head_cfg = HeadConfig(feature_dim=data.features.shape[1], proprio_dim=data.proprio.shape[1],
                                   action_dim=data.actions.shape[-1], hidden=tuple(cfg.hidden), kind=cfg.head,
                                   history=cfg.history, text_dim=0 if self._t is None else int(self._t.shape[1]),
                                   # the blind control (no features) takes a recipe's feature options as moot
                                   condition=cfg.condition, chunk=cfg.chunk,
                                   feature_proj=cfg.feature_proj if data.features.shape[1] else 0,
                                   feature_dropout=cfg.feature_dropout, feature_eps=cfg.feature_eps, norm=cfg.norm,
                                   proprio=cfg.proprio)
        self.model = HeadNetwork(self.head_cfg)
        # (C, N, F): the demos' features and those of each shifted copy (writable copies of the cache)
        self._f = torch.from_numpy(np.stack([np.array(f, dtype=np.float32) for f in (data.features, *data.augmented)]))
        self._p = torch.from_numpy(np.ascontiguousarray(data.proprio))
        self._a = torch.from_numpy(np.ascontiguousarray(data.actions))
        self._ti = None if data.instruction is None else torch.from_numpy(data.instruction)
        if cfg.norm == "standard":  # the head's input statistics over every training row (original copy)
            self.model.fit_input_norm([self._inputs(np.arange(s, min(s + 4096, len(data))), torch.device("cpu"))
                                       for s in range(0, len(data), 4096)])

    def _inputs(self, rows: np.ndarray, device: Any, copy: np.ndarray | None = None) -> tuple[Any, Any, Any]:
        """(features (B, history, F), proprio (B, P), text (B, D) or None) of `rows` (copy 0 = no shift)."""
        import torch

        hist = self.data.history_rows(rows)  # (B, history) rows of the dataset's history window
        c = torch.zeros(len(rows), dtype=torch.long) if copy is None else torch.from_numpy(copy)
        feats = self._f[c[:, None], torch.from_numpy(hist)].to(device)
        text = None if self._t is None else self._t[self._ti[torch.from_numpy(rows)]].to(device)
        return feats, self._p[rows].to(device), text

    def batch_rows(self, step: int, rank: int = 0, world: int = 1) -> np.ndarray:
        from configs.training import rank_slice

        rng = np.random.default_rng([self.cfg.seed, step])
        rows = rng.integers(0, len(self.data), size=self.cfg.batch_size)
        return rows[rank_slice(len(rows), rank, world)]

    def loss(self, model: Any, step: int, device: Any, rank: int = 0, world: int = 1) -> tuple[Any, dict[str, float]]:
        import torch

        rows = self.batch_rows(step, rank, world)
        # each row reads the original or one shifted copy, drawn from (seed, step) like the rows
        copy = np.random.default_rng([self.cfg.seed, step, 1]).integers(0, len(self._f), size=len(rows))
        pred = model(*self._inputs(rows, device, copy))
        target = self._a[rows].to(device)
        # R3M: MSE on the action; OpenVLA-OFT: L1 on the chunk. Both average over chunk steps and dims.
        if self.cfg.loss == "l1":
            return torch.nn.functional.l1_loss(pred, target), {}
        return torch.nn.functional.mse_loss(pred, target), {}

    def export(self, model: Any, out: Path) -> None:
        from policies.heads.policy import EncoderHeadPolicy

        pol = EncoderHeadPolicy(self.encoder, model, self.window, env=self.cfg.env, frame_size=self.frame_size,
                                text_encoder=self.cfg.instruction, execution=self.cfg.execution,
                                ensemble_decay=self.cfg.ensemble_decay)
        pol.save_pretrained(Path(out) / "policy", encoder_spec=self.cfg.encoder,
                            extra={"trained_on": {"env": self.cfg.env, "suite": self.cfg.suite if self.cfg.env == "libero"
                                                  else "kitchen", "tasks": self.cfg.task_ids(),
                                                  "demos": str(self.cfg.demos), "max_demos": self.cfg.max_demos,
                                                  "cameras": self.cameras}})


def check_demo_counts(episodes: list, max_demos: int, where: str) -> None:
    """Every task must have the `max_demos` demos asked for (0: any number): one error naming the task."""
    if max_demos <= 0:
        return
    counts: dict[int, int] = {}
    for e in episodes:
        counts[-1 if e.task_id is None else e.task_id] = counts.get(-1 if e.task_id is None else e.task_id, 0) + 1
    short = {t: n for t, n in counts.items() if n < max_demos}
    if short:
        raise ValueError(f"{where}: max_demos={max_demos} demos per task asked for, but task(s) "
                         + ", ".join(f"{t} have {n}" for t, n in sorted(short.items())))


def instruction_embeddings(spec: str, instructions: tuple[str, ...]) -> Any:
    """(U, D) float32 tensor: the frozen text encoder's embedding of each distinct instruction; an
    empty instruction is one error naming it (nothing to condition on)."""
    from encoders.text import build_text_encoder

    empty = [i for i, t in enumerate(instructions) if not str(t).strip()]
    if empty or not instructions:
        raise ValueError(f"instruction={spec!r}: the demos carry an empty instruction, which text encoder "
                         f"{spec!r} cannot embed (give every demo file a language_instruction, or instruction=\"\")")
    return build_text_encoder(spec).encode(list(instructions)).float()


def eval_targets(cfg: TrainHeadConfig) -> list[tuple[str, str]]:
    """[(suite, tasks)] to evaluate: kitchen -> [("kitchen", "micro")]; libero -> per suite."""
    spec = cfg.eval.strip()
    if cfg.env == "kitchen":
        return [("kitchen", spec or cfg.task)]
    if not spec:
        return [(cfg.suite, cfg.task)]
    out = []
    for part in spec.split(";"):
        suite, sep, tasks = part.strip().partition(":")
        if not sep or not tasks:
            raise ValueError(f"eval: {part!r} is not 'suite:ids' (e.g. libero_10:7;libero_spatial:4)")
        out.append((suite.strip(), tasks.strip()))
    return out


def run_rollouts(cfg: TrainHeadConfig, policy_dir: Path, out: Path, frame_size: int) -> list[dict]:
    """Evaluate the exported policy on every eval target; returns the evaluators' results dicts."""
    res = []
    for suite, tasks in eval_targets(cfg):
        sub = out / suite
        common = dict(policy=str(policy_dir), workers=cfg.eval_workers, seed=cfg.eval_seed, max_steps=cfg.eval_max_steps,
                      video=cfg.video, progress=False, threads=cfg.threads)
        if cfg.env == "kitchen":
            from envs.eval_kitchen import KitchenEvalConfig, evaluate

            res.append(evaluate(KitchenEvalConfig(task=tasks, episodes=cfg.eval_episodes, out=str(sub),
                                                  resolution=frame_size or 96, **common)))
        else:
            from envs.eval_libero import LiberoEvalConfig
            from envs.eval_libero import evaluate as evaluate_libero

            res.append(evaluate_libero(LiberoEvalConfig(suite=suite, tasks=tasks, trials=cfg.eval_episodes, out=str(sub),
                                                        resolution=frame_size or 128, **common)))
    return res


def summarize_evals(evals: list[dict]) -> dict:
    """Per-evaluation rows -> {"evals", "max" (best overall evaluation), "final"}."""
    if not evals:
        return {"evals": [], "max": None, "final": None}
    best = max(evals, key=lambda e: (e["success_rate"], -e["step"]))
    return {"evals": evals, "max": best, "final": evals[-1]}


def results_markdown(cfg: TrainHeadConfig, summary: dict) -> str:
    lines = [f"# policy head: {cfg.env} {cfg.task}, encoder `{cfg.encoder}`", "",
             f"{cfg.head} head, {cfg.steps} steps, batch {cfg.batch_size}, lr {cfg.lr}, {cfg.max_demos} demos/task, "
             f"seed {cfg.seed}; {cfg.eval_episodes} rollouts/task every {cfg.eval_every or cfg.steps} steps", "",
             "| step | success | 95% CI | per task |", "|---:|---:|---|---|"]
    for e in summary["evals"]:
        per = ", ".join(f"{t['name'] or t['task_id']}: {100 * t['success_rate']:.0f}%" for t in e["tasks"])
        lines.append(f"| {e['step']} | {100 * e['success_rate']:.1f}% | [{100 * e['ci95'][0]:.1f}, "
                     f"{100 * e['ci95'][1]:.1f}] | {per} |")
    if summary["max"]:
        lines += ["", f"max over evaluations (protocol): {100 * summary['max']['success_rate']:.1f}% at step "
                      f"{summary['max']['step']}; final: {100 * summary['final']['success_rate']:.1f}%"]
    return "\n".join(lines) + "\n"


def train(cfg: TrainHeadConfig) -> dict:
    """Build data + head, train in eval segments, return the summary (also written to out/results.json)."""
    from configs.threads import apply_threads
    from configs.training import LoopConfig, fit
    from envs.evaluator import parse_tasks  # noqa: F401  (import check of the evaluator core)
    from policies.heads.data import WindowConfig, build_dataset, demo_cameras, read_demos

    cfg.validate()
    apply_threads(cfg.threads)
    out = Path(cfg.out or cfg.default_out())
    cfg.out = str(out)
    window = WindowConfig(frames=cfg.frames, stride=cfg.stride, views=tuple(cfg.views))
    window.validate()
    if cfg.encoder == "none":  # the no-vision control: proprio (+ instruction) only
        encoder, window = None, WindowConfig(frames=cfg.frames, stride=cfg.stride, views=())
    else:
        encoder = build_frozen_encoder(cfg.encoder)
    episodes = read_demos(cfg.demos, cfg.env, window.views, cfg.task_ids(), suite=cfg.suite, max_demos=cfg.max_demos)
    check_demo_counts(episodes, cfg.max_demos, cfg.demos)
    data = build_dataset(encoder, episodes, window, cfg.max_demos, history=cfg.history,
                         cache_root=cfg.cache_root or None, chunk=cfg.chunk, augment=cfg.augment,
                         shift_pad=cfg.shift_pad, augment_seed=cfg.augment_seed)
    # the demos' frames: resize rollout frames to it
    frame_size = int(episodes[0].data[window.views[0]].shape[1]) if window.views else 0
    method = HeadMethod(cfg, data, encoder, window, frame_size, cameras=demo_cameras(episodes))
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    K = cfg.eval_every or cfg.steps
    ends = sorted({*range(K, cfg.steps, K), cfg.steps})
    evals: list[dict] = []
    t0 = time.time()
    for i, end in enumerate(ends):
        edir = out / "evals" / f"step_{end:06d}"
        done = edir / "summary.json"
        if done.is_file() and cfg.resume:
            evals.append(json.loads(done.read_text()))
            continue
        loop = LoopConfig(steps=end, lr=cfg.lr, weight_decay=cfg.weight_decay, ckpt_every=cfg.ckpt_every,
                          schedule=cfg.schedule, schedule_steps=cfg.steps,
                          keep_checkpoints=cfg.keep_checkpoints, log_every=cfg.log_every, resume=cfg.resume or i > 0)
        fit(method, out, loop, desc=f"head {cfg.encoder}", progress=cfg.progress, threads=cfg.threads)
        if cfg.eval_episodes > 0:
            res = run_rollouts(cfg, out / "policy", edir, frame_size)
            n = sum(r["overall"]["n"] for r in res)
            s = sum(r["overall"]["successes"] for r in res)
            from envs.protocol import wilson_interval

            row = {"step": end, "n": n, "successes": s, "success_rate": s / n if n else 0.0,
                   "ci95": list(wilson_interval(s, n)),
                   "tasks": [{**t, "suite": r["suite"]} for r in res for t in r["tasks"]]}
            atomic_write_json(done, row)
            evals.append(row)
            print(f"step {end}: {s}/{n} = {100 * row['success_rate']:.1f}%", flush=True)
    summary = {"config": dataclasses.asdict(cfg), "features_from_cache": data.from_cache,
               "feature_cache": str(data.cache_dir), "train_rows": len(data), "wall_s": round(time.time() - t0, 1),
               **summarize_evals(evals)}
    atomic_write_json(out / "results.json", summary)
    atomic_write_text(out / "results.md", results_markdown(cfg, summary))
    return summary


def success_video(out: Path, step: int) -> Path | None:
    """The video of the first successful episode of evaluation `step` (episode records name it)."""
    for rec in sorted((out / "evals" / f"step_{step:06d}").rglob("trial*.json")):
        r = json.loads(rec.read_text())
        if r.get("success") and r.get("video"):
            base = rec.parents[3] if (rec.parents[3] / r["video"]).is_file() else rec.parent
            cand = base / r["video"]
            return cand if cand.is_file() else rec.with_suffix(".mp4")
    return None


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_cli(
        TrainHeadConfig,
        argv,
        # the first line, and the paragraph on the default evaluation rollouts (they cost the time)
        description="\n\n".join(p for p in __doc__.split("\n\n") if p.startswith(("Train a", "Evaluation is"))),
        flags={
            "--env": ("env", "kitchen | libero"),
            "--task": ("task", "kitchen: all|knob,door,light,micro,slide; libero: task ids"),
            "--suite": ("suite", "LIBERO suite of the training tasks"),
            "--encoder": ("encoder", "registered encoder name or exported encoder dir"),
            "--demos": ("demos", "demo folder (scripts/make_kitchen_demos.py / make_libero_demos.py)"),
            "--steps": ("steps", "optimisation steps"),
            "--out": ("out", "run folder"),
            "--seed": ("seed", "seed"),
            "--resume": ("resume", "continue the run in out="),
        },
    )
    if cfg.eval_episodes > 0:  # the rollouts usually take longer than the training: say so up front
        K = cfg.eval_every or cfg.steps
        n = len({*range(K, cfg.steps, K), cfg.steps})
        where = "; ".join(f"{suite} tasks {tasks}" for suite, tasks in eval_targets(cfg))
        print(f"evaluating {cfg.eval_episodes} episodes per task every {K} steps ({n} evaluation(s); {where}); "
              "eval_episodes=0 to skip", flush=True)
    s = train(cfg)
    if s["max"]:
        lo, hi = s["final"]["ci95"]
        print(f"success {s['final']['successes']}/{s['final']['n']} = {100 * s['final']['success_rate']:.1f}% "
              f"(95% Wilson interval {100 * lo:.1f}-{100 * hi:.1f}%) at step {s['final']['step']}; "
              f"max over evaluations {100 * s['max']['success_rate']:.1f}% (step {s['max']['step']}) -> {cfg.out}")
        video = success_video(Path(cfg.out), s["final"]["step"])
        print(f"a successful rollout: {video}" if video else "no successful rollout with a video")
    else:
        print(f"trained {cfg.steps} steps -> {cfg.out}/policy")
    return s


if __name__ == "__main__":
    import sys

    from configs.cli import run_cli
    from policies.train import main as _main  # eval workers unpickle policies.train names, not __main__

    sys.exit(run_cli(_main))  # bad input (e.g. an unknown encoder): one line `error: ...`, exit status 2
