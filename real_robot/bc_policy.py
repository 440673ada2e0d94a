"""A small step-conditioned behaviour-cloning policy trained on ingested teleop demos (twin workcell).

    python real_robot/bc_policy.py --demos runs/real_robot/teleop_demos/demos.hdf5 --out runs/real_robot/bc \
        --steps 6000 --input-noise 0.03
    python real_robot/run_task.py --policy runs/real_robot/bc --runs 20

Input per frame: proprio (7 joints + measured gripper), the atomic step as a one-hot over STEP_VERBS,
and progress (frames since the step began / 100). No camera input yet: frozen-encoder features are
the next step (the policy-head issue); the tape's +-1.5 cm jitter is within the grasp tolerance, so a
blind policy can do this task and the numbers say nothing about vision. Output: absolute joint targets (7, normalised), gripper logit, done logit;
`done` ends the step for the executor. Training targets come from the demo file: the per-step skill
labels split an episode into atomic steps (grasp -> pick), actions give the targets, and the last
`DONE_FRAMES` frames of every step are "done".

This is the stand-in for the policy heads of the policy-head issue: it is trained from the teleop
demos alone and is honest about its inputs (no privileged scene state).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from envs.policy_api import POLICIES, POLICY_FILE, Policy

STEP_VERBS = ("open", "pick", "place", "close")
LABEL_TO_VERB = {"open": "open", "grasp": "pick", "place": "place", "close": "close"}
DONE_FRAMES = 4


def features(joints: np.ndarray, gripper: float, verb: str, progress: int) -> np.ndarray:
    """(7,) joints, gripper 0..1, step verb, frames since the step began -> (13,) float32."""
    one = np.zeros(len(STEP_VERBS), np.float32)
    one[STEP_VERBS.index(verb)] = 1.0
    return np.concatenate([joints, [gripper], one, [min(progress / 100.0, 4.0)]]).astype(np.float32)


def dataset(demo_file: str | Path, use_progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Demo hdf5 -> X (N, 13), Y (N, 9) [joint targets (7), gripper (1), done (1)]."""
    from envs.demos import DemoReader

    X, Y = [], []
    with DemoReader(demo_file) as r:
        for d in r:
            if d.skills is None:
                raise ValueError(f"{demo_file}: demos need per-step skill labels (ingest with markers)")
            js, g = d.obs["joint_states"], d.obs["gripper_states"].reshape(len(d), -1)[:, 0]
            seg_start, prev = 0, None
            for i, lab in enumerate(d.skills):
                if lab != prev:
                    seg_start, prev = i, lab
                if lab not in LABEL_TO_VERB:
                    continue
                end = i + 1
                while end < len(d) and d.skills[end] == lab:
                    end += 1
                X.append(features(js[i], g[i], LABEL_TO_VERB[lab], i - seg_start if use_progress else 0))
                a = d.actions[i]
                Y.append(np.concatenate([a[:7], [a[7]], [float(end - i <= DONE_FRAMES)]]))
    return np.stack(X), np.stack(Y).astype(np.float32)


def _mlp(d_in: int, hidden: int = 256) -> Any:
    import torch.nn as nn

    return nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                         nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 9))


def train(demo_file: str | Path, out: str | Path, steps: int = 3000, seed: int = 0, lr: float = 1e-3,
          input_noise: float = 0.0, use_progress: bool = True) -> dict:
    """Fit the MLP; `input_noise` (rad) perturbs the proprio inputs while the targets stay, so the
    policy learns to steer back toward the demonstrated path (a cheap stand-in for DART / DAgger)."""
    import torch

    from configs.runs import atomic_write_json, seed_everything

    seed_everything(seed)
    X, Y = dataset(demo_file, use_progress)
    mu, sd = X.mean(0), X.std(0) + 1e-6
    # absolute joint targets (normalised), not deltas: a delta policy integrates its own errors
    y_mu, y_sd = Y[:, :7].mean(0), Y[:, :7].std(0) + 1e-6
    Y = Y.copy()
    Y[:, :7] = (Y[:, :7] - y_mu) / y_sd
    net = _mlp(X.shape[1])
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    xt, yt = torch.from_numpy((X - mu) / sd), torch.from_numpy(Y)
    bce = torch.nn.BCEWithLogitsLoss()
    loss_v = 0.0
    for it in range(steps):
        idx = torch.randint(0, len(xt), (256,))
        x = xt[idx]
        if input_noise > 0:
            x = x.clone()
            x[:, :7] += torch.randn(len(idx), 7) * input_noise / torch.from_numpy(sd[:7])
        p = net(x)
        loss = ((p[:, :7] - yt[idx, :7]) ** 2).mean() + bce(p[:, 7], yt[idx, 7]) + bce(p[:, 8], yt[idx, 8])
        opt.zero_grad()
        loss.backward()
        opt.step()
        for gr in opt.param_groups:
            gr["lr"] = lr * 0.5 * (1 + np.cos(np.pi * (it + 1) / steps))
        loss_v = loss.item()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(out / "model.safetensors"))
    meta = {"policy_type": "twin_bc", "mu": mu.tolist(), "sd": sd.tolist(), "y_mu": y_mu.tolist(),
            "y_sd": y_sd.tolist(), "frames": int(len(X)),
            "steps": steps, "input_noise": input_noise, "use_progress": use_progress, "final_loss": loss_v, "demos": str(demo_file)}
    atomic_write_json(out / POLICY_FILE, meta)
    return meta


class TwinBCPolicy(Policy):
    """Loads a `train` output; acts on proprio + step + progress (see module docstring)."""

    needs_images = False

    def __init__(self, net: Any, mu: np.ndarray, sd: np.ndarray, y_mu: np.ndarray, y_sd: np.ndarray,
                 use_progress: bool = True) -> None:
        self.net, self.mu, self.sd, self.y_mu, self.y_sd = net, mu, sd, y_mu, y_sd
        self.use_progress = use_progress
        self.done = False
        self._verb: str | None = None
        self._k = 0

    @classmethod
    def from_pretrained(cls, path: str | Path, **kwargs: Any) -> TwinBCPolicy:
        from safetensors.torch import load_file

        path = Path(path)
        meta = json.loads((path / POLICY_FILE).read_text())
        net = _mlp(len(meta["mu"]))
        net.load_state_dict(load_file(str(path / "model.safetensors")))
        net.eval()
        f32 = lambda k: np.asarray(meta[k], np.float32)  # noqa: E731
        return cls(net, f32("mu"), f32("sd"), f32("y_mu"), f32("y_sd"), bool(meta.get("use_progress", True)))

    def reset(self) -> None:
        self.done, self._verb, self._k = False, None, 0

    def act(self, obs: dict, instruction: str) -> np.ndarray:
        import torch

        from real_robot.decompose import decompose
        from real_robot.robot import GRIPPER_KEY, joints_of

        if self._verb is None:
            self._verb = decompose(instruction)[0].verb
        q = joints_of(obs)
        k = self._k if self.use_progress else 0
        x = (features(q, float(obs[GRIPPER_KEY]), self._verb, k) - self.mu) / self.sd
        with torch.no_grad():
            y = self.net(torch.from_numpy(x[None]))[0].numpy()
        self._k += 1
        self.done = bool(y[8] > 0.0 and self._k > DONE_FRAMES)
        return np.concatenate([y[:7] * self.y_sd + self.y_mu, [float(y[7] > 0.0), 25.0]])


POLICIES.add("twin_bc", TwinBCPolicy)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--demos", required=True, help="ingested demo hdf5 (scripts/ingest_teleop.py output)")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--input-noise", type=float, default=0.0, help="proprio noise (rad) during training")
    p.add_argument("--no-progress", action="store_true", help="drop the frames-since-step-start input")
    a = p.parse_args(argv)
    from configs.threads import apply_threads

    apply_threads()
    meta = train(a.demos, a.out, steps=a.steps, seed=a.seed, input_noise=a.input_noise,
                 use_progress=not a.no_progress)
    print(json.dumps({k: v for k, v in meta.items() if k not in ("mu", "sd")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
