"""Forced decoding: log P(target | source) for given pairs, batched (Cho et al. 2014
used the encoder-decoder this way to score phrase pairs). Useful to filter noisy
corpora or rerank n-best lists."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from nmt.data.batching import make_batches
from nmt.decode.translator import Translator
from nmt.errors import NmtError
from nmt.model.batch import collate
from nmt.vocab import PAD


@torch.no_grad()
def score_pairs(
    tr: Translator, src: list[str], tgt: list[str], progress=None
) -> list[tuple[float, int]]:
    """(summed log-probability, target tokens including EOS) per pair, in order."""
    if len(src) != len(tgt):
        raise NmtError(f"source has {len(src)} lines but target has {len(tgt)}")
    if len(tr.models) > 1:
        raise NmtError("nmt score takes one model directory, not an ensemble")
    model = tr.models[0]
    s_ids, t_ids = tr.tokenizer.encode_src(src), tr.tokenizer.encode_tgt(tgt)
    s_len = np.array([len(s) for s in s_ids])
    t_len = np.array([len(t) for t in t_ids])
    out: list[tuple[float, int]] = [(0.0, 0)] * len(src)
    rev = tr.config.data.reverse_source
    for idx in make_batches(s_len, t_len, tr.config.decode.batch_tokens):
        rows = idx.tolist()
        b = collate([s_ids[r] for r in rows], [t_ids[r] for r in rows], rev).to(
            tr.device
        )
        logp = F.log_softmax(model.logits(b).float(), dim=-1)
        gold = b.tgt_out[b.tgt_out != PAD]
        tok_lp = logp.gather(1, gold.unsqueeze(1)).squeeze(1).cpu()
        counts = (b.tgt_out != PAD).sum(dim=1).tolist()
        for r, part in zip(rows, torch.split(tok_lp, counts)):
            out[r] = (float(part.double().sum()), len(part))
        if progress:
            progress(len(rows))
    return out


def corpus_perplexity(scores: list[tuple[float, int]]) -> float:
    total = sum(lp for lp, _ in scores)
    n = sum(k for _, k in scores)
    return math.exp(-total / max(n, 1))
