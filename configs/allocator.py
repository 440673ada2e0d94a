"""glibc malloc settings for training loops: keep freed memory for the next step.

A training step allocates and frees about the same tensors every step. With glibc's defaults, a block
above the (dynamic) mmap threshold is mapped fresh each time, and freed memory at the top of the heap
is handed back to the kernel once it passes the trim threshold; the next step then touches that
memory again page by page. For RoboAct-CLIP's wide object stem (`object_pixels_a3_moments_w48`, batch
64) that was 220 000 page faults a step, 0.63 s of kernel time in a 1.6 s step; with the thresholds
below (given as MALLOC_* environment variables, with a 1 GiB top pad as well) 1 900 faults, 0.007 s,
and 1.12 s a step (1 thread, measured side by side in one session, load ~3).

    from configs.allocator import keep_freed_memory
    keep_freed_memory()          # True where glibc took the settings; a no-op elsewhere

Settings: blocks up to 32 MiB (glibc's largest mmap threshold on 64-bit) come from the heap, and the
heap is never trimmed (trim threshold 2 GiB - 1). The cost is that a process keeps its peak heap
until it exits, which a training process does anyway. Larger blocks are still mapped per use.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
MMAP_THRESHOLD_MAX = 32 * 2**20  # HEAP_MAX_SIZE / 2 on 64-bit glibc: mallopt refuses more
TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int


def mallopt(param: int, value: int) -> bool:
    """glibc's mallopt(param, value) for this process; True where glibc took it, False elsewhere
    (macOS, musl: nothing is changed)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        fn = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    fn.argtypes, fn.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(fn(param, value))


def keep_freed_memory() -> bool:
    """Set the module docstring's malloc parameters for this process; True where glibc took them
    (Linux with glibc), False elsewhere (macOS, musl: nothing is changed)."""
    return mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
