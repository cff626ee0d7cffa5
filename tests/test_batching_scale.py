"""The vectorized batch cutting against the per-pair loop it replaced, and its
speed on millions of pairs."""

import numpy as np
import pytest

from nmt.data.batching import make_batches

# --- reference: the per-pair algorithm as it was before vectorization ---------


def _old_cut(order, size, batch_tokens, batch_sents, max_sents=0):
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


def _old_make_batches(
    src_len,
    tgt_len,
    batch_tokens,
    batch_sentences=0,
    seed=None,
    epoch=0,
    max_sentences=0,
):
    size = np.maximum(src_len, tgt_len) + 1
    n = len(size)
    if seed is None:
        order = np.lexsort((tgt_len, src_len))
        return _old_cut(order, size, batch_tokens, batch_sentences, max_sentences)
    rng = np.random.default_rng([seed, epoch])
    perm = rng.permutation(n)
    per_batch = batch_sentences or max(1, batch_tokens // max(1, int(size.mean())))
    pool = per_batch * 100
    batches = []
    for p in range(0, n, pool):
        chunk = perm[p : p + pool]
        chunk = chunk[np.lexsort((tgt_len[chunk], src_len[chunk]))]
        batches.extend(
            _old_cut(chunk, size, batch_tokens, batch_sentences, max_sentences)
        )
    return [batches[i] for i in rng.permutation(len(batches))]


# ------------------------------------------------------------------------------


def _same(new, old):
    assert len(new) == len(old)
    for a, b in zip(new, old):
        assert a.dtype == b.dtype
        assert np.array_equal(a, b)


def _lengths(rng, n, dtype):
    """Mostly short lengths, some of 0 and 1, and a few far over any budget."""
    kind = rng.integers(3)
    if kind == 0:
        x = rng.integers(0, 60, n)
    elif kind == 1:
        x = np.clip(rng.gamma(2.0, 12.0, n), 0, 150).astype(np.int64)
    else:
        x = rng.integers(0, 3, n)  # many ties, lengths 0..2
    long = rng.random(n) < 0.03
    x[long] = rng.integers(300, 5000, long.sum())
    return x.astype(dtype)


@pytest.mark.parametrize("trial", range(60))
def test_same_batches_as_the_per_pair_loop(trial):
    rng = np.random.default_rng(trial)
    n = int(rng.choice([1, 2, 3, 7, 50, 333, 2000]))
    dtype = [np.int64, np.int32][trial % 2]
    src, tgt = _lengths(rng, n, dtype), _lengths(rng, n, dtype)
    for _ in range(4):
        tokens = int(rng.choice([0, 1, 20, 100, 250, 1000, 4000, 10**6]))
        sents = int(rng.choice([0, 0, 0, 1, 3, 16, 500]))
        cap = int(rng.choice([0, 0, 1, 2, 5, 64]))
        seed = None if rng.random() < 0.3 else int(rng.integers(1000))
        for epoch in range(3):
            args = (src, tgt, tokens, sents, seed, epoch, cap)
            _same(make_batches(*args), _old_make_batches(*args))


@pytest.mark.parametrize("seed", [None, 5])
def test_tiny_inputs(seed):
    one = np.array([3])
    _same(
        make_batches(one, one, 100, seed=seed),
        _old_make_batches(one, one, 100, seed=seed),
    )
    huge = np.array([10**4, 2, 10**4])
    for cap in (0, 1, 2):
        args = (huge, huge, 50, 0, seed, 0, cap)
        _same(make_batches(*args), _old_make_batches(*args))
    empty = np.array([], dtype=np.int64)
    assert make_batches(empty, empty, 100, seed=seed) == []  # the old code raised


def test_two_million_pairs_each_exactly_once():
    rng = np.random.default_rng(0)
    n = 2_000_000
    src = rng.integers(1, 101, n).astype(np.int32)
    tgt = rng.integers(1, 101, n).astype(np.int32)
    batches = make_batches(src, tgt, 4000, seed=3, epoch=1)
    flat = np.concatenate(batches)
    assert flat.dtype == np.int64
    assert (np.bincount(flat, minlength=n) == 1).all()
    # every batch within budget, in one vectorized check
    lengths = np.array([len(b) for b in batches])
    size = np.maximum(src, tgt)[flat] + 1
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    longest = np.maximum.reduceat(size, starts)
    assert ((longest * lengths <= 4000) | (lengths == 1)).all()
