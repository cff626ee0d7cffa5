"""Greedy and beam search over a `Stepper`, batched, dropping finished sentences.

Both take a stepper, a source batch and a per-sentence maximum output length, and
return for each sentence a list of (token ids without EOS, score) best first.
Scores are summed log-probabilities; beam search divides by the GNMT length
penalty lp(n) = ((5 + n) / 6) ** alpha, n counting the EOS.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch

from nmt.decode.fast import row_argmax, row_topk
from nmt.vocab import BOS, EOS

Hyps = list[list[tuple[list[int], float]]]


class StepState(Protocol):
    def reorder(
        self,
        index: torch.Tensor,
        sentences: torch.Tensor | None = None,
        width: int = 1,
    ) -> StepState:
        """The state of hypotheses `index` (`width` per sentence) of sentences
        `sentences` (None: the same, in place); see DecoderState.reorder."""
        ...


class Stepper(Protocol):
    """What the searches decode with: a model (`Seq2Seq`, the plain maths), its
    `FastStepper` (nmt/decode/fast.py) or an `Ensemble` of steppers."""

    def encode(self, src: torch.Tensor, src_len: torch.Tensor) -> StepState:
        """src [N, S] ids, src_len [N] (CPU) -> the state before the first word."""
        ...

    def step(
        self, prev: torch.Tensor, state: StepState
    ) -> tuple[torch.Tensor, StepState]:
        """prev [M] ids -> log-probabilities [M, V] (float32), next state. The
        log-probabilities need only stay valid until the next step."""
        ...


def _columns(model: Stepper) -> tuple[torch.Tensor | None, int]:
    """(the piece id of each log-probability column, EOS's column): a stepper
    with a vocabulary shortlist (nmt/decode/shortlist.py) scores its batch's
    candidates only, EOS first; others score the whole vocabulary (None, EOS)."""
    columns = getattr(model, "columns", None)
    return columns, EOS if columns is None else 0


def max_lengths(src_len: torch.Tensor, a: float, b: int) -> torch.Tensor:
    """Output limit per sentence (in tokens, EOS included) from source lengths."""
    return (a * (src_len - 1).float() + b).floor().long().clamp(min=1)


def _penalty(length: int | torch.Tensor, alpha: float):
    return ((5.0 + length) / 6.0) ** alpha


@torch.no_grad()
def greedy(
    model: Stepper, src: torch.Tensor, src_len: torch.Tensor, max_len: torch.Tensor
) -> Hyps:
    state = model.encode(src, src_len)
    columns, eos = _columns(model)
    n = src.size(0)
    dev = src.device
    alive = torch.arange(n, device=dev)  # original row of each active sentence
    limit = max_len.to(dev)
    prev = torch.full((n,), BOS, dtype=torch.long, device=dev)
    score = torch.zeros(n, device=dev)
    tokens = torch.zeros(n, int(max_len.max()), dtype=torch.long, device=dev)
    length = torch.zeros(n, dtype=torch.long, device=dev)
    for t in range(int(max_len.max())):
        logp, state = model.step(prev, state)
        col = row_argmax(logp)  # the first maximum, on ties
        col = torch.where(limit[alive] <= t + 1, torch.full_like(col, eos), col)
        best = logp.gather(1, col.unsqueeze(1)).squeeze(1)
        tok = col if columns is None else columns[col]
        score[alive] += best
        tokens[alive, t] = tok
        done = tok == EOS
        length[alive[done]] = t
        if bool(done.all()):
            break
        if bool(done.any()):
            keep = (~done).nonzero(as_tuple=True)[0]
            state, alive, tok = state.reorder(keep, keep), alive[keep], tok[keep]
        prev = tok
    tok_cpu, len_cpu, sc = tokens.tolist(), length.tolist(), score.tolist()
    return [[(tok_cpu[i][: len_cpu[i]], sc[i])] for i in range(n)]


@torch.no_grad()
def beam_search(
    model: Stepper,
    src: torch.Tensor,
    src_len: torch.Tensor,
    max_len: torch.Tensor,
    beam: int,
    alpha: float = 1.0,
    nbest: int = 1,
    stop: str = "exact",
) -> Hyps:
    """All sentences x beams advance together in one [n * K] batch.

    A sentence stops at its length limit, or when its nbest-th finished hypothesis
    cannot be beaten by any live one: scores only fall as a hypothesis grows, so
    none can end above its score normalised at the length limit (`stop="exact"`).
    `stop="early"` normalises at the current length instead, as if the live
    hypotheses ended now (Hugging Face's default): fewer steps, not exact.
    """
    k, n, dev = beam, src.size(0), src.device
    nbest = min(nbest, k)
    # one live hypothesis (BOS) per sentence at first: width 1, then K
    state = model.encode(src, src_len)
    columns, eos = _columns(model)
    scores = torch.zeros(n, 1, device=dev)  # live hypotheses, summed log-probs
    hist = torch.zeros(n, 0, dtype=torch.long, device=dev)
    prev = torch.full((n,), BOS, dtype=torch.long, device=dev)
    sent = torch.arange(n, device=dev)  # original index of each active sentence
    limit = max_len.to(dev)
    # bound on the normalised score any continuation can reach: s / lp(limit)
    lp_limit = (
        _penalty(limit.float(), alpha) if alpha > 0 else torch.ones(n, device=dev)
    )
    exact = stop == "exact"
    fin_top = torch.full((n, nbest), -math.inf, device=dev)  # best finished, sorted
    finished: list[list[tuple[list[int], float]]] = [[] for _ in range(n)]
    for t in range(int(max_len.max())):
        logp, state = model.step(prev, state)  # [m * w, V]
        m, w = scores.shape
        # The global top 2K of score + logp is among each row's own top 2K, so
        # rank those [m * w, 2K] instead of all m * w * V candidates.
        row_s, row_i = row_topk(logp, min(2 * k, logp.size(1)))
        at_limit = limit[sent] <= t + 1
        if bool(at_limit.any()):  # only EOS may follow at the limit
            rows = at_limit.repeat_interleave(w)
            row_s[rows] = -math.inf
            row_s[rows, 0] = logp[rows, eos]
            row_i[rows, 0] = eos
        c = row_s.size(1)
        cand = (scores.unsqueeze(2) + row_s.view(m, w, c)).view(m, w * c)
        top_s, top_j = cand.topk(min(2 * k, w * c), dim=1)  # [m, 2K]
        origin = top_j // c
        tok = row_i.view(m, w * c).gather(1, top_j)
        if columns is not None:  # column -> piece id
            tok = columns[tok]
        is_eos = tok == EOS
        # EOS candidates ranked in the top K finish
        fin = is_eos & torch.isfinite(top_s)
        fin[:, k:] = False
        if bool(fin.any()):
            norm = top_s / _penalty(t + 1, alpha)
            fin_top = torch.cat([fin_top, norm.masked_fill(~fin, -math.inf)], dim=1)
            fin_top = fin_top.topk(nbest, dim=1).values
            r, j = fin.nonzero(as_tuple=True)
            toks = hist.index_select(0, r * w + origin[r, j]).tolist()
            for i, h, v in zip(sent[r].tolist(), toks, norm[r, j].tolist()):
                finished[i].append((h, v))
        # the K best non-EOS candidates stay alive
        live_s, pick = top_s.masked_fill(is_eos, -math.inf).topk(k, dim=1)
        origin, tok = origin.gather(1, pick), tok.gather(1, pick)
        index = (torch.arange(m, device=dev).unsqueeze(1) * w + origin).view(-1)
        hist = torch.cat([hist.index_select(0, index), tok.view(-1, 1)], dim=1)
        scores, prev = live_s, tok.view(-1)
        # a sentence is done when its nbest-th finished hypothesis beats the bound
        best_live = live_s[:, 0]
        done = at_limit | ~torch.isfinite(best_live)
        bound = lp_limit[sent] if exact else _penalty(t + 1, alpha)
        done |= fin_top[:, -1] >= best_live / bound
        if bool(done.all()):
            break
        keep = None  # the per-sentence state stays in place unless some leave
        if bool(done.any()):
            keep = (~done).nonzero(as_tuple=True)[0]
            rows = (keep.unsqueeze(1) * k + torch.arange(k, device=dev)).view(-1)
            index, hist, prev = index[rows], hist[rows], prev[rows]
            scores, sent, fin_top = scores[keep], sent[keep], fin_top[keep]
        state = state.reorder(index, keep, k)
    out = []
    for f in finished:
        f.sort(key=lambda h: -h[1])
        out.append(f[:nbest])
    return out
