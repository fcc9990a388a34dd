"""The C allocator's settings for a process that handles megabyte buffers all day.

Each file read, buffer record and request body is a fresh buffer of up to a few MiB. glibc serves
such sizes with ``mmap`` (or gives the top of its heap back to the kernel when they are freed), so
the next buffer starts on fresh pages: a page fault per 4 KiB touched, ~190,000 faults and a
quarter of the CPU of a file → file run of 500,000 events (docs/benchmarks.md). Keeping freed
memory in the heap (a fixed mmap threshold at glibc's maximum, a high trim threshold) lets the next
buffer reuse it; peak RSS is what the process held at its peak either way.

An operator's own glibc settings (``MALLOC_*_`` or ``GLIBC_TUNABLES`` in the environment) win.
"""

from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024  # glibc's upper bound on 64-bit
TRIM_THRESHOLD_BYTES = 128 * 1024 * 1024
_OPERATOR_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES")


def keep_freed_memory() -> bool:
    """Apply the settings above where the C library is glibc and the environment sets none of its
    own; True if they were applied."""
    if platform.libc_ver()[0] != "glibc" or any(name in os.environ for name in _OPERATOR_SETTINGS):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    mmap_set = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    return bool(mmap_set) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
