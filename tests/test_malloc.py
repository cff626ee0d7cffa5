"""`train.keep_freed_memory`: glibc keeps freed big blocks for reuse, as its own
environment variables (MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1073741824) make it
do; a recipe cannot set those, so nmt calls mallopt."""

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


def faults(extra: dict, first: str = "") -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", first + PROBE],
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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_keep_freed_memory_makes_big_blocks_reuse_their_pages():
    """The key's mallopt calls, made in the running process, do what the two
    variables do; without them the same probe faults in every block."""
    call = "from nmt.hardware import keep_freed_memory\nassert keep_freed_memory()\n"
    assert faults({}, "from nmt import hardware\n") > 10 * 10_000
    assert faults({}, call) < 1_000


def test_training_applies_keep_freed_memory(monkeypatch):
    """build() calls it when the recipe says so, and only then."""
    from nmt.config import Config
    from nmt.train import build as build_mod

    calls = []
    monkeypatch.setattr(build_mod, "keep_freed_memory", lambda: calls.append(1))
    monkeypatch.setattr(build_mod, "build_model", _no_model)
    cfg = Config()
    for keep in (False, True):
        cfg.train.keep_freed_memory = keep
        try:
            build_mod.build(cfg, _Corpus())
        except _Stop:
            pass
    assert calls == [1]


class _Stop(Exception):
    pass


def _no_model(*_):
    raise _Stop  # build() got past the memory setting: that is all this checks


class _Corpus:
    class tokenizer:
        src_vocab_size = tgt_vocab_size = 10
