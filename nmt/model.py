"""The encoder-decoder of Cho et al. 2014 with a deep bidirectional LSTM encoder.

    src ─► Embedding ─► biLSTM (packed) ─► final fwd/bwd h of every layer
        ─► Bridge: c = tanh(W [h_1..h_L]) and decoder state s_0 = tanh(U c)
    y_{t-1} ─► Embedding ─► [e_{t-1}; c] ─► GRU/LSTM ─► h_t
        ─► readout r_t = tanh(A h_t + B e_{t-1} + C c) ─► vocabulary logits

With `conditioning: sutskever` the context only initialises the decoder and the
readout sees h_t alone (Sutskever et al. 2014). Because c is constant over time,
teacher-forced training runs the decoder in one fused RNN call.

Attention (an option, nmt/attention.py) adds a context a_t over the encoder's
outputs. Luong: a_t is computed from h_t and enters the readout (+ D a_t); without
input feeding training stays one fused RNN call followed by attention over all
steps at once. Input feeding (r_{t-1} enters the RNN) and Bahdanau (a_t computed
from the previous state enters the RNN) make step t depend on step t-1: those
train with a loop over time steps, their input projections computed for all steps
up front.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nmt.attention import Attention
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
    memory: torch.Tensor | None = None  # [N, S, M] encoder outputs (attention)
    mask: torch.Tensor | None = None  # [N, S] True on real source tokens
    # Computed once per batch by the decoder (`Decoder.start`): the constant share
    # of the first layer's input gates (bias, and W c for Cho conditioning), of the
    # readout (C c), and the attention keys.
    gates: torch.Tensor | None = None  # [N, G * H]
    read: torch.Tensor | None = None  # [N, R]
    keys: torch.Tensor | None = None  # [N, S, K]
    feed: torch.Tensor | None = None  # [N, R] previous readout (input feeding)
    weights: torch.Tensor | None = None  # [N, S] last step's attention weights

    def reorder(self, index: torch.Tensor) -> DecoderState:
        """Select (and repeat) batch rows: beam search and finished sentences."""
        out = {}
        for f in fields(self):
            x = getattr(self, f.name)
            dim = 1 if f.name in ("hidden", "cell") else 0
            out[f.name] = None if x is None else x.index_select(dim, index)
        return DecoderState(**out)


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
        self.output_dim = 2 * hidden

    def forward(
        self, src: torch.Tensor, src_len: torch.Tensor, outputs: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """src [B, S], src_len [B] (CPU) -> final states [B, 2 * layers * hidden]
        and, when asked for, the top layer's outputs [B, S, 2 * hidden]."""
        x = self.dropout(self.embed(src))
        packed = pack_padded_sequence(
            x, src_len, batch_first=True, enforce_sorted=False
        )
        out, (h, _) = self.rnn(packed)  # h: [layers * 2, B, H], rows in input order
        final = h.transpose(0, 1).reshape(src.size(0), -1)
        if not outputs:
            return final, None
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))
        return final, self.dropout(memory)


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
        attention: Attention | None = None,
        memory_dim: int = 0,
        input_feeding: bool = False,
    ):
        super().__init__()
        self.cho = conditioning == "cho"
        self.lstm = rnn_type == "lstm"
        self.attn = attention
        self.bahdanau = attention is not None and attention.additive
        self.feeding = attention is not None and not self.bahdanau and input_feeding
        # recurrence through attention: no single fused call over all steps
        self.loop = self.bahdanau or self.feeding
        self.embed = nn.Embedding(vocab, embed_dim, padding_idx=PAD)
        self.dropout = nn.Dropout(dropout)
        rnn = nn.LSTM if self.lstm else nn.GRU
        # first-layer input columns: [e | c (cho) | a (bahdanau) | r_{t-1} (feeding)]
        self.widths = (
            embed_dim,
            context_dim if self.cho else 0,
            memory_dim if self.bahdanau else 0,
            readout if self.feeding else 0,
        )
        self.rnn = rnn(
            sum(self.widths),
            hidden,
            layers,
            batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.read_h = nn.Linear(hidden, readout)
        if self.cho:
            self.read_e = nn.Linear(embed_dim, readout, bias=False)
            self.read_c = nn.Linear(context_dim, readout, bias=False)
        if attention is not None:
            self.read_a = nn.Linear(memory_dim, readout, bias=False)
        self.out = nn.Linear(readout, vocab)

    def _w_in(self, part: int) -> torch.Tensor:
        """The first layer's input weights for one column block of `widths`."""
        lo = sum(self.widths[:part])
        return self.rnn.weight_ih_l0[:, lo : lo + self.widths[part]]

    def start(self, state: DecoderState) -> DecoderState:
        """Compute the per-batch constants (see DecoderState) once."""
        n = state.context.size(0)
        gates = self.rnn.bias_ih_l0.expand(n, -1)
        read = None
        if self.cho:
            gates = torch.addmm(gates, state.context, self._w_in(1).t())
            read = self.read_c(state.context)
        keys = feed = None
        if self.attn is not None:
            keys = self.attn.keys(state.memory)
        if self.feeding:
            feed = state.context.new_zeros(n, self.read_h.out_features)
        return replace(state, gates=gates, read=read, keys=keys, feed=feed)

    def _readout(self, h, e, read, a) -> torch.Tensor:
        """tanh(A h + B e + C c + D a): h, e, a [..., *], read = C c broadcastable."""
        r = self.read_h(self.dropout(h))
        if self.cho:
            r = r + self.read_e(e) + read
        if a is not None:
            r = r + self.read_a(a)
        return torch.tanh(r)

    def forward(
        self, tgt_in: torch.Tensor, state: DecoderState, mask: torch.Tensor
    ) -> torch.Tensor:
        """Teacher forcing. tgt_in [B, T], mask [B, T] -> logits [n_real, V]."""
        e = self.dropout(self.embed(tgt_in))
        state = self.start(state)
        rows = mask.nonzero(as_tuple=True)  # only real positions reach the vocabulary
        if self.loop:
            gi = (e @ self._w_in(0).t()) + state.gates.unsqueeze(1)  # all steps at once
            outs = []
            for t in range(tgt_in.size(1)):
                r, state = self._advance(e[:, t], gi[:, t], state)
                outs.append(r)
            r = torch.stack(outs, dim=1)[rows]
            return self.out(self.dropout(r))
        x = e
        if self.cho:
            x = torch.cat([e, state.context.unsqueeze(1).expand(-1, e.size(1), -1)], -1)
        init = (state.hidden, state.cell) if self.lstm else state.hidden
        h, _ = self.rnn(x, init)
        a = None
        if self.attn is not None:  # Luong without input feeding: all steps at once
            a, _ = self.attn(h, state.keys, state.memory, state.mask)
            a = a[rows]
        read = None if state.read is None else state.read[rows[0]]
        r = self._readout(h[rows], e[rows], read, a)
        return self.out(self.dropout(r))

    def _advance(
        self, e: torch.Tensor, gi: torch.Tensor, state: DecoderState
    ) -> tuple[torch.Tensor, DecoderState]:
        """One step of the (deep) cell: e [N, E] the previous word's embedding and
        gi [N, G * H] its share of the first layer's input gates plus `gates`.
        Returns the readout r_t [N, R] and the new state."""
        a = weights = None
        if self.bahdanau:  # attend with the previous top-layer state
            a, weights = self.attn(
                state.hidden[-1], state.keys, state.memory, state.mask
            )
            gi = torch.addmm(gi, a, self._w_in(2).t())
        if self.feeding:
            gi = torch.addmm(gi, self.dropout(state.feed), self._w_in(3).t())
        x, hs, cs = None, [], []
        for k in range(self.rnn.num_layers):
            if k > 0:
                gi = F.linear(
                    self.dropout(x),
                    getattr(self.rnn, f"weight_ih_l{k}"),
                    getattr(self.rnn, f"bias_ih_l{k}"),
                )
            gh = F.linear(
                state.hidden[k],
                getattr(self.rnn, f"weight_hh_l{k}"),
                getattr(self.rnn, f"bias_hh_l{k}"),
            )
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
        if self.attn is not None and not self.bahdanau:  # Luong: attend with h_t
            a, weights = self.attn(x, state.keys, state.memory, state.mask)
        r = self._readout(x, e, state.read, a)
        new = replace(
            state,
            hidden=torch.stack(hs),
            cell=torch.stack(cs) if self.lstm else None,
            feed=r if self.feeding else None,
            weights=weights,
        )
        return r, new

    def step(
        self, prev: torch.Tensor, state: DecoderState
    ) -> tuple[torch.Tensor, DecoderState]:
        """prev [N] token ids -> log-probabilities [N, V] (float32), next state.

        The cells are written out so that the constant shares of the input gates
        and readout are computed once per batch (`start`) instead of at every
        step; with dropout off the result equals the fused `forward`.
        """
        if state.gates is None:
            state = self.start(state)
        e = self.dropout(self.embed(prev))
        gi = torch.addmm(state.gates, e, self._w_in(0).t())
        r, state = self._advance(e, gi, state)
        logits = self.out(self.dropout(r))
        return F.log_softmax(logits.float(), dim=-1), state


class Seq2Seq(nn.Module):
    def __init__(self, encoder: Encoder, bridge: Bridge, decoder: Decoder):
        super().__init__()
        self.encoder, self.bridge, self.decoder = encoder, bridge, decoder

    def encode(self, src: torch.Tensor, src_len: torch.Tensor) -> DecoderState:
        attend = self.decoder.attn is not None
        final, memory = self.encoder(src, src_len, outputs=attend)
        state = self.bridge(final)
        if attend:
            state = replace(state, memory=memory, mask=src != PAD)
        return state

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
    attention = None
    if cfg.attention != "none":
        attention = Attention(
            cfg.attention,
            cfg.attention_score,
            dec.hidden,
            encoder.output_dim,
            cfg.attention_hidden or dec.hidden,
        )
    own_readout = dec.conditioning == "cho" or attention is not None
    readout = dec.readout if own_readout else dec.hidden
    if cfg.tie_embeddings and readout != cfg.embed_dim:
        raise NmtError(
            "model.tie_embeddings needs model.decoder.readout (or decoder.hidden for "
            "sutskever conditioning without attention) equal to model.embed_dim "
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
        attention,
        encoder.output_dim,
        cfg.input_feeding,
    )
    model = Seq2Seq(encoder, bridge, decoder)
    _init(model, cfg.init, cfg.init_range)
    if cfg.tie_embeddings:
        decoder.out.weight = decoder.embed.weight
    return model
