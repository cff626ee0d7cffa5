"""What the CPU can do natively: bf16 autocast is only worth it, and oneDNN's LSTM
only has a bf16 kernel, where the CPU has bfloat16 instructions."""

from __future__ import annotations

import torch

from nmt.errors import NmtError


def bf16_emulated(device: torch.device) -> bool:
    """True on an x86 CPU that has neither AVX512-BF16 nor AMX. There torch emulates
    bfloat16 matrix products, several times slower than float32 (7x for the output
    layer on an AVX2-only AMD EPYC; BENCHMARKS.md), and on AVX2 oneDNN cannot build
    a bf16 LSTM at all. False on a GPU, and where it cannot tell (not x86)."""
    if device.type != "cpu":
        return False
    cpu = torch.cpu
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    if not all(hasattr(cpu, c) for c in checks + ("_is_avx2_supported",)):
        return False  # an old torch: no way to tell
    if not cpu._is_avx2_supported():
        return False  # not x86 (ARM has its own bf16 story)
    return not any(getattr(cpu, c)() for c in checks)


def require_native_bf16(device: torch.device, key: str) -> None:
    """An NmtError naming `key` where bf16 would be emulated on this CPU."""
    if bf16_emulated(device):
        raise NmtError(
            f"{key}: bf16 needs a CPU with bfloat16 instructions (AVX512-BF16 or "
            "AMX) or a GPU; this CPU has neither, so use fp32"
        )


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise NmtError("device 'cuda' was asked for but no CUDA GPU is available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)
