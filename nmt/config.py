"""Recipes: YAML files loaded into one dataclass per concern, validated.

Every key has a default here; `recipes/*.yaml` comment each one. Unknown keys,
wrong types and out-of-range values raise `NmtError` naming the file, the line and
the key (and the closest valid key for a typo), or the `--set` item they came from.

YAML is read by one reader, `read_yaml`, with one loader, `RecipeLoader`: safe
(data, never code), bounded (file size, nesting, alias expansion), YAML 1.2 numbers
and booleans (`1e-3` is a number; `no` is the string "no", as a language code).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import os
import re
import reprlib
import stat
import tempfile
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nmt.errors import NmtError


def _choice(*options: str) -> dict:
    return {"choices": options}


def _range(lo: float | None = None, hi: float | None = None) -> dict:
    return {"min": lo, "max": hi}


@dataclass
class ToyConfig:
    seed: int = field(default=1234, metadata=_range(0))
    train_size: int = field(default=60000, metadata=_range(1))
    valid_size: int = field(default=500, metadata=_range(1))
    test_size: int = field(default=1000, metadata=_range(1))


@dataclass
class FilesConfig:
    # relative paths are relative to the recipe's directory
    dir: str = field(default="", metadata={"path": True})
    format: str = field(default="text", metadata=_choice("text", "tsv"))
    train: str = "train"  # prefix: <dir>/<prefix>.<lang>[.gz], or a .tsv[.gz] file
    valid: str = "valid"
    test: list[str] = field(default_factory=lambda: ["test"])


@dataclass
class HubConfig:
    # hub name, or a directory written by Dataset(Dict).save_to_disk
    path: str = field(default="", metadata={"path": True})
    name: str = ""  # dataset configuration, e.g. "iwslt2017-de-en"
    train_split: str = "train"
    valid_split: str = "validation"
    test_splits: list[str] = field(default_factory=lambda: ["test"])
    layout: str = field(
        default="auto", metadata=_choice("auto", "translation", "columns")
    )
    src_field: str = ""  # column of the source text (layout=columns); default src_lang
    tgt_field: str = ""


@dataclass
class DataConfig:
    source: str = field(default="toy", metadata=_choice("toy", "files", "hub"))
    src_lang: str = "src"
    tgt_lang: str = "tgt"
    toy: ToyConfig = field(default_factory=ToyConfig)
    files: FilesConfig = field(default_factory=FilesConfig)
    hub: HubConfig = field(default_factory=HubConfig)
    reverse_source: bool = False  # Sutskever et al. 2014: feed the source backwards
    max_len: int = field(default=100, metadata=_range(1))  # subword tokens, train pairs
    max_ratio: float = field(default=3.0, metadata=_range(1.0))
    dedup: bool = False


@dataclass
class TokenizerConfig:
    model_type: str = field(default="unigram", metadata=_choice("unigram", "bpe"))
    vocab_size: int = field(default=8000, metadata=_range(16))
    joint: bool = True
    character_coverage: float = field(default=1.0, metadata=_range(0.9, 1.0))
    byte_fallback: bool = False
    input_sentence_size: int = field(default=1000000, metadata=_range(100))


@dataclass
class EncoderConfig:
    layers: int = field(default=2, metadata=_range(1))
    hidden: int = field(default=256, metadata=_range(1))  # per direction
    dropout: float = field(default=0.2, metadata=_range(0.0, 0.95))


@dataclass
class DecoderConfig:
    type: str = field(default="gru", metadata=_choice("gru", "lstm"))
    conditioning: str = field(default="cho", metadata=_choice("cho", "sutskever"))
    layers: int = field(default=1, metadata=_range(1))
    hidden: int = field(default=512, metadata=_range(1))
    dropout: float = field(default=0.2, metadata=_range(0.0, 0.95))
    readout: int = field(default=512, metadata=_range(1))


@dataclass
class ModelConfig:
    embed_dim: int = field(default=256, metadata=_range(1))
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    attention: str = field(
        default="none", metadata=_choice("none", "bahdanau", "luong")
    )
    attention_score: str = field(default="general", metadata=_choice("general", "dot"))
    attention_hidden: int = field(default=0, metadata=_range(0))  # 0: decoder.hidden
    input_feeding: bool = False  # luong: the previous readout enters the RNN
    init: str = field(default="uniform", metadata=_choice("uniform", "xavier"))
    init_range: float = field(default=0.08, metadata=_range(0.0))
    tie_embeddings: bool = False  # share target embedding and output projection


@dataclass
class TrainConfig:
    device: str = field(default="auto", metadata=_choice("auto", "cpu", "cuda"))
    seed: int = field(default=1, metadata=_range(0))  # batching needs seed >= 0
    threads: int = field(default=0, metadata=_range(0))  # 0: torch's default
    precision: str = field(
        default="auto", metadata=_choice("auto", "fp32", "bf16", "fp16")
    )  # auto: bf16 autocast on CUDA, fp32 on CPU
    optimizer: str = field(default="adam", metadata=_choice("adam", "sgd"))
    lr: float = field(default=0.001, metadata=_range(0.0))
    momentum: float = field(default=0.0, metadata=_range(0.0, 1.0))
    weight_decay: float = field(default=0.0, metadata=_range(0.0))
    schedule: str = field(
        default="plateau",
        metadata=_choice("constant", "plateau", "sutskever", "warmup"),
    )
    warmup_steps: int = field(default=0, metadata=_range(0))
    decay_factor: float = field(default=0.5, metadata=_range(0.0, 1.0))
    plateau_patience: int = field(default=2, metadata=_range(0))
    decay_start_epoch: float = field(default=5.0, metadata=_range(0.0))  # sutskever
    min_lr: float = field(default=1e-5, metadata=_range(0.0))
    batch_tokens: int = field(default=4096, metadata=_range(1))  # target tokens
    batch_sentences: int = field(default=0, metadata=_range(0))  # >0 overrides tokens
    accumulate: int = field(default=1, metadata=_range(1))  # batches per update
    max_steps: int = field(default=0, metadata=_range(0))  # 0: no limit
    max_epochs: int = field(default=20, metadata=_range(0))
    max_minutes: float = field(default=0.0, metadata=_range(0.0))  # 0: no limit
    clip_norm: float = field(default=5.0, metadata=_range(0.0))
    label_smoothing: float = field(default=0.1, metadata=_range(0.0, 0.99))
    log_every: int = field(default=100, metadata=_range(1))
    valid_every: int = field(default=1000, metadata=_range(1))
    valid_bleu_sentences: int = field(default=0, metadata=_range(0))  # 0: all
    patience: int = field(default=5, metadata=_range(0))  # 0: no early stopping
    save_every: int = field(default=0, metadata=_range(0))  # steps; 0: at validations
    keep_last: int = field(default=5, metadata=_range(1))  # numbered checkpoints kept


@dataclass
class DecodeConfig:
    beam: int = field(default=5, metadata=_range(1))
    length_penalty: float = field(default=1.0, metadata=_range(0.0))  # GNMT alpha
    # When beam search stops a sentence: "exact" once no live hypothesis can beat
    # its finished ones (nmt/search.py); "early" once none beats them at its current
    # length (faster; may miss a better, longer translation).
    stop: str = field(default="exact", metadata=_choice("exact", "early"))
    # bf16: matrix products in bfloat16 under torch.autocast (CPU or CUDA), faster
    # where the hardware has bf16 units (refused on a CPU without them); scores stay
    # float32, outputs may differ.
    precision: str = field(default="fp32", metadata=_choice("fp32", "bf16"))
    max_len_a: float = field(default=1.5, metadata=_range(0.0))  # max = a * src + b
    max_len_b: int = field(default=10, metadata=_range(0))
    # A batch holds at most batch_tokens source tokens (padded) and batch_rows
    # hypotheses (sentences x beam): the rows of every step's [rows, vocabulary]
    # products and scores.
    batch_tokens: int = field(default=6000, metadata=_range(1))
    batch_rows: int = field(default=800, metadata=_range(1))
    nbest: int = field(default=1, metadata=_range(1))


@dataclass
class Config:
    name: str = "experiment"
    workdir: str = "runs/experiment"  # relative to the current directory
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    # Where the recipe lives, so that relative data paths resolve; not a key.
    recipe_dir: str = field(default=".", metadata={"internal": True})

    @property
    def model_dir(self) -> Path:
        return Path(self.workdir) / "model"

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("recipe_dir")
        return d

    def save(self, path: Path) -> None:
        """Write the resolved recipe atomically (temp file + rename), in YAML that
        `RecipeLoader` and a plain `yaml.safe_load` read back the same."""
        text = yaml.dump(
            self.to_dict(), Dumper=_Dumper, sort_keys=False, allow_unicode=True
        )
        path = Path(path)
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(
                prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent
            )
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            tmp = None
        except OSError as e:
            raise NmtError(f"cannot write {_path(path)}: {e.strerror or e}") from None
        finally:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)

    def fingerprint(self, *sections: str) -> str:
        """A short hash of some sections, used to key caches."""
        d = self.to_dict()
        blob = json.dumps({s: d[s] for s in sections}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def resolve(self, path: str) -> Path:
        """A data path from the recipe, made absolute against the recipe's folder."""
        try:
            p = Path(path).expanduser()
        except RuntimeError:  # "~someone/..." with no such user
            raise NmtError(f"cannot expand '~' in the path {_show(path)}") from None
        return p if p.is_absolute() else (Path(self.recipe_dir) / p).resolve()


# ---------------------------------------------------------------- YAML

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
    return {
        ch: [(tag, rx) for tag, rx in entries if tag not in drop]
        for ch, entries in base.yaml_implicit_resolvers.items()  # type: ignore[attr-defined]
    }


class _TooBig(yaml.MarkedYAMLError):
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
            raise _TooBig(
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
                raise _TooBig(
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
            raise _TooBig(
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
            shown = _show(node.value) if node.id == "scalar" else f"a {node.id}"
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
                    f"duplicate key {_show(key)} (first on line {first})",
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


def _load_yaml(text: str) -> Any:
    """One YAML document through RecipeLoader; raises yaml.YAMLError."""
    loader = RecipeLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


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


def _show(value: Any, width: int = 60) -> str:
    """`repr(value)`, on one line and at most `width` characters, however big the
    value (reprlib never formats more than it shows)."""
    s = _ShortRepr().repr(value)
    return s if len(s) <= width else s[: width - 3] + "..."


def _text(s: Any) -> str:
    """A name or an argument as typed, when it is short and printable; else `_show`."""
    return s if isinstance(s, str) and s.isprintable() and len(s) <= 60 else _show(s)


def _clip(text: str, width: int) -> str:
    """Text on one line, at most `width` characters."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _path(path: Any) -> str:
    s = str(path)
    return s if s.isprintable() else _show(s, 200)


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
        return f", line {line}", f"character {_show(char)} is not allowed in YAML"
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    parts = [getattr(e, "context", None), getattr(e, "problem", None)]
    problem = ", ".join(str(p) for p in parts if p) or str(e)
    return where, _clip(problem, 120)


def read_yaml(path: str | Path, what: str) -> dict:
    """The mapping in a YAML file (a recipe, a model config), read with bounds.

    `what` names the file in messages ("recipe", "model config"). A missing file,
    a directory, a file over MAX_YAML_BYTES, bytes that are not UTF-8, invalid
    YAML, a document past RecipeLoader's bounds, an empty file or one whose top
    level is not a mapping: each raises one NmtError naming the file (and line).
    """
    path = Path(path)
    name = _path(path)
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
        raw = _load_yaml(text)
    except yaml.YAMLError as e:
        where, problem = _yaml_problem(e, text)
        kind = "refused" if isinstance(e, _TooBig) else "invalid YAML"
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


# ---------------------------------------------------------------- checking


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


def _check_value(value: Any, tp: Any, f: dataclasses.Field, key: str) -> Any:
    origin = typing.get_origin(tp)

    def bad(what: str) -> _RecipeKeyError:
        return _RecipeKeyError(f"recipe key '{key}' {what}, got {_show(value)}", key)

    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise bad("is a section: it must be a mapping of keys")
        return _build(tp, value, key)  # type: ignore[arg-type]
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise bad("must be a list")
        return [_check_value(v, item, f, f"{key}[{i}]") for i, v in enumerate(value)]
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
            f"got {_show(value)}{hint}",
            key,
        )
    lo, hi = f.metadata.get("min"), f.metadata.get("max")
    if lo is not None and value < lo or hi is not None and value > hi:
        bounds = f"at least {lo}" if hi is None else f"between {lo} and {hi}"
        raise _RecipeKeyError(
            f"recipe key '{key}' must be {bounds}; got {_show(value)}", key
        )
    return value


def override(section: Any, prefix: str, **values: Any) -> None:
    """Set fields of one config section (e.g. `decode`) from options such as the
    command line's, checked as the same recipe keys would be; None keeps a field."""
    hints = typing.get_type_hints(type(section))
    fields = {f.name: f for f in dataclasses.fields(section)}
    for name, value in values.items():
        if value is not None:
            key = f"{prefix}.{name}"
            setattr(section, name, _check_value(value, hints[name], fields[name], key))


def _fields(cls: type) -> dict[str, dataclasses.Field]:
    return {
        f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")
    }


def _all_keys(cls: type = Config, prefix: str = "") -> list[str]:
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
    name = _text(k) if isinstance(k, str) else _show(k)
    return f"{prefix}.{name}" if prefix else name


def _unknown(k: Any, fields: dict, prefix: str) -> str:
    """'unknown recipe key ...', with the closest key in the same section, or the
    same name in another section (train.beam -> decode.beam), when there is one."""
    msg = f"unknown recipe key '{_join(prefix, k)}'"
    if not isinstance(k, str) or len(k) > 100:
        return msg
    close = difflib.get_close_matches(k, list(fields), n=1, cutoff=0.5)
    if close:
        return msg + f"; did you mean '{_join(prefix, close[0])}'?"
    elsewhere = [p for p in _all_keys() if p.rsplit(".", 1)[-1] == k]
    return msg + (f"; did you mean '{elsewhere[0]}'?" if elsewhere else "")


def _build(cls: type, raw: dict, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    fields = _fields(cls)
    lines = getattr(raw, "lines", {})
    kwargs = {}
    for k, v in raw.items():
        try:
            if not isinstance(k, str) or k not in fields:
                raise _RecipeKeyError(_unknown(k, fields, prefix), _join(prefix, k))
            kwargs[k] = _check_value(v, hints[k], fields[k], _join(prefix, k))
        except _RecipeKeyError as e:
            if e.line is None:
                e.line = lines.get(k)
            raise
    return cls(**kwargs)


# ---------------------------------------------------------------- loading


def parse_overrides(items: list[str] | None) -> list[tuple[str, Any]]:
    """`key.path=value` strings; the value is parsed as YAML (1, 1e-3, true, [a, b]),
    or kept as the text itself where that is not valid YAML."""
    out = []
    for item in items or []:
        try:
            item.encode("utf-8")
        except UnicodeEncodeError:  # bytes that were not UTF-8 on the command line
            raise NmtError(f"--set {_show(item)}: not valid UTF-8") from None
        if "=" not in item:
            raise NmtError(
                f"--set expects KEY=VALUE (e.g. train.lr=0.01), got {_show(item)}"
            )
        key, text = item.split("=", 1)
        key = key.strip()
        if not key:
            raise NmtError(f"--set {_text(item)}: the key before '=' is empty")
        if any(not p.strip() for p in key.split(".")):
            raise NmtError(
                f"--set {_text(item)}: the key '{_text(key)}' has an empty part"
            )
        try:
            value = _load_yaml(text) if text.strip() else ""
        except _TooBig as e:
            raise NmtError(f"--set {_text(key)}=...: refused: {e.problem}") from None
        except yaml.YAMLError:
            value = text
        out.append((key, value))
    return out


def _set_path(raw: dict, dotted: str, value: Any, item: str = "") -> None:
    """Put an override into the raw recipe, checking its path against the keys."""
    item = item or dotted
    parts = dotted.split(".")
    node, cls = raw, Config
    for i, p in enumerate(parts):
        fields = _fields(cls)
        prefix = ".".join(parts[:i])
        if p not in fields:
            raise NmtError(f"--set {_text(item)}: {_unknown(p, fields, prefix)}")
        if i == len(parts) - 1:
            node[p] = value
            return
        tp = typing.get_type_hints(cls)[p]
        if not dataclasses.is_dataclass(tp):
            here = _join(prefix, p)
            raise NmtError(
                f"--set {_text(item)}: recipe key '{here}' is a value, not a section "
                "with keys below it"
            )
        nxt = node.setdefault(p, {})
        if not isinstance(nxt, dict):
            return  # the recipe's own value for the section is wrong: _build says so
        node, cls = nxt, tp


def _where_set(key: str, sets: list[tuple[str, str]]) -> str | None:
    """The --set item (last wins) that wrote recipe key `key`, if one did."""
    for item, k in reversed(sets):
        if key == k or key.startswith((k + ".", k + "[")):
            return item
    return None


def _build_from(
    raw: dict, what: str, path: Path, sets: list[tuple[str, str]]
) -> Config:
    try:
        return _build(Config, raw)
    except _RecipeKeyError as e:
        item = _where_set(e.key, sets)
        if item is not None:
            raise NmtError(f"--set {_text(item)}: {e}") from None
        where = f", line {e.line}" if e.line else ""
        raise NmtError(f"{what} {_path(path)}{where}: {e}") from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """A recipe file, with `--set key.path=value` overrides applied, validated."""
    path = Path(path)
    raw = read_yaml(path, "recipe")
    pairs = parse_overrides(overrides)
    sets = [(item, key) for item, (key, _) in zip(overrides or [], pairs)]
    for (item, _), (key, value) in zip(sets, pairs):
        _set_path(raw, key, value, item)
    cfg = _build_from(raw, "recipe", path, sets)
    cfg.recipe_dir = str(path.resolve().parent)
    return cfg


def load_model_config(model_dir: Path) -> Config:
    """The Config of a model directory (`<model_dir>/config.yaml`, written by
    training), validated as a recipe is; every error names that file."""
    path = Path(model_dir) / "config.yaml"
    return _build_from(read_yaml(path, "model config"), "model config", path, [])


def config_from_dict(raw: dict, recipe_dir: str = ".") -> Config:
    if not isinstance(raw, dict):
        raise NmtError(f"a config must be a mapping of keys, got {_show(raw)}")
    cfg = _build(Config, raw)
    cfg.recipe_dir = recipe_dir
    return cfg
