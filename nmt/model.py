"""The encoder-decoder of Cho et al. 2014 with a deep bidirectional LSTM encoder.

    src ─► Embedding ─► biLSTM (packed) ─► final fwd/bwd h of every layer
        ─► Bridge: c = tanh(W [h_1..h_L]) and decoder state s_0 = tanh(U c)
    y_{t-1} ─► Embedding ─► [e_{t-1}; c] ─► GRU/LSTM ─► h_t
        ─► readout tanh(A h_t + B e_{t-1} + C c) ─► vocabulary logits

With `conditioning: sutskever` the context only initialises the decoder and the
logits come from h_t alone (Sutskever et al. 2014). Because c is constant over
time, teacher-forced training runs the decoder in one fused RNN call.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from nmt.batching import Batch
from nmt.config import ModelConfig
from nmt.errors import NmtError
from nmt.tokenizer import PAD


@dataclass
class DecoderState:
    """Everything one decoding step needs; the batch dimension N is reorderable."""

    hidden: torch.Tensor  # [L, N, H]
    cell: torch.Tensor | None  # [L, N, H] for an LSTM decoder, else None
    context: torch.Tensor  # [N, C]
    # Search only (Cho conditioning): the context's constant share of the first
    # layer's input gates (bias included) and of the readout, computed once.
    ctx_gates: torch.Tensor | None = None  # [N, G * H]
    ctx_read: torch.Tensor | None = None  # [N, R]

    def reorder(self, index: torch.Tensor) -> DecoderState:
        """Select (and repeat) batch rows: beam search and finished sentences."""

        def rows(x: torch.Tensor | None, dim: int = 0) -> torch.Tensor | None:
            return None if x is None else x.index_select(dim, index)

        return DecoderState(
            hidden=rows(self.hidden, 1),
            cell=rows(self.cell, 1),
            context=rows(self.context),
            ctx_gates=rows(self.ctx_gates),
            ctx_read=rows(self.ctx_read),
        )


class Encoder(nn.Module):
    def __init__(
        self, vocab: int, embed_dim: int, hidden: int, layers: int, dropout: float
    ):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed_dim, padding_idx=PAD)
        self.dropout = nn.Dropout(dropout)
        self.rnn = nn.LSTM(
            embed_dim,
            hidden,
            layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.final_dim = 2 * layers * hidden

    def forward(self, src: torch.Tensor, src_len: torch.Tensor) -> torch.Tensor:
        """src [B, S], src_len [B] (CPU) -> final states [B, 2 * layers * hidden]."""
        x = self.dropout(self.embed(src))
        packed = pack_padded_sequence(
            x, src_len, batch_first=True, enforce_sorted=False
        )
        _, (h, _) = self.rnn(packed)  # h: [layers * 2, B, H], rows in input order
        return h.transpose(0, 1).reshape(src.size(0), -1)


class Bridge(nn.Module):
    """Encoder final states -> context c and the decoder's initial state."""

    def __init__(
        self, in_dim: int, context_dim: int, layers: int, hidden: int, lstm: bool
    ):
        super().__init__()
        self.to_context = nn.Linear(in_dim, context_dim)
        self.to_state = nn.Linear(context_dim, layers * hidden * (2 if lstm else 1))
        self.layers, self.hidden, self.lstm = layers, hidden, lstm

    def forward(self, final: torch.Tensor) -> DecoderState:
        c = torch.tanh(self.to_context(final))
        s = torch.tanh(self.to_state(c))  # [B, (2) * L * H]
        s = s.view(s.size(0), -1, self.layers, self.hidden).permute(1, 2, 0, 3)
        h = s[0].contiguous()
        cell = s[1].contiguous() if self.lstm else None
        return DecoderState(hidden=h, cell=cell, context=c)


class Decoder(nn.Module):
    def __init__(
        self,
        vocab: int,
        embed_dim: int,
        context_dim: int,
        hidden: int,
        layers: int,
        rnn_type: str,
        conditioning: str,
        readout: int,
        dropout: float,
    ):
        super().__init__()
        self.cho = conditioning == "cho"
        self.lstm = rnn_type == "lstm"
        self.embed = nn.Embedding(vocab, embed_dim, padding_idx=PAD)
        self.dropout = nn.Dropout(dropout)
        rnn = nn.LSTM if self.lstm else nn.GRU
        in_dim = embed_dim + (context_dim if self.cho else 0)
        self.rnn = rnn(
            in_dim,
            hidden,
            layers,
            batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.read_h = nn.Linear(hidden, readout)
        if self.cho:
            self.read_e = nn.Linear(embed_dim, readout, bias=False)
            self.read_c = nn.Linear(context_dim, readout, bias=False)
        self.out = nn.Linear(readout, vocab)

    def _rnn_input(self, e: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        if not self.cho:
            return e
        return torch.cat([e, context.unsqueeze(1).expand(-1, e.size(1), -1)], dim=-1)

    def _logits(
        self, h: torch.Tensor, e: torch.Tensor, c: torch.Tensor
    ) -> torch.Tensor:
        """h [..., H], e [..., E], c [..., C] (broadcastable) -> [..., V]."""
        r = self.read_h(self.dropout(h))
        if self.cho:
            r = r + self.read_e(e) + self.read_c(c)
        return self.out(self.dropout(torch.tanh(r)))

    def _rnn_state(self, state: DecoderState):
        return (state.hidden, state.cell) if self.lstm else state.hidden

    def forward(
        self, tgt_in: torch.Tensor, state: DecoderState, mask: torch.Tensor
    ) -> torch.Tensor:
        """Teacher forcing. tgt_in [B, T], mask [B, T] -> logits [n_real, V]."""
        e = self.dropout(self.embed(tgt_in))
        h, _ = self.rnn(self._rnn_input(e, state.context), self._rnn_state(state))
        rows = mask.nonzero(as_tuple=True)  # only real positions reach the vocabulary
        return self._logits(h[rows], e[rows], state.context[rows[0]])

    def step(
        self, prev: torch.Tensor, state: DecoderState
    ) -> tuple[torch.Tensor, DecoderState]:
        """prev [N] token ids -> log-probabilities [N, V] (float32), next state.

        For inference (no dropout). The cells are written out so that the
        context's share of the input gates and readout is computed once per
        sentence instead of at every step; the result equals the fused `forward`.
        """
        if not self.cho:
            e = self.embed(prev).unsqueeze(1)
            h, new = self.rnn(e, self._rnn_state(state))
            hidden, cell = new if self.lstm else (new, None)
            logits = self._logits(h[:, 0], e[:, 0], state.context)
            return F.log_softmax(logits.float(), dim=-1), replace(
                state, hidden=hidden, cell=cell
            )
        if state.ctx_gates is None:
            state = self._precompute(state)
        e = self.embed(prev)
        x, hs, cs = e, [], []
        for k in range(self.rnn.num_layers):
            w_ih = getattr(self.rnn, f"weight_ih_l{k}")
            w_hh = getattr(self.rnn, f"weight_hh_l{k}")
            b_hh = getattr(self.rnn, f"bias_hh_l{k}")
            if k == 0:  # [e; c]: the c part is in ctx_gates
                gi = torch.addmm(state.ctx_gates, e, w_ih[:, : e.size(1)].t())
            else:
                gi = F.linear(x, w_ih, getattr(self.rnn, f"bias_ih_l{k}"))
            gh = F.linear(state.hidden[k], w_hh, b_hh)
            if self.lstm:
                i, f, g, o = (gi + gh).chunk(4, dim=1)
                c = torch.sigmoid(f) * state.cell[k] + torch.sigmoid(i) * torch.tanh(g)
                x = torch.sigmoid(o) * torch.tanh(c)
                cs.append(c)
            else:
                i_r, i_z, i_n = gi.chunk(3, dim=1)
                h_r, h_z, h_n = gh.chunk(3, dim=1)
                r = torch.sigmoid(i_r + h_r)
                z = torch.sigmoid(i_z + h_z)
                n = torch.tanh(i_n + r * h_n)
                x = n + z * (state.hidden[k] - n)
            hs.append(x)
        r = self.read_h(x) + self.read_e(e) + state.ctx_read
        logits = self.out(torch.tanh(r))
        new = replace(
            state,
            hidden=torch.stack(hs),
            cell=torch.stack(cs) if self.lstm else None,
        )
        return F.log_softmax(logits.float(), dim=-1), new

    def _precompute(self, state: DecoderState) -> DecoderState:
        w_ih, b_ih = self.rnn.weight_ih_l0, self.rnn.bias_ih_l0
        e_dim = self.embed.embedding_dim
        gates = F.linear(state.context, w_ih[:, e_dim:], b_ih)
        return replace(state, ctx_gates=gates, ctx_read=self.read_c(state.context))


class Seq2Seq(nn.Module):
    def __init__(self, encoder: Encoder, bridge: Bridge, decoder: Decoder):
        super().__init__()
        self.encoder, self.bridge, self.decoder = encoder, bridge, decoder

    def encode(self, src: torch.Tensor, src_len: torch.Tensor) -> DecoderState:
        return self.bridge(self.encoder(src, src_len))

    def logits(self, batch: Batch) -> torch.Tensor:
        """Logits [n_real_target_tokens, V], in row-major order of batch.tgt_out."""
        state = self.encode(batch.src, batch.src_len)
        return self.decoder(batch.tgt_in, state, batch.tgt_out != PAD)

    def forward(self, batch: Batch, label_smoothing: float = 0.0) -> torch.Tensor:
        """Summed cross-entropy over the real target tokens (teacher forcing)."""
        logits = self.logits(batch)
        gold = batch.tgt_out[batch.tgt_out != PAD]
        return F.cross_entropy(
            logits.float(), gold, label_smoothing=label_smoothing, reduction="sum"
        )


def _init(model: nn.Module, scheme: str, rng: float) -> None:
    for p in model.parameters():
        if scheme == "xavier" and p.dim() > 1:
            nn.init.xavier_uniform_(p)
        elif scheme == "xavier":
            nn.init.zeros_(p)
        else:
            nn.init.uniform_(p, -rng, rng)
    for m in model.modules():
        if isinstance(m, nn.LSTM):  # forget-gate bias 1 (gates are i, f, g, o)
            for name, p in m.named_parameters():
                if name.startswith("bias_ih"):
                    h = p.size(0) // 4
                    with torch.no_grad():
                        p[h : 2 * h].fill_(1.0)
                elif name.startswith("bias_hh"):
                    h = p.size(0) // 4
                    with torch.no_grad():
                        p[h : 2 * h].fill_(0.0)
        if isinstance(m, nn.Embedding):
            with torch.no_grad():
                m.weight[PAD].zero_()


def build_model(cfg: ModelConfig, src_vocab: int, tgt_vocab: int) -> Seq2Seq:
    enc, dec = cfg.encoder, cfg.decoder
    encoder = Encoder(src_vocab, cfg.embed_dim, enc.hidden, enc.layers, enc.dropout)
    context_dim = dec.hidden
    bridge = Bridge(
        encoder.final_dim, context_dim, dec.layers, dec.hidden, dec.type == "lstm"
    )
    readout = dec.readout if dec.conditioning == "cho" else dec.hidden
    if cfg.tie_embeddings and readout != cfg.embed_dim:
        raise NmtError(
            "model.tie_embeddings needs model.decoder.readout (or decoder.hidden for "
            "sutskever conditioning) equal to model.embed_dim "
            f"({readout} != {cfg.embed_dim})"
        )
    decoder = Decoder(
        tgt_vocab,
        cfg.embed_dim,
        context_dim,
        dec.hidden,
        dec.layers,
        dec.type,
        dec.conditioning,
        readout,
        dec.dropout,
    )
    model = Seq2Seq(encoder, bridge, decoder)
    _init(model, cfg.init, cfg.init_range)
    if cfg.tie_embeddings:
        decoder.out.weight = decoder.embed.weight
    return model
