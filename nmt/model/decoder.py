"""The decoder, its maths written once for teacher-forced training and decoding.

    x_t = [e_{t-1}; c (Cho); a_t (Bahdanau); r_{t-1} (input feeding)]
    h_t = GRU/LSTM(x_t, h_{t-1})              deep: layer k > 0 reads layer k - 1
    a_t = attend(h_t) (Luong)  or  attend(h_{t-1}) (Bahdanau: a_t enters x_t)
    r_t = tanh(A h_t + B e_{t-1} + C c + D a_t)     B, C: Cho only; D: attention
    p(y_t | y_<t, x) = softmax(W r_t + b)

`advance` is one step of this recurrence: decoding (`step`) and teacher-forced
training (`forward`) with Bahdanau attention or input feeding call it. Where no
recurrence runs through attention, training gets h_t for all t from one fused
nn.GRU / nn.LSTM call and runs attention and the readout over all positions at
once (tests/test_model.py: the same log-probabilities). Constant shares of the
gates and readout (bias, W_c c, C c) are computed once per batch (`start`); the
`products` go through a `Linear`, so that nmt/decode/fast.py runs this same
recurrence with packed weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import nn

from nmt.model.attention import Attention
from nmt.model.cells import gru_cell, lstm_cell
from nmt.model.fast import Dropout
from nmt.vocab import PAD

# (one of Decoder.products(), x [M, in]) -> x W^T + b [M, out]
Linear = Callable[[str, torch.Tensor], torch.Tensor]


@dataclass
class DecoderState:
    """Everything one decoding step needs, for N sentences of `width` hypotheses
    each (beam search; 1 otherwise). Per-hypothesis fields (PER_HYPOTHESIS) have
    N * width rows, a sentence's hypotheses next to each other; the others have N:
    a beam shares its sentence's context, memory and keys instead of copying them.
    """

    hidden: torch.Tensor  # [L, N * width, H]
    cell: torch.Tensor | None  # [L, N * width, H] for an LSTM decoder, else None
    context: torch.Tensor  # [N, C]
    memory: torch.Tensor | None = None  # [N, S, M] encoder outputs (attention)
    mask: torch.Tensor | None = None  # [N, S] True on real source tokens
    # The per-batch constants (`Decoder.start`): the first layer's input gates'
    # constant share (bias, and W_c c for Cho), the readout's (C c), the keys.
    gates: torch.Tensor | None = None  # [N, G * H]
    read: torch.Tensor | None = None  # [N, R]
    keys: torch.Tensor | None = None  # [N, S, K]
    feed: torch.Tensor | None = None  # [N * width, R] previous readout (feeding)
    weights: torch.Tensor | None = None  # [N * width, S] last attention weights
    width: int = 1

    def reorder(
        self,
        index: torch.Tensor,
        sentences: torch.Tensor | None = None,
        width: int = 1,
    ) -> DecoderState:
        """Select (and repeat) rows: beam search and finished sentences.

        The new hypotheses are rows `index` of this state's hypotheses, `width`
        per sentence; the new sentences are rows `sentences` of this state's
        sentences (None: the same sentences, left in place). Greedy search drops
        finished sentences with `reorder(keep, keep)`.
        """
        out: dict = {"width": width}
        for f in fields(self):
            x = getattr(self, f.name)
            if f.name == "width":
                continue
            own = f.name in PER_HYPOTHESIS
            if x is None or (not own and sentences is None):
                out[f.name] = x
            else:
                dim = 1 if f.name in ("hidden", "cell") else 0
                out[f.name] = x.index_select(dim, index if own else sentences)
        return DecoderState(**out)


PER_HYPOTHESIS = ("hidden", "cell", "feed", "weights")  # the rest: per sentence


def per_sentence(x: torch.Tensor, y: torch.Tensor, width: int) -> torch.Tensor:
    """x [N * width, D] + y [N, D]: each row of y added to its sentence's rows."""
    if width == 1:
        return x + y
    return (x.view(-1, width, x.size(1)) + y.unsqueeze(1)).view(x.shape)


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
        self.dropout = Dropout(dropout)
        # first-layer input columns: [e | c (cho) | a (bahdanau) | r_{t-1} (feeding)]
        self.widths = (
            embed_dim,
            context_dim if self.cho else 0,
            memory_dim if self.bahdanau else 0,
            readout if self.feeding else 0,
        )
        self.rnn = (nn.LSTM if self.lstm else nn.GRU)(
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

    def w_in(self, part: int) -> torch.Tensor:
        """The first layer's input weights for one column block of `widths`."""
        lo = sum(self.widths[:part])
        return self.rnn.weight_ih_l0[:, lo : lo + self.widths[part]]

    def products(self) -> list[str]:
        """The per-step products that go through a `Linear`: all but attention's
        own and the first layer's input products (slices of its weights)."""
        names = ["out", "read_h"] + (["read_a"] if self.attn is not None else [])
        for k in range(self.rnn.num_layers):
            names += [f"hh{k}"] + ([f"ih{k}"] if k > 0 else [])
        return names

    def product(self, name: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The weight [out, in] and bias [out] (or None) of one of `products`."""
        if name in ("out", "read_h", "read_a"):
            layer = getattr(self, name)
            return layer.weight, layer.bias
        kind, k = name[:2], name[2:]  # hh<k> or ih<k>: the RNN's layer k
        rnn = self.rnn
        return getattr(rnn, f"weight_{kind}_l{k}"), getattr(rnn, f"bias_{kind}_l{k}")

    def linear(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """The plain `Linear`: F.linear with the product's own parameters."""
        return F.linear(x, *self.product(name))

    def start(self, state: DecoderState, gates: bool = True) -> DecoderState:
        """Compute the per-batch constants (see DecoderState) once; `gates=False`
        for the fused training call, which feeds c to the RNN itself."""
        n = state.context.size(0)
        g = self.rnn.bias_ih_l0.expand(n, -1) if gates else None
        read = None
        if self.cho:
            if gates:
                g = torch.addmm(g, state.context, self.w_in(1).t())
            read = self.read_c(state.context)
        keys = None if self.attn is None else self.attn.keys(state.memory)
        feed = None  # r_0 = 0 with input feeding
        if self.feeding:
            feed = state.context.new_zeros(n, self.read_h.out_features)
        return replace(state, gates=g, read=read, keys=keys, feed=feed)

    def inputs(
        self, prev: torch.Tensor, state: DecoderState
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """prev [M] token ids -> their shares of the first layer's input gates,
        W_e e + `gates` [M, G * H], and of the readout, B e [M, R] (None unless
        Cho)."""
        e = self.dropout(self.embed(prev))
        if state.width == 1:
            gi = torch.addmm(state.gates, e, self.w_in(0).t())
        else:
            gi = per_sentence(e @ self.w_in(0).t(), state.gates, state.width)
        return gi, self.read_e(e) if self.cho else None

    def advance(
        self,
        gi: torch.Tensor,
        be: torch.Tensor | None,
        state: DecoderState,
        linear: Linear | None = None,
    ) -> tuple[torch.Tensor, DecoderState]:
        """One step of the recurrence for the M = N * width hypotheses, from gi
        [M, G * H] and be [M, R] (see `inputs`): the readout r_t [M, R] and the
        new state. `linear` runs the `products` (default: `self.linear`)."""
        linear = linear or self.linear
        a = weights = None
        attending = state.keys, state.memory, state.mask, state.width
        if self.bahdanau:  # attend with the previous top-layer state
            a, weights = self.attn.hypotheses(state.hidden[-1], *attending)
            gi = torch.addmm(gi, a, self.w_in(2).t())
        if self.feeding:
            gi = torch.addmm(gi, self.dropout(state.feed), self.w_in(3).t())
        x, hs, cs = None, [], []
        for k in range(self.rnn.num_layers):
            if k > 0:
                gi = linear(f"ih{k}", self.dropout(x))
            gh = linear(f"hh{k}", state.hidden[k])
            if self.lstm:
                x, c = lstm_cell(gi, gh, state.cell[k])
                cs.append(c)
            else:
                x = gru_cell(gi, gh, state.hidden[k])
            hs.append(x)
        if self.attn is not None and not self.bahdanau:  # Luong: attend with h_t
            a, weights = self.attn.hypotheses(x, *attending)
        r = self._readout(x, be, state.read, a, state.width, linear)
        return r, replace(
            state,
            hidden=torch.stack(hs),
            cell=torch.stack(cs) if self.lstm else None,
            feed=r if self.feeding else None,
            weights=weights,
        )

    def step(
        self, prev: torch.Tensor, state: DecoderState
    ) -> tuple[torch.Tensor, DecoderState]:
        """prev [N * width] token ids -> log-probabilities [N * width, V]
        (float32) and the next state; with dropout off the numbers of `forward`."""
        if state.gates is None:
            state = self.start(state)
        r, state = self.advance(*self.inputs(prev, state), state)
        logits = self.out(self.dropout(r))
        return F.log_softmax(logits.float(), dim=-1), state

    def forward(
        self, tgt_in: torch.Tensor, state: DecoderState, mask: torch.Tensor
    ) -> torch.Tensor:
        """Teacher forcing: tgt_in [B, T] (BOS + target ids), mask [B, T] (True on
        real positions) -> the (dropped-out) readouts r_t [n_real, R] of the real
        positions, row-major in tgt_in: only those reach the output layer."""
        e = self.dropout(self.embed(tgt_in))
        rows = mask.nonzero(as_tuple=True)
        if self.loop:
            r = self._looped(e, self.start(state))[rows]
        else:
            r = self._fused(e, self.start(state, gates=False), rows)
        return self.dropout(r)

    def _looped(self, e: torch.Tensor, state: DecoderState) -> torch.Tensor:
        """`advance` over the T positions of e [B, T, E] -> readouts [B, T, R];
        the previous words' shares computed for all positions up front."""
        gi = (e @ self.w_in(0).t()) + state.gates.unsqueeze(1)
        be = self.read_e(e) if self.cho else None
        outs = []
        for t in range(e.size(1)):
            r, state = self.advance(gi[:, t], None if be is None else be[:, t], state)
            outs.append(r)
        return torch.stack(outs, dim=1)

    def _fused(self, e: torch.Tensor, state: DecoderState, rows) -> torch.Tensor:
        """One nn.GRU / nn.LSTM call over e [B, T, E] (and c, for Cho), then
        attention and the readout at the real positions `rows` -> [n_real, R]."""
        x = e
        if self.cho:
            x = torch.cat([e, state.context.unsqueeze(1).expand(-1, e.size(1), -1)], -1)
        init = (state.hidden, state.cell) if self.lstm else state.hidden
        h, _ = self.rnn(x, init)
        a = None
        if self.attn is not None:  # Luong without input feeding: all steps at once
            a, _ = self.attn(h, state.keys, state.memory, state.mask)
            a = a[rows]
        # not read[rows[0]]: its backward adds the repeated rows with racing atomic adds
        read = None if state.read is None else state.read.index_select(0, rows[0])
        be = self.read_e(e[rows]) if self.cho else None
        return self._readout(h[rows], be, read, a, 1, self.linear)

    def _readout(self, h, be, read, a, width: int, linear: Linear) -> torch.Tensor:
        """r = tanh(A h + B e + C c + D a) for h [M, H] and a [M, A] (or None),
        be = B e [M, R] (None unless Cho) and read = C c [M / width, R]."""
        r = linear("read_h", self.dropout(h))
        if self.cho:
            r = per_sentence(r + be, read, width)
        if a is not None:
            r = r + linear("read_a", a)
        return torch.tanh(r)
