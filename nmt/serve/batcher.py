"""Dynamic batching: requests that arrive together are translated together.

One worker thread owns the model, so the model is never used from two threads
and the web server's event loop never waits on it. Handlers `submit` a request's
lines with its key (what must be equal to share a batch: the beam, and whether
attention is asked for) and await the returned future. The worker takes the
oldest waiting request, adds every waiting request with the same key, then waits
up to `BATCH_WAIT_S` for more, until `BATCH_MAX_SENTENCES`; it translates the
group in one call and gives each request its slice, in order.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass

# A few milliseconds: short next to a translation, long enough for requests sent
# at the same moment to meet. The cap bounds one batch's memory and latency.
BATCH_WAIT_S = 0.005
BATCH_MAX_SENTENCES = 256

Work = Callable[[Hashable, list[str]], list]


@dataclass
class _Job:
    key: Hashable
    lines: list[str]
    future: Future


class Batcher:
    """`Batcher(work)`, then `submit(key, lines)` from any thread: a Future of
    `work(key, lines)`, computed in the worker thread together with other
    requests of the same key. `work` returns one result per line, in order."""

    def __init__(
        self,
        work: Work,
        wait_s: float = BATCH_WAIT_S,
        max_sentences: int = BATCH_MAX_SENTENCES,
    ):
        self._work, self._wait_s, self._cap = work, wait_s, max_sentences
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._held: deque[_Job] = deque()  # taken off the queue, another key
        self._stop = False
        self._lock = threading.Lock()  # the counters are read from other threads
        self._counts = {"requests": 0, "sentences": 0, "batches": 0}
        self._thread = threading.Thread(
            target=self._run, name="nmt-serve-worker", daemon=True
        )
        self._thread.start()

    def submit(self, key: Hashable, lines: list[str]) -> Future:
        future: Future = Future()
        self._queue.put(_Job(key, list(lines), future))
        return future

    def stats(self) -> dict:
        """Requests and sentences answered so far, and in how many batches."""
        with self._lock:
            return dict(self._counts)

    def close(self, timeout: float = 30.0) -> None:
        """Finish what was submitted, then stop the worker (waits at most
        `timeout` seconds for it)."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            if self._held:
                first = self._held.popleft()
            elif self._stop:
                return
            else:
                first = self._queue.get()
                if first is None:
                    self._stop = True
                    continue
            group = [j for j in self._collect(first) if _start(j)]
            if group:
                self._answer(group)

    def _collect(self, first: _Job) -> list[_Job]:
        """`first` and the requests that join it: those held back earlier, those
        waiting now, and those that arrive within the wait."""
        group, size = [first], len(first.lines)

        def joins(job: _Job) -> bool:
            nonlocal size
            if job.key != first.key or size + len(job.lines) > self._cap:
                return False
            group.append(job)
            size += len(job.lines)
            return True

        for job in [j for j in self._held if joins(j)]:
            self._held.remove(job)
        deadline = time.monotonic() + self._wait_s
        while size < self._cap and not self._stop:
            try:  # what is waiting joins even if the wait is over
                job = self._queue.get_nowait()
            except queue.Empty:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    job = self._queue.get(timeout=left)
                except queue.Empty:
                    break
            if job is None:
                self._stop = True
            elif not joins(job):
                self._held.append(job)
        return group

    def _answer(self, group: list[_Job]) -> None:
        lines = [line for job in group for line in job.lines]
        try:
            results = self._work(group[0].key, lines)
        except Exception as e:
            if len(group) > 1:  # one bad request must not fail the others
                for job in group:
                    self._answer([job])
                return
            print(f"nmt serve: internal error: {e!r}", file=sys.stderr, flush=True)
            group[0].future.set_exception(e)
            return
        with self._lock:  # counted first: a client that has its answer sees it
            self._counts["requests"] += len(group)
            self._counts["sentences"] += len(lines)
            self._counts["batches"] += 1
        start = 0
        for job in group:
            job.future.set_result(results[start : start + len(job.lines)])
            start += len(job.lines)


def _start(job: _Job) -> bool:
    """Marks the job's future as running; False if its client gave up (the
    handler was cancelled), so no one waits for it any more."""
    return job.future.set_running_or_notify_cancel()
