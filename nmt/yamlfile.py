"""YAML files: the one bounded reader and the one writer of recipes and configs.

YAML is read by one reader, `read_yaml`, with one loader, `RecipeLoader`: safe
(data, never code), bounded (file size, nesting, alias expansion), YAML 1.2 numbers
and booleans (`1e-3` is a number; `no` is the string "no", as a language code).
`write_yaml` writes what both it and a plain `yaml.safe_load` read back the same.
Every failure is one NmtError naming the file (and line). Nothing here knows what
a recipe holds: that is nmt.config's.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Any

import yaml

from nmt.errors import NmtError
from nmt.files import atomic
from nmt.quoting import clip, show, show_path

MAX_YAML_BYTES = 1 << 20  # a recipe is a few KiB; anything this big is the wrong file
MAX_YAML_NODES = 100_000  # values in a document, aliases expanded ("billion laughs")
MAX_YAML_DEPTH = 64  # nesting of lists and mappings

_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
# YAML 1.1's floats, plus an exponent without a dot (1e-3, 5E+4, 2e5) as YAML 1.2 has.
_FLOAT_RE = re.compile(
    r"""^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
    |[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_BOOL_RE = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


def _resolvers(base: type, drop: set[str]) -> dict:
    """`base`'s implicit resolvers (plain scalar -> tag), less the tags in `drop`."""
    return {
        ch: [(tag, rx) for tag, rx in entries if tag not in drop]
        for ch, entries in base.yaml_implicit_resolvers.items()  # type: ignore[attr-defined]
    }


class YamlTooBig(yaml.MarkedYAMLError):
    """A document past the loader's bounds: refused, never read as plain text."""


class _Mapping(dict):
    """A YAML mapping that remembers the line of each of its keys."""

    lines: dict


class RecipeLoader(yaml.SafeLoader):
    """The one YAML loader for recipes, `--set` values and model configs.

    `yaml.SafeLoader` (no tags that run code) with YAML 1.2 floats (`1e-3`) and
    booleans (only true/false: `no` stays a string), dates left as strings,
    duplicate keys refused, at most MAX_YAML_DEPTH levels of nesting and
    MAX_YAML_NODES values once aliases are expanded, and the line of every key kept
    (`_Mapping.lines`) so that errors can name it.
    """

    yaml_implicit_resolvers = _resolvers(yaml.SafeLoader, {_FLOAT, _BOOL, _TIMESTAMP})

    def __init__(self, stream: Any):
        super().__init__(stream)
        self._depth = 0
        self._count = 0  # values composed so far, an alias counting as its copy
        self._sizes: dict[int, int] = {}  # id(node) -> its values, aliases expanded

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if self._depth >= MAX_YAML_DEPTH:
            raise YamlTooBig(
                None,
                None,
                f"nested more than {MAX_YAML_DEPTH} levels deep",
                event.start_mark,
            )
        alias = isinstance(event, yaml.AliasEvent)
        start = self._count
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if alias:
            size = self._sizes.get(id(node))
            if size is None:  # the alias is inside the node it names
                raise YamlTooBig(
                    None,
                    None,
                    f"alias *{event.anchor} refers to itself",
                    event.start_mark,
                )
            self._count += size
        else:
            self._count += 1
            self._sizes[id(node)] = self._count - start
        if self._count > MAX_YAML_NODES:
            raise YamlTooBig(
                None,
                None,
                f"more than {MAX_YAML_NODES} values (each alias counted as a copy)",
                event.start_mark,
            )
        return node

    def compose_document(self) -> Any:
        self._count, self._sizes = 0, {}
        try:
            return super().compose_document()
        finally:
            self._sizes = {}

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as e:  # int("9" * 5000), !!float x, ...
            shown = show(node.value) if node.id == "scalar" else f"a {node.id}"
            what = f"{shown} as {node.tag.rsplit(':', 1)[-1]}"
            reason = " ".join(re.split(r"[:;]", str(e))[0].split())[:80]
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {what}: {reason}", node.start_mark
            ) from None

    def construct_yaml_map(self, node: Any) -> Any:
        data = _Mapping()
        data.lines = {}
        yield data
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                continue  # unhashable: construct_mapping says so
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {show(key)} (first on line {first})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        data.update(self.construct_mapping(node))
        for key_node, _ in node.value:  # after merges: own keys last, so they win
            data.lines[self.construct_object(key_node)] = key_node.start_mark.line + 1


RecipeLoader.add_constructor("tag:yaml.org,2002:map", RecipeLoader.construct_yaml_map)
RecipeLoader.add_implicit_resolver(_FLOAT, _FLOAT_RE, list("-+0123456789."))
RecipeLoader.add_implicit_resolver(_BOOL, _BOOL_RE, list("tTfF"))


class _Dumper(yaml.SafeDumper):
    """Quotes every string that YAML 1.1 or `RecipeLoader` would read as another
    type (`no`, `1e5`), so that both read a saved config back unchanged."""

    yaml_implicit_resolvers = _resolvers(yaml.SafeDumper, set())


_Dumper.add_implicit_resolver(_FLOAT, _FLOAT_RE, list("-+0123456789."))


def yaml_value(value: Any) -> str:
    """One value (a scalar or a list) as one line of YAML that `RecipeLoader`
    reads back unchanged; `write_yaml`'s quoting."""
    one_line = dict(Dumper=_Dumper, default_flow_style=True, width=1 << 30)
    text = yaml.dump(value, allow_unicode=True, **one_line)
    if text.count("\n") > 1 and not text.endswith("\n...\n"):  # line breaks
        text = yaml.dump(value, allow_unicode=True, default_style='"', **one_line)
    return text.removesuffix("\n").removesuffix("\n...")


def parse_yaml(text: str) -> Any:
    """One YAML document (a file's text, a `--set` value) through RecipeLoader;
    raises yaml.YAMLError, YamlTooBig where it is past the loader's bounds."""
    loader = RecipeLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


_TYPE_NAMES = {
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    list: "a list",
    type(None): "nothing (null)",
}


def _yaml_problem(e: yaml.YAMLError, text: str) -> tuple[str, str]:
    """(", line N, column M" or "", what is wrong) for a YAML error."""
    if isinstance(e, yaml.reader.ReaderError):
        line = text.count("\n", 0, e.position) + 1
        char = e.character if isinstance(e.character, str) else chr(e.character)
        return f", line {line}", f"character {show(char)} is not allowed in YAML"
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    parts = [getattr(e, "context", None), getattr(e, "problem", None)]
    problem = ", ".join(str(p) for p in parts if p) or str(e)
    return where, clip(problem, 120)


def read_yaml(path: str | Path, what: str) -> dict:
    """The mapping in a YAML file (a recipe, a model config), read with bounds.

    `what` names the file in messages ("recipe", "model config"). A missing file,
    a directory, a file over MAX_YAML_BYTES, bytes that are not UTF-8, invalid
    YAML, a document past RecipeLoader's bounds, an empty file or one whose top
    level is not a mapping: each raises one NmtError naming the file (and line).
    """
    path = Path(path)
    name = show_path(path)
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise NmtError(f"{what} not found: {name}") from None
    except (OSError, ValueError) as e:  # ValueError: a NUL in the path
        raise NmtError(f"{what} {name}: cannot read it ({_os_reason(e)})") from None
    if stat.S_ISDIR(st.st_mode):
        raise NmtError(f"{what} {name} is a directory, not a file")
    too_big = (
        f"{what} {name} is larger than {MAX_YAML_BYTES >> 20} MiB; "
        "is it the right file?"
    )
    if stat.S_ISREG(st.st_mode) and st.st_size > MAX_YAML_BYTES:
        raise NmtError(too_big)
    try:
        with open(path, "rb") as f:  # a pipe (<(...)) has no size: read a bounded part
            data = f.read(MAX_YAML_BYTES + 1)
    except OSError as e:
        raise NmtError(f"{what} {name}: cannot read it ({_os_reason(e)})") from None
    if len(data) > MAX_YAML_BYTES:
        raise NmtError(too_big)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise NmtError(
            f"{what} {name}, line {line}: not UTF-8 text (byte {e.start + 1})"
        ) from None
    try:
        raw = parse_yaml(text)
    except yaml.YAMLError as e:
        where, problem = _yaml_problem(e, text)
        kind = "refused" if isinstance(e, YamlTooBig) else "invalid YAML"
        raise NmtError(f"{what} {name}{where}: {kind}: {problem}") from None
    if raw is None:
        raise NmtError(f"{what} {name} is empty: it needs a mapping of keys")
    if not isinstance(raw, dict):
        got = _TYPE_NAMES.get(type(raw), type(raw).__name__)
        raise NmtError(
            f"{what} {name}: the top level must be a mapping of keys "
            f"(name: ..., data: ...), not {got}"
        )
    return raw


def _os_reason(e: Exception) -> str:
    return getattr(e, "strerror", None) or str(e)


def write_yaml(path: str | Path, data: Any) -> None:
    """`data` as YAML at `path`, atomically (temp file + rename), in the form that
    `RecipeLoader` and a plain `yaml.safe_load` read back the same; an OSError is
    one NmtError naming the file."""
    text = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
    path = Path(path)
    try:
        with atomic(path, "w") as f:
            f.write(text)
    except OSError as e:
        raise NmtError(f"cannot write {show_path(path)}: {e.strerror or e}") from None
