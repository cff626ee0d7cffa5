"""What the CPU can do natively: bf16 autocast is only worth it, and oneDNN's LSTM
only has a bf16 kernel, where the CPU has bfloat16 instructions. And how glibc
hands out memory (`keep_freed_memory`)."""

from __future__ import annotations

import ctypes
import functools
import platform
import sys

import torch

from nmt.errors import NmtError


def bf16_emulated(device: torch.device) -> bool:
    """True on an x86 CPU that has neither AVX512-BF16 nor AMX. There torch emulates
    bfloat16 matrix products, several times slower than float32 (BENCHMARKS.md),
    and on AVX2 oneDNN cannot build a bf16 LSTM at all. False on a GPU and off x86
    (ARM has its own bf16 story)."""
    if device.type != "cpu":
        return False
    flags = _cpu_flags()
    if flags is None or "avx2" not in flags:
        return False
    return not flags & {"avx512_bf16", "amx_bf16", "amx_tile"}


def _cpu_flags() -> set[str] | None:
    """The x86 feature flags that matter here, from torch's own probes (torch 2.5
    and later) or else from /proc/cpuinfo; None where neither can tell."""
    cpu = torch.cpu
    probes = {
        "avx2": "_is_avx2_supported",
        "avx512_bf16": "_is_avx512_bf16_supported",
        "amx_tile": "_is_amx_tile_supported",
    }
    if all(hasattr(cpu, name) for name in probes.values()):
        return {flag for flag, name in probes.items() if getattr(cpu, name)()}
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def require_native_bf16(device: torch.device, key: str) -> None:
    """An NmtError naming `key` where bf16 would be emulated on this CPU."""
    if bf16_emulated(device):
        raise NmtError(
            f"{key}: bf16 needs a CPU with bfloat16 instructions (AVX512-BF16 or "
            "AMX) or a GPU; this CPU has neither, so use fp32"
        )


@functools.cache
def int8_works() -> bool:
    """Whether this torch multiplies int8 matrices on the CPU exactly, tried once
    on a small product (torch._int_mm is a private op: a build may lack it)."""
    a = torch.arange(-12, 12, dtype=torch.int8).view(3, 8)
    b = torch.arange(-20, 20, dtype=torch.int8).view(8, 5)
    try:
        y = torch._int_mm(a, b)
    except (AttributeError, RuntimeError):
        return False
    return torch.equal(y, a.int() @ b.int())


_WARNED: set[str] = set()  # the warnings this process has printed


@functools.cache
def int8_slow() -> bool:
    """True on an x86 CPU without VNNI (AVX512-VNNI or AVX-VNNI): there torch's int8
    product is emulated, and int8 decodes 10-20x slower than fp32 (BENCHMARKS.md)."""
    probe = getattr(torch.cpu, "_is_vnni_supported", None)
    flags = _cpu_flags()
    return probe is not None and flags is not None and "avx2" in flags and not probe()


def require_decode_precision(device: torch.device, precision: str) -> None:
    """An NmtError naming decode.precision where this machine cannot decode in it:
    bf16 without bfloat16 instructions, int8 off the CPU or without int8 products.
    int8 on a CPU without VNNI runs, after one warning line on stderr per process."""
    if precision == "bf16":
        require_native_bf16(device, "decode.precision")
    if precision == "int8" and (device.type != "cpu" or not int8_works()):
        where = "this torch build has no int8 CPU product (torch._int_mm)"
        if device.type != "cpu":
            where = f"int8 decoding is for CPUs, and this runs on {device.type}"
        raise NmtError(f"decode.precision: {where}; use fp32 or bf16")
    if precision == "int8" and int8_slow() and "int8" not in _WARNED:
        _WARNED.add("int8")  # once a process: `nmt run` loads a translator many times
        print(
            "nmt: warning: decode.precision int8: this CPU has no VNNI instructions, "
            "so int8 decodes 10-20x slower than fp32 here; use fp32",
            file=sys.stderr,
        )


def pick_device(name: str) -> torch.device:
    """The device `auto`, `cpu` or `cuda` names here; one line if there is none."""
    if name == "cuda" and not torch.cuda.is_available():
        raise NmtError("device 'cuda' was asked for but no CUDA GPU is available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def keep_freed_memory() -> bool:
    """`train.keep_freed_memory`: ask glibc (mallopt) to keep the memory a training
    step frees for the next, as MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1073741824
    in the environment would: big blocks come from the heap, not from fresh
    mappings, and the heap is not given back. Each step's tensors then reuse
    pages instead of faulting in new zeroed ones: faster, for more memory at peak
    (BENCHMARKS.md). False, and nothing done, where the C library is not glibc."""
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    m_trim_threshold, m_mmap_max = -1, -4  # glibc's malloc.h
    kept = libc.mallopt(m_mmap_max, 0) == 1  # mallopt answers 1 on success
    return kept and libc.mallopt(m_trim_threshold, 1 << 30) == 1
