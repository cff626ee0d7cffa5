"""`nmt translate --alignment`: Pharaoh word alignments from attention
(nmt/decode/alignment.py), on the golden tiny models and on hand-made pieces."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from nmt.decode.alignment import (
    attention_weights,
    hard_alignment,
    span_words,
    translate_aligned,
)
from nmt.decode.translator import Translator, decode_ids
from nmt.vocab import BOS
from tests.faults import run_cli
from tests.test_model import ATTENTION, small_model

GOLDEN = Path(__file__).parent / "golden"
INPUT = GOLDEN / "input.txt"
PAIR = re.compile(r"(\d+)-(\d+)")
# lines that sentencepiece normalises: a dropped zero-width space, a control
# character that str.split() splits on, a tab, unknown characters
ODD = ["é\u200b da\x1cwasol  x\tdei", "☃☃ da ☃ wasol", "  da  "]


def _lines() -> list[str]:
    return INPUT.read_text(encoding="utf-8").split("\n")[:-1]


def _check_pairs(alignment: str, source: str, output: str) -> None:
    pairs = alignment.split()
    assert len(set(pairs)) == len(pairs), alignment
    parsed = []
    for p in pairs:
        m = PAIR.fullmatch(p)
        assert m, (p, alignment)
        i, j = int(m.group(1)), int(m.group(2))
        assert i < len(source.split()) and j < len(output.split()), (p, source)
        parsed.append((i, j))
    assert parsed == sorted(parsed)
    if output.split():  # every output word is aligned to some source word
        assert {j for _, j in parsed} == set(range(len(output.split())))


def test_alignment_keeps_the_translation_and_its_lines(tmp_path):
    src = tmp_path / "in.txt"
    lines = [*_lines(), *ODD]
    src.write_text("".join(f"{x}\n" for x in lines), encoding="utf-8")
    r = run_cli("translate", GOLDEN / "attention", "-i", src, "--device", "cpu",
                "--beam", "5", "--alignment")  # fmt: skip
    assert r.code == 0, r.err
    plain = run_cli("translate", GOLDEN / "attention", "-i", src, "--device", "cpu",
                    "--beam", "5")  # fmt: skip
    assert plain.code == 0, plain.err
    got, want = r.out.split("\n")[:-1], plain.out.split("\n")[:-1]
    assert len(got) == len(lines) == len(want)
    golden = (GOLDEN / "attention" / "beam5.txt").read_text(encoding="utf-8")
    assert want[: len(_lines())] == golden.split("\n")[:-1]
    for source, line, text in zip(lines, got, want):
        assert line.count(" ||| ") == 1, line
        output, alignment = line.split(" ||| ")
        assert output == text
        _check_pairs(alignment, source, output)
    assert got[_lines().index("")] == " ||| "  # an empty line: empty alignment


def test_alignment_needs_an_attention_model():
    r = run_cli("translate", GOLDEN / "plain", "--alignment", stdin=b"da wasol\n")
    assert "--alignment needs a model with attention" in r.error
    assert r.out == ""


def test_alignment_with_nbest_is_a_fourth_field():
    lines = _lines()[:4] + [""]
    data = "".join(f"{x}\n" for x in lines).encode()
    args = ("translate", GOLDEN / "attention", "--device", "cpu", "--beam", "5",
            "--nbest", "3")  # fmt: skip
    r, plain = run_cli(*args, "--alignment", stdin=data), run_cli(*args, stdin=data)
    assert r.code == 0 and plain.code == 0, (r.err, plain.err)
    got, want = r.out.splitlines(), plain.out.splitlines()
    assert len(got) == len(want) == 3 * 4 + 1  # an empty line has one hypothesis
    for line, expected in zip(got, want):
        index, text, score, alignment = line.split(" ||| ")
        assert f"{index} ||| {text} ||| {score}" == expected
        _check_pairs(alignment, lines[int(index)], text)


def test_alignment_streams_the_same_lines():
    data = "".join(f"{x}\n" for x in [*_lines()[:5], "", *ODD[:1]]).encode()
    args = ("translate", GOLDEN / "attention", "--device", "cpu", "--alignment")
    batch, stream = run_cli(*args, stdin=data), run_cli(*args, "--stream", stdin=data)
    assert batch.code == 0 and stream.code == 0, (batch.err, stream.err)
    assert stream.out == batch.out


def test_pieces_to_words_and_the_argmax_on_hand_made_pieces():
    # source "the cat sat" as ▁the ▁c at ▁ s at, with sentencepiece's offsets:
    # the bare ▁ (the space before "sat") belongs to the word after it
    src_text = "the cat sat"
    src_spans = [(0, 3), (3, 6), (6, 7), (7, 8), (8, 9), (9, 11)]
    assert span_words(src_text, src_spans) == [0, 1, 1, 2, 2, 2]
    # output "le chat  ⁇ ." as ▁le ▁ch at <unk> ▁. </s>-like empty piece at the end
    tgt_text = "le chat  ⁇ ."
    tgt_spans = [(0, 2), (2, 5), (5, 7), (7, 10), (10, 12), (12, 12)]
    assert span_words(tgt_text, tgt_spans) == [0, 1, 1, 2, 3, None]
    # a leading empty piece (the dummy-prefix ▁) and a piece with two words'
    # characters (normalisation merged them): most characters wins
    assert span_words("ab\x1ccde", [(0, 0), (0, 6)]) == [0, 1]
    assert span_words("", []) == []
    weights = np.array(
        [  # rows: output pieces; columns: source pieces (no EOS)
            [0.7, 0.1, 0.1, 0.0, 0.1, 0.0],  # le -> the
            [0.1, 0.2, 0.6, 0.0, 0.1, 0.0],  # ch -> at (cat)
            [0.1, 0.5, 0.2, 0.0, 0.1, 0.1],  # at -> ▁c (cat)
            [0.0, 0.0, 0.1, 0.8, 0.1, 0.0],  # ⁇ -> the bare ▁ (sat)
            [0.3, 0.3, 0.0, 0.0, 0.0, 0.4],  # . -> at (sat)
            [0.9, 0.0, 0.0, 0.0, 0.0, 0.1],  # no word: no pair
        ]
    )
    src_words = span_words(src_text, src_spans)
    tgt_words = span_words(tgt_text, tgt_spans)
    assert hard_alignment(weights, src_words, tgt_words) == [
        (0, 0),
        (1, 1),
        (2, 2),
        (2, 3),
    ]
    # a source piece without a word is never chosen; a tie takes the first
    tie = np.array([[0.5, 0.5, 0.0], [0.2, 0.2, 0.6]])
    assert hard_alignment(tie, [0, 1, None], [0, 1]) == [(0, 0), (0, 1)]
    with pytest.raises(ValueError):
        hard_alignment(weights[:, :3], src_words, tgt_words)


def _stepped(model, src, tgt, reverse):
    """The per-sentence plain way (Translator.attention_maps): model.step."""
    from nmt.model.batch import source_tensor

    s, s_len = source_tensor([src], reverse)
    state, rows = model.encode(s, s_len), []
    with torch.no_grad():
        for prev in [BOS, *tgt]:
            _, state = model.step(torch.tensor([prev]), state)
            rows.append(state.weights[0].float().numpy())
    return np.stack(rows)


def test_batched_weights_equal_the_attention_maps():
    """The golden (Bahdanau) model: the batched teacher-forced pass gives the
    weights Translator.attention_maps computes sentence by sentence."""
    tr = Translator.load(GOLDEN / "attention", device="cpu")
    lines = [x for x in _lines() if x.strip()][:6]
    ids = tr.tokenizer.encode_src(lines)
    cfg = tr.config
    hyps = decode_ids(tr.stepper, ids, cfg.decode, cfg.data.reverse_source,
                      tr.device, tr.beam)  # fmt: skip
    outs = [h[0][0] for h in hyps]
    batched = attention_weights(
        tr.model, ids, outs, cfg.data.reverse_source, tr.device, batch_tokens=60
    )
    maps = tr.attention_maps(lines)
    for (src_pieces, _, plain), w, o in zip(maps, batched, outs):
        assert w.shape == plain.shape == (len(o) + 1, len(src_pieces))
        np.testing.assert_allclose(w, plain, atol=1e-5)
    texts = [h[0][0] for h in translate_aligned(tr, lines)]
    assert texts == tr.translate(lines)


@pytest.mark.parametrize("attention", ATTENTION)
@pytest.mark.parametrize("reverse", [False, True])
def test_batched_weights_equal_the_steps_for_every_attention(attention, reverse):
    """Luong without input feeding (one fused call), with it, and Bahdanau (a loop
    over steps): padded, length-sorted batches give each sentence's weights."""
    model = small_model("lstm", "cho", attention=attention)
    rng = np.random.default_rng(0)
    src = [rng.integers(4, 30, n).tolist() for n in (5, 1, 9, 3, 7)] + [[]]
    tgt = [rng.integers(4, 25, n).tolist() for n in (4, 6, 0, 8, 2)] + [[]]
    got = attention_weights(model, src, tgt, reverse, torch.device("cpu"), 30)
    assert got[-1] is None  # an empty source: nothing to run
    for s, t, w in zip(src[:-1], tgt[:-1], got[:-1]):
        np.testing.assert_allclose(w, _stepped(model, s, t, reverse), atol=1e-5)
