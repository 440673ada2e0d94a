"""configs/allocator.py: after keep_freed_memory(), a training-like step reuses the memory the last
step freed instead of faulting fresh pages in (the page faults are counted in a fresh process, so the
setting does not leak into the test process)."""

from __future__ import annotations

import subprocess
import sys

import pytest

STEP = """
import resource, sys, torch
torch.set_num_threads(1)
if sys.argv[1] == "1":
    from configs.allocator import keep_freed_memory
    assert keep_freed_memory()
net = torch.nn.Sequential(torch.nn.Conv2d(12, 16, 5, 2, 2), torch.nn.GELU(), torch.nn.Conv2d(16, 32, 3, 2, 1), torch.nn.GELU())
def step():
    x = torch.rand(32, 12, 96, 96)  # a fresh 14 MB batch each step, as a loader gives
    net(x).sum().backward()
step(); step()
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) // 5)
"""


def _faults_per_step(keep: bool) -> int:
    out = subprocess.run([sys.executable, "-c", STEP, "1" if keep else "0"], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_kept_memory_is_reused_without_page_faults():
    default, kept = _faults_per_step(False), _faults_per_step(True)
    assert default > 1000 and kept < default / 10, (default, kept)


def test_elsewhere_it_changes_nothing(monkeypatch):
    from configs import allocator

    monkeypatch.setattr(allocator.sys, "platform", "darwin")
    assert allocator.keep_freed_memory() is False
