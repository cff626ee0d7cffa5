"""Recipes: YAML files loaded into one dataclass per concern, validated.

Every key has a default here; `recipes/*.yaml` comment each one. Unknown keys,
wrong types and out-of-range values raise `NmtError` naming the file, the line and
the key (and the closest valid key for a typo), or the `--set` item they came from.

This module holds what a recipe is: the dataclasses, their fields' choices and
ranges (field metadata), and the functions that load one. How a file is read
(bounded, YAML 1.2 numbers and booleans) is nmt.yamlfile's; how a raw mapping is
checked against the dataclasses is nmt.schema's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nmt.errors import NmtError
from nmt.quoting import show
from nmt.schema import build, build_from, set_overrides
from nmt.schema import override as _override
from nmt.yamlfile import read_yaml, write_yaml  # read_yaml: tests import it here


def _choice(*options: str) -> dict:
    """Field metadata: the value must be one of `options`."""
    return {"choices": options}


def _range(lo: float | None = None, hi: float | None = None) -> dict:
    """Field metadata: the value must lie in [lo, hi] (None: no bound)."""
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
    vocab_size: int = field(default=8000, metadata=_range(16, 2**31 - 1))
    joint: bool = True
    character_coverage: float = field(default=1.0, metadata=_range(0.98, 1.0))
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
        write_yaml(path, self.to_dict())

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
            raise NmtError(f"cannot expand '~' in the path {show(path)}") from None
        return p if p.is_absolute() else (Path(self.recipe_dir) / p).resolve()


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """A recipe file, with `--set key.path=value` overrides applied, validated."""
    path = Path(path)
    raw = read_yaml(path, "recipe")
    sets = set_overrides(Config, raw, overrides)
    cfg = build_from(Config, raw, "recipe", path, sets)
    cfg.recipe_dir = str(path.resolve().parent)
    if cfg.workdir.startswith("~"):  # as a shell would: `workdir: ~/runs/x`
        cfg.workdir = str(cfg.resolve(cfg.workdir))
    return cfg


def load_model_config(model_dir: Path) -> Config:
    """The Config of a model directory (`<model_dir>/config.yaml`, written by
    training), validated as a recipe is; every error names that file."""
    path = Path(model_dir) / "config.yaml"
    return build_from(Config, read_yaml(path, "model config"), "model config", path, [])


def config_from_dict(raw: dict, recipe_dir: str = ".") -> Config:
    """A Config from a mapping already in memory (tests, scripts), validated as a
    recipe is; relative data paths resolve against `recipe_dir`."""
    if not isinstance(raw, dict):
        raise NmtError(f"a config must be a mapping of keys, got {show(raw)}")
    cfg = build(Config, raw)
    cfg.recipe_dir = recipe_dir
    return cfg


def override(section: Any, prefix: str, **values: Any) -> None:
    """Set fields of one config section (e.g. `decode`) from options such as the
    command line's, checked as the same recipe keys would be; None keeps a field."""
    _override(section, prefix, values, Config)
