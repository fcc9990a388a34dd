"""Freed buffers are reused by the next ones instead of faulting in fresh pages."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt settings are glibc's")

# 20 rounds of five buffers of 2-4 MiB alive together, written in full, then freed: a read, its
# buffer record and a request body, as the pipeline holds them.
ROUNDS, SIZES = 20, [(2 + k % 3) << 20 for k in range(5)]
_SCRIPT = f"""
import resource, sys
from shipper.allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "tuned" else None
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for i in range({ROUNDS}):
    bufs = [bytes([i % 251]) * size for size in {SIZES}]
    del bufs
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str, **env: str) -> tuple[str, int]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    out = subprocess.run([sys.executable, "-c", _SCRIPT, mode], capture_output=True, text=True, check=True,
                         env={**clean, **env}).stdout.split()
    return out[0], int(out[1])


def test_buffers_reuse_freed_memory() -> None:
    applied, tuned = _faults("tuned")
    _, default = _faults("default")
    pages = ROUNDS * sum(SIZES) // 4096
    assert applied == "True"
    assert default > pages // 2  # each round on fresh pages: why the settings exist
    assert tuned < pages // 8  # the first round's pages, reused


def test_an_operators_own_glibc_settings_win() -> None:
    applied, _ = _faults("tuned", MALLOC_TRIM_THRESHOLD_="1048576")
    assert applied == "False"
