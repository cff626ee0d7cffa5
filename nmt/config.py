"""Recipes: YAML files loaded into one dataclass per concern, validated.

Every key has a default and a one-line help here (field metadata "doc");
`nmt recipe RECIPE` prints a recipe resolved, every key with its value and help,
so recipes state only what differs. Unknown keys, wrong types and out-of-range
values raise `NmtError` naming the file, the line and the key (and the closest
valid key for a typo), or the `--set` item they came from; `validate` then checks
the rules that span keys. How a file is read (bounded, YAML 1.2 numbers and
booleans) is nmt.yamlfile's; checking a mapping against the dataclasses, schema's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nmt.errors import NmtError
from nmt.overrides import build_from, set_overrides
from nmt.quoting import show, show_path
from nmt.schema import build, key, one_of, section
from nmt.schema import override as _override
from nmt.yamlfile import read_yaml, write_yaml  # read_yaml: tests import it here


@dataclass
class ToyConfig:
    seed: int = key(1234, "sampling seed: same seed, same corpus and split", lo=0)
    train_size: int = key(60000, "training pairs", lo=1)
    valid_size: int = key(500, "validation pairs (disjoint from train)", lo=1)
    test_size: int = key(1000, "test pairs (disjoint from train and valid)", lo=1)


@dataclass
class FilesConfig:
    dir: str = key("", "folder of the files (relative: to the recipe's)", path=True)
    format: str = one_of("text", "tsv", doc="a file per language, or 2 columns")
    train: str = key("train", "prefix: <dir>/<prefix>.<lang>[.gz], or a .tsv[.gz]")
    valid: str = key("valid", "the dev set (validation, early stopping)")
    test: list[str] = key(["test"], "test sets; every one is scored")


@dataclass
class HubConfig:
    path: str = key("", "hub name, or a folder written by save_to_disk", path=True)
    name: str = key("", 'dataset configuration, e.g. "iwslt2017-de-en"')
    train_split: str = key("train", "split names in the dataset")
    valid_split: str = key("validation", "the dev split")
    test_splits: list[str] = key(["test"], "test splits; every one is scored")
    layout: str = one_of("auto", "translation", "columns", doc="{lang: text} | columns")
    src_field: str = key("", "column of the source text (columns; '': src_lang)")
    tgt_field: str = key("", "column of the target text (columns; '': tgt_lang)")


@dataclass
class DataConfig:
    source: str = one_of("toy", "files", "hub", doc="where the sentence pairs are")
    src_lang: str = key("src", "source language code (file suffix for files)")
    tgt_lang: str = key("tgt", "target language code")
    toy: ToyConfig = section(ToyConfig, "a synthetic pair (nmt/data/toy.py)")
    files: FilesConfig = section(FilesConfig, "local parallel text files")
    hub: HubConfig = section(HubConfig, "a datasets hub name or saved folder")
    reverse_source: bool = key(False, "feed the source backwards (Sutskever 2014)")
    max_len: int = key(100, "drop training pairs longer than this (subwords)", lo=1)
    max_ratio: float = key(3.0, "drop training pairs of a longer length ratio", lo=1.0)
    dedup: bool = key(False, "drop repeated training pairs (the same pieces)")
    num_proc: int = key(0, "processes that encode the corpus (0: all cores)", lo=0)


@dataclass
class TokenizerConfig:
    model_type: str = one_of("unigram", "bpe", doc="sentencepiece's model")
    vocab_size: int = key(8000, "pieces (a ceiling)", lo=16, hi=2**31 - 1)
    joint: bool = key(True, "one vocabulary for both languages")
    character_coverage: float = key(
        1.0, "characters covered (CJK: 0.9995)", lo=0.98, hi=1.0
    )
    byte_fallback: bool = key(False, "spell unknown characters as bytes")
    input_sentence_size: int = key(1000000, "sentences sampled to train it", lo=100)


@dataclass
class EncoderConfig:
    layers: int = key(2, "deep bidirectional LSTM", lo=1)
    hidden: int = key(256, "units per direction (outputs: 2 x hidden)", lo=1)
    dropout: float = key(0.2, "on embeddings and between layers", lo=0.0, hi=0.95)


@dataclass
class DecoderConfig:
    type: str = one_of("gru", "lstm", doc="the decoder's RNN")
    conditioning: str = one_of("cho", "sutskever", doc="context: each step | init")
    layers: int = key(1, "deep decoders stack GRU/LSTM layers", lo=1)
    hidden: int = key(512, "decoder units (also the context vector size)", lo=1)
    dropout: float = key(0.2, "embeddings, RNN output, readout", lo=0.0, hi=0.95)
    readout: int = key(512, "the readout layer before the softmax", lo=1)


@dataclass
class ModelConfig:
    embed_dim: int = key(256, "word embeddings, source and target", lo=1)
    encoder: EncoderConfig = section(EncoderConfig, "the source side")
    decoder: DecoderConfig = section(DecoderConfig, "the target side")
    attention: str = one_of("none", "bahdanau", "luong", doc="none is the card's model")
    attention_score: str = one_of("general", "dot", doc="luong: q . W m, or q . m")
    attention_hidden: int = key(0, "bahdanau's layer (0: decoder.hidden)", lo=0)
    input_feeding: bool = key(False, "luong: the previous readout enters the RNN")
    init: str = one_of("uniform", "xavier", doc="uniform: (-init_range, init_range)")
    init_range: float = key(0.08, "bound of the uniform initialisation", lo=0.0)
    tie_embeddings: bool = key(False, "share target embeddings and output layer")


@dataclass
class TrainConfig:
    device: str = one_of("auto", "cpu", "cuda", doc="auto: cuda where there is one")
    seed: int = key(1, "initialisation, dropout and batch order", lo=0)
    threads: int = key(0, "CPU threads for torch (0: torch's default)", lo=0)
    keep_freed_memory: bool = key(False, "glibc: faster, more memory at peak")
    precision: str = one_of("auto", "fp32", "bf16", "fp16", doc="auto: bf16 on CUDA")
    optimizer: str = one_of("adam", "sgd", doc="the optimizer")
    lr: float = key(0.001, "learning rate (peak rate with warmup)", lo=0.0)
    momentum: float = key(0.0, "sgd only", lo=0.0, hi=1.0)
    weight_decay: float = key(0.0, "L2 penalty", lo=0.0)
    schedule: str = one_of(
        "plateau", "constant", "sutskever", "warmup", doc="the learning rate"
    )
    warmup_steps: int = key(0, "linear warmup in front of any schedule", lo=0)
    decay_factor: float = key(0.5, "plateau/sutskever: rate x this", lo=0.0, hi=1.0)
    plateau_patience: int = key(2, "validations without gain before a cut", lo=0)
    decay_start_epoch: float = key(5.0, "sutskever: then one every half epoch", lo=0.0)
    min_lr: float = key(1e-5, "schedules never go below this", lo=0.0)
    batch_tokens: int = key(4096, "target tokens per batch (padded)", lo=1)
    batch_sentences: int = key(0, "> 0: batches of this many sentences instead", lo=0)
    accumulate: int = key(1, "batches per update (gradient accumulation)", lo=1)
    max_steps: int = key(0, "0: no step limit", lo=0)
    max_epochs: int = key(20, "0: no epoch limit", lo=0)
    max_minutes: float = key(0.0, "training wall time (0: no limit)", lo=0.0)
    clip_norm: float = key(5.0, "gradient-norm clipping (0: none)", lo=0.0)
    label_smoothing: float = key(0.1, "0.1 helps real data; 0: none", lo=0.0, hi=0.99)
    log_every: int = key(100, "steps between log records", lo=1)
    valid_every: int = key(1000, "steps between validations (loss, greedy BLEU)", lo=1)
    valid_bleu_sentences: int = key(0, "dev sentences for BLEU (0: all)", lo=0)
    patience: int = key(5, "validations without BLEU gain before stopping", lo=0)
    save_every: int = key(0, "steps between checkpoints (0: at validations)", lo=0)
    keep_last: int = key(5, "numbered checkpoints kept (for nmt average)", lo=1)
    average: int = key(0, "nmt run: average the last N if it gains on dev", lo=0)
    tensorboard: bool = key(False, "also log scalars to <model>/tensorboard/")


@dataclass
class DecodeConfig:
    beam: int = key(5, "beam size (1: greedy)", lo=1)
    length_penalty: float = key(1.0, "GNMT alpha (0: raw log-probability)", lo=0.0)
    tune_length_penalty: list[float] = key(
        [], "nmt run: the best of these on dev", lo=0.0
    )
    stop: str = one_of("exact", "early", doc="when beam search stops")
    precision: str = one_of(
        "fp32", "bf16", "int8", doc="bf16, int8 (CPU): faster, or refused"
    )
    max_len_a: float = key(1.5, "output limit: a * source length + b", lo=0.0)
    max_len_b: int = key(10, "(in subword tokens)", lo=0)
    batch_tokens: int = key(6000, "source tokens per batch (padded)", lo=1)
    batch_rows: int = key(800, "hypotheses per batch: sentences x beam", lo=1)
    nbest: int = key(1, "hypotheses per input (nmt translate --nbest)", lo=1)
    shortlist: int = key(0, "output layer: K partners per source piece; 0: all", lo=0,
                         hi=100)  # fmt: skip
    shortlist_frequent: int = key(
        100, "with a shortlist: also the N most frequent pieces", lo=0, hi=1000
    )


@dataclass
class Config:
    name: str = key("experiment", "experiment name (results.json, plots)")
    workdir: str = key("runs/experiment", "caches, model, results (relative: cwd)")
    data: DataConfig = section(DataConfig, "sentence pairs: train, dev, test sets")
    tokenizer: TokenizerConfig = section(TokenizerConfig, "sentencepiece")
    model: ModelConfig = section(ModelConfig, "the network")
    train: TrainConfig = section(TrainConfig, "optimisation and its schedule")
    decode: DecodeConfig = section(DecodeConfig, "search (test sets, translate)")
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


def validate(cfg: Config) -> None:
    """Every rule that spans keys, checked right after loading, before anything
    is built: one NmtError naming the keys of every rule broken."""
    m, dec, d, dc = cfg.model, cfg.model.decoder, cfg.data, cfg.decode
    memory = 2 * m.encoder.hidden  # the bidirectional encoder's output size
    # the readout has its own layer unless the decoder is Sutskever's plain one
    own = dec.conditioning == "cho" or m.attention != "none"
    readout, which = (dec.readout, "readout") if own else (dec.hidden, "hidden")
    broken = []
    if m.input_feeding and m.attention != "luong":
        broken.append(
            "model.input_feeding: true needs model.attention: luong "
            f"(got {m.attention})"
        )
    if m.attention == "luong" and m.attention_score == "dot" and dec.hidden != memory:
        broken.append(
            "model.attention_score: dot needs model.decoder.hidden equal to the "
            f"encoder's output size, 2 x model.encoder.hidden ({dec.hidden} != "
            f"{memory}); use general"
        )
    if m.tie_embeddings and readout != m.embed_dim:
        broken.append(
            f"model.tie_embeddings: true needs model.decoder.{which} equal to "
            f"model.embed_dim ({readout} != {m.embed_dim})"
        )
    if dc.nbest > dc.beam:
        broken.append(
            f"decode.nbest ({dc.nbest}) must not exceed decode.beam ({dc.beam}): "
            "beam search keeps beam hypotheses"
        )
    if d.source == "hub" and not d.hub.path:
        broken.append(
            "data.source is hub but data.hub.path is empty: set it to a hub name "
            "or to a folder written by save_to_disk"
        )
    if broken:
        raise NmtError("; and ".join(broken))


def _checked(cfg: Config, what: str) -> Config:
    """`cfg` once `validate` passes; its error is prefixed with `what`."""
    try:
        validate(cfg)
    except NmtError as e:
        raise NmtError(f"{what}: {e}") from None
    return cfg


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """A recipe file, with `--set key.path=value` overrides applied, validated."""
    path = Path(path)
    raw = read_yaml(path, "recipe")
    sets = set_overrides(Config, raw, overrides)
    cfg = build_from(Config, raw, "recipe", path, sets)
    cfg.recipe_dir = str(path.resolve().parent)
    if cfg.workdir.startswith("~"):  # as a shell would: `workdir: ~/runs/x`
        cfg.workdir = str(cfg.resolve(cfg.workdir))
    return _checked(cfg, f"recipe {show_path(path)}")


def load_model_config(model_dir: Path) -> Config:
    """The Config of a model directory (`<model_dir>/config.yaml`, written by
    training), validated as a recipe is; every error names that file."""
    path = Path(model_dir) / "config.yaml"
    raw = read_yaml(path, "model config")
    cfg = build_from(Config, raw, "model config", path, [])
    return _checked(cfg, f"model config {show_path(path)}")


def config_from_dict(raw: dict, recipe_dir: str = ".") -> Config:
    """A Config from a mapping already in memory (tests, scripts), validated as a
    recipe is; relative data paths resolve against `recipe_dir`."""
    if not isinstance(raw, dict):
        raise NmtError(f"a config must be a mapping of keys, got {show(raw)}")
    cfg = build(Config, raw)
    cfg.recipe_dir = recipe_dir
    validate(cfg)
    return cfg


def override(section: Any, prefix: str, **values: Any) -> None:
    """Set fields of one config section (e.g. `decode`) from options such as the
    command line's, checked as the same recipe keys would be; None keeps a field."""
    _override(section, prefix, values, Config)
