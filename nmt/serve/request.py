"""What a `POST /translate` body may hold, and the one-line reason when it may not.

Plain Python (no web framework), so the rules are read and tested in one place.
A bad body raises `BadRequest` with the HTTP status (400 malformed, 413 too large)
and a message that names the field, e.g. `text[3] is 2417 characters; at most 2000`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

# The documented limits (README, /health). A request is bounded in bytes, in
# sentences and in characters per sentence, so no one request can hold the worker
# for long or fill the memory; the beam is bounded because each step ranks
# sentences x beam rows over the whole target vocabulary.
MAX_BODY_BYTES = 1_000_000
MAX_SENTENCES = 64
MAX_CHARS = 2000
MAX_BEAM = 16
FIELDS = ("text", "beam", "attention")


class BadRequest(Exception):
    """A request the service refuses: `status` (400 or 413) and a one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class TranslateRequest:
    text: list[str]
    beam: int
    attention: bool


def limits(max_beam: int) -> dict:
    """The limits as /health reports them (`max_beam`: for this model)."""
    return {
        "max_body_bytes": MAX_BODY_BYTES,
        "max_sentences": MAX_SENTENCES,
        "max_chars": MAX_CHARS,
        "max_beam": max_beam,
    }


def parse_translate(body: bytes, default_beam: int, max_beam: int) -> TranslateRequest:
    """The request in `body` (JSON), checked field by field; `max_beam` is
    min(MAX_BEAM, target vocabulary size) for the served model."""
    if len(body) > MAX_BODY_BYTES:
        raise too_large()
    try:
        raw = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise BadRequest(400, f"the body is not UTF-8 (byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise BadRequest(
            400, f"the body is not JSON: {e.msg} (line {e.lineno}, column {e.colno})"
        ) from None
    except RecursionError:
        raise BadRequest(400, "the body is not JSON: nested too deeply") from None
    if not isinstance(raw, dict):
        raise BadRequest(400, 'the body must be a JSON object: {"text": [...]}')
    unknown = [k for k in raw if k not in FIELDS]
    if unknown:
        raise BadRequest(
            400, f"unknown field {unknown[0]!r}; the fields are {', '.join(FIELDS)}"
        )
    if "text" not in raw:
        raise BadRequest(400, 'missing field "text": a list of sentences')
    return TranslateRequest(
        _text(raw["text"]),
        _beam(raw.get("beam", default_beam), max_beam),
        _flag(raw.get("attention", False)),
    )


def too_large() -> BadRequest:
    return BadRequest(413, f"the body is over the limit of {MAX_BODY_BYTES} bytes")


def _text(text) -> list[str]:
    if not isinstance(text, list):
        raise BadRequest(400, f'"text" must be a list of strings, not {_kind(text)}')
    if len(text) > MAX_SENTENCES:
        raise BadRequest(
            413, f'"text" has {len(text)} sentences; at most {MAX_SENTENCES} a request'
        )
    for i, line in enumerate(text):
        if not isinstance(line, str):
            raise BadRequest(400, f"text[{i}] must be a string, not {_kind(line)}")
        if len(line) > MAX_CHARS:
            raise BadRequest(
                413, f"text[{i}] is {len(line)} characters; at most {MAX_CHARS}"
            )
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:  # JSON may spell a lone surrogate: "\ud800"
            raise BadRequest(400, f"text[{i}] is not valid Unicode") from None
    return text


def _beam(beam, max_beam: int) -> int:
    if isinstance(beam, bool) or not isinstance(beam, int):
        raise BadRequest(400, f'"beam" must be a whole number, not {_kind(beam)}')
    if not 1 <= beam <= max_beam:
        raise BadRequest(400, f'"beam" must be from 1 to {max_beam}, not {beam}')
    return beam


def _flag(value) -> bool:
    if not isinstance(value, bool):
        raise BadRequest(400, f'"attention" must be true or false, not {_kind(value)}')
    return value


def _kind(value) -> str:
    """The JSON name of a value's type, for messages."""
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    names |= {list: "a list", dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)
