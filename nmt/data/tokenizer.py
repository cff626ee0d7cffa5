"""Subword tokenization with sentencepiece (joint or separate vocabularies)."""

from __future__ import annotations

import errno
import io
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import sentencepiece as spm

from nmt.config import TokenizerConfig
from nmt.errors import NmtError
from nmt.files import atomic
from nmt.vocab import BOS, EOS, PAD, UNK

# sentencepiece skips longer training sentences (its max_sentence_length default)
_MAX_SENTENCE_BYTES = 4192


def write_error(e: OSError, path: Path | str, exact: bool = False) -> NmtError:
    """One line for a failed write: 'no space left on device while writing X'.
    X is the file the error names, or path (always path when exact: the error
    names a temporary file that is renamed to path when complete)."""
    where = Path(path if exact else (e.filename or path))
    full = ("No space left", "Not enough disk space")  # the OS's, datasets' words
    if e.errno == errno.ENOSPC or any(w in str(e) for w in full):
        return NmtError(f"no space left on device while writing {where}")
    if e.errno in (errno.ENOTDIR, errno.EEXIST):
        for up in (where, *where.parents):
            if up.exists():
                if not up.is_dir():
                    return NmtError(
                        f"cannot create {where}: {up} is a file, not a folder"
                    )
                break
    what = e.strerror or str(e) or type(e).__name__
    return NmtError(f"{what[0].lower()}{what[1:]} while writing {where}")


def _write_atomic(path: Path, data: bytes) -> None:
    """data to path through a temporary file beside it, renamed when complete."""
    try:
        with atomic(path) as f:
            f.write(data)
    except OSError as e:
        raise write_error(e, path, exact=True) from None


def _load_model(path: Path) -> spm.SentencePieceProcessor:
    """A sentencepiece model file, or one NmtError naming it."""
    try:
        if not path.is_file():
            what = "is a folder, not a file" if path.is_dir() else "not found"
            raise NmtError(f"sentencepiece model {path}: {what}")
        data = path.read_bytes()
    except OSError as e:
        raise NmtError(
            f"cannot read sentencepiece model {path}: {e.strerror}"
        ) from None
    if not data:
        raise NmtError(f"sentencepiece model {path} is an empty file")
    try:
        sp = spm.SentencePieceProcessor(model_proto=data)
    except (RuntimeError, ValueError) as e:
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        reason = text.split("] ")[-1].strip() or text
        if "ParseFromArray" in text:
            reason = "it cannot be parsed"
        raise NmtError(
            f"sentencepiece model {path} is damaged or not a sentencepiece model "
            f"({reason.removeprefix('INTERNAL: ')[:120]})"
        ) from None
    ids = (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id())
    if ids != (PAD, UNK, BOS, EOS):
        raise NmtError(
            f"sentencepiece model {path} was not made by nmt: its pad/unk/bos/eos "
            f"ids are {ids}, nmt needs {(PAD, UNK, BOS, EOS)}"
        )
    return sp


class Tokenizer:
    """Source and target sentencepiece models (the same object when joint)."""

    def __init__(self, src_model: Path, tgt_model: Path):
        self.src_model, self.tgt_model = Path(src_model), Path(tgt_model)
        self.src = _load_model(self.src_model)
        self.tgt = (
            self.src
            if self.src_model == self.tgt_model
            else _load_model(self.tgt_model)
        )

    @property
    def src_vocab_size(self) -> int:
        return self.src.get_piece_size()

    @property
    def tgt_vocab_size(self) -> int:
        return self.tgt.get_piece_size()

    def encode_src(self, lines: list[str]) -> list[list[int]]:
        return self.src.encode(lines)

    def encode_tgt(self, lines: list[str]) -> list[list[int]]:
        return self.tgt.encode(lines)

    def decode_tgt(self, ids: list[list[int]]) -> list[str]:
        return self.tgt.decode(ids)

    def src_pieces(self, line: str) -> list[str]:
        return self.src.encode(line, out_type=str)

    def src_pieces_of(self, ids: list[int]) -> list[str]:
        return [self.src.id_to_piece(i) for i in ids]

    def tgt_pieces(self, ids: list[int]) -> list[str]:
        return [self.tgt.id_to_piece(i) for i in ids]

    def copy_to(self, directory: Path) -> Tokenizer:
        """Put the models in `directory` (the model directory) and load them there.
        Each is copied to a temporary file and renamed, so a failed copy (a full
        disk) leaves no model file that looks whole."""
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise write_error(e, directory) from None
        src = directory / self.src_model.name
        tgt = directory / self.tgt_model.name
        for a, b in ((self.src_model, src), (self.tgt_model, tgt)):
            if a.resolve() == b.resolve():
                continue
            try:
                data = a.read_bytes()
            except OSError as e:
                raise NmtError(
                    f"cannot read sentencepiece model {a}: {e.strerror}"
                ) from None
            _write_atomic(b, data)
        return Tokenizer(src, tgt)

    @staticmethod
    def load(directory: Path) -> Tokenizer:
        directory = Path(directory)
        joint = directory / "spm.model"
        if joint.exists():
            return Tokenizer(joint, joint)
        src, tgt = directory / "spm.src.model", directory / "spm.tgt.model"
        if not src.exists() and not tgt.exists():
            raise NmtError(
                f"no sentencepiece model in {directory} "
                "(expected spm.model, or spm.src.model and spm.tgt.model)"
            )
        return Tokenizer(src, tgt)


class _Feed:
    """The training sentences, remembering an exception raised while reading them
    (sentencepiece would turn it, even Ctrl-C, into a RuntimeError)."""

    def __init__(self, sentences: Iterator[str]):
        self.sentences, self.error = sentences, None

    def __iter__(self) -> Iterator[str]:
        try:
            yield from self.sentences
        except GeneratorExit:  # sentencepiece stopped reading: no error
            raise
        except BaseException as e:
            self.error = e
            raise


def _train_one(sentences: Iterator[str], prefix: Path, cfg: TokenizerConfig) -> Path:
    """Train one model and write it to `<prefix>.model` (and `.vocab`)."""
    feed, model = _Feed(sentences), io.BytesIO()
    try:
        _spm_train(iter(feed), model, cfg)
    except (RuntimeError, ValueError, OSError) as e:
        if feed.error is not None:
            raise feed.error from None
        raise NmtError(_refusal(str(e), cfg, prefix.name)) from None
    if feed.error is not None:
        raise feed.error
    path = prefix.with_name(f"{prefix.name}.model")
    _write_atomic(path, model.getvalue())
    sp = _load_model(path)
    vocab = "".join(
        f"{sp.id_to_piece(i)}\t{sp.get_score(i):g}\n" for i in range(len(sp))
    )
    _write_atomic(prefix.with_name(f"{prefix.name}.vocab"), vocab.encode())
    return path


def _refusal(text: str, cfg: TokenizerConfig, name: str) -> str:
    """sentencepiece's complaint, as one line naming the tokenizer key to change."""
    if "character_coverage" in text and "required_chars" not in text:
        return (
            "sentencepiece needs tokenizer.character_coverage between 0.98 and 1.0; "
            f"got {cfg.character_coverage}"
        )
    if "input_sentence_size" in text:
        return (
            "sentencepiece needs tokenizer.input_sentence_size above 100; "
            f"got {cfg.input_sentence_size}"
        )
    m = re.search(r"smaller than required_chars\. (\d+) vs (\d+)", text)
    if m:
        need = int(m.group(2))
        extra = " (byte_fallback adds 256 byte pieces)" if cfg.byte_fallback else ""
        return (
            f"tokenizer.vocab_size {cfg.vocab_size} is too small: the training text "
            f"needs at least {need} pieces for its characters{extra}; raise "
            "tokenizer.vocab_size or lower tokenizer.character_coverage"
        )
    m = re.search(r'cannot parse "(-?\d+)" as int', text)
    if m:
        value = int(m.group(1))
        key = next(
            (
                k
                for k in ("vocab_size", "input_sentence_size")
                if getattr(cfg, k) == value
            ),
            "vocab_size",
        )
        return f"tokenizer.{key} {value} is too large for sentencepiece"
    if "sentences_.empty()" in text:
        return (
            f"sentencepiece found no training sentence for {name}.model: it skips "
            f"sentences over {_MAX_SENTENCE_BYTES} bytes, and every line of the "
            "training text is longer; split the long lines"
        )
    # other refusals: "INTERNAL: file(line) [condition] explanation"
    reason = text.splitlines()[0] if text else "no reason given"
    tail = reason.split("] ")[-1].strip()
    reason = tail or reason
    return (
        f"sentencepiece could not train ({reason[:200]}); check the recipe's "
        "tokenizer section (vocab_size, character_coverage, model_type)"
    )


def _spm_train(sentences: Iterator[str], model: io.BytesIO, cfg: TokenizerConfig):
    spm.SentencePieceTrainer.train(
        sentence_iterator=sentences,
        model_writer=model,
        model_type=cfg.model_type,
        vocab_size=cfg.vocab_size,
        character_coverage=cfg.character_coverage,
        byte_fallback=cfg.byte_fallback,
        input_sentence_size=cfg.input_sentence_size,
        shuffle_input_sentence=True,
        hard_vocab_limit=False,  # small corpora: fewer pieces is fine
        pad_id=PAD,
        unk_id=UNK,
        bos_id=BOS,
        eos_id=EOS,
        num_threads=2,
        minloglevel=2,
    )


def train_tokenizer(
    src_lines: Iterable[str],
    tgt_lines: Iterable[str],
    out_dir: Path,
    cfg: TokenizerConfig,
) -> Tokenizer:
    """Train on (a bounded sample of) the training text; the iterables are streamed."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_error(e, out_dir) from None
    if cfg.joint:

        def both() -> Iterator[str]:
            yield from src_lines
            yield from tgt_lines

        model = _train_one(both(), out_dir / "spm", cfg)
        return Tokenizer(model, model)
    src = _train_one(iter(src_lines), out_dir / "spm.src", cfg)
    tgt = _train_one(iter(tgt_lines), out_dir / "spm.tgt", cfg)
    return Tokenizer(src, tgt)
