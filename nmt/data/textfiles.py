"""Local corpus files: two parallel text files or one TSV per split, plain or
gzipped, found in data.files.dir and read into an Arrow-backed Dataset.

Every broken file (missing, unreadable, truncated gzip, not UTF-8, misaligned)
is one NmtError naming the file and the line, never a datasets traceback.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from itertools import zip_longest
from pathlib import Path

import datasets

from nmt.config import Config
from nmt.errors import NmtError
from nmt.files import decode_line

# the two text columns that every source (files, hub, toy) yields
PAIR_FEATURES = datasets.Features(
    {"src": datasets.Value("string"), "tgt": datasets.Value("string")}
)
_GZIP_MAGIC = b"\x1f\x8b"


def _strerror(e: OSError) -> str:
    return e.strerror or str(e) or type(e).__name__


def _open_lines(path: Path) -> Iterator[bytes]:
    """The raw lines of a data file, gunzipped when its name ends in .gz. Any read
    error (unreadable, truncated or not gzip at all) is one NmtError naming the
    file and the line it was reading."""
    gz = path.suffix == ".gz"
    try:
        f = gzip.open(path, "rb") if gz else open(path, "rb")  # noqa: SIM115
    except OSError as e:
        raise NmtError(f"cannot read data file {path}: {_strerror(e)}") from None
    n = 0
    with f:
        try:
            for raw in f:
                n += 1
                yield raw
        except gzip.BadGzipFile as e:
            if n == 0:
                raise NmtError(
                    f"{path} is not a gzip file, though its name ends in .gz "
                    "(compress it with gzip, or drop the .gz)"
                ) from None
            raise NmtError(_broken_gzip(path, n, e)) from None
        except (EOFError, zlib.error) as e:
            raise NmtError(_broken_gzip(path, n, e)) from None
        except OSError as e:
            raise NmtError(
                f"{path}, line {n + 1}: cannot read: {_strerror(e)}"
            ) from None


def _broken_gzip(path: Path, n: int, e: Exception) -> str:
    # gzip decompresses ahead of the lines it returns: the damage is after line n
    where = f"{path}, after line {n}" if n else str(path)
    return f"{where}: the gzip file is truncated or damaged ({e})"


def _decode(raw: bytes, path: Path, lineno: int) -> str:
    """decode_line, with a hint when the first line is gzip's magic number."""
    try:
        return decode_line(raw, path, lineno)
    except NmtError as e:
        if lineno == 1 and raw.startswith(_GZIP_MAGIC):
            raise NmtError(f"{e}; it looks gzip-compressed: name it with .gz") from None
        raise


def _pair_lines(src: str, tgt: str, stamp: str) -> Iterator[dict]:
    """Two parallel files read in lockstep; `stamp` only keys the Arrow cache."""
    del stamp
    src_p, tgt_p = Path(src), Path(tgt)
    a, b = _open_lines(src_p), _open_lines(tgt_p)
    try:
        for n, (ra, rb) in enumerate(zip_longest(a, b), start=1):
            if ra is None or rb is None:
                n_a = n - 1 + (ra is not None) + sum(1 for _ in a)
                n_b = n - 1 + (rb is not None) + sum(1 for _ in b)
                raise NmtError(
                    f"parallel files differ in length: {src_p} has {n_a} lines, "
                    f"{tgt_p} has {n_b}"
                )
            yield {"src": _decode(ra, src_p, n), "tgt": _decode(rb, tgt_p, n)}
    finally:
        a.close()
        b.close()


def _tsv_lines(path: str, stamp: str) -> Iterator[dict]:
    """One pair per line, source TAB target. A blank line is an empty pair
    (removed and counted as empty, like blank lines of parallel text files)."""
    del stamp
    p = Path(path)
    for n, raw in enumerate(_open_lines(p), start=1):
        line = _decode(raw, p, n)
        if not line.strip():
            yield {"src": "", "tgt": ""}
            continue
        cols = line.split("\t")
        if len(cols) != 2:
            found = "no tab" if len(cols) == 1 else f"{len(cols)} columns"
            raise NmtError(
                f"{p}, line {n}: expected two tab-separated columns "
                f"(source, target), found {found}"
            )
        yield {"src": cols[0], "tgt": cols[1]}


def _in_the_way(path: Path) -> Path | None:
    """The nearest existing ancestor of path when it is not a folder (ENOTDIR)."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def _find(directory: Path, name: str, key: str = "data.files.train") -> Path:
    """<directory>/<name> or its .gz; otherwise one NmtError saying why not."""
    candidates = (directory / name, directory / f"{name}.gz")
    try:
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        for candidate in candidates:
            if candidate.is_dir():
                raise NmtError(f"data file {candidate} is a folder, not a file ({key})")
            if candidate.exists():
                raise NmtError(f"data file {candidate} is not a regular file ({key})")
    except OSError as e:  # e.g. a folder on the way that may not be searched
        raise NmtError(f"cannot read data file {e.filename}: {_strerror(e)}") from None
    wanted = f"data file not found: {directory / name}[.gz]"
    blocker = _in_the_way(candidates[0])
    if blocker is not None:
        raise NmtError(f"{wanted}: {blocker} is a file, not a folder (data.files.dir)")
    if not directory.is_dir():
        raise NmtError(f"{wanted}: there is no folder {directory} (data.files.dir)")
    raise NmtError(f"{wanted} ({key})")


def file_stamp(*paths: Path) -> str:
    """Each file's path, size and modification time: part of the cache key, so
    an edited corpus file is read and encoded again."""
    parts = []
    for p in paths:
        try:
            st = p.stat()
        except OSError as e:
            raise NmtError(f"cannot read data file {p}: {_strerror(e)}") from None
        parts.append(f"{p}:{st.st_size}:{st.st_mtime_ns}")
    return ";".join(parts)


def _from_generator(gen, cache_dir: Path, **kwargs) -> datasets.Dataset:
    # A generator that yields nothing is an empty split, which datasets refuses
    # to build ("corresponds to no data"); reading the first row also reports an
    # unreadable or misaligned file before datasets wraps the error.
    peek = gen(**kwargs)
    try:
        empty = next(peek, None) is None
    finally:
        peek.close()
    if empty:
        return datasets.Dataset.from_dict(
            {"src": [], "tgt": []}, features=PAIR_FEATURES
        )
    try:
        return datasets.Dataset.from_generator(
            gen, gen_kwargs=kwargs, cache_dir=str(cache_dir), features=PAIR_FEATURES
        )
    except Exception as e:  # datasets wraps errors raised inside the generator
        cause = e
        while cause is not None and not isinstance(cause, NmtError):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:
            raise cause from None
        raise


_ROLES = {
    "data.files.train": "the training",
    "data.files.valid": "the validation",
    "data.files.test": "the test",
}


def split_files(cfg: Config, prefix: str, key: str) -> list[Path]:
    """The file(s) that hold one split: a .tsv, or the source and target files."""
    fc = cfg.data.files
    directory = cfg.resolve(fc.dir or ".")
    if fc.format == "tsv":
        return [_find(directory, prefix, key)]
    return [
        _find(directory, f"{prefix}.{cfg.data.src_lang}", key),
        _find(directory, f"{prefix}.{cfg.data.tgt_lang}", key),
    ]


def files_split(
    cfg: Config, prefix: str, cache_dir: Path, key: str = "data.files.train"
) -> datasets.Dataset:
    """One split read from its file(s) into a Dataset of `src`/`tgt` text (under
    cache_dir, memory-mapped); no lines at all is an error naming the recipe key."""
    paths = split_files(cfg, prefix, key)
    if len(paths) == 1:
        ds = _from_generator(
            _tsv_lines, cache_dir, path=str(paths[0]), stamp=file_stamp(*paths)
        )
    else:
        src, tgt = paths
        ds = _from_generator(
            _pair_lines, cache_dir, src=str(src), tgt=str(tgt), stamp=file_stamp(*paths)
        )
    if len(ds) == 0:
        what = "file" if len(paths) == 1 else "files"
        names = " and ".join(str(p) for p in paths)
        raise NmtError(f"{_ROLES[key]} {what} {names} have no lines ({key})")
    return ds
