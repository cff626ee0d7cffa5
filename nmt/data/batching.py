"""Token-bucketed batch order: which pairs train (or decode) together.

Training batches: shuffle, cut into pools, sort each pool by length, cut the pool
into batches of at most `batch_tokens` padded tokens, shuffle the batches. The
order is a pure function of (seed, epoch), so resuming at batch k of an epoch
replays exactly the batches an uninterrupted run would have seen. Padding is
nmt.model.batch.collate's.

The cutting is greedy: a batch takes the next pair while its sentence count times
its longest padded size stays within `batch_tokens` (or while it holds at most
`batch_sentences`, when that is set), never more than `max_sentences` pairs when
that is set; a pair too long for the budget forms a batch of its own. It runs as
numpy over windows of sizes, looping in Python once per batch, never per pair,
so an epoch of millions of pairs is cut in seconds. Each batch is a view into one
int64 index array per pool (or per call), so no per-pair Python objects are kept.
"""

from __future__ import annotations

import numpy as np

_POOL = 100  # batches per sorting pool: similar lengths together, still shuffled
_WINDOW = 64  # first guess at a batch's length; it adapts batch by batch


def _cut(
    order: np.ndarray,
    size: np.ndarray,
    batch_tokens: int,
    batch_sents: int,
    max_sents: int = 0,
) -> list[np.ndarray]:
    """Split an ordered index array into consecutive batches: at most
    `batch_sents` sentences if set, else `batch_tokens` padded tokens, and never
    more than `max_sents` sentences if that is set. Every batch holds at least
    one pair. The batches are views into `order`."""
    n = len(order)
    cap = n  # most pairs one batch may hold
    if max_sents > 0:
        cap = min(cap, max_sents)
    if batch_sents:
        cap = min(cap, batch_sents)
    cap = max(cap, 1)
    if batch_sents:  # a sentence budget: the tokens do not matter
        return [order[s : s + cap] for s in range(0, n, cap)]
    sizes = size[order]
    batches, start, window = [], 0, _WINDOW
    while start < n:
        end = min(n, start + cap)
        while True:
            stop = min(end, start + window)
            # padded tokens of the batch start..start+k for every k in the window
            longest = np.maximum.accumulate(sizes[start:stop])
            over = longest * np.arange(1, stop - start + 1) > batch_tokens
            over[0] = False  # one pair always makes a batch
            first = int(over.argmax())
            if over[first]:
                length = first  # the first pair that overflows starts the next
                break
            if stop == end:
                length = stop - start
                break
            window *= 2  # no overflow in sight yet: look further
        batches.append(order[start : start + length])
        start += length
        window = length + length // 4 + 8  # the next batch is about as long
    return batches


def _sort_key(length: np.ndarray) -> np.ndarray:
    """`length` as int16 where its values fit: numpy sorts 16-bit integers by
    radix, several times faster, and a stable sort's result does not depend on
    the dtype, so the order stays the same."""
    length = np.asarray(length)
    fits = length.dtype.kind in "iu" and len(length) > 0
    if fits and -(2**15) <= length.min() and length.max() < 2**15:
        return length.astype(np.int16)
    return length


def make_batches(
    src_len: np.ndarray,
    tgt_len: np.ndarray,
    batch_tokens: int,
    batch_sentences: int = 0,
    seed: int | None = None,
    epoch: int = 0,
    max_sentences: int = 0,
) -> list[np.ndarray]:
    """Index arrays (int64), one per batch. `seed=None`: no shuffling, sorted by
    length. `max_sentences` caps the sentences of a batch on top of its token
    budget."""
    size = np.maximum(src_len, tgt_len) + 1
    n = len(size)
    if n == 0:
        return []
    src_key, tgt_key = _sort_key(src_len), _sort_key(tgt_len)
    if seed is None:
        order = np.lexsort((tgt_key, src_key))
        return _cut(order, size, batch_tokens, batch_sentences, max_sentences)
    rng = np.random.default_rng([seed, epoch])
    perm = rng.permutation(n)
    per_batch = batch_sentences or max(1, batch_tokens // max(1, int(size.mean())))
    pool = per_batch * _POOL
    batches = []
    for p in range(0, n, pool):  # a loop over pools, each of many batches
        chunk = perm[p : p + pool]
        chunk = chunk[np.lexsort((tgt_key[chunk], src_key[chunk]))]
        batches.extend(_cut(chunk, size, batch_tokens, batch_sentences, max_sentences))
    return [batches[i] for i in rng.permutation(len(batches))]
