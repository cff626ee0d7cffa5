"""uvicorn, run on a socket that `serve` has bound, stopping as a command should."""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

# in-flight requests get this long to finish after Ctrl-C or SIGTERM
GRACEFUL_S = 30


class _Server(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        """SIGINT and SIGTERM stop the server gracefully, as in uvicorn, but are
        not raised again once it has stopped (uvicorn does that), so `serve`
        returns, prints what it served and the command exits with status 0."""
        stops = (signal.SIGINT, signal.SIGTERM)
        before = {sig: signal.signal(sig, self.handle_exit) for sig in stops}
        try:
            yield
        finally:
            for sig, handler in before.items():
                signal.signal(sig, handler)


def run_server(app, sock: socket.socket) -> None:
    """Serve `app` (an ASGI app) on `sock` until Ctrl-C or SIGTERM."""
    config = uvicorn.Config(
        app,
        log_level="warning",  # nmt prints its own start and stop lines
        access_log=False,
        lifespan="off",
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_S,
    )
    _Server(config).run(sockets=[sock])
