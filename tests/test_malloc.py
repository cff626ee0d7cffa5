"""The README's memory setting for training: glibc's own environment variables
(MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1073741824) keep freed big blocks for
reuse, so nmt needs no code of its own for it."""

import os
import subprocess
import sys

import pytest

# Ten 64 MB blocks, each written and freed before the next, as a training step's
# logits are; prints the page faults they cost.
PROBE = """
import ctypes, resource
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
n = 64 << 20  # over glibc's largest mmap threshold (32 MB)
p = libc.malloc(n); libc.memset(p, 1, n); libc.free(p)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    p = libc.malloc(n); libc.memset(p, 1, n); libc.free(p)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
REUSE = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


def faults(extra: dict) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        check=True,
        env={**env, **extra},
    )
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_glibc_settings_make_big_blocks_reuse_their_pages():
    """glibc's default maps and unmaps each block (16,384 page faults apiece); with
    the two variables set the first block's pages are reused."""
    assert faults({}) > 10 * 10_000
    assert faults(REUSE) < 1_000
