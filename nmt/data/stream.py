"""A split's pairs streamed through chunks: counted, sampled, encoded, written.

Nothing here holds a whole corpus. A split is read a chunk of `CHUNK` pairs at a
time (local files as blocks of raw bytes cut at line ends, hub and toy data as
slices of their Arrow table), and the chunks run on `data.num_proc` worker
processes, their results taken in chunk order (so nothing depends on the number
of processes). The training split is read three times:

1. its lines counted (parallel files must agree) at memchr speed;
2. `sample()`: every line checked (UTF-8, TSV columns), and a bounded uniform
   sample of the non-empty pairs drawn for sentencepiece by per-chunk random keys;
3. `encode()`: strip, drop empty pairs, encode, filter by length and ratio, and
   write Arrow record batches to one file. With `dedup`, the main process keeps
   a 64-bit hash of the pieces of every pair it wrote (8 bytes a pair) and drops
   repeats: pairs whose texts encode to the same pieces on both sides.
"""

from __future__ import annotations

import os
import signal
import sys
from collections import deque
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import chain
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pyarrow as pa

from nmt.data.chunks import Raw, pairs

# ------------------------------------------------------------ running chunks


def processes(num_proc: int) -> int:
    """data.num_proc, where 0 means every core this process may use."""
    return num_proc or len(os.sched_getaffinity(0))


def _spawnable() -> bool:
    """Whether worker processes can start: a spawned process re-imports the
    main script, which a script read from stdin does not have on disk."""
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    return path is None or os.path.exists(path)


def _quiet() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's


def _ordered(source, work: Callable, args: Callable[[], tuple], num_proc: int):
    """work(raw, chunk index, *args()) for every chunk of source, results in
    chunk order; on num_proc processes with at most two chunks per process in
    flight, so memory stays flat however long the split."""
    if num_proc <= 1 or not _spawnable():
        for i, raw in enumerate(source.chunks()):
            yield work(raw, i, *args())
        return
    ctx = get_context("spawn")
    with ProcessPoolExecutor(num_proc, mp_context=ctx, initializer=_quiet) as pool:
        pending: deque = deque()
        try:
            for i, raw in enumerate(source.chunks()):
                pending.append(pool.submit(work, raw, i, *args()))
                if len(pending) >= 2 * num_proc:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BaseException:
            for f in pending:
                f.cancel()
            raise


# ------------------------------------------------------------ the sample


def _sample_chunk(raw: Raw, index: int, p: float):
    """A chunk checked, with its pair count, its non-empty count, and its pairs
    in the sample: the non-empty ones whose random key is below p."""
    s, t = pairs(raw)
    keys = np.random.default_rng([0, index]).random(len(s))
    empty = [i for i, (a, b) in enumerate(zip(s, t)) if _blank(a) or _blank(b)]
    drawn = keys < p
    drawn[empty] = False
    take = np.flatnonzero(drawn)
    src, tgt = [s[i].strip() for i in take], [t[i].strip() for i in take]
    return len(s), len(s) - len(empty), keys[take], take + (raw[1] - 1), src, tgt


def _blank(line: str) -> bool:
    return not line or line.isspace()  # empty once stripped, without the copy


def sample(
    source,
    n: int,
    size: int,
    dedup: bool,
    num_proc: int,
    progress: Callable[[int], None],
) -> tuple[list[str], list[str], int, int]:
    """(source lines, target lines) of at most `size` random non-empty stripped
    pairs, in corpus order, plus the pairs read and the non-empty pairs, of
    a source of n pairs (`source.count()`).

    Every line is read and checked. Each pair gets a random key from its chunk's
    own generator (so nothing depends on the number of processes); the pairs
    with keys below p = 1.1 size / pairs are drawn, and of those the `size` with
    the smallest keys kept: a uniform sample of `size` (fewer when more than a
    tenth of the pairs are empty), never a list of the whole corpus."""
    p = 2.0 if n <= size else 1.1 * size / n
    keys, pos, src, tgt = [], [], [], []
    read = kept = 0
    for r, full, k, at, s, t in _ordered(source, _sample_chunk, lambda: (p,), num_proc):
        read, kept = read + r, kept + full
        progress(r)
        keys.append(k)
        pos.append(at)
        src += s
        tgt += t
    keys, pos = np.concatenate(keys), np.concatenate(pos)
    best = np.arange(len(keys))
    if len(keys) > size:  # the smallest keys, in corpus order
        best = np.sort(np.argpartition(keys, size - 1)[:size])
    src, tgt = [src[i] for i in best], [tgt[i] for i in best]
    if dedup:
        seen: set[tuple[str, str]] = set()
        first = [p not in seen and not seen.add(p) for p in zip(src, tgt)]
        src = [x for x, f in zip(src, first) if f]
        tgt = [x for x, f in zip(tgt, first) if f]
    return src, tgt, read, kept


# ------------------------------------------------------------ encoding


@dataclass
class Rules:
    """What encode() does to a split's pairs."""

    clean: bool  # strip, drop pairs with an empty side
    max_len: int = 0  # 0: keep every length
    max_ratio: float = 0.0
    dedup: bool = False


_TOKENIZERS: dict = {}  # a process's tokenizers, by their model files


def _tokenizer(models: tuple[str, str]):
    if models not in _TOKENIZERS:
        from nmt.data.tokenizer import Tokenizer

        _TOKENIZERS[models] = Tokenizer(Path(models[0]), Path(models[1]))
    return _TOKENIZERS[models]


def _flat(ids: list[list[int]], kind) -> tuple[np.ndarray, np.ndarray]:
    """Lists of ids -> (values, offsets), as an Arrow list column stores them."""
    lens = np.fromiter(map(len, ids), np.int32, len(ids))
    offsets = np.zeros(len(ids) + 1, np.int32)
    np.cumsum(lens, out=offsets[1:])
    return np.fromiter(chain.from_iterable(ids), kind, int(offsets[-1])), offsets


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer, elementwise: every bit of x moves every bit."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _row_hash(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row's ids in order: the sum of a mixed
    (position, id) per id, mixed again with the length."""
    lens = np.diff(offsets).astype(np.uint64)
    pos = np.arange(len(values)) - np.repeat(offsets[:-1], np.diff(offsets))
    key = (pos.astype(np.uint64) << np.uint64(32)) | values.astype(np.uint64)
    total = np.concatenate([[np.uint64(0)], np.cumsum(_mix(key), dtype=np.uint64)])
    return _mix(total[offsets[1:]] - total[offsets[:-1]] + lens)


def encode_chunk(raw: Raw, index: int, rules: Rules, models: tuple[str, str]):
    """One chunk -> (record batch, counts, hashes of its rows or None)."""
    del index
    tok = _tokenizer(models)
    s, t = pairs(raw)
    read = len(s)
    empty = too_long = 0
    if rules.clean:
        s = [x.strip() for x in s]
        t = [x.strip() for x in t]
        full = [i for i in range(read) if s[i] and t[i]]
        if len(full) < read:
            s, t = [s[i] for i in full], [t[i] for i in full]
        empty = read - len(full)
    si, ti = tok.encode_src(s), tok.encode_tgt(t)
    sl = np.fromiter(map(len, si), np.int32, len(si))
    tl = np.fromiter(map(len, ti), np.int32, len(ti))
    if rules.max_len:
        ok = (sl > 0) & (tl > 0) & (sl <= rules.max_len) & (tl <= rules.max_len)
        ok &= np.maximum(sl, tl) <= rules.max_ratio * np.minimum(sl, tl)
        keep = np.flatnonzero(ok)
        if len(keep) < len(s):
            s, t = [s[i] for i in keep], [t[i] for i in keep]
            si, ti = [si[i] for i in keep], [ti[i] for i in keep]
            sl, tl = sl[keep], tl[keep]
        too_long = len(ok) - len(keep)
    kind = np.int16 if max(tok.src_vocab_size, tok.tgt_vocab_size) < 2**15 else np.int32
    (sv, so), (tv, to) = _flat(si, kind), _flat(ti, kind)
    batch = pa.record_batch(
        [
            pa.array(s, pa.string()),
            pa.array(t, pa.string()),
            pa.ListArray.from_arrays(pa.array(so), pa.array(sv)),
            pa.ListArray.from_arrays(pa.array(to), pa.array(tv)),
            pa.array(sl),
            pa.array(tl),
        ],
        names=["src", "tgt", "src_ids", "tgt_ids", "src_len", "tgt_len"],
    )
    hashes = None
    if rules.dedup:  # a repeat is a pair of the same pieces on both sides
        hashes = _mix(_row_hash(sv, so) ^ _mix(_row_hash(tv, to)))
    return batch, {"read": read, "empty": empty, "too_long": too_long}, hashes


class _Seen:
    """The 64-bit hashes of the pairs kept so far (8 bytes a pair), as sorted
    runs merged like a binary counter: O(log n) runs to search."""

    def __init__(self):
        self.runs: list[np.ndarray] = []

    def first(self, h: np.ndarray) -> np.ndarray:
        """Which of h are seen neither before nor earlier in h; remembers them."""
        order = np.argsort(h, kind="stable")  # sorted needles search fast
        hs = h[order]
        new = np.ones(len(h), bool)
        new[1:] = hs[1:] != hs[:-1]  # the first of equal hashes (a stable sort)
        for run in self.runs:
            at = np.minimum(np.searchsorted(run, hs), len(run) - 1)
            new &= run[at] != hs
        if new.any():
            self.runs.append(hs[new])
        while len(self.runs) > 1 and len(self.runs[-2]) <= 2 * len(self.runs[-1]):
            b, a = self.runs.pop(), self.runs.pop()
            self.runs.append(np.sort(np.concatenate([a, b]), kind="stable"))
        out = np.empty(len(h), bool)
        out[order] = new
        return out


def encode(
    source,
    rules: Rules,
    tok,
    path: Path,
    num_proc: int = 1,
    progress: Callable[[int], None] = lambda n: None,
) -> dict[str, int]:
    """Encode a split into the Arrow file `path`; its counts. With dedup, a
    pair whose hash was kept before is dropped as its chunk is written."""
    counts = {"read": 0, "empty": 0, "too_long": 0, "duplicate": 0, "kept": 0}
    seen = _Seen()
    writer = None

    def write(result) -> None:
        nonlocal writer
        batch, c, h = result
        if h is not None:
            new = seen.first(h)
            counts["duplicate"] += int(len(new) - new.sum())
            batch = batch.filter(pa.array(new))
        if writer is None:
            writer = pa.ipc.new_stream(str(path), batch.schema)
        writer.write_batch(batch)
        for k, v in c.items():
            counts[k] += v
        counts["kept"] += len(batch)
        progress(c["read"])

    models = (str(tok.src_model), str(tok.tgt_model))
    try:
        for result in _ordered(source, encode_chunk, lambda: (rules, models), num_proc):
            write(result)
        if writer is None:  # no chunk at all: an empty split
            write(encode_chunk(("rows", 1, [], []), 0, rules, models))
    finally:
        if writer is not None:
            writer.close()
    return counts
