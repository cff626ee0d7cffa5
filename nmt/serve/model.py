"""The translator as the service uses it: one call per batch, in the worker thread.

Every request's beam is decoded with the translator loaded at start (its fast
tables are built once), through the same functions as `nmt translate`, so the
service answers exactly what `nmt translate --beam B` prints for the same lines.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np

from nmt.decode.translator import Translator, _one_line, decode_ids
from nmt.errors import NmtError
from nmt.serve.request import MAX_BEAM


class ServedModel:
    """`translate((beam, attention), lines)`: one result per line. Without
    attention a result is the translation; with it, a dict that also holds the
    source pieces, output pieces and attention weights [T][S]."""

    def __init__(self, translator: Translator, model_dir: str | Path):
        self.translator = translator
        self.model_dir = str(model_dir)
        self.has_attention = translator.models[0].decoder.attn is not None
        self.max_beam = min(MAX_BEAM, translator.tokenizer.tgt_vocab_size)
        if translator.beam > self.max_beam:
            raise NmtError(
                f"beam {translator.beam} is wider than nmt serve allows "
                f"({self.max_beam}); use a smaller --beam"
            )
        self._with_beam: dict[int, Translator] = {}

    @property
    def beam(self) -> int:
        """The default beam: the recipe's decode.beam, or `nmt serve --beam`."""
        return self.translator.beam

    def info(self) -> dict:
        """What /health says about the model."""
        return {
            "model": self.translator.config.name,
            "model_dir": self.model_dir,
            "beam": self.beam,
            "attention": self.has_attention,
            "device": str(self.translator.device),
        }

    def translate(self, key: tuple[int, bool], lines: list[str]) -> list:
        beam, attention = key
        tr = self.translator
        cfg = tr.config
        ids = tr.tokenizer.encode_src(lines)
        hyps = decode_ids(
            tr.stepper, ids, cfg.decode, cfg.data.reverse_source, tr.device, beam
        )
        texts = tr.tokenizer.decode_tgt([h[0][0] for h in hyps])
        texts = [_one_line(t) for t in texts]  # as Translator.translate_nbest
        if not attention:
            return texts
        maps = self._translator_with_beam(beam).attention_maps(lines)
        return [
            {
                "translation": text,
                "source": src,
                "target": tgt,
                "weights": weights.astype(np.float64).round(4).tolist(),
            }
            for text, (src, tgt, weights) in zip(texts, maps)
        ]

    def _translator_with_beam(self, beam: int) -> Translator:
        """The loaded translator with another default beam, for `attention_maps`
        (which decodes with its translator's beam): a shallow copy that shares
        the models and the stepper, so nothing is rebuilt."""
        if beam not in self._with_beam:
            tr = self.translator
            view = copy.copy(tr)
            decode = dataclasses.replace(tr.config.decode, beam=beam)
            view.config = dataclasses.replace(tr.config, decode=decode)
            self._with_beam[beam] = view
        return self._with_beam[beam]
