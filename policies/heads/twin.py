r"""The twin workcell's learned step policy as a policy head ("twin_head"), trained on the one demo dataset
through the shared training loop.

    python policies/heads/twin.py --demos runs/real_robot/teleop_demos --out runs/real_robot/twin_head \
        --steps 6000 --input-noise 0.05
    python real_robot/run_task.py --policy runs/real_robot/twin_head/policy --runs 20 --seed 1000

    python policies/heads/twin.py --demos runs/real_robot/teleop_demos --out runs/real_robot/twin_vis_invact \
        --steps 6000 --input-noise 0.05 --encoder runs/demo/invact/encoder frames=8 stride=2 threads=1
    python policies/heads/twin.py ... --encoder backbone_mean frames=1          # single-frame window

Inputs per control frame: the twin's proprio (7 joints + measured gripper 0..1; the demo files'
"proprio", `real_robot.robot.PROPRIO_KEYS`; demos of another arm give J joints, and the head's sizes
follow them: proprio J + 1, outputs J + 2, obs keys j0.pos..j{J-1}.pos + gripper.pos), and as the head's *features* the atomic step as a one-hot
over STEP_VERBS plus progress (frames since the step began / 100, capped at 4). No camera: the tape's
+-1.5 cm jitter is inside the 3 cm grasp tolerance, so a blind policy can do this task and its
numbers say nothing about vision.

With `encoder` (a registered name or an exported encoder directory, `policies.train.build_frozen_encoder`),
the head also sees the frozen encoder's features of the twin's cameras (`views`, twin names "front" /
"wrist", stored in the demo files as agentview_rgb / eye_in_hand_rgb): per view, the window of `frames`
frames at `stride` control periods ending at the current frame. Training features come from
`policies.heads.data.build_dataset` (the heads' streaming path `episode_features` over each demo, and
their feature cache), features online from `encoders.streaming.EncoderStream`, one push per control
frame over the whole run (the stream restarts at `seed_episode`, i.e. per run, not per step: a step's
first windows hold the previous step's last frames as in the demos; the executor's settle frames
between steps are not pushed). Then the head input is [feature_proj(encoder features (V * D)),
proprio (8) + step one-hot + progress (5)]: the encoder features go through the heads' BatchNorm
(`feature_eps`) + linear bottleneck (`feature_proj`), the rest is not projected.
Outputs (9,): absolute joint targets (7, normalised by `TargetNorm`; deltas integrate their own
errors), a gripper logit and a "step done" logit. `done()` ends the step for the executor.

Training rows come from `envs.episodes.read_episodes` + `EpisodeDataset` ("proprio" and "action" at
offset 0). `Episode.skills` splits each episode into atomic steps (grasp -> pick, ...); actions give
the targets, and the last `DONE_FRAMES` frames of a step are "done". The network is the heads'
`HeadNetwork` (its input BatchNorm is the input normaliser; with an encoder, `feature_proj` first); the loss is MSE on the joint targets +
BCE on the gripper and done logits; `fit` owns checkpoints, metrics.jsonl and --resume.

Run folder (--out): config.yaml, metrics.jsonl, checkpoints/, policy/ (policy.json + head.safetensors
(+ encoder/, the frozen encoder): a `--policy` directory for real_robot/run_task.py).
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
N_JOINTS = 7  # the twin's arm; a head trained on other demos takes its joint count J from them
FEATURE_DIM = len(STEP_VERBS) + 1  # verb one-hot + progress
# The Robot protocol's observation keys for the same 8 numbers (real_robot/robot.py JOINT_KEYS +
# GRIPPER_KEY). Named here because policies/ may not import real_robot/ (sibling layers,
# pyproject's import-linter contract); tests/test_real_robot_teleop.py checks they agree.
TWIN_OBS_KEYS = (*(f"j{i}.pos" for i in range(N_JOINTS)), "gripper.pos")
# the twin's camera names -> the demo files' image keys (real_robot/ingest.py and envs/episodes.py read
# cam_front / observation.images.front as agentview_rgb, wrist as eye_in_hand_rgb)
TWIN_VIEW_KEYS = {"front": "agentview_rgb", "wrist": "eye_in_hand_rgb"}


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
    """Training rows: features (N, 5), proprio (N, J + 1), targets (N, J + 2) [normalised joints (J), gripper
    0/1, done 0/1], J the demos' joint count (7 on the twin); `norm` the joint-target statistics; `grip_force` (N) the demos' median grip force;
    `encoded` (N, V * D) the camera features of each row's frame ((N, 0) without an encoder)."""

    features: np.ndarray
    proprio: np.ndarray
    targets: np.ndarray
    norm: TargetNorm
    grip_force: float
    episodes: int
    encoded: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.features)

    @property
    def n_joints(self) -> int:
        return int(self.norm.mean.shape[0])


def build_rows(episodes: list[Any], use_progress: bool = True, encoded: np.ndarray | None = None) -> TwinRows:
    """`envs.episodes.Episode`s with skill labels -> `TwinRows` (frames labelled other than an atomic step
    of STEP_VERBS, e.g. "idle", are left out). `encoded` (sum of episode lengths, F): camera features of
    every frame, episode after episode (`policies.heads.data.build_dataset` row order)."""
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
    nj = prop.shape[1] - 1  # the sizes come from the demos: proprio = J joints + gripper
    if nj < 1 or act.shape[1] not in (nj + 1, nj + 2):
        raise ValueError(f"{episodes[0].file}: twin_head needs proprio (J joints + gripper) and actions (J joint "
                         f"targets, gripper(, force)); got proprio {prop.shape[1]} dims, so J={nj} and actions of "
                         f"{nj + 1} or {nj + 2} dims, but actions have {act.shape[1]}")
    enc = None
    if encoded is not None:
        lens = [len(ep) for ep in ds.episodes]
        if len(encoded) != sum(lens):
            raise ValueError(f"twin_head: {len(encoded)} feature rows for {sum(lens)} demo frames")
        first = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
        enc = np.asarray(encoded[[first[e] + i for e, i in rows]], np.float32)
    norm = TargetNorm.fit(act[:, :nj])
    targets = np.concatenate([norm.apply(act[:, :nj]), act[:, nj:nj + 1],
                              np.asarray(done, np.float32)[:, None]], 1)
    # the grip force is a constant of the skills, not learned: the demos' median, or without a force
    # column the scripted skills' 25 N (real_robot/skills.py GRIP_FORCE)
    force = float(np.median(act[:, nj + 1])) if act.shape[1] > nj + 1 else 25.0
    return TwinRows(np.stack(feats), prop, targets, norm, force, len(episodes), enc)


class TwinHeadPolicy(Policy):
    """A trained `HeadNetwork` acting on the twin's proprio + the step's verb and progress, and with an
    `encoder` on its features of the `views` cameras (module docstring)."""

    def __init__(self, head: HeadNetwork, norm: TargetNorm, grip_force: float, use_progress: bool = True,
                 obs_keys: tuple[str, ...] | None = None, meta: dict | None = None, encoder: Any = None,
                 views: tuple[str, ...] = (), frames: int = 1, stride: int = 1, frame_size: int = 0) -> None:
        self.head = head.eval()
        self.norm, self.grip_force, self.use_progress = norm, float(grip_force), use_progress
        self.n_joints = int(norm.mean.shape[0])  # J, from the demos the head was trained on (7 on the twin)
        if obs_keys is None:  # the Robot protocol's names: the twin's, or j0..j{J-1} + gripper for another arm
            obs_keys = TWIN_OBS_KEYS if self.n_joints == N_JOINTS else (
                *(f"j{i}.pos" for i in range(self.n_joints)), "gripper.pos")
        if len(obs_keys) != self.n_joints + 1:
            raise ValueError(f"twin_head: {len(obs_keys)} obs keys {list(obs_keys)} for {self.n_joints} joints + gripper")
        self.obs_keys, self.meta = tuple(obs_keys), meta or {}
        self.encoder = encoder.freeze() if hasattr(encoder, "freeze") else encoder
        self.views, self.frames, self.stride, self.frame_size = tuple(views), int(frames), int(stride), int(frame_size)
        if (self.encoder is None) != (not self.views):
            raise ValueError(f"twin_head: an encoder needs camera views and views need an encoder (views "
                             f"{list(self.views)}, encoder {'none' if self.encoder is None else 'given'})")
        # blind: no cameras; the twin's obs is a dict of named joints, not obs["proprio"], so no proprio_dim
        self.inputs = PolicyInputs(cameras=self.views, proprio_dim=None)
        self.stream = None
        if self.encoder is not None:
            from encoders.streaming import EncoderStream

            self.stream = EncoderStream(self.encoder, self.frames, self.stride, len(self.views))
        self.reset()

    def seed_episode(self, seed: int) -> None:
        """A new run: the camera windows start again (they span the run's steps, see the module docstring)."""
        if self.stream is not None:
            self.stream.reset()

    def reset(self) -> None:
        self._verb: str | None = None
        self._k = 0  # frames since the step began
        self._done = False

    def proprio(self, obs: dict) -> np.ndarray:
        """(J + 1,) float32: the named joints + gripper of a Robot observation."""
        missing = [k for k in self.obs_keys if k not in obs]
        if missing:
            raise KeyError(f"twin_head reads {list(self.obs_keys)}; obs lacks {missing} (has {sorted(obs)[:12]})")
        return np.array([float(obs[k]) for k in self.obs_keys], np.float32)

    def camera_features(self, obs: dict) -> np.ndarray:
        """Push this frame of every view into the stream -> (V * D,) float32 features of the windows ending here."""
        from policies.heads.policy import demo_frame

        assert self.stream is not None
        missing = [v for v in self.views if v not in obs]
        if missing:
            raise KeyError(f"twin_head needs camera(s) {missing} in the observation (render them: the robot's "
                           f"cameras=[{','.join(self.views)}]); got {sorted(k for k in obs if '.' not in k)}")
        imgs = [demo_frame(obs[v], self.frame_size, f"twin_head: obs[{v!r}]") for v in self.views]
        return self.stream.push(imgs).reshape(-1).astype(np.float32, copy=False)

    def act(self, obs: dict, instruction: str) -> np.ndarray:
        """-> (J + 2,) [J absolute joint targets (rad), gripper 0/1, grip force (N)]; J = 7 on the twin."""
        if self._verb is None:
            self._verb = step_verb(instruction)
        x = step_features(self._verb, self._k if self.use_progress else 0)
        p = self.proprio(obs)
        if self.stream is not None:  # [encoder features], [proprio, step]
            x, p = self.camera_features(obs), np.concatenate([p, x])
        with torch.no_grad():
            y = self.head(torch.from_numpy(x[None]), torch.from_numpy(p[None]))[0].numpy()
        self._k += 1
        # the first DONE_FRAMES frames never end a step: a done logit still high from the previous step's
        # end (same proprio) would otherwise stop the new step before it moves
        self._done = bool(y[-1] > 0.0 and self._k > DONE_FRAMES)
        nj = self.n_joints
        return np.concatenate([self.norm.invert(y[:nj]), [float(y[nj] > 0.0), self.grip_force]])

    def done(self) -> bool:
        return self._done

    def episode_info(self) -> dict[str, Any]:
        return {"skill": self._verb}

    # -- checkpoints ----------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path, extra: dict | None = None) -> Path:
        meta = {"policy_type": "twin_head", "target_norm": self.norm.to_dict(), "grip_force": self.grip_force,
                "use_progress": self.use_progress, "obs_keys": list(self.obs_keys), **self.meta, **(extra or {})}
        if self.encoder is not None:
            self.encoder.save_pretrained(Path(directory) / "encoder")
            meta.update(encoder="encoder", views=list(self.views), frames=self.frames, stride=self.stride,
                        frame_size=self.frame_size)
        return save_head(self.head, directory, meta)

    @classmethod
    def from_pretrained(cls, path: str | Path, **kwargs: Any) -> TwinHeadPolicy:
        meta, head_cfg = read_head_meta(path, "twin_head", ("target_norm", "grip_force"))
        d = Path(path)
        encoder, views = None, tuple(meta.get("views", ()))
        if meta.get("encoder"):
            from encoders import build_encoder

            encoder = build_encoder(str(d / meta["encoder"]))
            got = int(getattr(encoder, "dim", 0)) * len(views)
            if got != head_cfg.feature_dim:
                raise ValueError(f"{d}: the encoder gives {len(views)} x {getattr(encoder, 'dim', '?')} = {got} "
                                 f"feature dims, the head in {d / 'policy.json'} was trained on {head_cfg.feature_dim}")
        head = load_head_weights(HeadNetwork(head_cfg), path)
        own = ("policy_type", "head", "target_norm", "grip_force", "use_progress", "obs_keys", "encoder", "views",
               "frames", "stride", "frame_size")
        keep = {k: v for k, v in meta.items() if k not in own}
        return cls(head, TargetNorm.from_dict(meta["target_norm"]), meta["grip_force"],
                   bool(meta.get("use_progress", True)), tuple(meta["obs_keys"]) if meta.get("obs_keys") else None, keep,
                   encoder=encoder, views=views, frames=int(meta.get("frames", 1)), stride=int(meta.get("stride", 1)),
                   frame_size=int(meta.get("frame_size", 0)))


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
    # camera features (module docstring): "none" = the blind head (proprio + step only); else a registered
    # encoder name (backbone_mean, random, ...) or an exported encoder directory (runs/demo/invact/encoder)
    encoder: str = "none"
    views: tuple[str, ...] = ("front", "wrist")  # twin cameras the encoder sees (with an encoder)
    frames: int = 8  # frames per camera window (1 for single-frame encoders such as backbone_mean)
    stride: int = 2  # control periods between window frames
    # The encoder features are squeezed hard. With feature_proj 64 and no dropout / noise, the invact head
    # fitted the demos 30x better than the blind one (loss 0.004) and failed Open on 19/20 held-out
    # seeds: the clean features tell it the arm's pose, so the joint-input noise no longer teaches it to
    # steer back. 16 + dropout 0.5 (+ noise 0.5) failed Pick on 4/4 (2/4) validation seeds 2000-2003;
    # these defaults did 4/4 (docs/results/real_robot.md).
    feature_proj: int = 8  # bottleneck of the encoder features (on LIBERO 1280-d features unprojected failed)
    feature_eps: float = 0.1  # BatchNorm variance floor of the encoder features before the bottleneck
    feature_dropout: float = 0.5  # dropout on the projected encoder features while training
    # Gaussian noise on the encoder features while training, in units of each dim's std over the demos: the
    # joint-input noise teaches the head to steer back only if the (clean) features cannot tell it the pose
    feature_noise: float = 1.0
    cache_root: str = ""  # feature cache root ("" = the project's default, encoders.features.default_cache_root)
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
        if self.lr <= 0 or self.input_noise < 0 or self.feature_noise < 0:
            raise ValueError(f"lr must be > 0 and input_noise >= 0, got {self.lr}, {self.input_noise}")
        if self.encoder != "none":
            bad = [v for v in self.views if v not in TWIN_VIEW_KEYS]
            if not self.views or bad or len(set(self.views)) != len(self.views):
                raise ValueError(f"views must be distinct twin cameras of {list(TWIN_VIEW_KEYS)}, got {list(self.views)}")
            if self.frames < 1 or self.stride < 1 or self.feature_proj < 0 or self.feature_eps <= 0:
                raise ValueError(f"bad window / projection: frames={self.frames}, stride={self.stride}, "
                                 f"feature_proj={self.feature_proj}, feature_eps={self.feature_eps}")

    @property
    def demo_views(self) -> tuple[str, ...]:
        """The demo files' image keys of `views` (none for the blind head)."""
        return tuple(TWIN_VIEW_KEYS[v] for v in self.views) if self.encoder != "none" else ()


class TwinHeadMethod:
    """The `fit` method (configs/training.py): batch `step` = rows drawn from (seed, step), this rank's slice."""

    def __init__(self, cfg: TwinTrainConfig, rows: TwinRows, encoder: Any = None, frame_size: int = 0) -> None:
        self.cfg, self.rows, self.encoder, self.frame_size = cfg, rows, encoder, frame_size
        torch.manual_seed(cfg.seed)
        n_out = rows.n_joints + 2  # sizes from the demos: J joint targets + gripper logit + done logit
        if rows.encoded is None:  # blind: features = the step (5), proprio (J + 1)
            feats, prop = rows.features, rows.proprio
            head_cfg = HeadConfig(feature_dim=FEATURE_DIM, proprio_dim=prop.shape[1], action_dim=n_out,
                                  hidden=tuple(cfg.hidden))
        else:  # features = the cameras' (V * D, projected), proprio = [proprio (J + 1), step (5)] (not projected)
            feats, prop = rows.encoded, np.concatenate([rows.proprio, rows.features], 1)
            head_cfg = HeadConfig(feature_dim=feats.shape[1], proprio_dim=prop.shape[1], action_dim=n_out,
                                  hidden=tuple(cfg.hidden), feature_proj=cfg.feature_proj, feature_eps=cfg.feature_eps,
                                  feature_dropout=cfg.feature_dropout)
        self.model = HeadNetwork(head_cfg)
        self._fstd = torch.from_numpy(feats.std(0).astype(np.float32)) if rows.encoded is not None else None
        self._f, self._p, self._y = (torch.from_numpy(np.ascontiguousarray(a)) for a in (feats, prop, rows.targets))

    def loss(self, model: HeadNetwork, step: int, device: torch.device, rank: int = 0,
             world: int = 1) -> tuple[torch.Tensor, dict[str, float]]:
        from configs.training import rank_slice

        rng = np.random.default_rng([self.cfg.seed, step])
        idx = rng.integers(0, len(self.rows), size=self.cfg.batch_size)[rank_slice(self.cfg.batch_size, rank, world)]
        p, nj = self._p[idx], self.rows.n_joints
        if self.cfg.input_noise > 0:  # perturb the joints the policy sees, not where it must go: it learns to steer back
            noise = rng.normal(0.0, self.cfg.input_noise, (len(idx), nj)).astype(np.float32)
            p = torch.cat([p[:, :nj] + torch.from_numpy(noise), p[:, nj:]], 1)
        y = self._y[idx].to(device)
        f = self._f[idx]
        if self.cfg.feature_noise > 0 and self._fstd is not None:
            eps = rng.normal(0.0, self.cfg.feature_noise, f.shape).astype(np.float32)
            f = f + torch.from_numpy(eps) * self._fstd
        out = model(f.to(device), p.to(device)).float()
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        joints = torch.nn.functional.mse_loss(out[:, :nj], y[:, :nj])
        grip, done = bce(out[:, nj], y[:, nj]), bce(out[:, nj + 1], y[:, nj + 1])
        return joints + grip + done, {"joints": float(joints.detach()), "gripper": float(grip.detach()),
                                      "done": float(done.detach())}

    def export(self, model: HeadNetwork, out: Path) -> None:
        cam = {} if self.encoder is None else {"encoder": self.encoder, "views": tuple(self.cfg.views),
                                               "frames": self.cfg.frames, "stride": self.cfg.stride,
                                               "frame_size": self.frame_size}
        pol = TwinHeadPolicy(model, self.rows.norm, self.rows.grip_force, self.cfg.use_progress, **cam)
        trained = {"demos": str(self.cfg.demos), "episodes": self.rows.episodes, "frames": len(self.rows),
                   "steps": self.cfg.steps, "input_noise": self.cfg.input_noise, "seed": self.cfg.seed}
        if self.encoder is not None:
            trained["encoder_spec"] = self.cfg.encoder
        pol.save_pretrained(Path(out) / "policy", extra={"trained_on": trained})


def camera_features(cfg: TwinTrainConfig, episodes: list[Any]) -> tuple[Any, np.ndarray, int]:
    """(frozen encoder, (sum of episode lengths, V * D) float32 features of every demo frame, the demos'
    frame size) through the heads' cached streaming path (`policies.heads.data.build_dataset`). A demo
    without one of the views, or views of unequal square sizes: one error line, before any encoding."""
    from encoders import build_encoder
    from policies.heads.data import WindowConfig, build_dataset

    sizes = set()
    for ep in episodes:
        for v, key in zip(cfg.views, cfg.demo_views):
            if key not in ep.data:
                raise ValueError(f"twin_head: {ep.source} has no {v!r} camera (demo key {key!r}; it has "
                                 f"{sorted(k for k in ep.data if k.endswith('_rgb'))}): record it with "
                                 f"scripts/teleop.py --cameras {','.join(cfg.views)}, or set views")
            sizes.add(tuple(ep.data[key].shape[1:3]))
    if len(sizes) != 1 or len({*next(iter(sizes))}) != 1:
        raise ValueError(f"twin_head: demo frames must share one square size, got {sorted(sizes)}")
    try:  # as policies.train.build_frozen_encoder (which policies.heads may not import: policies.train imports it)
        encoder = build_encoder(cfg.encoder).freeze()
    except Exception as e:  # noqa: BLE001 - re-raised with the encoder's name
        raise ValueError(f"encoder {cfg.encoder!r} cannot be built: {type(e).__name__}: {e}") from None
    data = build_dataset(encoder, episodes, WindowConfig(cfg.frames, cfg.stride, cfg.demo_views),
                         max_demos=cfg.max_demos, cache_root=cfg.cache_root or None)
    return encoder, data.features, int(next(iter(sizes))[0])


def train(cfg: TwinTrainConfig) -> dict[str, Any]:
    """Read the demos, fit the head, export `out/policy`; returns a summary (also out/results.json)."""
    from configs.loader import save_config
    from configs.threads import apply_threads
    from configs.training import LoopConfig, fit
    from envs.episodes import read_episodes

    cfg.validate()
    apply_threads(cfg.threads)
    out = Path(cfg.out)
    views = cfg.demo_views
    episodes = read_episodes(cfg.demos, keys=(*views, "proprio", "action"), max_demos=cfg.max_demos)
    encoder, encoded, frame_size = None, None, 0
    if views:
        encoder, encoded, frame_size = camera_features(cfg, episodes)
    rows = build_rows(episodes, cfg.use_progress, encoded)
    method = TwinHeadMethod(cfg, rows, encoder, frame_size)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    t0 = time.time()
    fit(method, out, LoopConfig.of(cfg), desc="twin_head", progress=cfg.progress)
    last = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines() if s.strip()][-1]
    summary = {"policy_type": "twin_head", "policy": str(out / "policy"), "demos": str(cfg.demos),
               "encoder": cfg.encoder, "views": list(cfg.views) if views else [],
               "feature_dim": 0 if encoded is None else int(encoded.shape[1]),
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
        "--encoder": ("encoder", "frozen encoder on the cameras: none (blind), a registered name or an export dir"),
        "--resume": ("resume", "continue the run in --out from its last checkpoint"),
    })  # fmt: skip
    s = train(cfg)
    print(json.dumps(s))
    return 0


if __name__ == "__main__":
    # the registered class must live in policies.heads.twin, not __main__
    from configs.cli import run_cli
    from policies.heads.twin import main as _main

    sys.exit(run_cli(_main))  # bad input (missing demos, bad key): one line, status 2
