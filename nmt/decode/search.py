"""Greedy and beam search over `Decoder.step`, batched, dropping finished sentences.

Both take the encoded batch and a per-sentence maximum output length, and return
for each sentence a list of (token ids without EOS, score) best first. Scores are
summed log-probabilities; beam search divides by the GNMT length penalty
lp(n) = ((5 + n) / 6) ** alpha, n counting the EOS.
"""

from __future__ import annotations

import math

import torch

from nmt.model.seq2seq import Seq2Seq
from nmt.vocab import BOS, EOS

Hyps = list[list[tuple[list[int], float]]]


def max_lengths(src_len: torch.Tensor, a: float, b: int) -> torch.Tensor:
    """Output limit per sentence (in tokens, EOS included) from source lengths."""
    return (a * (src_len - 1).float() + b).floor().long().clamp(min=1)


def _penalty(length: int | torch.Tensor, alpha: float):
    return ((5.0 + length) / 6.0) ** alpha


def row_topk(
    x: torch.Tensor, k: int, chunk: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """`x.topk(k, dim=1)` for rows much wider than k: the same values (on ties the
    indices may differ), faster on CPU, where a maximum over each run of `chunk`
    columns is cheap and torch.topk is not. The k runs with the largest maxima
    hold the k largest values, so only their k * chunk columns are ranked."""
    n, v = x.shape
    runs = v // chunk
    if x.device.type != "cpu" or runs < 4 * k:
        return x.topk(k, dim=1)
    main = runs * chunk
    best = x[:, :main].view(n, runs, chunk).amax(dim=2).topk(k, dim=1).indices
    step = torch.arange(chunk, device=x.device)
    cols = (best.unsqueeze(2) * chunk + step).view(n, k * chunk)
    if main < v:  # the columns after the last full run are always candidates
        rest = torch.arange(main, v, device=x.device).expand(n, -1)
        cols = torch.cat([cols, rest], dim=1)
    values, j = x.gather(1, cols).topk(k, dim=1)
    return values, cols.gather(1, j)


def row_argmax(x: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """`x.argmax(dim=1)` (each row's first maximum), faster on CPU for wide
    rows, where torch's argmax is not vectorised but its amax is ([400, 8000] on
    2 threads: 4 ms against 0.2 ms). The first run of `chunk` columns that holds
    the row's maximum is found from the runs' maxima, and the argmax is taken
    within it (0.9 ms in all)."""
    n, v = x.shape
    runs = v // chunk
    if x.device.type != "cpu" or runs < 4:
        return x.argmax(dim=1)
    main = runs * chunk
    run = x[:, :main].view(n, runs, chunk).amax(dim=2).argmax(dim=1)
    cols = run.unsqueeze(1) * chunk + torch.arange(chunk, device=x.device)
    best = cols.gather(1, x.gather(1, cols).argmax(dim=1, keepdim=True)).squeeze(1)
    if main < v:  # the columns after the last full run win only if strictly larger
        value, j = x[:, main:].max(dim=1)
        later = value > x.gather(1, best.unsqueeze(1)).squeeze(1)
        best = torch.where(later, j + main, best)
    return best


@torch.no_grad()
def greedy(
    model: Seq2Seq, src: torch.Tensor, src_len: torch.Tensor, max_len: torch.Tensor
) -> Hyps:
    state = model.encode(src, src_len)
    n = src.size(0)
    dev = src.device
    alive = torch.arange(n, device=dev)  # original row of each active sentence
    limit = max_len.to(dev)
    prev = torch.full((n,), BOS, dtype=torch.long, device=dev)
    score = torch.zeros(n, device=dev)
    tokens = torch.zeros(n, int(max_len.max()), dtype=torch.long, device=dev)
    length = torch.zeros(n, dtype=torch.long, device=dev)
    buf = None  # the steps' [rows, V] scores, one buffer for the whole batch
    for t in range(int(max_len.max())):
        out = None if buf is None else buf[: prev.size(0)]
        logp, state = model.decoder.step(prev, state, out)
        if buf is None:
            buf = torch.empty_like(logp)
        tok = row_argmax(logp)
        tok = torch.where(limit[alive] <= t + 1, torch.full_like(tok, EOS), tok)
        best = logp.gather(1, tok.unsqueeze(1)).squeeze(1)
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
    model: Seq2Seq,
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
    buf = None  # the steps' [rows, V] scores, one buffer for the whole batch
    for t in range(int(max_len.max())):
        out = None if buf is None else buf[: prev.size(0)]
        logp, state = model.decoder.step(prev, state, out)  # [m * w, V]
        if buf is None:
            buf = logp.new_empty(n * k, logp.size(1))
        m, w = scores.shape
        # The global top 2K of score + logp is among each row's own top 2K, so
        # rank those [m * w, 2K] instead of all m * w * V candidates.
        row_s, row_i = row_topk(logp, min(2 * k, logp.size(1)))
        at_limit = limit[sent] <= t + 1
        if bool(at_limit.any()):  # only EOS may follow at the limit
            rows = at_limit.repeat_interleave(w)
            row_s[rows] = -math.inf
            row_s[rows, 0] = logp[rows, EOS]
            row_i[rows, 0] = EOS
        c = row_s.size(1)
        cand = (scores.unsqueeze(2) + row_s.view(m, w, c)).view(m, w * c)
        top_s, top_j = cand.topk(min(2 * k, w * c), dim=1)  # [m, 2K]
        origin = top_j // c
        tok = row_i.view(m, w * c).gather(1, top_j)
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
