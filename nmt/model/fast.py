"""CPU speed paths for training, each proven equal to the plain path by a test
(tests/test_fast.py); what each buys is in BENCHMARKS.md, "What the CPU fast
paths buy".

* `Dropout` / `dropout`: the mask drawn by `torch.rand` instead of torch's CPU
  `bernoulli_`, which is slower, and kept for the backward pass as booleans (a
  quarter of the float mask torch keeps). Same distribution, other draws.
* `padded_lstm`: a bidirectional `nn.LSTM` on padded input as if it were packed,
  because torch runs a packed LSTM through oneDNN on the CPU only when all
  lengths are equal (otherwise it loops over time steps in ATen).
* `chunked_cross_entropy`: the output layer and the loss over chunks of target
  positions, so that each chunk's logits and gradient come from reused memory
  instead of a whole batch's worth of fresh pages at every step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LOSS_CHUNK = 4 * 2**20  # logits per chunk of the training loss


class _MaskedScale(torch.autograd.Function):
    """x * keep / (1 - p), saving only the boolean mask."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, keep: torch.Tensor, scale: float):
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return torch.mul(x, keep).mul_(scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (keep,) = ctx.saved_tensors
        return torch.mul(grad, keep).mul_(ctx.scale), None, None


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """F.dropout(x, p, training); on the CPU the mask comes from `torch.rand`
    (an element is kept with probability 1 - p and scaled by 1 / (1 - p)). On
    other devices torch's fused kernel is used."""
    if not training or p == 0 or x.device.type != "cpu" or p >= 1:
        return F.dropout(x, p, training)
    return _MaskedScale.apply(x, torch.rand_like(x) >= p, 1 / (1 - p))


class Dropout(nn.Dropout):
    """nn.Dropout (same state, same `p`) through `dropout` above."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


def padded_lstm(
    rnn: nn.LSTM, x: torch.Tensor, src_len: torch.Tensor, training: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """A bidirectional, batch-first `rnn` on padded x [B, S, E] as if packed:
    top-layer outputs [B, S, 2H] (zeros after each sentence's end) and final h
    [layers * 2, B, H], rows in input order.

    Each layer and direction is one `torch.lstm` call on padded input. The
    backward direction reads each sentence reversed within its length, so
    padding always follows the words and never reaches them: outputs and
    gradients are the packed ones, to float rounding.
    """
    b, s, _ = x.shape
    h = rnn.hidden_size
    steps = torch.arange(s).unsqueeze(0)
    n = src_len.unsqueeze(1)
    flip = torch.where(steps < n, n - 1 - steps, steps).unsqueeze(2)  # own inverse
    last = (src_len - 1).view(b, 1, 1).expand(b, 1, h)
    zeros = x.new_zeros(1, b, h)
    finals = []
    for k in range(rnn.num_layers):
        halves = []
        for suffix in ("", "_reverse"):
            w = [
                getattr(rnn, f"{name}_l{k}{suffix}")
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            ]
            inp = x.gather(1, flip.expand(b, s, x.size(2))) if suffix else x
            out = torch.lstm(
                inp, (zeros, zeros), w, True, 1, 0.0, training, False, True
            )[0]
            finals.append(out.gather(1, last).squeeze(1))  # at each one's end
            halves.append(out.gather(1, flip.expand(b, s, h)) if suffix else out)
        x = torch.cat(halves, dim=2)
        if k < rnn.num_layers - 1:  # nn.LSTM's dropout between layers
            x = dropout(x, rnn.dropout, training)
    return x.masked_fill((steps >= n).unsqueeze(2), 0.0), torch.stack(finals)


def chunked_cross_entropy(
    out: nn.Linear,
    features: torch.Tensor,
    gold: torch.Tensor,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Summed F.cross_entropy(out(features), gold) for features [n, R] and gold
    [n], computed over chunks of LOSS_CHUNK logits: the same sum and gradients."""
    rows = max(1, LOSS_CHUNK // out.out_features)
    loss = features.new_zeros((), dtype=torch.float32)
    for i in range(0, features.size(0), rows):
        logits = out(features[i : i + rows])
        loss = loss + F.cross_entropy(
            logits.float(),
            gold[i : i + rows],
            label_smoothing=label_smoothing,
            reduction="sum",
        )
    return loss
