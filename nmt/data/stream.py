"""A split's pairs streamed through chunks: read, sampled, encoded, written.

Nothing here holds a whole corpus. A split is read a chunk of `CHUNK` pairs at a
time (for local files, blocks of raw bytes cut at line ends; for hub and toy
data, slices of their Arrow table). The training split is read twice:

1. `sample()` checks every line (UTF-8, TSV columns, parallel line counts) and
   keeps a bounded random sample of its non-empty pairs for sentencepiece
   (bottom-k on random keys, so the sample does not depend on the chunking);
2. `encode()` strips, drops empty pairs, encodes, filters by length and ratio
   and writes Arrow record batches to one file, chunk by chunk, on
   `data.num_proc` worker processes (results are written in chunk order, so
   the file does not depend on the number of processes). With `dedup`, every
   kept pair's 64-bit hash is collected (8 bytes a pair) and a second pass
   drops all but the first copy of each pair.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
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


def _blocks(path: Path, lines: int) -> Iterator[tuple[int, bytes]]:
    """(first line number, raw bytes of `lines` lines) through a file; the last
    blob has fewer lines and may lack its final newline."""
    gz = path.suffix == ".gz"
    try:
        f = gzip.open(path, "rb") if gz else open(path, "rb")  # noqa: SIM115
    except OSError as e:
        raise NmtError(f"cannot read data file {path}: {strerror(e)}") from None
    done, rest = 0, b""  # lines yielded; bytes after the last full chunk
    with f:
        while True:
            try:
                block = f.read(_BLOCK)
            except gzip.BadGzipFile as e:
                if done == 0 and not rest:
                    raise NmtError(
                        f"{path} is not a gzip file, though its name ends in .gz "
                        "(compress it with gzip, or drop the .gz)"
                    ) from None
                raise NmtError(broken_gzip(path, _good_lines(path), e)) from None
            except (EOFError, zlib.error) as e:
                raise NmtError(broken_gzip(path, _good_lines(path), e)) from None
            except OSError as e:
                where = done + rest.count(b"\n") + 1
                raise NmtError(
                    f"{path}, line {where}: cannot read: {strerror(e)}"
                ) from None
            if not block:
                break
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
    return [s[:-1] if s.endswith("\r") else s for s in out]


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
                _lines(x[1], str(sp), x[0])  # a bad byte first: maybe not text
                if y is not None:
                    _lines(y[1], str(tp), y[0])
                break
            yield ("text", x[0], str(sp), x[1], str(tp), y[1])
        else:
            if next(b, None) is None:
                return
        raise NmtError(
            f"parallel files differ in length: {sp} has {_total(sp)} lines, "
            f"{tp} has {_total(tp)}"
        )


def _total(path: Path) -> int:
    """The lines of a file (for the misalignment message)."""
    return sum(_count(blob) for _, blob in _blocks(path, CHUNK))


@dataclass
class RowSource:
    """A split that is already an Arrow-backed Dataset (hub, toy)."""

    ds: object  # datasets.Dataset with src and tgt columns

    def chunks(self) -> Iterator[Raw]:
        for i, batch in enumerate(self.ds.iter(batch_size=CHUNK)):
            yield ("rows", i * CHUNK + 1, batch["src"], batch["tgt"])


# ------------------------------------------------------------ the sample


def sample(
    source, size: int, dedup: bool, progress: Callable[[int], None]
) -> tuple[list[str], list[str], int, int]:
    """(source lines, target lines) of at most `size` random non-empty stripped
    pairs, in corpus order, plus the pairs read and the non-empty pairs."""
    rng = np.random.default_rng(0)
    keys = np.empty(0)
    pos = np.empty(0, np.int64)
    src: list[str] = []
    tgt: list[str] = []
    read = kept = 0
    for raw in source.chunks():
        s, t = pairs(raw)
        read += len(s)
        progress(len(s))
        s = [x.strip() for x in s]
        t = [x.strip() for x in t]
        full = [i for i in range(len(s)) if s[i] and t[i]]
        k = rng.random(len(full))
        full_yet = len(keys) >= size
        take = np.flatnonzero(k < keys.max()) if full_yet else np.arange(len(k))
        keys = np.concatenate([keys, k[take]])
        pos = np.concatenate([pos, kept + take])
        src += [s[full[i]] for i in take]
        tgt += [t[full[i]] for i in take]
        kept += len(full)
        if len(keys) > size:
            best = np.sort(np.argpartition(keys, size - 1)[:size])
            keys, pos = keys[best], pos[best]
            src, tgt = [src[i] for i in best], [tgt[i] for i in best]
    order = np.argsort(pos, kind="stable")
    src, tgt = [src[i] for i in order], [tgt[i] for i in order]
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


_TOK = None  # the worker's tokenizer


def _init(src_model: str, tgt_model: str) -> None:
    global _TOK
    from nmt.data.tokenizer import Tokenizer

    _TOK = Tokenizer(Path(src_model), Path(tgt_model))


def _ids(ids: list[list[int]], kind) -> pa.ListArray:
    lens = np.fromiter(map(len, ids), np.int32, len(ids))
    offsets = np.zeros(len(ids) + 1, np.int32)
    np.cumsum(lens, out=offsets[1:])
    values = np.fromiter(chain.from_iterable(ids), kind, int(offsets[-1]))
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))


def encode_chunk(raw: Raw, rules: Rules, tok=None):
    """One chunk -> (record batch, counts, hashes of its rows or None)."""
    tok = tok or _TOK
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
    batch = pa.record_batch(
        [
            pa.array(s, pa.string()),
            pa.array(t, pa.string()),
            _ids(si, kind),
            _ids(ti, kind),
            pa.array(sl),
            pa.array(tl),
        ],
        names=["src", "tgt", "src_ids", "tgt_ids", "src_len", "tgt_len"],
    )
    hashes = None
    if rules.dedup:
        hashes = np.fromiter(
            (
                int.from_bytes(
                    hashlib.blake2b(f"{a}\t{b}".encode(), digest_size=8).digest(),
                    "little",
                )
                for a, b in zip(s, t)
            ),
            np.uint64,
            len(s),
        )
    return batch, {"read": read, "empty": empty, "too_long": too_long}, hashes


def processes(num_proc: int) -> int:
    """data.num_proc, where 0 means every core this process may use."""
    return num_proc or len(os.sched_getaffinity(0))


def encode(
    source,
    rules: Rules,
    tok,
    path: Path,
    num_proc: int = 1,
    progress: Callable[[int], None] = lambda n: None,
) -> dict[str, int]:
    """Encode a split into the Arrow file `path`; its counts."""
    counts = {"read": 0, "empty": 0, "too_long": 0, "duplicate": 0, "kept": 0}
    hashes: list[np.ndarray] = []
    writer = None
    tmp = path.with_name(path.name + ".undup") if rules.dedup else path

    def write(result) -> None:
        nonlocal writer
        batch, c, h = result
        if writer is None:
            writer = pa.ipc.new_stream(str(tmp), batch.schema)
        writer.write_batch(batch)
        for k, v in c.items():
            counts[k] += v
        counts["kept"] += len(batch)
        if h is not None:
            hashes.append(h)
        progress(c["read"])

    try:
        for result in _results(source, rules, tok, num_proc):
            write(result)
        if writer is None:  # no chunk at all: an empty split
            write(encode_chunk(("rows", 1, [], []), rules, tok))
    finally:
        if writer is not None:
            writer.close()
    if rules.dedup:
        counts["duplicate"] = _dedup(tmp, path, np.concatenate(hashes))
        counts["kept"] -= counts["duplicate"]
    return counts


def _results(source, rules: Rules, tok, num_proc: int):
    """encode_chunk of every chunk, in order; on num_proc processes, at most two
    chunks per process in flight (memory stays flat however long the split)."""
    if num_proc <= 1:
        for raw in source.chunks():
            yield encode_chunk(raw, rules, tok)
        return
    models = (str(tok.src_model), str(tok.tgt_model))
    with ProcessPoolExecutor(
        num_proc, mp_context=get_context("spawn"), initializer=_init, initargs=models
    ) as pool:
        pending = []
        for raw in source.chunks():
            pending.append(pool.submit(encode_chunk, raw, rules))
            if len(pending) >= 2 * num_proc:
                yield pending.pop(0).result()
        for f in pending:
            yield f.result()


def _dedup(tmp: Path, path: Path, hashes: np.ndarray) -> int:
    """tmp's rows, each pair's first copy only, moved to path; the copies dropped."""
    _, first = np.unique(hashes, return_index=True)
    if len(first) == len(hashes):
        os.replace(tmp, path)
        return 0
    keep = np.zeros(len(hashes), bool)
    keep[first] = True
    del first
    with pa.ipc.open_stream(pa.OSFile(str(tmp))) as reader:
        writer, start = pa.ipc.new_stream(str(path), reader.schema), 0
        with writer:
            for batch in reader:
                mask = keep[start : start + len(batch)]
                start += len(batch)
                writer.write_batch(batch.filter(pa.array(mask)))
    tmp.unlink()
    return int(len(keep) - keep.sum())
