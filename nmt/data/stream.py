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

import gzip
import os
import signal
import sys
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import chain
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pyarrow as pa

from nmt.data.textfiles import broken_gzip, decode_text, no_lines, strerror
from nmt.errors import NmtError

CHUNK = 100_000  # pairs per chunk
_BLOCK = 1 << 24  # bytes read at once


def _raw(path: Path) -> Iterator[bytes]:
    """A file's bytes, _BLOCK at a time (gunzipped for .gz); a read error is one
    NmtError naming the file and the line."""
    gz = path.suffix == ".gz"
    try:
        f = gzip.open(path, "rb") if gz else open(path, "rb")  # noqa: SIM115
    except OSError as e:
        raise NmtError(f"cannot read data file {path}: {strerror(e)}") from None
    lines = 0  # in the blocks before this one
    with f:
        while True:
            try:
                block = f.read(_BLOCK)
            except gzip.BadGzipFile as e:
                if lines == 0:
                    raise NmtError(
                        f"{path} is not a gzip file, though its name ends in .gz "
                        "(compress it with gzip, or drop the .gz)"
                    ) from None
                raise NmtError(broken_gzip(path, _good_lines(path), e)) from None
            except (EOFError, zlib.error) as e:
                raise NmtError(broken_gzip(path, _good_lines(path), e)) from None
            except OSError as e:
                raise NmtError(
                    f"{path}, line {lines + 1}: cannot read: {strerror(e)}"
                ) from None
            if not block:
                return
            lines += block.count(b"\n")
            yield block


def count_lines(path: Path) -> int:
    """A file's lines (a last line without its newline counts), at memchr speed."""
    n, last = 0, b"\n"
    for block in _raw(path):
        n += block.count(b"\n")
        last = block[-1:]
    return n + (last != b"\n")


def _blocks(path: Path, lines: int) -> Iterator[tuple[int, bytes]]:
    """(first line number, raw bytes of `lines` lines) through a file; the last
    blob has fewer lines and may lack its final newline."""
    done, rest = 0, b""  # lines yielded; bytes after the last full chunk
    for block in _raw(path):
        buf = rest + block if rest else block
        ends = np.flatnonzero(np.frombuffer(buf, np.uint8) == 10)
        start = 0
        for i in range(lines - 1, len(ends), lines):
            yield done + 1, buf[start : ends[i] + 1]
            done, start = done + lines, int(ends[i]) + 1
        rest = buf[start:]
    if rest:
        yield done + 1, rest


def _good_lines(path: Path) -> int:
    """The lines of a damaged gzip file that decompress (read again line by
    line, only to name where the damage is)."""
    n = 0
    try:
        with gzip.open(path, "rb") as f:
            for _ in f:
                n += 1
    except (OSError, EOFError, zlib.error):
        pass
    return n


def _count(blob: bytes) -> int:
    return blob.count(b"\n") + (not blob.endswith(b"\n"))


def _lines(blob: bytes, path: str, first: int) -> list[str]:
    """The blob's lines as text (split on b"\\n" only, a "\\r" before it dropped);
    invalid UTF-8 is the NmtError of `textfiles`, naming the line and byte."""
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as e:
        start = blob.rfind(b"\n", 0, e.start) + 1
        end = blob.find(b"\n", e.start)
        lineno = first + blob.count(b"\n", 0, e.start)
        decode_text(blob[start : len(blob) if end < 0 else end], Path(path), lineno)
        raise  # decode_text raised for this line
    out = text.split("\n")
    if text.endswith("\n"):
        out.pop()
    if "\r" in text:  # Windows line ends
        return [s[:-1] if s.endswith("\r") else s for s in out]
    return out


def _tsv(lines: list[str], path: str, first: int) -> tuple[list[str], list[str]]:
    """Source and target columns; a blank line is an empty pair."""
    src, tgt = [], []
    for n, line in enumerate(lines, start=first):
        if not line.strip():
            src.append("")
            tgt.append("")
            continue
        cols = line.split("\t")
        if len(cols) != 2:
            found = "no tab" if len(cols) == 1 else f"{len(cols)} columns"
            raise NmtError(
                f"{path}, line {n}: expected two tab-separated columns "
                f"(source, target), found {found}"
            )
        src.append(cols[0])
        tgt.append(cols[1])
    return src, tgt


# A raw chunk, picklable to a worker: ("text", first, src path, blob, tgt path,
# blob) | ("tsv", first, path, blob) | ("rows", first, src lines, tgt lines).
Raw = tuple


def pairs(raw: Raw) -> tuple[list[str], list[str]]:
    """A raw chunk's source and target lines, checked."""
    if raw[0] == "rows":
        return raw[2], raw[3]
    if raw[0] == "tsv":
        _, first, path, blob = raw
        return _tsv(_lines(blob, path, first), path, first)
    _, first, sp, sb, tp, tb = raw
    return _lines(sb, sp, first), _lines(tb, tp, first)


@dataclass
class FileSource:
    """A split in local files: [tsv] or [source, target] (plain or .gz)."""

    paths: list[Path]
    key: str  # the recipe key that names it, for messages

    def chunks(self) -> Iterator[Raw]:
        some = False
        for raw in self._chunks():
            some = True
            yield raw
        if not some:
            raise no_lines(self.paths, self.key)

    def count(self) -> int:
        """The pairs (lines); parallel files of different lengths are an error."""
        counts = [count_lines(p) for p in self.paths]
        if len(set(counts)) > 1:
            for p in self.paths:  # a bad byte first: maybe one is not text at all
                for first, blob in _blocks(p, CHUNK):
                    _lines(blob, str(p), first)
                    break
            sp, tp = self.paths
            raise NmtError(
                f"parallel files differ in length: {sp} has {counts[0]} lines, "
                f"{tp} has {counts[1]}"
            )
        if counts[0] == 0:
            raise no_lines(self.paths, self.key)
        return counts[0]

    def _chunks(self) -> Iterator[Raw]:
        if len(self.paths) == 1:
            p = self.paths[0]
            for first, blob in _blocks(p, CHUNK):
                yield ("tsv", first, str(p), blob)
            return
        sp, tp = self.paths
        a, b = _blocks(sp, CHUNK), _blocks(tp, CHUNK)
        for x in a:
            y = next(b, None)
            if y is None or _count(x[1]) != _count(y[1]):
                break
            yield ("text", x[0], str(sp), x[1], str(tp), y[1])
        else:
            if next(b, None) is None:
                return
        raise NmtError(
            f"parallel files differ in length: {sp} has {count_lines(sp)} lines, "
            f"{tp} has {count_lines(tp)}"
        )


@dataclass
class RowSource:
    """A split that is already an Arrow-backed Dataset (hub, toy)."""

    ds: object  # datasets.Dataset with src and tgt columns

    def count(self) -> int:
        return len(self.ds)

    def chunks(self) -> Iterator[Raw]:
        for i, batch in enumerate(self.ds.iter(batch_size=CHUNK)):
            yield ("rows", i * CHUNK + 1, batch["src"], batch["tgt"])


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
    source, size: int, dedup: bool, num_proc: int, progress: Callable[[int], None]
) -> tuple[list[str], list[str], int, int]:
    """(source lines, target lines) of at most `size` random non-empty stripped
    pairs, in corpus order, plus the pairs read and the non-empty pairs.

    Every line is read and checked. Each pair gets a random key from its chunk's
    own generator (so nothing depends on the number of processes); the pairs
    with keys below p = 1.1 size / pairs are drawn, and of those the `size` with
    the smallest keys kept: a uniform sample of `size` (fewer when more than a
    tenth of the pairs are empty), never a list of the whole corpus."""
    n = source.count()
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
