"""int8 decoding (`decode.precision: int8`): the decoder's per-step products and
the output layer multiply int8 by int8 with int32 accumulation.

Weights are quantized once, when the FastStepper is built: symmetric, one scale
per output row (`w ~ s_w q_w`, q_w in [-127, 127]). Then, with one of three kernels
(`kernel()` picks the fastest measured for the CPU, BENCHMARKS.md):

* `onednn` (with AMX) or `fbgemm` (with VNNI): torch's own quantized linear
  (`quantized::linear_dynamic` on weights prepacked once for that engine): the
  activations are quantized at every product to 8 bits with one scale for the
  whole [M, K] input (VNNI sums the int8 products in 32 bits, so all 8 are
  safe), and the product is rescaled and biased inside the kernel.
* `int_mm` elsewhere, or once torch drops the quantized tensors that it now
  deprecates: plain tensor arithmetic, where the activations get
  one scale per input row (`x ~ s_x q_x`), and

      y = (q_x q_w^T) * s_x s_w + b

  with the product in int32 (`torch._int_mm`).

With an engine, the encoder's LSTM runs as torch's dynamic int8 LSTM on that
engine too (`quantized_lstm`: one scale per weight matrix). Per-word tables and
attention stay float32.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator

import torch
from torch import nn

QMAX = 127.0  # symmetric int8: -127..127 (leaves -128 unused, so -q fits too)


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x [M, K] float -> (q [M, K] int8, scale [M, 1]) with x ~ q * scale."""
    scale = x.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / QMAX
    return torch.round(x / scale).clamp_(-QMAX, QMAX).to(torch.int8), scale


@functools.cache
def kernel() -> str:
    """The engine that was fastest on this kind of CPU (BENCHMARKS.md), where this
    torch has it and it multiplies a small product right: 'onednn' with AMX,
    'fbgemm' with VNNI, else 'int_mm' (without VNNI it is emulated: slow)."""
    cpu = torch.cpu
    amx = getattr(cpu, "_is_amx_tile_supported", lambda: False)()
    vnni = getattr(cpu, "_is_vnni_supported", lambda: False)()
    engines = torch.backends.quantized.supported_engines
    for how, has in (("onednn", amx), ("fbgemm", vnni)):
        if has and how in engines and _multiplies_right(how):
            return how
    return "int_mm"


@contextlib.contextmanager
def _engine(how: str) -> Iterator[None]:
    """Quantize and prepack for engine `how`: torch reads the choice from a global,
    set here and restored after. torch deprecates quantized tensors (where they
    are gone, kernel() says int_mm): its warning is not the user's business."""
    engine = torch.backends.quantized.engine
    torch.backends.quantized.engine = how
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # UserWarning, DeprecationWarning
            yield
    finally:
        torch.backends.quantized.engine = engine


def _multiplies_right(how: str) -> bool:
    w = torch.linspace(-1, 1, 40).view(5, 8)
    x = torch.linspace(-2, 3, 24).view(3, 8)
    try:
        y = Int8Linear(w, None, how)(x)
    except (AttributeError, RuntimeError, NotImplementedError):
        return False
    return torch.allclose(y, x @ w.t(), atol=0.05)


class Int8Linear:
    """y = x W^T + b for x [M, in] float32 (no gradient), in int8 as above."""

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None = None,
        how: str | None = None,
    ):
        with torch.no_grad():
            q, scale = quantize_rows(weight.detach().float())
        self.bias = None if bias is None else bias.detach().float()
        self._pack(q, scale.view(-1), how or kernel())

    def _pack(self, q: torch.Tensor, scale: torch.Tensor, how: str) -> None:
        self.q, self.scale, self.how = q, scale, how  # q [out, in], scale [out]
        if how == "int_mm":
            self.weight_t = q.t().contiguous()  # [in, out]: the layout _int_mm wants
            return
        zeros = torch.zeros(q.size(0), dtype=torch.long)
        with _engine(how):
            w = torch._make_per_channel_quantized_tensor(q, scale.double(), zeros, 0)
            self.packed = torch.ops.quantized.linear_prepack(w, self.bias)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.how == "int_mm":
            q, sx = quantize_rows(x.float())
            y = torch._int_mm(q, self.weight_t).float()
            y.mul_(sx).mul_(self.scale)
            return y if self.bias is None else y.add_(self.bias)
        return torch.ops.quantized.linear_dynamic(x.float(), self.packed, False)

    def rows(self, index: torch.Tensor) -> Int8Linear:
        """The product of output rows `index` only (a shortlist), already
        quantized: no new scales."""
        out = Int8Linear.__new__(Int8Linear)
        out.bias = None if self.bias is None else self.bias[index]
        out._pack(self.q[index], self.scale[index], self.how)
        return out


def quantized_lstm(rnn: nn.LSTM, how: str) -> nn.Module:
    """A copy of `rnn` whose products run in int8 on engine `how` (fbgemm or
    onednn): torch's dynamic quantized LSTM, weights quantized once."""
    with _engine(how):
        from torch.ao.quantization import quantize_dynamic  # only int8 needs it

        wrapped = nn.Sequential(rnn)  # quantize_dynamic swaps children
        return quantize_dynamic(wrapped, {nn.LSTM}, dtype=torch.qint8)[0]
