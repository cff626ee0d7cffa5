"""Helpers for the fault and bad-input suites (tests/test_faults_*.py).

Each case runs a command as a user types it, in this process (`nmt.cli.main`),
and checks the three promises: exit status 2, exactly one line on stderr that
starts with `nmt: error:`, and no pre-existing file changed. An exception that
escapes `main` is a traceback the user would have seen, so the test fails with it.
"""

from __future__ import annotations

import hashlib
import io
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

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


def run_cli(*argv, stdin: bytes = b"") -> Result:
    """`nmt ARGV...` in this process; stdout and stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdin
    sys.stdin = _Stdin(stdin)  # type: ignore[assignment]
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
