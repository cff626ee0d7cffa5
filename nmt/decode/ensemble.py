"""Ensembles: several models decode together, averaging log-probabilities per step.

`Ensemble` offers the same surface as `Seq2Seq` to the searches (`encode`,
`decoder.step`, `state.reorder`), so greedy and beam search work unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nmt.model.decoder import DecoderState
from nmt.model.seq2seq import Seq2Seq


@dataclass
class EnsembleState:
    states: list[DecoderState]

    def reorder(
        self,
        index: torch.Tensor,
        sentences: torch.Tensor | None = None,
        width: int = 1,
    ) -> EnsembleState:
        return EnsembleState([s.reorder(index, sentences, width) for s in self.states])


class Ensemble(nn.Module):
    def __init__(self, models: list[Seq2Seq]):
        super().__init__()
        self.models = nn.ModuleList(models)

    @property
    def decoder(self) -> Ensemble:
        """The searches call `model.decoder.step`: here that is the ensemble."""
        return self

    def encode(self, src: torch.Tensor, src_len: torch.Tensor) -> EnsembleState:
        return EnsembleState([m.encode(src, src_len) for m in self.models])

    def step(
        self, prev: torch.Tensor, state: EnsembleState, out: torch.Tensor | None = None
    ):
        """Mean of the members' log-probabilities [N, V] (`out` is not used)."""
        outs = [m.decoder.step(prev, s) for m, s in zip(self.models, state.states)]
        logp = torch.stack([o[0] for o in outs]).mean(dim=0)
        return logp, EnsembleState([o[1] for o in outs])
