"""Token-bucketed batches and padding.

Training batches: shuffle, cut into pools, sort each pool by length, cut the pool
into batches of at most `batch_tokens` padded tokens, shuffle the batches. The
order is a pure function of (seed, epoch), so resuming at batch k of an epoch
replays exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import numpy as np

_POOL = 100  # batches per sorting pool: similar lengths together, still shuffled


def _cut(
    order: np.ndarray,
    size: np.ndarray,
    batch_tokens: int,
    batch_sents: int,
    max_sents: int = 0,
):
    """Split an ordered index array into consecutive batches: at most
    `batch_sents` sentences if set, else `batch_tokens` padded tokens, and never
    more than `max_sents` sentences if that is set."""
    batches, start, longest = [], 0, 0
    for i in range(len(order)):
        longest_i = max(longest, size[order[i]])
        n = i - start + 1
        full = (n > batch_sents) if batch_sents else (longest_i * n > batch_tokens)
        full = full or (max_sents > 0 and n > max_sents)
        if full and i > start:
            batches.append(order[start:i])
            start, longest_i = i, size[order[i]]
        longest = longest_i
    if start < len(order):
        batches.append(order[start:])
    return batches


def make_batches(
    src_len: np.ndarray,
    tgt_len: np.ndarray,
    batch_tokens: int,
    batch_sentences: int = 0,
    seed: int | None = None,
    epoch: int = 0,
    max_sentences: int = 0,
) -> list[np.ndarray]:
    """Index arrays, one per batch. `seed=None`: no shuffling, sorted by length.
    `max_sentences` caps the sentences of a batch on top of its token budget."""
    size = np.maximum(src_len, tgt_len) + 1
    n = len(size)
    if seed is None:
        order = np.lexsort((tgt_len, src_len))
        return _cut(order, size, batch_tokens, batch_sentences, max_sentences)
    rng = np.random.default_rng([seed, epoch])
    perm = rng.permutation(n)
    per_batch = batch_sentences or max(1, batch_tokens // max(1, int(size.mean())))
    pool = per_batch * _POOL
    batches = []
    for p in range(0, n, pool):
        chunk = perm[p : p + pool]
        chunk = chunk[np.lexsort((tgt_len[chunk], src_len[chunk]))]
        batches.extend(_cut(chunk, size, batch_tokens, batch_sentences, max_sentences))
    return [batches[i] for i in rng.permutation(len(batches))]
