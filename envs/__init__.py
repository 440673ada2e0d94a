"""Simulated worlds: the generated atomic-action world, LIBERO and Franka Kitchen wrappers.

Headless rendering defaults to EGL (set before any `import mujoco` in the project, since MuJoCo
picks its GL backend at import time). Export MUJOCO_GL yourself to override.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
