"""Opt-in: keep freed memory for reuse instead of returning it to the OS (glibc).

glibc serves allocations above its mmap threshold (at most 32 MB) with fresh pages
from mmap and unmaps them on free, so a tensor that size is faulted in again at
every step. Training computes its loss over chunks of 16 MB of logits
(Seq2Seq.forward) for that reason, but other activations of a big batch are still
above the threshold. Serving everything from the heap lets the next step reuse the
same pages: multi30k_de_en training 2,936 -> 3,318 target tokens/s (before the
chunked loss: 2,345 -> 2,909), decoding 7-19% faster. The price is memory: without
mmap the heap fragments (a 3.5-minute bf16 run peaked at 7.9 GB RSS against 3.6 GB
without it). So it is off unless NMT_REUSE_MEMORY=1 is set (the `nmt` command
checks it at start); measurements in BENCHMARKS.md.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt parameters (glibc malloc.h)
ENV = "NMT_REUSE_MEMORY"


def keep_freed_memory(trim_above: int = 1 << 30) -> bool:
    """No mmap for big allocations; trim the heap only above `trim_above` bytes
    free. Process-wide. Returns False, doing nothing, where the C library is not
    glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # no glibc (musl has no mallopt)
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(
        mallopt(_M_TRIM_THRESHOLD, trim_above)
    )


def from_environment() -> bool:
    """keep_freed_memory() when NMT_REUSE_MEMORY=1; whether it is on. Asked for
    where it cannot work, it says so in one line on stderr."""
    if os.environ.get(ENV, "") != "1":
        return False
    if keep_freed_memory():
        return True
    print(f"nmt: {ENV}=1 ignored: needs glibc's mallopt", file=sys.stderr)
    return False
