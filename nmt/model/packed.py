"""Decoding's matrix products through oneDNN, with each weight packed once.

On the CPU torch multiplies float32 matrices with MKL. For the shapes of a
decoding step (a few hundred rows against a fixed weight) oneDNN's matmul is
faster once the weight has been reordered into its own blocked layout, which
torch exposes for its compiler's CPU backend (`torch.ops.mkldnn`). On the 2-core
AVX2 machine of BENCHMARKS.md, [160-640, 512] x [512, 8000] ran at 72-139 GFLOP/s
against MKL's 53-112 (faster in each of nine paired timings), and beam 5 on
Multi30k with attention went from 77.8 to 85.7 sentences/s, the same translations.
For training-sized products ([4096, 512] x [512, 8000] and their gradients) it was
no faster, and the weights change at every update, so only decoding packs.

A `Packed` falls back to `torch.addmm` with the weight transposed once (the
layout MKL runs [rows, in] x [in, out] fastest in) where oneDNN cannot run it: not
a float32 CPU weight, a torch built without oneDNN, or under autocast (bf16
decoding multiplies in bfloat16 instead).
"""

from __future__ import annotations

import torch


def _available() -> bool:
    ops = torch.ops.mkldnn
    return (
        torch.backends.mkldnn.is_available()
        and hasattr(ops, "_reorder_linear_weight")
        and hasattr(ops, "_linear_pointwise")
    )


class Packed:
    """y = x W^T + b for x [M, in] (no gradient), as F.linear(x, weight, bias)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None):
        self.weight = weight.detach()
        self.bias = None if bias is None else bias.detach()
        self.blocked = self.weight_t = None
        if weight.device.type == "cpu" and weight.dtype == torch.float32:
            if _available():
                w = self.weight.contiguous()
                self.blocked = torch.ops.mkldnn._reorder_linear_weight(w, None)

    def __getstate__(self) -> dict:  # oneDNN's copy cannot be copied or pickled
        return {"weight": self.weight, "bias": self.bias}

    def __setstate__(self, state: dict) -> None:  # so it is made again
        self.__init__(state["weight"], state["bias"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        dev = x.device.type
        if self.blocked is not None and x.dtype == torch.float32:
            if not torch.is_autocast_enabled(dev):
                return torch.ops.mkldnn._linear_pointwise(
                    x, self.blocked, self.bias, "none", [], ""
                )
        if self.weight_t is None:
            self.weight_t = self.weight.t().contiguous()
        if self.bias is None:
            return x @ self.weight_t
        return torch.addmm(self.bias, x, self.weight_t)
