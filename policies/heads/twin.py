r"""The twin workcell's learned step policy as a policy head ("twin_head"), trained on the one demo dataset
through the shared training loop.

    python policies/heads/twin.py --demos runs/real_robot/teleop_demos --out runs/real_robot/twin_head \
        --steps 6000 --input-noise 0.05
    python real_robot/run_task.py --policy runs/real_robot/twin_head/policy --runs 20 --seed 1000

Inputs per control frame: the twin's proprio (7 joints + measured gripper 0..1; the demo files'
"proprio", `real_robot.robot.PROPRIO_KEYS`), and as the head's *features* the atomic step as a one-hot
over STEP_VERBS plus progress (frames since the step began / 100, capped at 4). No camera: the tape's
+-1.5 cm jitter is inside the 3 cm grasp tolerance, so a blind policy can do this task and its
numbers say nothing about vision (frozen-encoder features are what `policy_head` adds).
Outputs (9,): absolute joint targets (7, normalised by `TargetNorm`; deltas integrate their own
errors), a gripper logit and a "step done" logit. `done()` ends the step for the executor.

Training rows come from `envs.episodes.read_episodes` + `EpisodeDataset` ("proprio" and "action" at
offset 0). `Episode.skills` splits each episode into atomic steps (grasp -> pick, ...); actions give
the targets, and the last `DONE_FRAMES` frames of a step are "done". The network is the heads'
`HeadNetwork` (its input BatchNorm is the input normaliser); the loss is MSE on the joint targets +
BCE on the gripper and done logits; `fit` owns checkpoints, metrics.jsonl and --resume.

Run folder (--out): config.yaml, metrics.jsonl, checkpoints/, policy/ (policy.json + head.safetensors:
a `--policy` directory for real_robot/run_task.py).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from configs.runs import atomic_write_json
from envs.policy_api import POLICIES, Policy, PolicyInputs
from policies.heads.checkpoint import load_head_weights, read_head_meta, save_head
from policies.heads.model import HeadConfig, HeadNetwork

STEP_VERBS = ("open", "pick", "place", "close")
# demo skill label (envs.demos.SKILL_VOCAB, written by ingestion from the teleop markers) -> step verb
LABEL_TO_VERB = {"open": "open", "grasp": "pick", "place": "place", "close": "close"}
# canonical action of the annotation parser (the lexicon real_robot/decompose.py uses) -> step verb
PARSED_TO_VERB = {"open": "open", "close": "close", "pick up": "pick", "take": "pick", "put down": "place"}
DONE_FRAMES = 4  # the last frames of every demo step are labelled "done"
PROGRESS_SCALE, PROGRESS_CAP = 100.0, 4.0  # progress input = min(frames / 100, 4): 400 = the executor's max_frames
N_JOINTS = 7
FEATURE_DIM = len(STEP_VERBS) + 1  # verb one-hot + progress
PROPRIO_DIM = N_JOINTS + 1  # joints + gripper
ACTION_DIM = N_JOINTS + 2  # joint targets + gripper logit + done logit
# The Robot protocol's observation keys for the same 8 numbers (real_robot/robot.py JOINT_KEYS +
# GRIPPER_KEY). Named here because policies/ may not import real_robot/ (sibling layers,
# pyproject's import-linter contract); tests/test_real_robot_teleop.py checks they agree.
TWIN_OBS_KEYS = (*(f"j{i}.pos" for i in range(N_JOINTS)), "gripper.pos")


def step_features(verb: str, progress: int) -> np.ndarray:
    """Step verb + frames since the step began -> (FEATURE_DIM,) float32 [one-hot (4), progress]."""
    if verb not in STEP_VERBS:
        raise ValueError(f"twin_head: no step verb {verb!r} (knows {list(STEP_VERBS)})")
    x = np.zeros(FEATURE_DIM, np.float32)
    x[STEP_VERBS.index(verb)] = 1.0
    x[-1] = min(progress / PROGRESS_SCALE, PROGRESS_CAP)
    return x


def step_verb(instruction: str) -> str:
    """A one-step instruction ("pick up the tape") -> its step verb ("pick"), via the annotation parser."""
    from envs.datasets.annotations import build_parser

    parsed = build_parser().parse(instruction)
    if parsed.n_actions != 1 or parsed.action not in PARSED_TO_VERB:
        raise ValueError(f"twin_head runs one atomic step of {list(STEP_VERBS)}; {instruction!r} parses to "
                         f"{parsed.verbs}")
    return PARSED_TO_VERB[parsed.action]


@dataclasses.dataclass
class TargetNorm:
    """Per-joint standardisation of the absolute joint targets: mean (7,), std (7,)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, q: np.ndarray) -> TargetNorm:
        """q (N, 7) -> the statistics (std floored at 1e-6: a joint the demos never move)."""
        return cls(q.mean(0).astype(np.float32), (q.std(0) + 1e-6).astype(np.float32))

    def apply(self, q: np.ndarray) -> np.ndarray:
        return ((q - self.mean) / self.std).astype(np.float32)

    def invert(self, z: np.ndarray) -> np.ndarray:
        return z * self.std + self.mean

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TargetNorm:
        return cls(np.asarray(d["mean"], np.float32), np.asarray(d["std"], np.float32))


@dataclasses.dataclass
class TwinRows:
    """Training rows: features (N, 5), proprio (N, 8), targets (N, 9) [normalised joints (7), gripper
    0/1, done 0/1]; `norm` the joint-target statistics; `grip_force` (N) the demos' median grip force."""

    features: np.ndarray
    proprio: np.ndarray
    targets: np.ndarray
    norm: TargetNorm
    grip_force: float
    episodes: int

    def __len__(self) -> int:
        return len(self.features)


def build_rows(episodes: list[Any], use_progress: bool = True) -> TwinRows:
    """`envs.episodes.Episode`s with skill labels -> `TwinRows` (frames labelled other than an atomic step
    of STEP_VERBS, e.g. "idle", are left out)."""
    from envs.episodes import EpisodeDataset

    ds = EpisodeDataset(episodes, {"proprio": [0], "action": [0]})
    feats, rows, done = [], [], []
    for e, ep in enumerate(ds.episodes):
        if ep.skills is None:
            raise ValueError(f"{ep.source}: no per-step skill labels (ingest the teleop with step markers)")
        labels = list(ep.skills)
        t = 0
        while t < len(labels):  # one atomic step = a run of equal labels [t, end)
            end = t + 1
            while end < len(labels) and labels[end] == labels[t]:
                end += 1
            verb = LABEL_TO_VERB.get(labels[t])
            for i in range(t, end) if verb else ():
                feats.append(step_features(verb, i - t if use_progress else 0))
                rows.append((e, i))
                done.append(float(end - i <= DONE_FRAMES))
            t = end
    if not rows:
        raise ValueError(f"{episodes[0].file}: no frames labelled with a step of {sorted(LABEL_TO_VERB)}")
    prop = np.stack([ds.window(e, i, "proprio")[0][0] for e, i in rows]).astype(np.float32)
    act = np.stack([ds.window(e, i, "action")[0][0] for e, i in rows]).astype(np.float32)
    if prop.shape[1] != PROPRIO_DIM or act.shape[1] < ACTION_DIM - 1:
        raise ValueError(f"{episodes[0].file}: twin_head needs proprio of {PROPRIO_DIM} dims (7 joints + gripper) "
                         f"and actions [7 joint targets, gripper(, force)], got {prop.shape[1]} and {act.shape[1]}")
    norm = TargetNorm.fit(act[:, :N_JOINTS])
    targets = np.concatenate([norm.apply(act[:, :N_JOINTS]), act[:, N_JOINTS:N_JOINTS + 1],
                              np.asarray(done, np.float32)[:, None]], 1)
    # the grip force is a constant of the skills, not learned: the demos' median, or without a force
    # column the scripted skills' 25 N (real_robot/skills.py GRIP_FORCE)
    force = float(np.median(act[:, N_JOINTS + 1])) if act.shape[1] > N_JOINTS + 1 else 25.0
    return TwinRows(np.stack(feats), prop, targets, norm, force, len(episodes))


class TwinHeadPolicy(Policy):
    """A trained `HeadNetwork` acting on the twin's proprio + the step's verb and progress (module docstring)."""

    # blind: no cameras; the twin's obs is a dict of named joints, not obs["proprio"], so no proprio_dim
    inputs = PolicyInputs(cameras=(), proprio_dim=None)

    def __init__(self, head: HeadNetwork, norm: TargetNorm, grip_force: float, use_progress: bool = True,
                 obs_keys: tuple[str, ...] = TWIN_OBS_KEYS, meta: dict | None = None) -> None:
        self.head = head.eval()
        self.norm, self.grip_force, self.use_progress = norm, float(grip_force), use_progress
        self.obs_keys, self.meta = tuple(obs_keys), meta or {}
        self.reset()

    def reset(self) -> None:
        self._verb: str | None = None
        self._k = 0  # frames since the step began
        self._done = False

    def proprio(self, obs: dict) -> np.ndarray:
        """(8,) float32: the named joints + gripper of a Robot observation."""
        missing = [k for k in self.obs_keys if k not in obs]
        if missing:
            raise KeyError(f"twin_head reads {list(self.obs_keys)}; obs lacks {missing} (has {sorted(obs)[:12]})")
        return np.array([float(obs[k]) for k in self.obs_keys], np.float32)

    def act(self, obs: dict, instruction: str) -> np.ndarray:
        """-> (9,) [7 absolute joint targets (rad), gripper 0/1, grip force (N)]."""
        if self._verb is None:
            self._verb = step_verb(instruction)
        x = step_features(self._verb, self._k if self.use_progress else 0)
        with torch.no_grad():
            y = self.head(torch.from_numpy(x[None]), torch.from_numpy(self.proprio(obs)[None]))[0].numpy()
        self._k += 1
        # the first DONE_FRAMES frames never end a step: a done logit still high from the previous step's
        # end (same proprio) would otherwise stop the new step before it moves
        self._done = bool(y[-1] > 0.0 and self._k > DONE_FRAMES)
        return np.concatenate([self.norm.invert(y[:N_JOINTS]), [float(y[N_JOINTS] > 0.0), self.grip_force]])

    def done(self) -> bool:
        return self._done

    def episode_info(self) -> dict[str, Any]:
        return {"skill": self._verb}

    # -- checkpoints ----------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path, extra: dict | None = None) -> Path:
        meta = {"policy_type": "twin_head", "target_norm": self.norm.to_dict(), "grip_force": self.grip_force,
                "use_progress": self.use_progress, "obs_keys": list(self.obs_keys), **self.meta, **(extra or {})}
        return save_head(self.head, directory, meta)

    @classmethod
    def from_pretrained(cls, path: str | Path, **kwargs: Any) -> TwinHeadPolicy:
        meta, head_cfg = read_head_meta(path, "twin_head", ("target_norm", "grip_force"))
        head = load_head_weights(HeadNetwork(head_cfg), path)
        keep = {k: v for k, v in meta.items() if k not in ("policy_type", "head", "target_norm", "grip_force",
                                                          "use_progress", "obs_keys")}
        return cls(head, TargetNorm.from_dict(meta["target_norm"]), meta["grip_force"],
                   bool(meta.get("use_progress", True)), tuple(meta.get("obs_keys", TWIN_OBS_KEYS)), keep)


if __name__ != "__main__":  # `python policies/heads/twin.py` re-imports this module by name, which registers
    POLICIES.add("twin_head", TwinHeadPolicy)


# -- training -----------------------------------------------------------------------------------------
@dataclasses.dataclass
class TwinTrainConfig:
    demos: str = "runs/real_robot/teleop_demos"  # ingested teleop (real_robot/ingest.py): file, folder or list
    out: str = "runs/real_robot/twin_head"
    steps: int = 6000
    seed: int = 0
    input_noise: float = 0.0  # rad of Gaussian noise on the joint inputs, targets fixed (a DART-like stand-in)
    use_progress: bool = True  # the frames-since-step-start input (use_progress=false drops it: then Pick fails)
    # fit's learning rate is constant (no decay to settle the weights at the end), so the batch is large:
    # with 256 rows the blind replay struck the cabinet (e-stops at Open/Pick) or stopped short at Close
    # on validation seeds; 1024 finished all four steps for 3/3 training seeds (docs/results/real_robot.md)
    batch_size: int = 1024
    lr: float = 1e-3
    weight_decay: float = 1e-4
    hidden: tuple[int, ...] = (256, 256, 256)
    max_demos: int = 0  # per file, 0 = all
    ckpt_every: int = 1000
    keep_checkpoints: int = 1
    log_every: int = 100
    resume: bool = False
    threads: int = 0  # 0 = the cores free to this process (configs/threads.py)
    progress: bool = True

    def validate(self) -> None:
        for name, low in (("steps", 1), ("batch_size", 1), ("max_demos", 0), ("ckpt_every", 1), ("log_every", 1)):
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)}")
        if self.lr <= 0 or self.input_noise < 0:
            raise ValueError(f"lr must be > 0 and input_noise >= 0, got {self.lr}, {self.input_noise}")


class TwinHeadMethod:
    """The `fit` method (configs/training.py): batch `step` = rows drawn from (seed, step), this rank's slice."""

    def __init__(self, cfg: TwinTrainConfig, rows: TwinRows) -> None:
        self.cfg, self.rows = cfg, rows
        torch.manual_seed(cfg.seed)
        self.model = HeadNetwork(HeadConfig(feature_dim=FEATURE_DIM, proprio_dim=PROPRIO_DIM, action_dim=ACTION_DIM,
                                            hidden=tuple(cfg.hidden)))
        self._f, self._p, self._y = (torch.from_numpy(np.ascontiguousarray(a)) for a in
                                     (rows.features, rows.proprio, rows.targets))

    def loss(self, model: HeadNetwork, step: int, device: torch.device, rank: int = 0,
             world: int = 1) -> tuple[torch.Tensor, dict[str, float]]:
        from configs.training import rank_slice

        rng = np.random.default_rng([self.cfg.seed, step])
        idx = rng.integers(0, len(self.rows), size=self.cfg.batch_size)[rank_slice(self.cfg.batch_size, rank, world)]
        p = self._p[idx]
        if self.cfg.input_noise > 0:  # perturb the joints the policy sees, not where it must go: it learns to steer back
            noise = rng.normal(0.0, self.cfg.input_noise, (len(idx), N_JOINTS)).astype(np.float32)
            p = torch.cat([p[:, :N_JOINTS] + torch.from_numpy(noise), p[:, N_JOINTS:]], 1)
        y = self._y[idx].to(device)
        out = model(self._f[idx].to(device), p.to(device)).float()
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        joints = torch.nn.functional.mse_loss(out[:, :N_JOINTS], y[:, :N_JOINTS])
        grip, done = bce(out[:, N_JOINTS], y[:, N_JOINTS]), bce(out[:, N_JOINTS + 1], y[:, N_JOINTS + 1])
        return joints + grip + done, {"joints": float(joints.detach()), "gripper": float(grip.detach()),
                                      "done": float(done.detach())}

    def export(self, model: HeadNetwork, out: Path) -> None:
        pol = TwinHeadPolicy(model, self.rows.norm, self.rows.grip_force, self.cfg.use_progress)
        pol.save_pretrained(Path(out) / "policy", extra={"trained_on": {
            "demos": str(self.cfg.demos), "episodes": self.rows.episodes, "frames": len(self.rows),
            "steps": self.cfg.steps, "input_noise": self.cfg.input_noise, "seed": self.cfg.seed}})


def train(cfg: TwinTrainConfig) -> dict[str, Any]:
    """Read the demos, fit the head, export `out/policy`; returns a summary (also out/results.json)."""
    from configs.loader import save_config
    from configs.threads import apply_threads
    from configs.training import LoopConfig, fit
    from envs.episodes import read_episodes

    cfg.validate()
    apply_threads(cfg.threads)
    out = Path(cfg.out)
    rows = build_rows(read_episodes(cfg.demos, keys=("proprio", "action"), max_demos=cfg.max_demos), cfg.use_progress)
    method = TwinHeadMethod(cfg, rows)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    t0 = time.time()
    fit(method, out, LoopConfig.of(cfg), desc="twin_head", progress=cfg.progress)
    last = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines() if s.strip()][-1]
    summary = {"policy_type": "twin_head", "policy": str(out / "policy"), "demos": str(cfg.demos),
               "episodes": rows.episodes, "frames": len(rows), "steps": cfg.steps, "input_noise": cfg.input_noise,
               "final_loss": last["loss"], "final_terms": {k: last[k] for k in ("joints", "gripper", "done")},
               "wall_s": round(time.time() - t0, 1)}
    atomic_write_json(out / "results.json", summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    from configs.loader import parse_cli

    cfg = parse_cli(TwinTrainConfig, argv, description=__doc__, flags={
        "--demos": ("demos", "ingested teleop demos: hdf5 file, folder or comma list (scripts/ingest_teleop.py)"),
        "--out": ("out", "run folder (the policy lands in OUT/policy)"),
        "--steps": ("steps", "optimisation steps"),
        "--seed": ("seed", "seed (init and batches)"),
        "--input-noise": ("input_noise", "joint-input noise in rad during training, targets fixed"),
        "--resume": ("resume", "continue the run in --out from its last checkpoint"),
    })  # fmt: skip
    s = train(cfg)
    print(json.dumps(s))
    return 0


if __name__ == "__main__":
    # the registered class must live in policies.heads.twin, not __main__
    from policies.heads.twin import main as _main

    sys.exit(_main())
