"""int8 decoding (`decode.precision: int8`): the decoder's per-step products and
the output layer multiply int8 by int8 with int32 accumulation.

Weights are quantized once, when the FastStepper is built: symmetric, one scale
per output row (`w ~ s_w q_w`, q_w in [-127, 127]). Activations are quantized at
every product, one scale per input row (`x ~ s_x q_x`), so a hypothesis with
small activations keeps its resolution. Then

    y = (q_x q_w^T) * s_x s_w + b

with the product in int32 (`torch._int_mm`, oneDNN/fbgemm kernels with VNNI
where the CPU has it). Per-word tables, attention and the encoder stay float32.
It is plain tensor arithmetic: no quantized tensor types, which torch is retiring.
"""

from __future__ import annotations

import torch

QMAX = 127.0  # symmetric int8: -127..127 (leaves -128 unused, so -q fits too)


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x [M, K] float -> (q [M, K] int8, scale [M, 1]) with x ~ q * scale."""
    scale = x.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / QMAX
    return torch.round(x / scale).clamp_(-QMAX, QMAX).to(torch.int8), scale


class Int8Linear:
    """y = x W^T + b for x [M, in] float32 (no gradient), in int8 as above."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None):
        with torch.no_grad():
            q, scale = quantize_rows(weight.detach().float())
        self.weight_t = q.t().contiguous()  # [in, out]: the layout _int_mm wants
        self.scale = scale.view(-1)  # [out]
        self.bias = None if bias is None else bias.detach().float()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        q, sx = quantize_rows(x.float())
        y = torch._int_mm(q, self.weight_t).float()
        y.mul_(sx).mul_(self.scale)
        return y if self.bias is None else y.add_(self.bias)

    def rows(self, index: torch.Tensor) -> Int8Linear:
        """The product of output rows `index` only (a shortlist), already
        quantized: no new scales."""
        out = Int8Linear.__new__(Int8Linear)
        out.weight_t = self.weight_t[:, index].contiguous()
        out.scale = self.scale[index]
        out.bias = None if self.bias is None else self.bias[index]
        return out
