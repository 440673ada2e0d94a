"""Launch a script on N local CPU processes (gloo) the way a user would: `torchrun --standalone`.

Used by the data-parallel tests of every trainer (encoders/train.py, vla/pretrain.py, ...)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def launch_cpu(script: str | Path, args: list[str], nproc: int = 2, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `torchrun --standalone --nproc_per_node nproc script args` from the repo root.

    One intra-op thread per process (two processes share this machine's cores); raises with the
    processes' output when the launch fails."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ATOMVLA_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           str(script), *args]
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}")
    return res
