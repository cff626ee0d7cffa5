"""int8 decoding and the vocabulary shortlist: the int8 product is the float one
to quantization error, a shortlist that keeps every piece changes nothing, and
the lexical table finds the pieces that travel together."""

from __future__ import annotations

import shutil
from pathlib import Path

import datasets
import pytest
import torch
import torch.nn.functional as F

from nmt.checkpoint import load_checkpoint
from nmt.data import lexicon
from nmt.decode.int8 import (
    Int8Linear,
    _multiplies_right,
    kernel,
    quantize_rows,
)
from nmt.decode.shortlist import Shortlist
from nmt.decode.translator import Translator
from nmt.hardware import int8_works
from nmt.vocab import EOS
from tests.faults import run_cli

GOLDEN = Path(__file__).parent / "golden"
LINES = (GOLDEN / "input.txt").read_text(encoding="utf-8").splitlines()
pytestmark = pytest.mark.skipif(not int8_works(), reason="no torch._int_mm here")


def test_quantize_rows_is_within_half_a_step():
    x = torch.randn(7, 33) * torch.linspace(0.01, 10, 7).unsqueeze(1)
    q, scale = quantize_rows(x)
    assert q.dtype == torch.int8 and int(q.abs().max()) <= 127
    assert bool(((q.float() * scale - x).abs() <= scale / 2 + 1e-6).all())


KERNELS = ["int_mm"] + ([kernel()] if kernel() != "int_mm" else [])  # this CPU's


@pytest.mark.parametrize("how", KERNELS)
def test_int8_linear_is_the_float_product_to_quantization_error(how):
    torch.manual_seed(0)
    w, b, x = torch.randn(300, 64) * 0.1, torch.randn(300), torch.randn(20, 64)
    lin = Int8Linear(w, b, how)
    want = F.linear(x, w, b)
    # error bound: each operand off by at most half its step, summed over K; the
    # step of x is per row for int_mm, over the whole input (asymmetric, 8 bits)
    # for the engines
    sw = w.abs().amax(1) / 127
    if how == "int_mm":
        sx = x.abs().amax(1, keepdim=True) / 127
    else:
        sx = (x.max().clamp_min(0) - x.min().clamp_max(0)) / 255
    bound = 64 * (sx * w.abs().amax(1) / 2 + x.abs().amax(1, keepdim=True) * sw / 2)
    assert bool(((lin(x) - want).abs() <= bound + 1e-4).all())
    assert (lin(x) - want).abs().max() < 0.05 * want.abs().max()
    cols = torch.tensor([3, 0, 299, 17])
    # the same integers: equal, or to float rounding where an engine rescales
    got, want = lin.rows(cols)(x), lin(x)[:, cols]
    assert torch.equal(got, want) if how == "int_mm" else torch.allclose(got, want)


def test_the_engine_follows_the_cpu():
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    vnni = getattr(torch.cpu, "_is_vnni_supported", lambda: False)()
    if amx and _multiplies_right("onednn"):
        assert kernel() == "onednn"
    elif vnni and _multiplies_right("fbgemm"):
        assert kernel() == "fbgemm"
    else:
        assert kernel() == "int_mm"
    engine = torch.backends.quantized.engine
    Int8Linear(torch.randn(8, 4), None, kernel())
    assert torch.backends.quantized.engine == engine  # prepacking leaves it alone


@pytest.mark.parametrize("model", ["plain", "attention"])
def test_int8_translates_close_to_float32(model):
    fp32 = Translator.load(GOLDEN / model, beam=1, device="cpu")
    int8 = Translator.load(GOLDEN / model, beam=1, device="cpu", precision="int8")
    assert fp32.stepper.tables.packed["out"].__class__.__name__ == "Packed"
    assert isinstance(int8.stepper.tables.packed["out"], Int8Linear)
    engine = kernel() != "int_mm"  # then the encoder's LSTM is int8 too
    assert (int8.stepper.tables.encoder is not None) == engine
    assert fp32.stepper.tables.encoder is None
    ids = fp32.tokenizer.encode_src(LINES[:8])
    from nmt.model.batch import source_tensor

    s, s_len = source_tensor(ids, fp32.config.data.reverse_source)
    prev = torch.full((len(ids),), 2)
    a, b = fp32.stepper.encode(s, s_len), int8.stepper.encode(s, s_len)
    for _ in range(4):  # the same words in, log-probabilities close
        la, a = fp32.stepper.step(prev, a)
        lb, b = int8.stepper.step(prev, b)
        assert (la.exp() - lb.exp()).abs().max() < 0.02
        prev = la.argmax(1)
    out = int8.translate(LINES)
    assert len(out) == len(LINES)
    same = sum(x == y for x, y in zip(out, fp32.translate(LINES)))
    assert same >= len(LINES) // 2, same


def test_int8_is_refused_where_it_cannot_run(monkeypatch):
    from nmt import hardware

    monkeypatch.setattr(hardware, "int8_works", lambda: False)
    r = run_cli("translate", GOLDEN / "plain", "--precision", "int8", stdin=b"a\n")
    assert r.code == 2 and "decode.precision" in r.error


@pytest.mark.parametrize("slow", [True, False])
def test_int8_warns_once_where_the_cpu_lacks_vnni(monkeypatch, slow):
    from nmt import hardware

    monkeypatch.setattr(hardware, "int8_slow", lambda: slow)
    monkeypatch.setattr(hardware, "_WARNED", set())
    r = run_cli("translate", GOLDEN / "plain", "--precision", "int8", stdin=b"a\nb\n")
    assert r.code == 0 and len(r.out.splitlines()) == 2, r.err
    assert r.err.count("no VNNI") == (1 if slow else 0), r.err
    again = run_cli("translate", GOLDEN / "plain", "--precision", "int8", stdin=b"a\n")
    assert again.code == 0 and "no VNNI" not in again.err, again.err  # once a process


def _split(pairs: list[tuple[list[int], list[int]]]) -> datasets.Dataset:
    return datasets.Dataset.from_dict(
        {"src_ids": [s for s, _ in pairs], "tgt_ids": [t for _, t in pairs]}
    )


def test_lexicon_ranks_partners_by_dice():
    # piece 5 always comes with 9; 6 with 10; 7 (a frequent target) comes with all
    pairs = [([5, 4], [9, 7]), ([5], [9, 7]), ([6, 4], [10, 7]), ([6], [10, 7])]
    pairs += [([4], [7, 11])] * 3
    lex = lexicon.build(_split(pairs), 12, 12)
    table, frequent = lex["table"], lex["frequent"]
    assert int(table[5, 0]) == 9 and int(table[6, 0]) == 10
    assert int(table[4, 0]) == 7  # 4 and 7 share most pairs
    assert int(frequent[0]) == 7
    assert int(table[8, 0]) == -1  # a piece never seen has no partners


def test_shortlist_columns_are_eos_then_partners_and_frequent():
    table = torch.full((12, 3), -1, dtype=torch.long)
    table[5] = torch.tensor([9, 8, -1])
    sl = Shortlist(table, torch.tensor([7, 3]), 3, 2)
    cols = sl.columns(torch.tensor([[5, 0, 0]]), 12)  # 0 is padding
    assert cols.tolist() == [EOS, 7, 8, 9]


@pytest.fixture(scope="module")
def model_dir(trained):
    """The tiny trained model; training wrote its lexicon."""
    path = trained[0] / "work" / "model"
    assert (path / lexicon.LEXICON).is_file()
    return path


@pytest.mark.parametrize("beam", [1, 3])
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_a_shortlist_of_every_piece_changes_nothing(model_dir, beam, precision):
    full = Translator.load(model_dir, beam=beam, device="cpu", precision=precision)
    every = Translator.load(model_dir, beam=beam, device="cpu", precision=precision,
                            shortlist=100)  # fmt: skip
    vocab = full.tokenizer.tgt_vocab_size
    every.shortlist.frequent = torch.arange(vocab)  # every piece is a candidate
    lines = ["da vaim skousts saifen.", "un pelainut dat.", ""]
    assert every.translate(lines) == full.translate(lines)
    assert every.stepper.columns.numel() == vocab  # EOS once, then all others


def test_a_small_shortlist_decodes_from_its_candidates(model_dir):
    tr = Translator.load(model_dir, beam=3, device="cpu", shortlist=2)
    tr.shortlist.frequent = tr.shortlist.frequent[:5]
    out = tr.translate(["da vaim skousts saifen."])
    cols = set(tr.stepper.columns.tolist())
    ids = tr.tokenizer.encode_tgt(out)[0] if out[0] else []
    assert len(cols) < tr.tokenizer.tgt_vocab_size
    assert set(ids) <= cols | {1}  # re-encoding may split differently: UNK aside


def test_shortlist_without_a_lexicon_is_one_line(tmp_path):
    r = run_cli("translate", GOLDEN / "plain", "--shortlist", "10", stdin=b"a\n")
    assert r.code == 2 and "lexicon.safetensors" in r.error


def test_nmt_lexicon_writes_the_table_of_a_model_trained_before(trained, tmp_path):
    tmp, recipe, _ = trained
    model = tmp / "work" / "model"
    before = (model / lexicon.LEXICON).read_bytes()
    want = load_checkpoint(model / lexicon.LEXICON)["model"]
    (model / lexicon.LEXICON).unlink()
    try:
        r = run_cli("lexicon", recipe)
        assert r.code == 0, r.err
        got = load_checkpoint(model / lexicon.LEXICON)["model"]
        assert set(got) == set(want)  # the same table (the header's key order is
        assert all(torch.equal(got[k], want[k]) for k in want)  # not fixed)
    finally:
        if not (model / lexicon.LEXICON).exists():
            (model / lexicon.LEXICON).write_bytes(before)
    other = tmp_path / "other.yaml"
    shutil.copy(recipe, other)
    text = other.read_text().replace("seed: 7", "seed: 8")
    other.write_text(text)
    r = run_cli("lexicon", other)
    assert r.code == 2 and "no model trained on this recipe's data" in r.error
