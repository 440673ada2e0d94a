"""Every command the README, the Makefile and docs/results name still exists and starts: its file is
there and `--help` exits 0 (imports resolve through the packages, the CLI parses)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# `python X.py`, `accelerate launch X.py`, `torchrun ... X.py`, `$(PY) X.py` (the Makefile)
COMMAND = re.compile(r"(?:python3?|accelerate launch|torchrun|\$\(PY\))(?:\s+--?[\w-]+(?:[= ]\d+)?)*\s+"
                     r"((?:scripts|envs|encoders|vla|policies|real_robot)/[\w/]+\.py)")


def documented_commands() -> dict[str, list[str]]:
    """script path -> the files that name it."""
    docs = [ROOT / "README.md", ROOT / "Makefile", *sorted((ROOT / "docs").rglob("*.md"))]
    found: dict[str, list[str]] = {}
    for f in docs:
        for m in COMMAND.finditer(f.read_text()):
            found.setdefault(m.group(1), []).append(str(f.relative_to(ROOT)))
    return found


def test_documented_commands_are_found():
    cmds = documented_commands()
    # the entry points users were promised (mission: eval_libero, pretrain, the demo) are among them
    for must in ("envs/eval_libero.py", "vla/pretrain.py", "encoders/train.py", "scripts/make_atomic_videos.py"):
        assert must in cmds, sorted(cmds)
    missing = {c: where for c, where in cmds.items() if not (ROOT / c).is_file()}
    assert not missing, f"documented commands whose file is gone: {missing}"


def _help(script: str) -> tuple[str, int, str]:
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), "ATOMVLA_THREADS": "1"}
    r = subprocess.run([sys.executable, script, "--help"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
    return script, r.returncode, (r.stdout + r.stderr)[-800:]


@pytest.mark.slow
def test_documented_commands_start():
    scripts = sorted(documented_commands())
    with ThreadPoolExecutor(2) as pool:
        bad = [(s, rc, out) for s, rc, out in pool.map(_help, scripts) if rc != 0]
    assert not bad, "\n\n".join(f"{s} --help -> rc {rc}\n{out}" for s, rc, out in bad)


def test_no_module_shadows_the_standard_library():
    """`python envs/x.py` puts envs/ first on sys.path: a module there named like a stdlib module
    (e.g. policies/random.py) would replace it for every import in that process."""
    clash = [str(p.relative_to(ROOT)) for d in ("configs", "envs", "encoders", "policies", "vla", "real_robot", "scripts")
             for p in (ROOT / d).iterdir() if (p.stem if p.suffix == ".py" else p.name) in sys.stdlib_module_names]
    assert not clash, clash
