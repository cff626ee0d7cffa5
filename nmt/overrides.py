"""`--set key.path=value` items: parsed, put into a raw recipe, and named when a
value they wrote is wrong.

`set_overrides` puts the items into the raw mapping read from a file, each path
checked against the schema's keys; `build_from` builds the tree and names the item
that wrote a bad value, else the file and the key's line. Generic over the root
class, as nmt.schema is.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from nmt.errors import NmtError
from nmt.quoting import as_typed, show, show_path
from nmt.schema import RecipeKeyError, build, key_fields, key_path, unknown_key
from nmt.yamlfile import YamlTooBig, parse_yaml

T = TypeVar("T")


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
        fields = key_fields(cls)
        prefix = ".".join(parts[:i])
        if p not in fields:
            unknown = unknown_key(p, fields, prefix, root)
            raise NmtError(f"--set {as_typed(item)}: {unknown}")
        if i == len(parts) - 1:
            node[p] = value
            return
        tp = typing.get_type_hints(cls)[p]
        if not dataclasses.is_dataclass(tp):
            here = key_path(prefix, p)
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
        return build(root, raw)
    except RecipeKeyError as e:
        item = _where_set(e.key, sets)
        if item is not None:
            raise NmtError(f"--set {as_typed(item)}: {e}") from None
        where = f", line {e.line}" if e.line else ""
        raise NmtError(f"{what} {show_path(path)}{where}: {e}") from None
