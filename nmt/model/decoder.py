"""The decoder: one step API (`step`, `DecoderState.reorder`) shared by the searches,
and teacher-forced training (one fused RNN call when no recurrence runs through
attention, a step loop otherwise). See nmt/model.py for the whole picture."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import nn

from nmt.model.attention import Attention
from nmt.model.dropout import Dropout
from nmt.model.packed import Packed
from nmt.vocab import PAD


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
    # Computed once per batch by the decoder (`Decoder.start`): the constant share
    # of the first layer's input gates (bias, and W c for Cho conditioning), of the
    # readout (C c), and the attention keys.
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

TABLE_BYTES = 256 * 2**20  # largest per-word tables `Decoder.tables` builds


@dataclass
class DecodeTables:
    """Per-word constants for decoding (see `Decoder.tables`)."""

    key: tuple  # identity and version of the weights they were made from
    gates: torch.Tensor | None  # [V, G * H] W_e e for every target word e
    read: torch.Tensor | None  # [V, R] B e (Cho readout), else None
    linear: dict[str, Packed]  # the per-step products, packed (see `_mm`)


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
        self._tables: DecodeTables | None = None

    def _w_in(self, part: int) -> torch.Tensor:
        """The first layer's input weights for one column block of `widths`."""
        lo = sum(self.widths[:part])
        return self.rnn.weight_ih_l0[:, lo : lo + self.widths[part]]

    def start(self, state: DecoderState, gates: bool = True) -> DecoderState:
        """Compute the per-batch constants (see DecoderState) once; `gates=False`
        for the fused training call, which feeds c to the RNN itself."""
        n = state.context.size(0)
        g = self.rnn.bias_ih_l0.expand(n, -1) if gates else None
        read = None
        if self.cho:
            if gates:
                g = torch.addmm(g, state.context, self._w_in(1).t())
            read = self.read_c(state.context)
        keys = feed = None
        if self.attn is not None:
            keys = self.attn.keys(state.memory)
        if self.feeding:
            feed = state.context.new_zeros(n, self.read_h.out_features)
        return replace(state, gates=g, read=read, keys=keys, feed=feed)

    def _readout(
        self, h, be, read, a, width: int = 1, tab: DecodeTables | None = None
    ) -> torch.Tensor:
        """tanh(A h + B e + C c + D a): h, a [M, *], be = B e [M, R] (None unless
        Cho) and read = C c [M / width, R]."""
        r = self._mm(tab, "read_h", self.dropout(h))
        if self.cho:
            r = per_sentence(r + be, read, width)
        if a is not None:
            r = r + self._mm(tab, "read_a", a)
        return torch.tanh(r)

    def _linears(self) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
        """The weights and biases, by name, of the per-step products that decoding
        packs: all but attention's own and, with Bahdanau attention or input
        feeding, the first layer's product with a_t or r_{t-1} (a slice of its
        input weights, left to `addmm`)."""
        names = ["out", "read_h"] + (["read_a"] if self.attn is not None else [])
        for k in range(self.rnn.num_layers):
            names += [f"hh{k}"] + ([f"ih{k}"] if k > 0 else [])
        return {name: self._linear(name) for name in names}

    def _linear(self, name: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One entry of `_linears`."""
        if name == "out":
            return self.out.weight, self.out.bias
        if name == "read_h":
            return self.read_h.weight, self.read_h.bias
        if name == "read_a":
            return self.read_a.weight, None
        kind, k = name[:2], name[2:]  # hh<k> or ih<k>: the RNN's layer k
        return getattr(self.rnn, f"weight_{kind}_l{k}"), getattr(
            self.rnn, f"bias_{kind}_l{k}"
        )

    def _mm(self, tab: DecodeTables | None, name: str, x: torch.Tensor):
        """The product `name` of `_linears` applied to x: packed when decoding."""
        if tab is not None:
            return tab.linear[name](x)
        return F.linear(x, *self._linear(name))

    def forward(
        self, tgt_in: torch.Tensor, state: DecoderState, mask: torch.Tensor
    ) -> torch.Tensor:
        """Teacher forcing. tgt_in [B, T], mask [B, T] -> logits [n_real, V]."""
        return self.out(self.features(tgt_in, state, mask))

    def features(
        self, tgt_in: torch.Tensor, state: DecoderState, mask: torch.Tensor
    ) -> torch.Tensor:
        """Teacher forcing up to the output layer: the (dropped-out) readouts
        [n_real, R] of the real target positions, row-major in tgt_in."""
        e = self.dropout(self.embed(tgt_in))
        state = self.start(state, gates=self.loop)
        rows = mask.nonzero(as_tuple=True)  # only real positions reach the vocabulary
        if self.loop:
            gi = (e @ self._w_in(0).t()) + state.gates.unsqueeze(1)  # all steps at once
            be = self.read_e(e) if self.cho else None
            outs = []
            for t in range(tgt_in.size(1)):
                r, state = self._advance(
                    None if be is None else be[:, t], gi[:, t], state
                )
                outs.append(r)
            r = torch.stack(outs, dim=1)[rows]
            return self.dropout(r)
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
        be = self.read_e(e[rows]) if self.cho else None
        r = self._readout(h[rows], be, read, a)
        return self.dropout(r)

    def _attend(
        self, query: torch.Tensor, state: DecoderState
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """query [N * width, Q] -> context [N * width, M], weights [N * width, S]:
        a sentence's hypotheses attend together, as the steps of one query."""
        w = state.width
        if w == 1:
            return self.attn(query, state.keys, state.memory, state.mask)
        q = query.view(-1, w, query.size(1))
        a, weights = self.attn(q, state.keys, state.memory, state.mask)
        return a.reshape(query.size(0), -1), weights.reshape(query.size(0), -1)

    def _advance(
        self,
        be: torch.Tensor | None,
        gi: torch.Tensor,
        state: DecoderState,
        tab: DecodeTables | None = None,
    ) -> tuple[torch.Tensor, DecoderState]:
        """One step of the (deep) cell for the M = N * width hypotheses: be [M, R]
        the previous words' share of the readout (B e; None unless Cho) and gi
        [M, G * H] their share of the first layer's input gates plus `gates`.
        Returns the readout r_t [M, R] and the new state; `tab` when decoding."""
        a = weights = None
        if self.bahdanau:  # attend with the previous top-layer state
            a, weights = self._attend(state.hidden[-1], state)
            gi = torch.addmm(gi, a, self._w_in(2).t())
        if self.feeding:
            gi = torch.addmm(gi, self.dropout(state.feed), self._w_in(3).t())
        x, hs, cs = None, [], []
        for k in range(self.rnn.num_layers):
            if k > 0:
                gi = self._mm(tab, f"ih{k}", self.dropout(x))
            gh = self._mm(tab, f"hh{k}", state.hidden[k])
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
            a, weights = self._attend(x, state)
        r = self._readout(x, be, state.read, a, state.width, tab)
        new = replace(
            state,
            hidden=torch.stack(hs),
            cell=torch.stack(cs) if self.lstm else None,
            feed=r if self.feeding else None,
            weights=weights,
        )
        return r, new

    def step(
        self,
        prev: torch.Tensor,
        state: DecoderState,
        out: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, DecoderState]:
        """prev [N * width] token ids -> log-probabilities [N * width, V]
        (float32), next state. With `out` (a float32 [N * width, V] buffer) the
        log-probabilities may be written there and returned: the searches pass one
        buffer per batch, so that steps reuse memory instead of faulting in fresh
        pages for [rows, V] scores at every step.

        The cells are written out so that the constant shares of the input gates
        and readout are computed once per batch (`start`), and, when decoding, the
        previous word's shares are looked up per word (`tables`) instead of being
        multiplied at every step; with dropout off the result equals the fused
        `forward`.
        """
        if state.gates is None:
            state = self.start(state)
        w = state.width
        tab = self.tables()
        if tab is not None and tab.gates is not None:
            gi = per_sentence(tab.gates.index_select(0, prev), state.gates, w)
            be = None if tab.read is None else tab.read.index_select(0, prev)
        else:
            e = self.dropout(self.embed(prev))
            if w == 1:
                gi = torch.addmm(state.gates, e, self._w_in(0).t())
            else:
                gi = per_sentence(e @ self._w_in(0).t(), state.gates, w)
            be = self.read_e(e) if self.cho else None
        r, state = self._advance(be, gi, state, tab)
        if tab is None:
            logits = self.out(self.dropout(r))
            return F.log_softmax(logits.float(), dim=-1), state
        logits = tab.linear["out"](r)
        if out is None or logits.dtype != out.dtype:
            return F.log_softmax(logits.float(), dim=-1), state
        return torch.log_softmax(logits, dim=-1, out=out), state

    def tables(self) -> DecodeTables | None:
        """The constants of decoding, made once per set of weights (they are
        remade after any in-place update, such as an optimizer step); None while
        gradients or dropout are on.

        * Each target word's share of the first layer's input gates (W_e e) and of
          the readout (B e): a lookup of [M, G * H] rows replaces an [M, E] x
          [E, G * H] product per step (Multi30k test2016 on 2 CPU threads: greedy
          12% and beam 5 6% faster). None when they would exceed TABLE_BYTES
          (large vocabularies).
        * The weights of the per-step products packed for oneDNN (nmt/packed.py;
          on the peers' models greedy 5-15% and beam 5 10-17% faster).
        """
        if torch.is_grad_enabled() or (self.training and self.dropout.p > 0):
            return None
        linears = self._linears()
        params = [self.embed.weight, self.rnn.weight_ih_l0]
        params += [p for w, b in linears.values() for p in (w, b) if p is not None]
        if self.cho:
            params.append(self.read_e.weight)
        key = tuple((p.data_ptr(), p._version, p.dtype) for p in params)
        if self._tables is not None and self._tables.key == key:
            return self._tables
        vocab = self.embed.num_embeddings
        width = self.rnn.weight_ih_l0.size(0) + 2 * self.read_h.out_features
        small = vocab * width * self.embed.weight.element_size() <= TABLE_BYTES
        self._tables = None  # free the old ones first
        with torch.autocast(self.embed.weight.device.type, enabled=False):
            e = self.embed.weight
            self._tables = DecodeTables(
                key,
                e @ self._w_in(0).t() if small else None,
                self.read_e(e) if self.cho and small else None,
                {name: Packed(w, b) for name, (w, b) in linears.items()},
            )
        return self._tables
