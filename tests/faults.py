"""Helpers for the fault and bad-input suites (tests/test_faults_*.py).

Each case runs a command as a user types it, in this process (`nmt.cli.main`),
and checks the three promises: exit status 2, exactly one line on stderr that
starts with `nmt: error:`, and no pre-existing file changed. An exception that
escapes `main` is a traceback the user would have seen, so the test fails with it.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

from nmt.cli import main


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def error(self) -> str:
        """The one error line; asserts that there is exactly one, and no traceback."""
        assert self.code == 2, (self.code, self.err[-2000:])
        assert "Traceback" not in self.err, self.err
        assert "Warning:" not in self.err, self.err  # a library's noise before it
        lines = [x for x in self.err.splitlines() if x.strip()]
        errors = [x for x in lines if x.startswith("nmt: error:")]
        assert len(errors) == 1, lines
        return errors[0]


class _Stdin:
    """A stand-in for sys.stdin with a binary buffer (cli reads sys.stdin.buffer)."""

    def __init__(self, data: bytes):
        self.buffer = io.BytesIO(data)

    def isatty(self) -> bool:
        return False


def run_cli(*argv, stdin: bytes | None = b"") -> Result:
    """`nmt ARGV...` in this process; stdout and stderr captured. stdin=None: as if
    started with standard input closed."""
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdin
    sys.stdin = None if stdin is None else _Stdin(stdin)  # type: ignore[assignment]
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main([str(a) for a in argv])
            except SystemExit as e:  # argparse's usage errors
                code = e.code if isinstance(e.code, int) else 2
    finally:
        sys.stdin = old
    return Result(code, out.getvalue(), err.getvalue())


def snapshot(*roots: Path) -> dict[str, str]:
    """Path -> sha256 of every file under roots (or of the root file itself)."""
    out = {}
    for root in roots:
        root = Path(root)
        files = [root] if root.is_file() else sorted(root.rglob("*"))
        for p in files:
            if p.is_file():
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def assert_unchanged(before: dict[str, str], *roots: Path) -> None:
    """Every file of `before` still exists with the same bytes."""
    after = snapshot(*roots)
    changed = [p for p, h in before.items() if after.get(p) != h]
    assert not changed, f"changed or removed: {changed}"


@contextmanager
def small_disk(folder: Path, size_kb: int):
    """A tmpfs of `size_kb` KiB mounted at folder, for tests of a full disk;
    skips the test where mounting is not allowed (not root, no CAP_SYS_ADMIN)."""
    folder.mkdir(parents=True, exist_ok=True)
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)]
    try:
        done = subprocess.run(mount, capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"cannot mount a tmpfs for a full-disk test: {e}")
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip()
        pytest.skip(f"cannot mount a tmpfs for a full-disk test: {reason}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)
