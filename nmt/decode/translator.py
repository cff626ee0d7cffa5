"""Translate text with a trained model: length-sorted batches, original order kept."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from nmt.checkpoint import find, load_checkpoint, load_weights
from nmt.config import Config, DecodeConfig, load_model_config, override, validate
from nmt.data.batching import make_batches
from nmt.data.tokenizer import Tokenizer
from nmt.decode.ensemble import Ensemble
from nmt.decode.fast import FastStepper
from nmt.decode.search import Hyps, Stepper, beam_search, greedy, max_lengths
from nmt.decode.shortlist import Shortlist
from nmt.errors import NmtError
from nmt.files import chunks
from nmt.hardware import pick_device, require_decode_precision
from nmt.hub import resolve
from nmt.model.batch import source_tensor
from nmt.model.seq2seq import Seq2Seq, build_model
from nmt.vocab import BOS


def translate_ids(model: Seq2Seq, src: list[list[int]], *args, **kwargs) -> Hyps:
    """`decode_ids` (the same further arguments) with one model as its weights
    are now, e.g. validation during training: in eval mode, through a
    FastStepper built for this call."""
    was_training = model.training
    model.eval()
    try:
        return decode_ids(FastStepper(model), src, *args, **kwargs)
    finally:
        model.train(was_training)


def decode_ids(
    stepper: Stepper,
    src: list[list[int]],
    decode: DecodeConfig,
    reverse: bool,
    device: torch.device,
    beam: int,
    nbest: int = 1,
    progress: Callable[[int], None] | None = None,
) -> Hyps:
    """Token ids in, n-best (ids, score) per sentence out, in input order.

    Empty sources get an empty hypothesis without running the model. Sentences
    are sorted by length and cut into batches of at most `decode.batch_tokens`
    source tokens and `decode.batch_rows` hypotheses (sentences x beam).
    """
    out: Hyps = [[([], 0.0)] for _ in src]
    real = [i for i, s in enumerate(src) if s]
    if progress and len(real) < len(src):
        progress(len(src) - len(real))  # empty lines are done already
    if not real:
        return out
    lens = np.array([len(src[i]) for i in real])
    bf16 = decode.precision == "bf16"
    autocast = torch.autocast(device.type, torch.bfloat16) if bf16 else nullcontext()
    # Every step multiplies [rows, R] x [R, V] and ranks [rows, V]: capping the
    # rows (hypotheses) rather than the sentences keeps the products efficient
    # and the score tensors small enough to reuse (BENCHMARKS.md).
    width = 1 if beam == 1 and nbest == 1 else beam
    per_batch = max(1, decode.batch_rows // width)
    for idx in make_batches(lens, lens, decode.batch_tokens, max_sentences=per_batch):
        rows = [real[i] for i in idx]
        s, s_len = source_tensor([src[r] for r in rows], reverse)
        limit = max_lengths(s_len, decode.max_len_a, decode.max_len_b)
        s = s.to(device)
        with autocast:
            if beam == 1 and nbest == 1:
                hyps = greedy(stepper, s, s_len, limit)
            else:
                hyps = beam_search(
                    stepper,
                    s,
                    s_len,
                    limit,
                    beam,
                    decode.length_penalty,
                    nbest,
                    decode.stop,
                )
        for r, h in zip(rows, hyps):
            out[r] = h
        if progress:
            progress(len(rows))
    return out


def load_model(model_dir: Path, checkpoint: str, device: torch.device):
    """(model in eval mode, its config, its tokenizer) from a model directory."""
    if not model_dir.is_dir():
        raise NmtError(f"model directory not found: {model_dir}")
    cfg = load_model_config(model_dir)
    ckpt_path = find(model_dir, checkpoint)
    ckpt = load_checkpoint(ckpt_path, device)
    tok = Tokenizer.load(model_dir)
    model = build_model(cfg.model, tok.src_vocab_size, tok.tgt_vocab_size)
    load_weights(model, ckpt["model"], ckpt_path)
    return model.to(device).eval(), cfg, tok


@dataclass
class Translator:
    """`Translator.load(model_dir).translate(["ein Satz ."])` -> ["a sentence ."]."""

    models: list[Seq2Seq]  # one, or the members of an ensemble (in eval mode)
    tokenizer: Tokenizer
    config: Config
    device: torch.device
    shortlist: Shortlist | None = None  # decode.shortlist (one model only)
    # what the searches decode with: FastStepper(s), made once here
    stepper: Stepper = field(init=False, repr=False)

    def __post_init__(self) -> None:
        int8 = self.config.decode.precision == "int8"
        steppers = [FastStepper(m, int8, self.shortlist) for m in self.models]
        self.stepper = steppers[0] if len(steppers) == 1 else Ensemble(steppers)

    @property
    def model(self) -> Seq2Seq:
        """The one model; an NmtError for an ensemble (see `models`)."""
        if len(self.models) > 1:
            raise NmtError("this takes one model directory, not an ensemble")
        return self.models[0]

    @property
    def beam(self) -> int:
        return self.config.decode.beam

    @property
    def nbest(self) -> int:
        return self.config.decode.nbest

    @classmethod
    def load(
        cls,
        model_dir: str | Path | list,
        checkpoint: str = "best",
        beam: int | None = None,
        nbest: int = 1,
        batch_tokens: int | None = None,
        batch_rows: int | None = None,
        length_penalty: float | None = None,
        stop: str | None = None,
        precision: str | None = None,
        device: str = "auto",
        shortlist: int | None = None,
    ) -> Translator:
        """One model directory, or several for an ensemble (same vocabularies).
        A name that is no local path but a hub repo id (`owner/name`) loads that
        repo, downloaded once into the Hugging Face cache (`nmt push` made it)."""
        names = model_dir if isinstance(model_dir, list) else [model_dir]
        dirs = [resolve(d) for d in names]
        dev = pick_device(device)
        loaded = [load_model(d, checkpoint, dev) for d in dirs]
        _, cfg, tok = loaded[0]
        for d, (_, c, t) in zip(dirs[1:], loaded[1:]):
            if t.tgt_model.read_bytes() != tok.tgt_model.read_bytes():
                raise NmtError(
                    f"{d} has another target vocabulary than {dirs[0]}; "
                    "ensembles need the same target sentencepiece model"
                )
            if (
                t.src_model.read_bytes() != tok.src_model.read_bytes()
                or c.data.reverse_source != cfg.data.reverse_source
            ):
                raise NmtError(
                    f"{d} reads its source differently from {dirs[0]} "
                    "(source vocabulary or data.reverse_source)"
                )
        override(
            cfg.decode,
            "decode",
            beam=beam,
            nbest=nbest,
            batch_tokens=batch_tokens,
            batch_rows=batch_rows,
            length_penalty=length_penalty,
            stop=stop,
            precision=precision,
            shortlist=shortlist,
        )
        validate(cfg)  # the options with the recipe (e.g. --nbest <= --beam)
        require_decode_precision(dev, cfg.decode.precision)
        if cfg.decode.beam > tok.tgt_vocab_size:
            raise NmtError(
                f"beam {cfg.decode.beam} is wider than the target vocabulary "
                f"({tok.tgt_vocab_size} pieces); use a smaller --beam"
            )
        d = cfg.decode
        if d.shortlist and len(dirs) > 1:
            raise NmtError("decode.shortlist is for one model, not an ensemble")
        short = d.shortlist and Shortlist.load(
            dirs[0], d.shortlist, d.shortlist_frequent, tok.tgt_vocab_size
        )
        return cls([m for m, _, _ in loaded], tok, cfg, dev, short or None)

    def _encode(self, lines: list[str]) -> list[list[int]]:
        """Whole lines, however long: data.max_len filters training pairs only. An
        RNN reads any length; memory is bounded by decode.batch_tokens, and a line
        longer than that is a batch of its own."""
        return self.tokenizer.encode_src(list(lines))

    def _decode(self, ids: list[list[int]], nbest: int = 1, progress=None) -> Hyps:
        cfg = self.config
        return decode_ids(
            self.stepper, ids, cfg.decode, cfg.data.reverse_source, self.device,
            self.beam, nbest, progress,
        )  # fmt: skip

    def translate_nbest(
        self, lines: list[str], progress=None
    ) -> list[list[tuple[str, float]]]:
        hyps = self._decode(self._encode(lines), self.nbest, progress)
        # one call to sentencepiece for all hypotheses: one per line costs more
        texts = iter(self.tokenizer.decode_tgt([ids for h in hyps for ids, _ in h]))
        return [[(_one_line(next(texts)), sc) for _, sc in h] for h in hyps]

    def attention_model(self) -> Seq2Seq:
        """The (first) model, if it has attention; an NmtError otherwise."""
        model = self.models[0]
        if model.decoder.attn is None:
            raise NmtError(
                "attention plots need a model with attention "
                "(this one has model.attention: none)"
            )
        return model

    def attention_maps(
        self, lines: list[str]
    ) -> list[tuple[list[str], list[str], np.ndarray]]:
        """For each line: source pieces (in the order the encoder reads them, EOS
        last), output pieces (EOS last) and the attention weights [T, S] that the
        model gave while producing that output (of the first model of an ensemble).
        """
        model = self.attention_model()
        ids = self._encode(lines)
        hyps = self._decode(ids)
        out = []
        for src, h in zip(ids, hyps):
            reverse = self.config.data.reverse_source
            s, s_len = source_tensor([src], reverse)
            tgt = h[0][0]
            with torch.no_grad():
                state = model.encode(s.to(self.device), s_len)
                rows = []
                for prev in [BOS, *tgt]:  # the plain step: a few sentences
                    _, state = model.step(
                        torch.tensor([prev], device=self.device), state
                    )
                    rows.append(state.weights[0].float().cpu().numpy())
            src_ids = src[::-1] if reverse else src
            out.append(
                (
                    [*self.tokenizer.src_pieces_of(src_ids), "</s>"],
                    [*self.tokenizer.tgt_pieces(tgt), "</s>"],
                    np.stack(rows),
                )
            )
        return out

    def translate(self, lines: list[str], progress=None) -> list[str]:
        return [h[0][0] for h in self.translate_nbest(lines, progress)]

    def translate_stream(
        self,
        lines: Iterable[str],
        write: Callable[[str], None],
        chunk: int = 10000,
        progress=None,
    ) -> int:
        """Translate line by line in chunks (memory stays flat); returns the count."""
        n = 0
        for block in chunks(lines, chunk):
            for i, hyps in enumerate(self.translate_nbest(block, progress)):
                if self.nbest == 1:
                    write(hyps[0][0] + "\n")
                else:  # documented n-best format: index ||| text ||| score
                    for text, sc in hyps:
                        write(f"{n + i} ||| {text} ||| {sc:.4f}\n")
            n += len(block)
        return n


def _one_line(text: str) -> str:
    breaks = "\r\n\x0b\x0c\x85\u2028\u2029"  # line and paragraph breaks
    return " ".join(text.split()) if any(c in text for c in breaks) else text
