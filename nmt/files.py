"""Reading a user's text files and writing outputs without ever losing a file.

Outputs are written to a temporary file beside the target and renamed over it
when complete, so a failure or an interrupt leaves the old file as it was. An
output that is one of the inputs, a folder, or a path under a file is refused
before any work starts. Special files (a terminal, /dev/null, a FIFO) are
written in place: renaming over them would replace the device node.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from nmt.errors import NmtError


def _stdin():
    if sys.stdin is None:  # started with stdin closed (`0<&-`)
        raise NmtError("no input: standard input is closed; give the input with -i")
    return sys.stdin.buffer


def is_regular(path: str | Path) -> bool:
    """A regular file (not a FIFO, a device or /dev/stdin's pipe)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def check_input(path: str | Path) -> Path:
    """A readable input path, or one line saying why not."""
    p = Path(path)
    if not p.exists():
        raise NmtError(f"input file not found: {path}")
    if p.is_dir():
        raise NmtError(f"input {path} is a folder, not a file")
    if not os.access(p, os.R_OK):
        raise NmtError(f"input file {path} is not readable (permission denied)")
    return p


def read_lines(path: str | Path | None) -> Iterator[str]:
    """Lines split on '\\n' only (never on other control characters), UTF-8 checked.
    None reads standard input. FIFOs and /dev/stdin are read once, as a stream."""
    if path is None:
        stream, name = _stdin(), "<stdin>"
    else:
        p = check_input(path)
        try:
            stream, name = open(p, "rb"), str(path)  # noqa: SIM115
        except OSError as e:
            raise NmtError(f"cannot read {path}: {e.strerror}") from None
    with stream:
        for n, raw in enumerate(stream, start=1):
            yield decode_line(raw, name, n)


def decode_line(raw: bytes, name: str | Path, lineno: int) -> str:
    """One raw line (as a binary file splits them, on b"\\n" only) as text,
    without its "\\n" and one "\\r" before it (a Windows line end). Invalid
    UTF-8 is one NmtError naming the file, the line and the byte, so that user
    input and corpus files report a bad byte the same way."""
    try:
        return raw.removesuffix(b"\n").removesuffix(b"\r").decode("utf-8")
    except UnicodeDecodeError as e:
        raise NmtError(
            f"{name}, line {lineno}: not valid UTF-8 (byte {e.start + 1})"
        ) from None


def count_lines(path: str | Path | None) -> int | None:
    """Check a regular input file whole before any output is written (UTF-8), and
    count its lines for the progress bar; None for stdin and streams, which can
    be read only once."""
    if path is None or not is_regular(check_input(path)):
        return None
    return sum(1 for _ in read_lines(path))


def check_output(path: str | Path, inputs: tuple = ()) -> Path:
    """Refuse, before any work, an output that cannot be written or that would
    destroy an input. Returns the path to write (a symlink's target)."""
    p = Path(path)
    for i in inputs:
        if i is not None and _same_file(p, Path(i)):
            raise NmtError(
                f"output {path} is also the input {i}; write to another file"
            )
    if p.is_dir():
        raise NmtError(f"output {path} is a folder; name a file")
    target = p.resolve() if p.is_symlink() else p
    parent = target.parent
    for up in [parent, *parent.parents]:
        if up.exists():
            if not up.is_dir():
                raise NmtError(f"output {path}: {up} is a file, not a folder")
            break
    if parent.exists() and not os.access(parent, os.W_OK):
        raise NmtError(f"output {path}: cannot write in {parent} (permission denied)")
    return target


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


@contextmanager
def output_file(
    path: str | Path | None, inputs: tuple = (), mode: str = "w"
) -> Iterator[IO]:
    """Write `path` atomically (stdout if None); see the module docstring. The
    parent folder is created if missing."""
    if path is None:
        if sys.stdout is None:
            raise NmtError("standard output is closed; give an output file with -o")
        yield sys.stdout
        sys.stdout.flush()
        return
    target = check_output(path, inputs)
    if target.exists() and not is_regular(target):
        kw = {"encoding": "utf-8"} if "b" not in mode else {}
        with _oserror(path), open(target, mode, **kw) as f:  # noqa: SIM117
            yield f
        return
    with _oserror(path):
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic(target, mode) as f:
            yield f


@contextmanager
def atomic(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """A temporary file beside `path` (its name holds this process's id, so a later
    run can tell a killed write's leftover), renamed over `path` once the block
    has written it whole and it is on disk; removed if the block fails. The new
    file gets the old one's permissions, or the umask's default. OSError passes."""
    path = Path(path)
    kw = {"encoding": "utf-8"} if "b" not in mode else {}
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(fd, mode, **kw) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        _keep_mode(path, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str | Path, text: str) -> None:
    """The whole of `text` to `path`, atomically."""
    with output_file(path) as f:
        f.write(text)


def _keep_mode(target: Path, tmp: str) -> None:
    """The new file gets the old file's permissions, or the umask's default."""
    if target.exists():
        os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
    else:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)


@contextmanager
def _oserror(path) -> Iterator[None]:
    try:
        yield
    except OSError as e:
        if isinstance(e, BrokenPipeError):
            raise
        raise NmtError(f"cannot write {path}: {e.strerror or e}") from None


def process_alive(pid: int) -> bool:
    """Whether process pid exists (signal 0 asks without sending anything)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):
        return False
    except PermissionError:
        pass
    return True


def chunks(lines: Iterable[str], size: int) -> Iterator[list[str]]:
    """Lists of `size` lines (the last one shorter) from any iterable of lines."""
    block: list[str] = []
    for line in lines:
        block.append(line)
        if len(block) >= size:
            yield block
            block = []
    if block:
        yield block
