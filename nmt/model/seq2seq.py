"""The encoder-decoder of Cho et al. 2014 with a deep bidirectional LSTM encoder.

    src ─► Embedding ─► biLSTM ─► final fwd/bwd h of every layer: f = [h_1..h_L]
        ─► Bridge: c = tanh(W f) and decoder state s_0 = tanh(U c)
    y_{t-1} ─► Embedding ─► [e_{t-1}; c] ─► GRU/LSTM ─► h_t
        ─► readout r_t = tanh(A h_t + B e_{t-1} + C c) ─► vocabulary logits

With `conditioning: sutskever` the source only initialises the decoder, through
a linear s_0 = V f + b (see Bridge), and the readout sees h_t alone (Sutskever
et al. 2014). Because c is constant over time, teacher-forced training runs the
decoder in one fused RNN call.

Attention (an option, nmt/attention.py) adds a context a_t over the encoder's
outputs. Luong: a_t is computed from h_t and enters the readout (+ D a_t); without
input feeding training stays one fused RNN call followed by attention over all
steps at once. Input feeding (r_{t-1} enters the RNN) and Bahdanau (a_t computed
from the previous state enters the RNN) make step t depend on step t-1: those
train with a loop over time steps, their input projections computed for all steps
up front.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nmt.config import ModelConfig
from nmt.errors import NmtError
from nmt.model.attention import Attention
from nmt.model.batch import Batch
from nmt.model.decoder import Decoder, DecoderState
from nmt.model.dropout import Dropout, dropout
from nmt.vocab import PAD

__all__ = ["Bridge", "Decoder", "DecoderState", "Encoder", "Seq2Seq", "build_model"]

LOSS_CHUNK = 4 * 2**20  # logits per chunk of the training loss (Seq2Seq.forward)


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
        self, src: torch.Tensor, src_len: torch.Tensor, outputs: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """src [B, S], src_len [B] (CPU) -> final states [B, 2 * layers * hidden]
        and, when asked for, the top layer's outputs [B, S, 2 * hidden] (zeros
        after each sentence's end)."""
        x = self.dropout(self.embed(src))
        if bool((src_len == src.size(1)).all()):  # no padding: one fused call
            out, (h, _) = self.rnn(x)
        elif x.device.type == "cpu" and torch.is_grad_enabled():
            out, h = self._padded(x, src_len)
        else:  # cuDNN runs packed input in one call; CPU inference: no backward
            packed = pack_padded_sequence(
                x, src_len, batch_first=True, enforce_sorted=False
            )
            out, (h, _) = self.rnn(packed)
            if outputs:
                out, _ = pad_packed_sequence(
                    out, batch_first=True, total_length=src.size(1)
                )
        # h: [layers * 2, B, H], rows in input order
        final = h.transpose(0, 1).reshape(src.size(0), -1)
        if not outputs:
            return final, None
        return final, self.dropout(out)

    def _padded(
        self, x: torch.Tensor, src_len: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`self.rnn` on padded x [B, S, E] as if packed: top outputs [B, S, 2H]
        (zeros after each sentence's end) and final h [layers * 2, B, H].

        On the CPU torch runs a packed LSTM through oneDNN only when all lengths
        are equal; otherwise it loops over time steps in ATen, and its backward
        fills a [tokens, 4H] buffer at every step: on Multi30k batches of mixed
        lengths the encoder's forward and backward took 1.2-2x as long. Here
        each layer and direction is one oneDNN call on padded input. The backward
        direction reads each sentence reversed within its length, so padding
        always follows the words and never reaches them: outputs and gradients
        are the packed ones, to float rounding.
        """
        b, s, _ = x.shape
        rnn, h = self.rnn, self.rnn.hidden_size
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
                    inp, (zeros, zeros), w, True, 1, 0.0, self.training, False, True
                )[0]
                finals.append(out.gather(1, last).squeeze(1))  # at each one's end
                halves.append(out.gather(1, flip.expand(b, s, h)) if suffix else out)
            x = torch.cat(halves, dim=2)
            if k < rnn.num_layers - 1:  # nn.LSTM's dropout between layers
                x = dropout(x, rnn.dropout, self.training)
        return x.masked_fill((steps >= n).unsqueeze(2), 0.0), torch.stack(finals)


class Bridge(nn.Module):
    """Encoder final states f -> the context c and the decoder's initial state s_0.

    Cho conditioning: c = tanh(W f) enters the decoder at every step, and
    s_0 = tanh(U c). Sutskever conditioning: the source reaches the decoder only
    through s_0, which is linear, s_0 = V f + b (h_0 and, for an LSTM, c_0), and
    c is f itself (the decoder reads it nowhere else). Through the two tanh
    layers, Adam drove s_0 into saturation within 80 updates on Multi30k (mean
    |h_0| 0.996, the same in every sentence), where no gradient reaches the
    encoder: the model never learnt to use the source (BENCHMARKS.md,
    "The Sutskever bridge").
    """

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
        if self.cho:
            c = torch.tanh(self.to_context(final))
            s = torch.tanh(self.to_state(c))  # [B, (2) * L * H]
        else:
            c, s = final, self.to_state(final)
        s = s.view(s.size(0), -1, self.layers, self.hidden).permute(1, 2, 0, 3)
        h = s[0].contiguous()
        cell = s[1].contiguous() if self.lstm else None
        return DecoderState(hidden=h, cell=cell, context=c)


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
        """Summed cross-entropy over the real target tokens (teacher forcing).

        The output layer and the loss run over chunks of target positions of
        LOSS_CHUNK logits each: the same sum, but each chunk's logits and their
        gradient (16 MB in float32) come from the allocator's heap and are reused,
        where a whole batch's (hundreds of MB) would be fresh pages at every step.
        """
        mask = batch.tgt_out != PAD
        r = self.decoder.features(
            batch.tgt_in, self.encode(batch.src, batch.src_len), mask
        )
        gold = batch.tgt_out[mask]
        rows = max(1, LOSS_CHUNK // self.decoder.out.out_features)
        loss = r.new_zeros((), dtype=torch.float32)
        for i in range(0, r.size(0), rows):
            logits = self.decoder.out(r[i : i + rows])
            loss = loss + F.cross_entropy(
                logits.float(),
                gold[i : i + rows],
                label_smoothing=label_smoothing,
                reduction="sum",
            )
        return loss


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
    cho = dec.conditioning == "cho"
    context_dim = dec.hidden if cho else encoder.final_dim
    bridge = Bridge(
        encoder.final_dim,
        context_dim,
        dec.layers,
        dec.hidden,
        dec.type == "lstm",
        cho,
    )
    if cfg.input_feeding and cfg.attention != "luong":
        raise NmtError(
            "model.input_feeding: true needs model.attention: luong "
            f"(got {cfg.attention})"
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
