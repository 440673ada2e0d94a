"""Suite-wide setup: headless EGL rendering before any test module imports MuJoCo; shared fixtures."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
# entry points that tests run as files (subprocesses) import this checkout's packages, whichever
# checkout the environment's editable install names (no file edits sys.path; see tests/test_layers.py)
_REPO = str(Path(__file__).resolve().parents[1])
os.environ["PYTHONPATH"] = os.pathsep.join(
    [_REPO, *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != _REPO)])
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may be fetched from a hub at run time
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_configure(config):
    # size torch's threads from the cores free now, as every entry point does (configs/threads.py):
    # a suite that runs beside another busy process otherwise spin-waits for a core at every op
    from configs.threads import apply_threads

    apply_threads()


@pytest.fixture(scope="session")
def small_world(tmp_path_factory):
    """5 scenes (4 train), 4 verbs, 40 single-action takes at 8 frames x 48 px."""
    from configs.loader import from_dict
    from envs.atomic_world.generate import MakeVideosConfig, make_dataset

    out = tmp_path_factory.mktemp("inv") / "aw"
    cfg = from_dict(MakeVideosConfig, {
        "out": str(out), "takes": 40, "seed": 0, "workers": 1,
        "world": {"n_scenes": 5, "val_fraction": 0.2, "frames": 8, "size": 48, "keystep_prob": 0.0,
                  "actions": ["push", "pull", "open", "close"], "objects": ["red cube"]}})  # fmt: skip
    make_dataset(cfg, progress=False)
    return out
