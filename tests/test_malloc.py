import subprocess
import sys

import pytest

# Ten 64 MB blocks, each written and freed before the next, as a training step's
# logits are; prints the page faults they cost.
PROBE = """
import ctypes, resource, sys
from nmt.malloc import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
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


def faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    )
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_big_blocks_reuse_their_pages():
    """glibc's default maps and unmaps each block (16,384 page faults apiece);
    after keep_freed_memory the first block's pages are reused."""
    default, kept = faults("default"), faults("keep")
    assert default > 10 * 10_000
    assert kept < 1_000
