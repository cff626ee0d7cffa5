"""A `nmt serve` subprocess for the tests, and a small HTTP client for it.

The server is started on port 0 (the kernel picks a free port, so two test runs
never race for one) and the tests read the port from its start line. Every wait
is bounded: the start, each request, the stop.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START_S = 120  # loading a model and importing torch on a busy machine
REQUEST_S = 120
STOP_S = 60
STARTED = re.compile(r"^serving (.+) at (http://\S+) \(beam (\d+)\)$")
STOPPED = re.compile(
    r"^stopped: served (\d+) requests \((\d+) sentences\) in (\d+) batches$"
)


class Server:
    """`with Server(model_dir) as s: s.post("/translate", {...})`."""

    def __init__(self, model_dir: Path | str, *args: str):
        self.args = ["serve", str(model_dir), "--port", "0", "--device", "cpu", *args]
        self.lines: list[str] = []  # stderr, as it comes
        self._lines: queue.Queue[str | None] = queue.Queue()

    def __enter__(self) -> Server:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nmt", *self.args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        first = self.next_line(START_S)
        match = STARTED.match(first or "")
        assert match, f"no start line: {first!r}; stderr: {self.lines}"
        self.url, self.beam = match[2], int(match[3])
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(STOP_S)

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def next_line(self, timeout: float) -> str | None:
        """The next stderr line; None when stderr closed or nothing came in time."""
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def request(self, path: str, body: bytes | dict | list | None = None):
        """(status, parsed JSON answer) of GET (no body) or POST `path`."""
        data = json.dumps(body).encode() if isinstance(body, dict | list) else body
        req = urllib.request.Request(self.url + path, data=data)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=REQUEST_S) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as e:
            with e:
                return e.code, json.loads(e.read())

    def post(self, path: str, body) -> dict:
        status, answer = self.request(path, body)
        assert status == 200, (status, answer)
        return answer

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, list[str]]:
        """Send `sig`, wait (bounded); (exit status, all stderr lines)."""
        self.proc.send_signal(sig)
        code = self.proc.wait(STOP_S)
        deadline = time.monotonic() + STOP_S
        while self.next_line(max(0.0, deadline - time.monotonic())) is not None:
            pass  # until the reader has seen the end of stderr
        return code, self.lines
