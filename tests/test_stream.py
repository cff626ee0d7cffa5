"""`nmt translate --stream`: each line translated, written and flushed as soon as
it arrives on a pipe or a terminal, with the output batch mode gives it."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from nmt.files import read_lines
from tests.conftest import ROOT
from tests.faults import run_cli

GOLDEN = Path(__file__).parent / "golden"
PLAIN = GOLDEN / "plain"
WAIT = 60  # seconds for one line's translation (the model loads before the first)


def _golden(name: str) -> list[str]:
    return (PLAIN / name).read_text(encoding="utf-8").split("\n")[:-1]


def _inputs() -> list[str]:
    return (GOLDEN / "input.txt").read_text(encoding="utf-8").split("\n")[:-1]


def _start(*args, stdin) -> tuple[subprocess.Popen, Path]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "nmt", "translate", str(PLAIN), "--device", "cpu"]
    return subprocess.Popen(
        [*cmd, *map(str, args)],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        bufsize=0,
    )


def _read_lines(proc: subprocess.Popen, count: int) -> list[str]:
    """`count` lines from the process's stdout, waiting at most WAIT seconds: a
    line that is held back until more input comes fails here, not by hanging."""
    data, fd = b"", proc.stdout.fileno()
    while data.count(b"\n") < count:
        ready, _, _ = select.select([fd], [], [], WAIT)
        if not ready:
            proc.kill()
            pytest.fail(f"no output within {WAIT} s; so far {data!r}")
        chunk = os.read(fd, 65536)
        if not chunk:
            pytest.fail(f"stdout closed early; stderr: {proc.stderr.read()!r}")
        data += chunk
    return data.decode("utf-8").split("\n")[:-1]


def _finish(proc: subprocess.Popen) -> str:
    try:
        proc.wait(timeout=WAIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("nmt translate did not end after its input ended")
    err = proc.stderr.read().decode()  # a few lines: they fit in the pipe
    assert proc.returncode == 0, err[-2000:]
    assert proc.stdout.read() == b""
    return err


def test_each_line_comes_back_before_the_next_is_written():
    inputs, want = _inputs(), _golden("beam5.txt")
    picks = [0, inputs.index(""), 2]  # a line, an empty line, a line
    proc = _start("--stream", "--beam", "5", stdin=subprocess.PIPE)
    for k in picks:
        proc.stdin.write(inputs[k].encode() + b"\n")
        proc.stdin.flush()
        assert _read_lines(proc, 1) == [want[k]]
    proc.stdin.close()
    err = _finish(proc)
    assert "translated 3 lines" in err
    assert "sent/s" not in err  # no progress bar while streaming


def test_a_terminal_streams_by_default_and_ctrl_d_ends_it():
    inputs, want = _inputs(), _golden("beam5.txt")
    main, side = pty.openpty()
    try:
        proc = _start("--beam", "5", stdin=side)
    finally:
        os.close(side)
    try:
        for k in (1, 3):
            os.write(main, inputs[k].encode() + b"\n")
            assert _read_lines(proc, 1) == [want[k]]
        os.write(main, b"\x04")  # Ctrl-D at the start of a line: end of input
        err = _finish(proc)
    finally:
        os.close(main)
    assert "Ctrl-D ends" in err and "translated 2 lines" in err


def test_streamed_output_equals_batch_output_with_nbest():
    data = (GOLDEN / "input.txt").read_bytes()
    modes = (
        (["--beam", "5"], "beam5.txt"),
        (["--beam", "5", "--nbest", "3"], "nbest3.txt"),
    )
    for args, expected in modes:
        streamed = run_cli("translate", PLAIN, "--device", "cpu", "--stream", *args,
                           stdin=data)  # fmt: skip
        batch = run_cli("translate", PLAIN, "--device", "cpu", *args, stdin=data)
        assert streamed.code == 0 and batch.code == 0, (streamed.err, batch.err)
        assert streamed.out == batch.out
        assert len(streamed.out.splitlines()) == len(_golden(expected))
        assert "translated 23 lines" in streamed.err


@pytest.mark.parametrize("extra", [["-o", "out.txt"], ["--attention-plot", "plots"]])
def test_stream_refuses_whole_file_outputs(tmp_path, extra):
    target = tmp_path / extra[1]
    r = run_cli("translate", PLAIN, "--stream", extra[0], target, stdin=b"da\n")
    assert "--stream" in r.error
    assert r.out == "" and not target.exists()


def test_a_pipe_line_is_read_without_waiting_for_more():
    """read_lines yields a line as soon as it is on the pipe (no read-ahead that
    waits for a full block or for the end of input)."""
    read_end, write_end = os.pipe()

    class Stdin(io.TextIOBase):
        buffer = os.fdopen(read_end, "rb")

    old, got = sys.stdin, []
    sys.stdin = Stdin()
    try:
        lines = read_lines(None)
        os.write(write_end, b"first\nsec")
        reader = threading.Thread(target=lambda: got.append(next(lines)), daemon=True)
        reader.start()
        reader.join(WAIT)
        assert got == ["first"]
        os.write(write_end, b"ond\n")
        os.close(write_end)
        assert list(lines) == ["second"]
    finally:
        sys.stdin = old
        Stdin.buffer.close()
