"""The lexical table behind `decode.shortlist`: for every source piece, the target
pieces that co-occur with it most in the training pairs.

A pair's every source piece counts once with each of its target pieces; a piece
pair (s, t) scores by Dice's coefficient, 2 c(s, t) / (c(s) + c(t)), which ranks a
translation above a word that is merely frequent (the shortlist adds the most
frequent target pieces anyway). Counting is numpy over the flattened id columns,
a chunk of pairs at a time, on at most `MAX_PAIRS` pairs drawn at random: a
shortlist needs the common pieces' partners, not every pair of a large corpus.
Training writes the table into the model folder as `lexicon.safetensors`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nmt.data.rows import IdRows
from nmt.vocab import EOS

LEXICON = "lexicon.safetensors"
KEEP = 100  # candidates stored per source piece, best first
FREQUENT = 1000  # most frequent target pieces stored, most frequent first
MAX_PAIRS = 300_000  # pairs the counts are taken from
CHUNK = 20_000  # pairs counted at once (bounds the cross products' memory)


def _pairs(src, a, tgt, b, tgt_vocab: int) -> np.ndarray:
    """Keys s * V + t of every (source piece, target piece) of every pair."""
    ab = a * b
    total = int(ab.sum())
    pair = np.repeat(np.arange(len(a)), ab)
    pos = np.arange(total) - np.repeat(np.cumsum(ab) - ab, ab)
    src_start, tgt_start = np.cumsum(a) - a, np.cumsum(b) - b
    s = src[src_start[pair] + pos // b[pair]]
    t = tgt[tgt_start[pair] + pos % b[pair]]
    return s * tgt_vocab + t


def build(train, src_vocab: int, tgt_vocab: int, seed: int = 0) -> dict:
    """The table of a training split (columns src_ids, tgt_ids): `table` [src_vocab,
    KEEP] target ids (-1 where a piece has fewer partners) and `frequent`."""
    n = len(train)
    rows = np.arange(n)
    if n > MAX_PAIRS:
        rows = np.sort(np.random.default_rng(seed).choice(n, MAX_PAIRS, replace=False))
    data = IdRows(train)
    keys, counts = [], []
    c_src = np.zeros(src_vocab, np.int64)
    c_tgt = np.zeros(tgt_vocab, np.int64)
    for lo in range(0, len(rows), CHUNK):
        src, a = data.flat(rows[lo : lo + CHUNK], "src_ids")
        tgt, b = data.flat(rows[lo : lo + CHUNK], "tgt_ids")
        c_src += np.bincount(src, minlength=src_vocab)
        c_tgt += np.bincount(tgt, minlength=tgt_vocab)
        k, c = np.unique(_pairs(src, a, tgt, b, tgt_vocab), return_counts=True)
        keys.append(k)
        counts.append(c)
    k = np.concatenate(keys) if keys else np.zeros(0, np.int64)
    k, inverse = np.unique(k, return_inverse=True)
    c = np.bincount(inverse, weights=np.concatenate(counts) if counts else None)
    s, t = k // tgt_vocab, k % tgt_vocab
    dice = 2 * c / (c_src[s] + c_tgt[t])
    order = np.lexsort((-dice, s))  # by source piece, best partner first
    s, t = s[order], t[order]
    start = np.searchsorted(s, s, side="left")
    rank = np.arange(len(s)) - start
    keep = rank < KEEP
    table = np.full((src_vocab, KEEP), -1, np.int32)
    table[s[keep], rank[keep]] = t[keep]
    frequent = np.argsort(-c_tgt, kind="stable")[:FREQUENT].astype(np.int32)
    return {"table": torch.from_numpy(table), "frequent": torch.from_numpy(frequent)}


def write(directory: Path, train, src_vocab: int, tgt_vocab: int) -> Path:
    """Build the table of `train` and write it into `directory` (atomically)."""
    from nmt.checkpoint import save_checkpoint

    path = Path(directory) / LEXICON
    save_checkpoint({"model": build(train, src_vocab, tgt_vocab), "eos": EOS}, path)
    return path


def write_for(cfg, corpus) -> Path:
    """`nmt lexicon RECIPE`: the table of the recipe's prepared corpus, into its
    model folder, if that folder holds a model trained on this data (for models
    trained before training wrote the table)."""
    from nmt.errors import NmtError

    tok = corpus.tokenizer
    for name in {tok.src_model.name, tok.tgt_model.name}:
        mine, theirs = cfg.model_dir / name, tok.src_model.parent / name
        if not mine.is_file() or mine.read_bytes() != theirs.read_bytes():
            raise NmtError(
                f"{cfg.model_dir} holds no model trained on this recipe's data "
                f"({name} is missing or differs); train one first"
            )
    return write(cfg.model_dir, corpus.splits["train"], tok.src_vocab_size,
                 tok.tgt_vocab_size)  # fmt: skip
