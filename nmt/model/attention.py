"""Attention over the encoder's outputs: Bahdanau (additive) and Luong (dot, general).

The encoder-side part of every score (the keys) depends only on the source, so it
is computed once per batch (`keys`) and reused at every decoder step. Padding
positions get a score of -inf, hence a weight of exactly 0.

    bahdanau: score(q, m_s) = v . tanh(W q + U m_s)       (Bahdanau et al. 2015)
    general:  score(q, m_s) = q . (W m_s)                  (Luong et al. 2015)
    dot:      score(q, m_s) = q . m_s   (needs equal sizes)
"""

from __future__ import annotations

import torch
from torch import nn


class Attention(nn.Module):
    def __init__(
        self, kind: str, score: str, query_dim: int, memory_dim: int, hidden: int
    ):
        super().__init__()
        self.additive = kind == "bahdanau"
        if self.additive:
            self.query = nn.Linear(query_dim, hidden, bias=False)
            self.key = nn.Linear(memory_dim, hidden)
            self.v = nn.Linear(hidden, 1, bias=False)
        elif score == "general":
            self.key = nn.Linear(memory_dim, query_dim, bias=False)
        elif memory_dim != query_dim:  # config.validate refuses such a recipe
            raise ValueError(
                f"dot attention needs equal sizes: {query_dim}, {memory_dim}"
            )
        else:
            self.key = None

    def keys(self, memory: torch.Tensor) -> torch.Tensor:
        """memory [N, S, M] -> keys [N, S, K], once per batch."""
        return memory if self.key is None else self.key(memory)

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        memory: torch.Tensor,
        mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """query [N, Q] (one step) or [N, T, Q] (all steps), mask [N, S] (True on
        real tokens) -> context [N, (T,) M] and weights [N, (T,) S]."""
        one = query.dim() == 2
        q = query.unsqueeze(1) if one else query
        if self.additive:  # [N, T, S, A] -> [N, T, S]
            scores = self.v(
                torch.tanh(self.query(q).unsqueeze(2) + keys.unsqueeze(1))
            ).squeeze(-1)
        else:
            scores = torch.bmm(q, keys.transpose(1, 2))
        scores = scores.float().masked_fill(~mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=-1).to(memory.dtype)
        context = torch.bmm(weights, memory)
        if one:
            return context.squeeze(1), weights.squeeze(1)
        return context, weights

    def hypotheses(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        memory: torch.Tensor,
        mask: torch.Tensor,
        width: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One decoding step for N sentences of `width` hypotheses each: query
        [N * width, Q] -> context [N * width, M], weights [N * width, S]. A
        sentence's hypotheses attend together, as the steps of one query, so its
        keys and memory [N, S, *] are not copied per hypothesis."""
        if width == 1:
            return self(query, keys, memory, mask)
        q = query.view(-1, width, query.size(1))
        a, weights = self(q, keys, memory, mask)
        return a.reshape(query.size(0), -1), weights.reshape(query.size(0), -1)
