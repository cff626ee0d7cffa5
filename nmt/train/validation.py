"""Validation during training: dev loss and perplexity (teacher forcing, the same
token-summed cross-entropy as training) and greedy dev BLEU (sacreBLEU)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from nmt.config import Config
from nmt.data.batching import make_batches
from nmt.data.corpus import Corpus
from nmt.decode.translator import translate_ids
from nmt.metrics import bleu
from nmt.model.batch import collate
from nmt.model.seq2seq import Seq2Seq


@torch.no_grad()
def dev_scores(
    model: Seq2Seq,
    corpus: Corpus,
    cfg: Config,
    device: torch.device,
    autocast: Callable,
) -> dict:
    """{"loss": mean token loss, "ppl", "bleu"} on the dev set; the model is left
    in training mode."""
    valid = corpus.splits["valid"]
    model.eval()
    total, n = 0.0, 0
    lens = valid.data.column("src_len").to_numpy()
    tlens = valid.data.column("tgt_len").to_numpy()
    for idx in make_batches(lens, tlens, cfg.train.batch_tokens):
        rows = valid[idx.tolist()]
        b = collate(rows["src_ids"], rows["tgt_ids"], cfg.data.reverse_source)
        with autocast():
            total += float(model(b.to(device)))
        n += b.n_tgt_tokens
    k = cfg.train.valid_bleu_sentences or len(valid)
    sub = valid.select(range(min(k, len(valid))))
    hyps = translate_ids(
        model,
        list(sub["src_ids"]),
        cfg.decode,
        cfg.data.reverse_source,
        device,
        beam=1,
    )
    text = corpus.tokenizer.decode_tgt([h[0][0] for h in hyps])
    model.train()
    loss = total / max(n, 1)
    return {
        "loss": loss,
        "ppl": math.exp(min(loss, 50)),
        "bleu": bleu(text, list(sub["tgt"])),
    }
