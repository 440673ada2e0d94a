"""Demonstrations in the robomimic/LIBERO hdf5 layout, plus per-step atomic-skill labels.

File layout (what LIBERO's own datasets use; extras marked +):

    data                      attrs: env_args (json), problem_info (json), bddl_file_name, num_demos,
                                     total, + image_convention ("flipped180" = upright, as policies see
                                     it; official files are raw OpenGL, flipped by the reader),
                                     + skill_vocab (json list)
    data/demo_i               attrs: num_samples, init_state, + language_instruction
    data/demo_i/actions       (T, 7) float64 env actions (gripper -1 open / +1 close)
    data/demo_i/obs/agentview_rgb, eye_in_hand_rgb   (T, H, W, 3) uint8
    data/demo_i/obs/ee_pos (T, 3), ee_ori (T, 3) axis-angle, ee_states (T, 6), gripper_states (T, 2),
                    joint_states (T, 7)
    data/demo_i/states        (T, S) flattened MuJoCo states
    data/demo_i/rewards, dones (T,)
  + data/demo_i/skills        (T,) int16 index into skill_vocab (the atomic action of each step)
  + data/demo_i/skill_objects (T,) int16 index into the demo's `skill_object_names` attr (json list):
                              the sim name of the object each step's skill acts on ("" for none)

`DemoWriter` writes atomically (a copy is extended and renamed into place) and resumes from an
existing file; `DemoReader` reads both these files and official LIBERO ones.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from configs.runs import atomic_write, damaged

IMAGE_KEYS = ("agentview_rgb", "eye_in_hand_rgb")
LOW_DIM_KEYS = ("ee_pos", "ee_ori", "ee_states", "gripper_states", "joint_states")
SKILL_VOCAB = ("idle", "reach", "grasp", "lift", "place", "push", "open", "close", "turn")


@dataclass
class Demo:
    """One demonstration. actions (T, 7); obs[key] (T, ...); states (T, S); skills: T labels or None;
    skill_objects: T sim object names (what each step's skill acts on, "" for none) or None."""

    actions: np.ndarray
    obs: dict[str, np.ndarray]
    states: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    instruction: str = ""
    skills: list[str] | None = None
    skill_objects: list[str] | None = None
    init_state: np.ndarray | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    def validate(self) -> None:
        T = len(self)
        for name, arr in [("states", self.states), ("rewards", self.rewards), ("dones", self.dones),
                          *[(f"obs/{k}", v) for k, v in self.obs.items()]]:
            if arr.shape[0] != T:
                raise ValueError(f"demo field {name} has {arr.shape[0]} steps, actions have {T}")
        if self.skills is not None and len(self.skills) != T:
            raise ValueError(f"demo has {len(self.skills)} skill labels for {T} steps")
        if self.skill_objects is not None and len(self.skill_objects) != T:
            raise ValueError(f"demo has {len(self.skill_objects)} skill objects for {T} steps")
        for s in self.skills or []:
            if s not in SKILL_VOCAB:
                raise ValueError(f"unknown skill label {s!r}; vocabulary: {SKILL_VOCAB}")


class DemoWriter:
    """Append demos to `path` (created or resumed). Every `flush()` is atomic: the current file is
    copied to a temp name, extended, and `os.replace`d, so a killed run leaves the last good file."""

    def __init__(self, path: str | Path, env_args: dict | None = None, problem_info: dict | None = None,
                 bddl_file_name: str = "", compress: bool = True) -> None:
        self.path = Path(path)
        self.env_args = env_args or {}
        self.problem_info = problem_info or {}
        self.bddl_file_name = bddl_file_name
        self.compress = compress
        self.pending: list[Demo] = []

    def num_demos(self) -> int:
        """Demos already on disk (resume point)."""
        if not self.path.is_file():
            return 0
        import h5py

        with h5py.File(self.path, "r") as f:
            return len([k for k in f.get("data", {}) if k.startswith("demo_")])

    def add(self, demo: Demo) -> None:
        demo.validate()
        self.pending.append(demo)

    def flush(self) -> int:
        """Write pending demos; returns the number of demos in the file."""
        import h5py

        counts: list[int] = []

        def write(tmp: Path) -> None:
            # extend a copy of the last good file, so a killed run leaves that file intact
            mode = "w"
            if self.path.is_file():
                shutil.copyfile(self.path, tmp)
                mode = "a"
            with h5py.File(tmp, mode) as f:
                data = f.require_group("data")
                n = len([k for k in data if k.startswith("demo_")])
                for demo in self.pending:
                    self._write_demo(data.create_group(f"demo_{n}"), demo)
                    n += 1
                data.attrs["env_args"] = json.dumps(self.env_args)
                data.attrs["problem_info"] = json.dumps(self.problem_info)
                data.attrs["bddl_file_name"] = self.bddl_file_name
                data.attrs["num_demos"] = n
                data.attrs["total"] = int(sum(data[k].attrs["num_samples"] for k in data if k.startswith("demo_")))
                data.attrs["image_convention"] = "flipped180"
                data.attrs["skill_vocab"] = json.dumps(list(SKILL_VOCAB))
            counts.append(n)

        atomic_write(self.path, write)
        n = counts[0]
        self.pending = []
        return n

    def _write_demo(self, g: Any, demo: Demo) -> None:
        kw = {"compression": "gzip", "compression_opts": 4} if self.compress else {}
        g.attrs["num_samples"] = len(demo)
        g.attrs["language_instruction"] = demo.instruction
        if demo.init_state is not None:
            g.attrs["init_state"] = np.asarray(demo.init_state)
        for k, v in demo.attrs.items():
            g.attrs[k] = v
        g.create_dataset("actions", data=np.asarray(demo.actions, dtype=np.float64))
        g.create_dataset("states", data=np.asarray(demo.states, dtype=np.float64))
        g.create_dataset("rewards", data=np.asarray(demo.rewards, dtype=np.uint8))
        g.create_dataset("dones", data=np.asarray(demo.dones, dtype=np.uint8))
        obs = g.create_group("obs")
        for k, v in demo.obs.items():
            v = np.asarray(v)
            obs.create_dataset(k, data=v, **(kw if v.ndim == 4 else {}))
        if demo.skills is not None:
            g.create_dataset("skills", data=np.array([SKILL_VOCAB.index(s) for s in demo.skills], dtype=np.int16))
        if demo.skill_objects is not None:
            names = sorted(set(demo.skill_objects))
            g.attrs["skill_object_names"] = json.dumps(names)
            g.create_dataset("skill_objects", data=np.array([names.index(o) for o in demo.skill_objects], dtype=np.int16))


class DemoReader:
    """Read demos from a project or official LIBERO hdf5 file.

    Images come back upright ((H, W, 3) uint8, as LiberoEnv observations); official files store the
    raw OpenGL frame and are flipped here. `skills` is None for files without labels."""

    def __init__(self, path: str | Path) -> None:
        import h5py

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"demo file not found: {self.path}")
        try:
            self._f = h5py.File(self.path, "r")
        except OSError as e:  # h5py: bad signature, truncated file, ...
            raise damaged(self.path, "demo file (hdf5)", reason=str(e).split("(", 1)[-1].rstrip(")")) from None
        if "data" not in self._f:
            raise ValueError(f"{self.path}: not a robomimic/LIBERO demo file (no 'data' group)")
        data = self._f["data"]
        self.keys = sorted((k for k in data if k.startswith("demo_")), key=lambda k: int(k.split("_")[1]))
        self.env_args = _json_attr(data.attrs, "env_args")
        self.problem_info = _json_attr(data.attrs, "problem_info")
        self.flip = data.attrs.get("image_convention", "raw") != "flipped180"
        vocab = data.attrs.get("skill_vocab")
        self.skill_vocab = json.loads(vocab) if vocab is not None else None

    @property
    def instruction(self) -> str:
        return str(self.problem_info.get("language_instruction", ""))

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> Demo:
        return self.read(i)

    def read(self, i: int, obs_keys: set[str] | None = None) -> Demo:
        """Demo i with only `obs_keys` of its obs loaded (None = all; images are the bulk of a file)."""
        g = self._f["data"][self.keys[i]]
        obs = {}
        for k in g["obs"]:
            if obs_keys is not None and k not in obs_keys:
                continue
            v = np.asarray(g["obs"][k])
            if k.endswith("_rgb") and self.flip and v.ndim == 4:
                v = np.ascontiguousarray(v[:, ::-1, ::-1])
            obs[k] = v
        skills = None
        if "skills" in g and self.skill_vocab is not None:
            skills = [self.skill_vocab[j] for j in np.asarray(g["skills"])]
        objects = None
        if "skill_objects" in g and "skill_object_names" in g.attrs:
            names = json.loads(g.attrs["skill_object_names"])
            objects = [names[j] for j in np.asarray(g["skill_objects"])]
        T = g["actions"].shape[0]
        instr = g.attrs.get("language_instruction", self.instruction)
        return Demo(
            actions=np.asarray(g["actions"]),
            obs=obs,
            states=np.asarray(g["states"]) if "states" in g else np.zeros((T, 0)),
            rewards=np.asarray(g["rewards"]) if "rewards" in g else np.zeros(T),
            dones=np.asarray(g["dones"]) if "dones" in g else np.zeros(T),
            instruction=str(instr.decode() if isinstance(instr, bytes) else instr),
            skills=skills,
            skill_objects=objects,
            init_state=np.asarray(g.attrs["init_state"]) if "init_state" in g.attrs else None,
        )

    def skill_object_names(self) -> list[str]:
        """The sorted union of every demo's `skill_object_names` (attrs only, no arrays read)."""
        names: set[str] = set()
        for k in self.keys:
            raw = self._f["data"][k].attrs.get("skill_object_names")
            if raw is not None:
                names.update(json.loads(raw))
        return sorted(names)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> DemoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _json_attr(attrs: Any, key: str) -> dict:
    v = attrs.get(key)
    if v is None:
        return {}
    if isinstance(v, bytes):
        v = v.decode()
    try:
        return json.loads(v)
    except (TypeError, json.JSONDecodeError):
        return {}


def record_episode(env, policy, trial: int, seed: int, max_steps: int):
    """Run the expert `policy` once in `env` (LIBERO or Kitchen) from init state `trial` through the
    rollout loop; returns (Demo, success, stopped), `stopped` = why the loop ended ("success", "done":
    the expert gave up, "max_steps"). Both cameras are rendered at every step for the file
    (`(T, H, W, 3)` images) whatever the policy reads; the per-step skill label is `policy.label()`, its
    object `policy.label_object()` (not stored when the policy gives None)."""
    from envs.rollout import EnvStepper, run_loop

    stepper = EnvStepper(env)
    stepper.reset(trial=trial)  # the env's own protocol seed
    init_state = env.get_state()
    cams = ("agentview_rgb", "eye_in_hand_rgb")
    keys = (*cams, "ee_pos", "ee_ori", "gripper_states", "joint_states")
    buf: dict[str, list] = {k: [] for k in keys}
    actions, states, labels, objects = [], [], [], []

    def record(t: int, obs: dict, action: np.ndarray) -> None:
        for k in keys:
            buf[k].append(obs[k])
        states.append(env.get_state())
        labels.append(policy.label())
        objects.append(policy.label_object())
        actions.append(action)

    res = run_loop(stepper, policy, env.instruction, max_steps, seed=seed, bind=env, every_step=cams,
                   to_action=lambda a: a, before_step=record)
    success = res.success
    T = len(actions)
    o = {k: np.stack(v) for k, v in buf.items()}
    o["ee_states"] = np.concatenate([o["ee_pos"], o["ee_ori"]], axis=1)
    rewards = np.zeros(T, dtype=np.uint8)
    dones = np.zeros(T, dtype=np.uint8)
    if success:
        rewards[-1] = dones[-1] = 1
    demo = Demo(actions=np.stack(actions), obs=o, states=np.stack(states), rewards=rewards, dones=dones,
                instruction=env.instruction, skills=labels, init_state=init_state,
                skill_objects=None if any(o is None for o in objects) else objects,
                attrs={"attempt_seed": seed, "init_trial": trial})
    return demo, success, res.stopped


def progress_file(demo_path: Path) -> Path:
    """Where a demo file's attempt/failure counters and summed wall time live: <name>.progress.json."""
    return Path(demo_path).with_suffix(".progress.json")


def read_progress(progress_path: Path) -> dict:
    """A demo file's progress record ({"attempts", "failures", "wall_s", "failed": one {"attempt", "trial",
    "steps", "stopped", "last_skill"} per failed attempt}), or {} before its first flush."""
    return json.loads(progress_path.read_text()) if progress_path.is_file() else {}


def collect_demos(env, policy, writer: DemoWriter, *, episodes: int, max_attempts: int, max_steps: int,
                  seed_base: int, progress_path: Path, flush_every: int, desc: str,
                  trial_of=None, record: dict | None = None) -> dict[str, int]:
    """Record expert episodes until `episodes` successes are in `writer`'s file (only successes kept).

    Attempt k is seeded `seed_base + k` and starts from init state `trial_of(k)` (default k). Resumes:
    the demos on disk count, and the attempt/failure counters and the wall time live in `progress_path`.
    Returns {"demos", "attempts", "failures" (all runs), "failed_this_run", "wall_s_all_runs" (the
    seconds of every run up to its last flush: a killed run's unflushed episodes are redone, not counted)}.
    `record` (e.g. the rank and world size of this run) is written into the progress file too.
    """
    import time

    from tqdm import tqdm

    from configs.runs import atomic_write_json

    have = writer.num_demos()
    prog = read_progress(progress_path)
    attempt, earlier = int(prog.get("attempts", 0)), int(prog.get("failures", 0))
    fails, wall0, t0 = 0, float(prog.get("wall_s", 0.0)), time.time()
    failed = list(prog.get("failed", []))  # why each attempt failed: a slow task's time goes there

    def save() -> float:
        wall = round(wall0 + time.time() - t0, 1)
        atomic_write_json(progress_path, {**(record or {}), "attempts": attempt, "failures": earlier + fails,
                                          "wall_s": wall, "failed": failed})
        return wall  # what is returned is what is on disk (status=true reads the file)

    bar = tqdm(total=episodes, initial=min(have, episodes), desc=desc)
    while have + len(writer.pending) < episodes and attempt < max_attempts:
        trial = trial_of(attempt) if trial_of else attempt
        demo, ok, stopped = record_episode(env, policy, trial, seed_base + attempt, max_steps)
        attempt += 1
        if ok:
            writer.add(demo)
            bar.update(1)
        else:
            fails += 1
            failed.append({"attempt": attempt - 1, "trial": int(trial), "steps": len(demo.actions),
                           "stopped": stopped, "last_skill": demo.skills[-1] if demo.skills else ""})
        bar.set_postfix(kept=have + len(writer.pending), failed=fails)
        if len(writer.pending) >= flush_every:
            have = writer.flush()
            save()
    if writer.pending:
        have = writer.flush()
    wall = save()
    bar.close()
    return {"demos": have, "attempts": attempt, "failures": earlier + fails, "failed_this_run": fails,
            "wall_s_all_runs": wall}
