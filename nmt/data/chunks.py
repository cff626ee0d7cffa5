"""A split read a chunk of `CHUNK` pairs at a time, every line checked.

Local files are read as blocks of raw bytes cut at line ends (`FileSource`), hub
and toy data as slices of their Arrow table (`RowSource`). A chunk is a small
picklable tuple, so worker processes decode and check it (`pairs`); a broken line
(not UTF-8, a TSV line without two columns, a damaged gzip) is one NmtError
naming the file and the line.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
