"""Ensembles: several models decode together, averaging log-probabilities per step.

`Ensemble` is a `Stepper` over member steppers (one per model), so greedy and
beam search decode an ensemble as they decode one model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nmt.decode.search import Stepper, StepState


@dataclass
class EnsembleState:
    states: list[StepState]  # one per member

    def reorder(
        self,
        index: torch.Tensor,
        sentences: torch.Tensor | None = None,
        width: int = 1,
    ) -> EnsembleState:
        return EnsembleState([s.reorder(index, sentences, width) for s in self.states])


class Ensemble:
    def __init__(self, members: list[Stepper]):
        self.members = list(members)

    def encode(self, src: torch.Tensor, src_len: torch.Tensor) -> EnsembleState:
        return EnsembleState([m.encode(src, src_len) for m in self.members])

    def step(
        self, prev: torch.Tensor, state: EnsembleState
    ) -> tuple[torch.Tensor, EnsembleState]:
        """prev [M] ids -> the mean of the members' log-probabilities [M, V]."""
        outs = [m.step(prev, s) for m, s in zip(self.members, state.states)]
        logp = torch.stack([o[0] for o in outs]).mean(dim=0)
        return logp, EnsembleState([o[1] for o in outs])
