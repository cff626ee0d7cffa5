"""The HTTP side of `nmt serve`: routes, request bodies and error answers.

`GET /` the web page, `GET /health` the model and the limits, `POST /translate`
the translations. Every refusal is a JSON body `{"error": "one line"}` with
status 400 (malformed) or 413 (too large), FastAPI's own validation errors and
unknown paths included, and the service goes on serving.
"""

from __future__ import annotations

import asyncio
from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException

from nmt.errors import NmtError
from nmt.serve.batcher import Batcher
from nmt.serve.model import ServedModel
from nmt.serve.request import (
    MAX_BODY_BYTES,
    BadRequest,
    limits,
    parse_translate,
    too_large,
)

# A body over the limit is still read (and dropped) up to this size, so the
# client gets its 413 instead of a connection reset; beyond it the connection
# is closed.
DRAIN_BYTES = 16 * MAX_BODY_BYTES


def make_app(model: ServedModel, batcher: Batcher) -> FastAPI:
    page = files("nmt.serve").joinpath("page.html").read_text(encoding="utf-8")
    # no /docs: its page loads scripts from a CDN, and the API is four lines
    app = FastAPI(title="nmt", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/health", response_model=None)
    async def health() -> dict:
        return {
            "status": "ok",
            **model.info(),
            "limits": limits(model.max_beam),
            "served": batcher.stats(),
        }

    @app.post("/translate", response_model=None)
    async def translate(request: Request) -> dict | JSONResponse:
        body = await _read_body(request)
        req = parse_translate(body, model.beam, model.max_beam)
        if req.attention and not model.has_attention:
            raise BadRequest(
                400, '"attention": this model has none (model.attention: none)'
            )
        if not req.text:
            return {"translations": []}
        future = batcher.submit((req.beam, req.attention), req.text)
        try:
            results = await asyncio.wrap_future(future)
        except NmtError as e:
            raise BadRequest(400, str(e)) from None
        except Exception as e:  # a bug: the worker has logged it
            return _error(500, f"internal error: {e!r}")
        if not req.attention:
            return {"translations": results}
        return {
            "translations": [r.pop("translation") for r in results],
            "attention": results,
        }

    @app.exception_handler(BadRequest)
    async def refused(request: Request, e: BadRequest) -> JSONResponse:
        return _error(e.status, e.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(400, f"{where or 'request'}: {first.get('msg', 'invalid')}")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException) -> JSONResponse:
        where = f"{request.method} {request.url.path}"
        if e.status_code == 404:
            why = f"no such page: {where}; the API is GET /health, POST /translate"
        elif e.status_code == 405:
            why = f"{where} is not allowed; the API is GET /health, POST /translate"
        else:
            why = f"{where}: {e.detail}"
        return _error(e.status_code, why)

    return app


async def _read_body(request: Request) -> bytes:
    """The body, refused with 413 once it is over MAX_BODY_BYTES."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > DRAIN_BYTES:
        raise too_large()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > DRAIN_BYTES:
            raise too_large()
        if size <= MAX_BODY_BYTES:
            chunks.append(chunk)
    if size > MAX_BODY_BYTES:
        raise too_large()
    return b"".join(chunks)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": _one_line(message)}, status_code=status)


def _one_line(text: str) -> str:
    return " ".join(text.split())
