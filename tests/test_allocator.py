"""configs/allocator.py: after keep_freed_memory(), a step reuses the memory the last step freed
instead of faulting fresh pages in (the page faults are counted in a fresh process, so the setting
does not leak into the test process; the step's pattern does not depend on threads or kernels).

The reference arm pins glibc's mmap threshold at its 128 KiB start, so every 1 MiB block is mapped
per use and faulted in page by page: the failure the module fixes, made deterministic. glibc's plain
default is not the reference because whether it trims depends on what else sits at the heap top
(it read 51 faults a step once, and ~5000 other times)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

STEP = """
import resource, sys, torch
torch.set_num_threads(1)
if sys.argv[1] == "1":
    from configs.allocator import keep_freed_memory
    assert keep_freed_memory()
else:  # blocks above 128 KiB mapped per use (a fixed threshold also stops glibc raising it)
    from configs.allocator import M_MMAP_THRESHOLD, mallopt
    assert mallopt(M_MMAP_THRESHOLD, 131072)
def step():  # 100 MB in 1 MB tensors, touched, then all freed
    blocks = [torch.empty(262144).fill_(1.0) for _ in range(100)]
    del blocks
step(); step()
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) // 5)
"""


def _faults_per_step(keep: bool) -> int:
    # one thread, whatever the suite sets: the step's pattern should not depend on thread pools
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", STEP, "1" if keep else "0"], capture_output=True, text=True,
                         check=True, env=env)
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_kept_memory_is_reused_without_page_faults():
    mapped, kept = _faults_per_step(False), _faults_per_step(True)
    assert mapped > 10000 and kept < mapped / 10, (mapped, kept)


def test_elsewhere_it_changes_nothing(monkeypatch):
    from configs import allocator

    monkeypatch.setattr(allocator.sys, "platform", "darwin")
    assert allocator.keep_freed_memory() is False
