"""Suite-wide setup: headless EGL rendering before any test module imports MuJoCo."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may be fetched from a hub at run time
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
