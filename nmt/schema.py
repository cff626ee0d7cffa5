"""Schemas: a tree of dataclasses built from a raw mapping, every value checked.

A schema is a root dataclass whose fields are values (bool, int, float, str, lists
of them) or sections (nested dataclasses), declared with `key`, `one_of` and
`section`: a field's metadata holds its one-line help ("doc"), "choices",
"min"/"max", "path" (a "~user" must exist) or "internal" (not a key). `build`
checks a raw mapping (from `nmt.yamlfile.read_yaml`) against it; an unknown key, a
wrong type or an out-of-range value raises one NmtError naming the key (and the
closest valid key for a typo). `describe` writes a built tree back as YAML with
each key's help. Generic over the root class, which every function takes: the
recipe's own dataclasses are nmt.config's; `--set` items are nmt.overrides'.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from nmt.errors import NmtError
from nmt.quoting import as_typed, show
from nmt.yamlfile import yaml_value

T = TypeVar("T")


class RecipeKeyError(NmtError):
    """A bad value or an unknown key: which recipe key, and where it was written."""

    def __init__(self, message: str, key: str):
        super().__init__(message)
        self.key = key
        self.line: int | None = None


# YAML 1.1's words, which RecipeLoader reads as strings
_BOOL_WORDS = {"true": True, "false": False, "yes": True, "no": False}
_BOOL_WORDS |= {"on": True, "off": False}
_INT_LIMIT = 2**63


def key(
    default: Any,
    doc: str,
    lo: float | None = None,
    hi: float | None = None,
    path: bool = False,
    choices: tuple[str, ...] = (),
) -> Any:
    """A field that is a key: its default, its one-line help, its bounds [lo, hi]
    (None: no bound); `path`: a "~user" in it must exist."""
    meta = {"doc": doc, "min": lo, "max": hi, "path": path, "choices": choices}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def one_of(*choices: str, doc: str) -> Any:
    """A key whose value must be one of `choices`; the first is the default."""
    return key(choices[0], doc, choices=choices)


def section(cls: type, doc: str) -> Any:
    """A field that is a section of keys (the dataclass `cls`), with its help."""
    return dataclasses.field(default_factory=cls, metadata={"doc": doc})


def _check_value(
    value: Any, tp: Any, f: dataclasses.Field, key: str, root: type
) -> Any:
    """`value` for field `f` (type `tp`) at key path `key`, converted (1e5 to an
    int, "yes" to true, a lone string to a list) and checked; a section is built.
    `root` is the schema's root class, for suggesting keys in other sections."""
    origin = typing.get_origin(tp)

    def bad(what: str) -> RecipeKeyError:
        return RecipeKeyError(f"recipe key '{key}' {what}, got {show(value)}", key)

    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise bad("is a section: it must be a mapping of keys")
        return _build(tp, value, key, root)  # type: ignore[arg-type]
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise bad("must be a list")
        return [
            _check_value(v, item, f, f"{key}[{i}]", root) for i, v in enumerate(value)
        ]
    if origin in (typing.Union, types.UnionType):
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    if tp is bool:
        if isinstance(value, str) and value.lower() in _BOOL_WORDS:
            value = _BOOL_WORDS[value.lower()]
        if not isinstance(value, bool):
            raise bad("must be true or false")
    elif tp is int:
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)  # 1e5, 2.0
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("must be an integer")
        if not -_INT_LIMIT <= value < _INT_LIMIT:
            raise bad("must be an integer below 2**63")
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("must be a number")
        try:
            value = float(value)
        except OverflowError:  # an int of hundreds of digits
            value = math.inf
        if not math.isfinite(value):
            raise bad("must be a finite number")
    elif tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise bad("must be a string")
        value = str(value)
        if "\0" in value:
            raise bad("must not contain a NUL character")
        if f.metadata.get("path") and value.startswith("~"):
            try:
                Path(value).expanduser()
            except RuntimeError:
                raise bad("names the home of a user who does not exist") from None
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        close = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise RecipeKeyError(
            f"recipe key '{key}' must be one of {', '.join(choices)}; "
            f"got {show(value)}{hint}",
            key,
        )
    lo, hi = f.metadata.get("min"), f.metadata.get("max")
    if lo is not None and value < lo or hi is not None and value > hi:
        bounds = f"at least {lo}" if hi is None else f"between {lo} and {hi}"
        raise RecipeKeyError(
            f"recipe key '{key}' must be {bounds}; got {show(value)}", key
        )
    return value


def override(
    section: Any, prefix: str, values: dict[str, Any], root: type | None = None
) -> None:
    """Set fields of one section (e.g. `decode`, at key path `prefix`) from options
    such as the command line's, checked as the same recipe keys would be; None keeps
    a field. `root`: the schema's root class (default: the section's own)."""
    root = root or type(section)
    hints = typing.get_type_hints(type(section))
    fields = {f.name: f for f in dataclasses.fields(section)}
    for name, value in values.items():
        if value is not None:
            key = f"{prefix}.{name}"
            value = _check_value(value, hints[name], fields[name], key, root)
            setattr(section, name, value)


def key_fields(cls: type) -> dict[str, dataclasses.Field]:
    """The fields of `cls` that are keys (not "internal")."""
    return {
        f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")
    }


def _all_keys(cls: type, prefix: str = "") -> list[str]:
    """Every recipe key path, e.g. 'model.decoder.hidden'."""
    hints = typing.get_type_hints(cls)
    out = []
    for name in key_fields(cls):
        if dataclasses.is_dataclass(hints[name]):
            out += _all_keys(hints[name], f"{prefix}{name}.")
        else:
            out.append(f"{prefix}{name}")
    return out


def key_path(prefix: str, k: Any) -> str:
    name = as_typed(k) if isinstance(k, str) else show(k)
    return f"{prefix}.{name}" if prefix else name


def unknown_key(k: Any, fields: dict, prefix: str, root: type) -> str:
    """'unknown recipe key ...', with the closest key in the same section, or the
    same name in another section (train.beam -> decode.beam), when there is one."""
    msg = f"unknown recipe key '{key_path(prefix, k)}'"
    if not isinstance(k, str) or len(k) > 100:
        return msg
    close = difflib.get_close_matches(k, list(fields), n=1, cutoff=0.5)
    if close:
        return msg + f"; did you mean '{key_path(prefix, close[0])}'?"
    elsewhere = [p for p in _all_keys(root) if p.rsplit(".", 1)[-1] == k]
    return msg + (f"; did you mean '{elsewhere[0]}'?" if elsewhere else "")


def _build(cls: type, raw: dict, prefix: str = "", root: type | None = None) -> Any:
    """`cls` from the mapping `raw` (its keys at key path `prefix`), every value
    checked; an error carries the key's line when `raw` came from RecipeLoader."""
    root = root or cls
    hints = typing.get_type_hints(cls)
    fields = key_fields(cls)
    lines = getattr(raw, "lines", {})
    kwargs = {}
    for k, v in raw.items():
        try:
            if not isinstance(k, str) or k not in fields:
                unknown = unknown_key(k, fields, prefix, root)
                raise RecipeKeyError(unknown, key_path(prefix, k))
            kwargs[k] = _check_value(v, hints[k], fields[k], key_path(prefix, k), root)
        except RecipeKeyError as e:
            if e.line is None:
                e.line = lines.get(k)
            raise
    return cls(**kwargs)


def build(root: type[T], raw: dict) -> T:
    """The tree of `root` from a raw mapping, checked; an error names the key."""
    return _build(root, raw)


def _help(f: dataclasses.Field) -> str:
    """A field's help as `describe` prints it: "... [a | b]" for a choice."""
    choices = f.metadata.get("choices")
    doc = f.metadata.get("doc", "")
    return f"{doc} [{' | '.join(choices)}]" if choices else doc


def describe(tree: Any) -> str:
    """A built tree as YAML that `build` reads back to the same tree: every key
    with its value, and its help as a comment."""
    lines: list[str] = []

    def add(text: str, f: dataclasses.Field) -> None:
        lines.append(f"{text:<30}  # {_help(f)}")

    def walk(node: Any, indent: str) -> None:
        hints = typing.get_type_hints(type(node))
        for name, f in key_fields(type(node)).items():
            value = getattr(node, name)
            if dataclasses.is_dataclass(hints[name]):
                if not indent:
                    lines.append("")
                add(f"{indent}{name}:", f)
                walk(value, indent + "  ")
            else:
                add(f"{indent}{name}: {yaml_value(value)}", f)

    walk(tree, "")
    return "\n".join(lines) + "\n"
