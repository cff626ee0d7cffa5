"""Subword tokenization with sentencepiece (joint or separate vocabularies)."""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import sentencepiece as spm

from nmt.config import TokenizerConfig
from nmt.errors import NmtError

PAD, UNK, BOS, EOS = 0, 1, 2, 3


class Tokenizer:
    """Source and target sentencepiece models (the same object when joint)."""

    def __init__(self, src_model: Path, tgt_model: Path):
        self.src_model, self.tgt_model = Path(src_model), Path(tgt_model)
        self.src = spm.SentencePieceProcessor(model_file=str(src_model))
        self.tgt = (
            self.src
            if self.src_model == self.tgt_model
            else spm.SentencePieceProcessor(model_file=str(tgt_model))
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
        """Put the models in `directory` (the model directory) and load them there."""
        directory.mkdir(parents=True, exist_ok=True)
        src = directory / self.src_model.name
        tgt = directory / self.tgt_model.name
        for a, b in ((self.src_model, src), (self.tgt_model, tgt)):
            if a.resolve() != b.resolve():
                shutil.copyfile(a, b)
        return Tokenizer(src, tgt)

    @staticmethod
    def load(directory: Path) -> Tokenizer:
        directory = Path(directory)
        joint = directory / "spm.model"
        if joint.exists():
            return Tokenizer(joint, joint)
        return Tokenizer(directory / "spm.src.model", directory / "spm.tgt.model")


def _train_one(sentences: Iterator[str], prefix: Path, cfg: TokenizerConfig) -> Path:
    try:
        _spm_train(sentences, prefix, cfg)
    except RuntimeError as e:  # sentencepiece reports bad settings this way
        reason = str(e).split("] ")[-1].splitlines()[0]
        raise NmtError(
            f"sentencepiece could not train ({reason}); check the recipe's "
            "tokenizer section (vocab_size, character_coverage)"
        ) from None
    return prefix.with_suffix(".model")


def _spm_train(sentences: Iterator[str], prefix: Path, cfg: TokenizerConfig) -> None:
    spm.SentencePieceTrainer.train(
        sentence_iterator=sentences,
        model_prefix=str(prefix),
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
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.joint:

        def both() -> Iterator[str]:
            yield from src_lines
            yield from tgt_lines

        model = _train_one(both(), out_dir / "spm", cfg)
        return Tokenizer(model, model)
    src = _train_one(iter(src_lines), out_dir / "spm.src", cfg)
    tgt = _train_one(iter(tgt_lines), out_dir / "spm.tgt", cfg)
    return Tokenizer(src, tgt)
