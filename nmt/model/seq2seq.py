"""The encoder-decoder of Cho et al. 2014 with a deep bidirectional LSTM encoder,
and its training loss.

    src ─► Encoder (nmt/model/encoder.py) ─► final fwd/bwd h of every layer f
        ─► Bridge (bridge.py): context c and decoder state s_0
    y_{t-1} ─► Decoder (decoder.py): [e_{t-1}; c] ─► GRU/LSTM ─► h_t
        ─► readout r_t = tanh(A h_t + B e_{t-1} + C c) ─► vocabulary logits

With `conditioning: sutskever` the source only initialises the decoder, through
a linear s_0 (see Bridge), and the readout sees h_t alone (Sutskever et al.
2014). Attention (an option, attention.py) adds a context a_t over the encoder's
outputs: Luong (from h_t, into the readout, optionally fed back into the RNN)
or Bahdanau (from h_{t-1}, into the RNN). `build_model` maps the config to
these modules; they take plain arguments.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from nmt.config import ModelConfig
from nmt.model.attention import Attention
from nmt.model.batch import Batch
from nmt.model.bridge import Bridge
from nmt.model.decoder import Decoder, DecoderState
from nmt.model.encoder import Encoder
from nmt.model.fast import chunked_cross_entropy
from nmt.vocab import PAD

__all__ = ["Bridge", "Decoder", "DecoderState", "Encoder", "Seq2Seq", "build_model"]


class Seq2Seq(nn.Module):
    """Encoder, bridge and decoder. `encode` and `step` make it a `Stepper`
    (nmt/decode/search.py) that runs the plain maths; nmt/decode/fast.py builds
    the fast one from it."""

    def __init__(self, encoder: Encoder, bridge: Bridge, decoder: Decoder):
        super().__init__()
        self.encoder, self.bridge, self.decoder = encoder, bridge, decoder

    def encode(
        self, src: torch.Tensor, src_len: torch.Tensor, rnn: nn.Module | None = None
    ) -> DecoderState:
        """src [B, S] ids, src_len [B] (CPU) -> the decoder's initial state
        (`rnn`: a stand-in for the encoder's LSTM, see Encoder)."""
        attend = self.decoder.attn is not None
        final, memory = self.encoder(src, src_len, outputs=attend, rnn=rnn)
        state = self.bridge(final)
        if attend:
            state = replace(state, memory=memory, mask=src != PAD)
        return state

    def step(
        self, prev: torch.Tensor, state: DecoderState
    ) -> tuple[torch.Tensor, DecoderState]:
        """prev [N] ids -> log-probabilities [N, V] (float32), next state."""
        return self.decoder.step(prev, state)

    def logits(self, batch: Batch) -> torch.Tensor:
        """Teacher-forced logits [n_real_target_tokens, V], in row-major order of
        batch.tgt_out (forced scoring, and the fused-training tests)."""
        state = self.encode(batch.src, batch.src_len)
        return self.decoder.out(self.decoder(batch.tgt_in, state, batch.tgt_out != PAD))

    def forward(self, batch: Batch, label_smoothing: float = 0.0) -> torch.Tensor:
        """Summed cross-entropy over the real target tokens (teacher forcing),
        the output layer and the loss over chunks of positions (nmt/model/fast.py).
        """
        mask = batch.tgt_out != PAD
        r = self.decoder(batch.tgt_in, self.encode(batch.src, batch.src_len), mask)
        return chunked_cross_entropy(
            self.decoder.out, r, batch.tgt_out[mask], label_smoothing
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
