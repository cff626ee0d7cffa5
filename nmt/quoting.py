"""Quoting what a user wrote inside a one-line error message.

A recipe value, a `--set` item or a path can be anything: a huge integer, a deep
list, a control character. These helpers render one as a short, printable excerpt,
so that a message stays one line however big or strange the value is.
"""

from __future__ import annotations

import reprlib
from typing import Any


class _ShortRepr(reprlib.Repr):
    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxdict, self.maxlist = 3, 4, 6
        self.maxstring = self.maxlong = self.maxother = 60

    def repr__Mapping(self, x: dict, level: int) -> str:  # noqa: N802 (reprlib's naming)
        return self.repr_dict(x, level)

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 256:  # repr() of a huge int is slow, or refused
            return f"<an integer of {x.bit_length()} bits>"
        return super().repr_int(x, level)


def show(value: Any, width: int = 60) -> str:
    """`repr(value)`, on one line and at most `width` characters, however big the
    value (reprlib never formats more than it shows)."""
    s = _ShortRepr().repr(value)
    return s if len(s) <= width else s[: width - 3] + "..."


def as_typed(s: Any) -> str:
    """A name or an argument as typed, when it is short and printable; else `show`."""
    return s if isinstance(s, str) and s.isprintable() and len(s) <= 60 else show(s)


def clip(text: str, width: int) -> str:
    """Text on one line, at most `width` characters."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def show_path(path: Any) -> str:
    """A path as typed when it is printable; else quoted, so that it stays one line."""
    s = str(path)
    return s if s.isprintable() else show(s, 200)
