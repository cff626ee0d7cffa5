"""The bridge: the encoder's final states f -> the context c and the decoder's
initial state s_0.

    Cho:       c = tanh(W f), read at every step;   s_0 = tanh(U c)
    Sutskever: s_0 = V f + b (h_0, and c_0 for an LSTM);   c = f, read nowhere

The Sutskever s_0 is linear because through the two tanh layers Adam drove it
into saturation within 80 updates on Multi30k (mean |h_0| 0.996, the same in
every sentence), where no gradient reaches the encoder: the model never learnt to
use the source (docs/tried.md, "The Sutskever bridge").
"""

from __future__ import annotations

import torch
from torch import nn

from nmt.model.decoder import DecoderState


class Bridge(nn.Module):
    def __init__(
        self,
        in_dim: int,
        context_dim: int,
        layers: int,
        hidden: int,
        lstm: bool,
        cho: bool = True,
    ):
        super().__init__()
        states = layers * hidden * (2 if lstm else 1)
        self.cho = cho
        if cho:
            self.to_context = nn.Linear(in_dim, context_dim)
        self.to_state = nn.Linear(context_dim if cho else in_dim, states)
        self.layers, self.hidden, self.lstm = layers, hidden, lstm

    def forward(self, final: torch.Tensor) -> DecoderState:
        """final [B, in_dim] -> a DecoderState: hidden (and cell) [L, B, H],
        context [B, C]."""
        if self.cho:
            c = torch.tanh(self.to_context(final))
            s = torch.tanh(self.to_state(c))  # [B, (2) * L * H]
        else:
            c, s = final, self.to_state(final)
        s = s.view(s.size(0), -1, self.layers, self.hidden).permute(1, 2, 0, 3)
        h = s[0].contiguous()
        cell = s[1].contiguous() if self.lstm else None
        return DecoderState(hidden=h, cell=cell, context=c)
