"""Local corpus files: two parallel text files or one TSV per split, plain or
gzipped, found in data.files.dir (`nmt.data.stream` reads them).

Every broken file (missing, unreadable, truncated gzip, not UTF-8, misaligned)
is one NmtError naming the file and the line, never a traceback.
"""

from __future__ import annotations

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


def strerror(e: OSError) -> str:
    return e.strerror or str(e) or type(e).__name__


def broken_gzip(path: Path, n: int, e: Exception) -> str:
    # gzip decompresses ahead of the lines it returns: the damage is after line n
    where = f"{path}, after line {n}" if n else str(path)
    return f"{where}: the gzip file is truncated or damaged ({e})"


def decode_text(raw: bytes, path: Path, lineno: int) -> str:
    """decode_line, with a hint when the first line is gzip's magic number."""
    try:
        return decode_line(raw, path, lineno)
    except NmtError as e:
        if lineno == 1 and raw.startswith(_GZIP_MAGIC):
            raise NmtError(f"{e}; it looks gzip-compressed: name it with .gz") from None
        raise


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
        raise NmtError(f"cannot read data file {e.filename}: {strerror(e)}") from None
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
            raise NmtError(f"cannot read data file {p}: {strerror(e)}") from None
        parts.append(f"{p}:{st.st_size}:{st.st_mtime_ns}")
    return ";".join(parts)


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


def no_lines(paths: list[Path], key: str) -> NmtError:
    """The error for a split whose file(s) have no lines at all."""
    what = "file" if len(paths) == 1 else "files"
    names = " and ".join(str(p) for p in paths)
    return NmtError(f"{_ROLES[key]} {what} {names} have no lines ({key})")
