"""Schemas: a tree of dataclasses built from a raw mapping, every value checked.

A schema is a root dataclass whose fields are values (bool, int, float, str, lists
of them) or sections (nested dataclasses); a field's metadata may hold "choices",
"min"/"max", "path" (a "~user" must exist) or "internal" (not a key). `build` and
`build_from` check a raw mapping (from `nmt.yamlfile.read_yaml`) against it; an
unknown key, a wrong type or an out-of-range value raises one NmtError naming the
key (and the closest valid key for a typo), the file's line, or the `--set` item
it came from. Generic over the root class, which every function takes: the recipe's
own dataclasses are nmt.config's.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from nmt.errors import NmtError
from nmt.quoting import as_typed, show, show_path
from nmt.yamlfile import YamlTooBig, parse_yaml

T = TypeVar("T")


class _RecipeKeyError(NmtError):
    """A bad value or an unknown key: which recipe key, and where it was written."""

    def __init__(self, message: str, key: str):
        super().__init__(message)
        self.key = key
        self.line: int | None = None


# YAML 1.1's words, which RecipeLoader reads as strings
_BOOL_WORDS = {"true": True, "false": False, "yes": True, "no": False}
_BOOL_WORDS |= {"on": True, "off": False}
_INT_LIMIT = 2**63


def _check_value(
    value: Any, tp: Any, f: dataclasses.Field, key: str, root: type
) -> Any:
    """`value` for field `f` (type `tp`) at key path `key`, converted (1e5 to an
    int, "yes" to true, a lone string to a list) and checked; a section is built.
    `root` is the schema's root class, for suggesting keys in other sections."""
    origin = typing.get_origin(tp)

    def bad(what: str) -> _RecipeKeyError:
        return _RecipeKeyError(f"recipe key '{key}' {what}, got {show(value)}", key)

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
        raise _RecipeKeyError(
            f"recipe key '{key}' must be one of {', '.join(choices)}; "
            f"got {show(value)}{hint}",
            key,
        )
    lo, hi = f.metadata.get("min"), f.metadata.get("max")
    if lo is not None and value < lo or hi is not None and value > hi:
        bounds = f"at least {lo}" if hi is None else f"between {lo} and {hi}"
        raise _RecipeKeyError(
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


def _fields(cls: type) -> dict[str, dataclasses.Field]:
    """The fields of `cls` that are keys (not "internal")."""
    return {
        f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")
    }


def _all_keys(cls: type, prefix: str = "") -> list[str]:
    """Every recipe key path, e.g. 'model.decoder.hidden'."""
    hints = typing.get_type_hints(cls)
    out = []
    for name in _fields(cls):
        if dataclasses.is_dataclass(hints[name]):
            out += _all_keys(hints[name], f"{prefix}{name}.")
        else:
            out.append(f"{prefix}{name}")
    return out


def _join(prefix: str, k: Any) -> str:
    name = as_typed(k) if isinstance(k, str) else show(k)
    return f"{prefix}.{name}" if prefix else name


def _unknown(k: Any, fields: dict, prefix: str, root: type) -> str:
    """'unknown recipe key ...', with the closest key in the same section, or the
    same name in another section (train.beam -> decode.beam), when there is one."""
    msg = f"unknown recipe key '{_join(prefix, k)}'"
    if not isinstance(k, str) or len(k) > 100:
        return msg
    close = difflib.get_close_matches(k, list(fields), n=1, cutoff=0.5)
    if close:
        return msg + f"; did you mean '{_join(prefix, close[0])}'?"
    elsewhere = [p for p in _all_keys(root) if p.rsplit(".", 1)[-1] == k]
    return msg + (f"; did you mean '{elsewhere[0]}'?" if elsewhere else "")


def _build(cls: type, raw: dict, prefix: str = "", root: type | None = None) -> Any:
    """`cls` from the mapping `raw` (its keys at key path `prefix`), every value
    checked; an error carries the key's line when `raw` came from RecipeLoader."""
    root = root or cls
    hints = typing.get_type_hints(cls)
    fields = _fields(cls)
    lines = getattr(raw, "lines", {})
    kwargs = {}
    for k, v in raw.items():
        try:
            if not isinstance(k, str) or k not in fields:
                unknown = _unknown(k, fields, prefix, root)
                raise _RecipeKeyError(unknown, _join(prefix, k))
            kwargs[k] = _check_value(v, hints[k], fields[k], _join(prefix, k), root)
        except _RecipeKeyError as e:
            if e.line is None:
                e.line = lines.get(k)
            raise
    return cls(**kwargs)


def build(root: type[T], raw: dict) -> T:
    """The tree of `root` from a raw mapping, checked; an error names the key."""
    return _build(root, raw)


def parse_overrides(items: list[str] | None) -> list[tuple[str, Any]]:
    """`key.path=value` strings; the value is parsed as YAML (1, 1e-3, true, [a, b]),
    or kept as the text itself where that is not valid YAML."""
    out = []
    for item in items or []:
        try:
            item.encode("utf-8")
        except UnicodeEncodeError:  # bytes that were not UTF-8 on the command line
            raise NmtError(f"--set {show(item)}: not valid UTF-8") from None
        if "=" not in item:
            raise NmtError(
                f"--set expects KEY=VALUE (e.g. train.lr=0.01), got {show(item)}"
            )
        key, text = item.split("=", 1)
        key = key.strip()
        if not key:
            raise NmtError(f"--set {as_typed(item)}: the key before '=' is empty")
        if any(not p.strip() for p in key.split(".")):
            raise NmtError(
                f"--set {as_typed(item)}: the key '{as_typed(key)}' has an empty part"
            )
        try:
            value = parse_yaml(text) if text.strip() else ""
        except YamlTooBig as e:
            raise NmtError(f"--set {as_typed(key)}=...: refused: {e.problem}") from None
        except yaml.YAMLError:
            value = text
        out.append((key, value))
    return out


def _set_path(root: type, raw: dict, dotted: str, value: Any, item: str = "") -> None:
    """Put an override into the raw recipe, checking its path against the keys."""
    item = item or dotted
    parts = dotted.split(".")
    node, cls = raw, root
    for i, p in enumerate(parts):
        fields = _fields(cls)
        prefix = ".".join(parts[:i])
        if p not in fields:
            unknown = _unknown(p, fields, prefix, root)
            raise NmtError(f"--set {as_typed(item)}: {unknown}")
        if i == len(parts) - 1:
            node[p] = value
            return
        tp = typing.get_type_hints(cls)[p]
        if not dataclasses.is_dataclass(tp):
            here = _join(prefix, p)
            raise NmtError(
                f"--set {as_typed(item)}: recipe key '{here}' is a value, "
                "not a section with keys below it"
            )
        nxt = node.setdefault(p, {})
        if not isinstance(nxt, dict):
            return  # the recipe's own value for the section is wrong: _build says so
        node, cls = nxt, tp


def set_overrides(
    root: type, raw: dict, items: list[str] | None
) -> list[tuple[str, str]]:
    """Apply `--set key.path=value` items to the raw mapping `raw` in place, each
    path checked against `root`'s keys. Returns (item, key) pairs, which
    `build_from` takes to name the item behind a bad value."""
    pairs = parse_overrides(items)
    sets = [(item, key) for item, (key, _) in zip(items or [], pairs)]
    for (item, _), (key, value) in zip(sets, pairs):
        _set_path(root, raw, key, value, item)
    return sets


def _where_set(key: str, sets: list[tuple[str, str]]) -> str | None:
    """The --set item (last wins) that wrote recipe key `key`, if one did."""
    for item, k in reversed(sets):
        if key == k or key.startswith((k + ".", k + "[")):
            return item
    return None


def build_from(
    root: type[T], raw: dict, what: str, path: Path, sets: list[tuple[str, str]]
) -> T:
    """The tree of `root` from `raw`, read from the file `path` (a `what`, e.g.
    "recipe") and changed by the `--set` items `sets` (from `set_overrides`). An
    error names the item that wrote the bad key, else the file and the key's line."""
    try:
        return _build(root, raw)
    except _RecipeKeyError as e:
        item = _where_set(e.key, sets)
        if item is not None:
            raise NmtError(f"--set {as_typed(item)}: {e}") from None
        where = f", line {e.line}" if e.line else ""
        raise NmtError(f"{what} {show_path(path)}{where}: {e}") from None
