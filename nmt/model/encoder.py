"""The encoder: Embedding, then a deep bidirectional LSTM over the source.

src [B, S] ─► Embedding ─► biLSTM ─► final fwd/bwd h of every layer
                                     f = [h_1..h_L]      [B, 2 * L * H]
                                 └─► top-layer outputs    [B, S, 2 * H]
                                     (attention's memory, when asked for)
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nmt.model.fast import Dropout, padded_lstm
from nmt.vocab import PAD


class Encoder(nn.Module):
    def __init__(
        self, vocab: int, embed_dim: int, hidden: int, layers: int, dropout: float
    ):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed_dim, padding_idx=PAD)
        self.dropout = Dropout(dropout)
        self.rnn = nn.LSTM(
            embed_dim,
            hidden,
            layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.final_dim = 2 * layers * hidden
        self.output_dim = 2 * hidden

    def forward(
        self,
        src: torch.Tensor,
        src_len: torch.Tensor,
        outputs: bool = False,
        rnn: nn.Module | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """src [B, S], src_len [B] (CPU) -> final states [B, 2 * layers * hidden]
        and, when asked for, the top layer's outputs [B, S, 2 * hidden] (zeros
        after each sentence's end). `rnn` stands in for self.rnn on packed input
        (int8 decoding's quantized copy, nmt/decode/int8.py)."""
        x = self.dropout(self.embed(src))
        if rnn is None and bool((src_len == src.size(1)).all()):
            out, (h, _) = self.rnn(x)  # no padding: one fused call
        elif rnn is None and x.device.type == "cpu":
            # one oneDNN call per layer and direction
            out, h = padded_lstm(self.rnn, x, src_len, self.training)
        else:  # cuDNN (and a quantized LSTM) runs packed input in one call
            packed = pack_padded_sequence(
                x, src_len, batch_first=True, enforce_sorted=False
            )
            out, (h, _) = (rnn or self.rnn)(packed)
            if outputs:
                out, _ = pad_packed_sequence(
                    out, batch_first=True, total_length=src.size(1)
                )
        # h: [layers * 2, B, H], rows in input order
        final = h.transpose(0, 1).reshape(src.size(0), -1)
        if not outputs:
            return final, None
        return final, self.dropout(out)
