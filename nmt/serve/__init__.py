"""`nmt serve MODEL_DIR`: an HTTP JSON API and a small web page for one model.

The model loads once, before the port listens; one worker thread translates
(`batcher`), the web server (FastAPI on uvicorn, the optional `serve` extra)
only parses and answers (`app`). Ctrl-C or SIGTERM stops it cleanly, with a line
saying what it served.
"""

from __future__ import annotations

import errno
import socket
import sys
from pathlib import Path

from nmt.errors import NmtError

EXTRA = 'nmt serve needs the serve extra: pip install "nmt[serve]"'


def serve(
    model_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    checkpoint: str = "best",
    device: str = "auto",
    beam: int | None = None,
    precision: str | None = None,
    shortlist: int | None = None,
) -> None:
    """Serve `model_dir` at http://host:port until Ctrl-C or SIGTERM. `beam` and
    `precision` default (None) to the model's recipe; a request may set its beam."""
    try:
        from nmt.serve.app import make_app
        from nmt.serve.server import run_server
    except ImportError as e:
        if (e.name or "nmt").split(".")[0] == "nmt":
            raise  # a bug of ours, not a missing package
        raise NmtError(EXTRA) from None
    from nmt.decode.translator import Translator
    from nmt.serve.batcher import Batcher
    from nmt.serve.model import ServedModel

    sock = _bind(host, port)  # a port in use is said before the model loads
    try:
        tr = Translator.load(
            model_dir, checkpoint=checkpoint, device=device, beam=beam,
            precision=precision, shortlist=shortlist,
        )  # fmt: skip
        model = ServedModel(tr, model_dir)
        sock.listen(2048)  # connections wait here until the server runs
    except BaseException:
        sock.close()
        raise
    batcher = Batcher(model.translate)
    app = make_app(model, batcher)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    print(
        f"serving {model_dir} at http://{shown}:{bound_port} (beam {tr.beam})",
        file=sys.stderr,
        flush=True,
    )
    try:
        run_server(app, sock)
    finally:
        batcher.close()
        done = batcher.stats()
        print(
            f"stopped: served {done['requests']} requests "
            f"({done['sentences']} sentences) in {done['batches']} batches",
            file=sys.stderr,
            flush=True,
        )


def _bind(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (not listening yet); one line if it cannot be."""
    if not 0 <= port <= 65535:
        raise NmtError(f"--port {port} is not a port (0 to 65535)")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as e:
        raise NmtError(f"--host {host}: {e.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise NmtError(
                f"cannot listen on {host}:{port}: the port is in use "
                "(another server?); choose another with --port"
            ) from None
        raise NmtError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return sock
