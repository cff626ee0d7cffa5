"""Recipes: YAML files loaded into one dataclass per concern, validated.

Every key has a default here; `recipes/*.yaml` comment each one. Unknown keys,
wrong types and out-of-range values raise `NmtError` naming the key (and the
closest valid key for a typo).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
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
    dir: str = ""  # relative paths are relative to the recipe's directory
    format: str = field(default="text", metadata=_choice("text", "tsv"))
    train: str = "train"  # prefix: <dir>/<prefix>.<lang>[.gz], or a .tsv[.gz] file
    valid: str = "valid"
    test: list[str] = field(default_factory=lambda: ["test"])


@dataclass
class HubConfig:
    path: str = ""  # hub name, or a directory written by Dataset(Dict).save_to_disk
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
    seed: int = 1
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
        text = yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)
        Path(path).write_text(text, encoding="utf-8")

    def fingerprint(self, *sections: str) -> str:
        """A short hash of some sections, used to key caches."""
        d = self.to_dict()
        blob = json.dumps({s: d[s] for s in sections}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def resolve(self, path: str) -> Path:
        """A data path from the recipe, made absolute against the recipe's folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else (Path(self.recipe_dir) / p).resolve()


# ---------------------------------------------------------------- loading


def _check_value(value: Any, tp: Any, f: dataclasses.Field, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise NmtError(f"recipe key '{key}' must be a mapping, got {value!r}")
        return _build(tp, value, key)
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise NmtError(f"recipe key '{key}' must be a list, got {value!r}")
        return [_check_value(v, item, f, key) for v in value]
    if origin in (typing.Union, types.UnionType):
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    if tp is bool:
        if not isinstance(value, bool):
            raise NmtError(f"recipe key '{key}' must be true or false, got {value!r}")
    elif tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise NmtError(f"recipe key '{key}' must be an integer, got {value!r}")
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise NmtError(f"recipe key '{key}' must be a number, got {value!r}")
        value = float(value)
    elif tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise NmtError(f"recipe key '{key}' must be a string, got {value!r}")
        value = str(value)
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise NmtError(
            f"recipe key '{key}' must be one of {', '.join(choices)}; got {value!r}"
        )
    lo, hi = f.metadata.get("min"), f.metadata.get("max")
    if lo is not None and value < lo or hi is not None and value > hi:
        bounds = f"at least {lo}" if hi is None else f"between {lo} and {hi}"
        raise NmtError(f"recipe key '{key}' must be {bounds}; got {value!r}")
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


def _build(cls: type, raw: dict, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    fields = {
        f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")
    }
    kwargs = {}
    for k, v in raw.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if k not in fields:
            close = difflib.get_close_matches(str(k), list(fields), n=1, cutoff=0.5)
            hint = f"; did you mean '{prefix + '.' if prefix else ''}{close[0]}'?"
            raise NmtError(f"unknown recipe key '{key}'" + (hint if close else ""))
        kwargs[k] = _check_value(v, hints[k], fields[k], key)
    return cls(**kwargs)


def _set_path(raw: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = raw
    for p in parts[:-1]:
        nxt = node.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise NmtError(f"--set {dotted}: '{p}' is not a section")
        node = nxt
    node[parts[-1]] = value


def parse_overrides(items: list[str] | None) -> list[tuple[str, Any]]:
    """`key.path=value` strings; the value is parsed as YAML (1, true, [a, b])."""
    out = []
    for item in items or []:
        if "=" not in item:
            raise NmtError(f"--set expects key.path=value, got '{item}'")
        key, text = item.split("=", 1)
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        out.append((key.strip(), value))
    return out


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    path = Path(path)
    if not path.is_file():
        raise NmtError(f"recipe not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        raise NmtError(f"recipe {path}{where}: invalid YAML") from None
    except UnicodeDecodeError:
        raise NmtError(f"recipe {path} is not UTF-8 text") from None
    if not isinstance(raw, dict):
        raise NmtError(f"recipe {path}: the top level must be a mapping of sections")
    for key, value in parse_overrides(overrides):
        _set_path(raw, key, value)
    try:
        cfg = _build(Config, raw)
    except NmtError as e:
        raise NmtError(f"{path}: {e}") from None
    cfg.recipe_dir = str(path.resolve().parent)
    return cfg


def config_from_dict(raw: dict, recipe_dir: str = ".") -> Config:
    cfg = _build(Config, raw)
    cfg.recipe_dir = recipe_dir
    return cfg
