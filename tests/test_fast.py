"""The fast paths (nmt/model/fast.py, nmt/decode/fast.py), each against the
plain path it stands in for. The packed products: tests/test_packed.py."""

import copy

import pytest
import torch
import torch.nn.functional as F

import nmt.model.fast
from nmt.decode.fast import FastStepper, row_argmax, row_topk
from nmt.decode.search import beam_search, greedy
from nmt.model.batch import collate, source_tensor
from nmt.model.fast import Dropout
from nmt.vocab import PAD
from tests.test_model import ATTENTION, VARIANTS, small_model
from tests.test_search import SRC, run, sharpen

# training: nmt/model/fast.py


@pytest.mark.parametrize("lengths", [[5, 2, 7, 1], [4, 4, 4]])
def test_encoder_cpu_paths_equal_packed_lstm(lengths):
    """With gradients on the CPU, mixed lengths run each layer and direction on
    padded input (padded_lstm) and equal lengths one nn.LSTM call: outputs, final
    states and every gradient are those of nn.LSTM on packed input."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    enc = small_model("lstm", attention=ATTENTION[0]).train().encoder  # dropout 0
    torch.manual_seed(1)
    src_len = torch.tensor(lengths)
    src = torch.randint(4, 30, (len(lengths), max(lengths)))
    src[torch.arange(src.size(1)) >= src_len.unsqueeze(1)] = PAD
    weights = list(enc.parameters())
    grads = []
    for packed in (False, True):
        if packed:
            x = enc.embed(src)
            p = pack_padded_sequence(x, src_len, batch_first=True, enforce_sorted=False)
            out, (h, _) = enc.rnn(p)
            memory = pad_packed_sequence(out, batch_first=True)[0]
            final = h.transpose(0, 1).reshape(src.size(0), -1)
        else:
            final, memory = enc(src, src_len, outputs=True)
        grads.append(torch.autograd.grad((final**2).sum() + (memory**3).sum(), weights))
        if not packed:
            ours = final, memory
    assert torch.allclose(ours[0], final, atol=1e-6)
    assert torch.allclose(ours[1], memory, atol=1e-6)
    assert (ours[1][src == PAD] == 0).all()
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-5)


def test_dropout_keeps_1_minus_p_scaled_and_passes_gradients_through_the_mask():
    drop = Dropout(0.3).train()
    x = torch.ones(400, 500, requires_grad=True)
    y = drop(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.01
    assert torch.allclose(y[kept], torch.tensor(1 / 0.7))
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # d(x * mask / 0.7) / dx
    assert torch.equal(drop.eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_chunked_loss_equals_whole_batch_loss(monkeypatch, smoothing):
    """Seq2Seq.forward's loss (chunked_cross_entropy) over chunks of target
    positions (here 2 rows of 25 logits per chunk, with a ragged last chunk) is
    the same sum, with the same gradients, as one cross-entropy over all the
    logits at once."""
    model = small_model("lstm", "cho").train()
    b = collate([[4, 5, 6], [7, 8]], [[9, 10, 11], [12, 13]], reverse=False)

    def grads(loss):
        model.zero_grad()
        loss.backward()
        return [p.grad.clone() for p in model.parameters()]

    torch.manual_seed(1)  # same dropout masks (the model has none; be sure)
    gold = b.tgt_out[b.tgt_out != PAD]
    whole = F.cross_entropy(
        model.logits(b), gold, label_smoothing=smoothing, reduction="sum"
    )
    g_whole = grads(whole)
    monkeypatch.setattr(nmt.model.fast, "LOSS_CHUNK", 2 * 25)
    torch.manual_seed(1)
    chunked = model(b, label_smoothing=smoothing)
    assert gold.numel() % 2 == 1  # 7 positions: 3 chunks of 2 and one of 1
    assert torch.allclose(chunked, whole, atol=1e-5)
    for a, c in zip(g_whole, grads(chunked)):
        assert torch.allclose(a, c, atol=1e-5)


# decoding: nmt/decode/fast.py


def _stepped(step, encode, b) -> torch.Tensor:
    """Teacher-forced log-probabilities [T, B, V] through a stepper's step."""
    with torch.no_grad():
        state = encode(b.src, b.src_len)
        out = []
        for t in range(b.tgt_in.size(1)):
            logp, state = step(b.tgt_in[:, t], state)
            out.append(logp.clone())  # a FastStepper reuses its buffer
    return torch.stack(out)


def _plain(model, b):
    return _stepped(model.step, model.encode, b)


def _fast(stepper, b):
    return _stepped(stepper.step, stepper.encode, b)


@pytest.mark.parametrize(
    "dec,cond,att",
    [("gru", "cho", None), ("lstm", "sutskever", None)]
    + [("gru", "cho", a) for a in ATTENTION],
)
def test_decode_tables_equal_the_products_and_follow_weight_updates(
    dec, cond, att, monkeypatch
):
    """A FastStepper looks each previous word's shares of the gates and readout
    up in per-word tables: the same numbers as the model's products, and an
    in-place weight update (an optimizer step) makes it rebuild them."""
    model = small_model(dec, cond, attention=att)
    b = collate([[4, 5, 6], [7, 8]], [[9, 10, 11], [12, 13, 14]], reverse=False)
    stepper = FastStepper(model)
    products, looked_up = _plain(model, b), _fast(stepper, b)
    assert stepper.tables.gates is not None
    assert torch.allclose(products, looked_up, atol=1e-5)
    with torch.no_grad():
        model.decoder.embed.weight.mul_(1.5)
        model.decoder.out.weight.mul_(2.0)
    updated = _fast(stepper, b)
    assert not torch.allclose(updated, looked_up, atol=1e-3)
    assert torch.allclose(updated, _plain(model, b), atol=1e-5)
    clone = copy.deepcopy(stepper)  # its tables hold oneDNN copies of weights
    assert torch.allclose(_fast(clone, b), updated, atol=1e-5)
    monkeypatch.setattr("nmt.decode.fast.TABLE_BYTES", 0)  # too large: products
    with torch.no_grad():
        model.decoder.out.weight.mul_(1.0)  # a new version: tables remade
    assert torch.allclose(updated, _fast(stepper, b), atol=1e-5)
    assert stepper.tables.gates is None


@pytest.mark.parametrize("dec,cond,att", VARIANTS)
def test_fast_stepper_equals_the_plain_step(dec, cond, att):
    """Every decoder variant: the same log-probabilities as Seq2Seq.step within
    float tolerance, and the same greedy, beam and n-best outputs."""
    model = sharpen(small_model(dec, cond, seed=6, attention=att))
    b = collate([[4, 5, 6], [7, 8]], [[9, 10, 11], [12, 13, 14]], reverse=False)
    fast = FastStepper(model)
    assert torch.allclose(_plain(model, b), _fast(fast, b), atol=1e-5)
    for fn, kw in ((greedy, {}), (beam_search, {"beam": 3, "nbest": 3})):
        plain, quick = run(fn, model, SRC, True, **kw), run(fn, fast, SRC, **kw)
        assert [[t for t, _ in h] for h in plain] == [[t for t, _ in h] for h in quick]
        for x, y in zip(plain, quick):
            assert [s for _, s in x] == pytest.approx([s for _, s in y], abs=1e-4)


def test_fast_stepper_refuses_a_model_in_training_mode():
    model = small_model()
    stepper = FastStepper(model)
    model.train()
    src, src_len = source_tensor([[4, 5]], reverse=False)
    with pytest.raises(ValueError, match="eval mode"):
        stepper.encode(src, src_len)


@pytest.mark.parametrize("width", [8000, 8003, 100])
def test_row_topk_values_equal_torch_topk(width):
    g = torch.Generator().manual_seed(width)
    x = torch.log_softmax(3 * torch.randn(37, width, generator=g), dim=1)
    x[0, :] = -5.0  # one row all ties
    x[1, -3:] = 0.0  # the largest values in the partial last run
    x[2, :70] = 0.0  # more ties than k in the first two runs
    for k in (1, 10, 20):
        values, index = row_topk(x, k)
        assert torch.equal(values, x.topk(k, dim=1).values)
        assert torch.equal(x.gather(1, index), values)
        assert all(len(set(r)) == k for r in index.tolist())  # k distinct columns


@pytest.mark.parametrize("width", [8000, 8003, 300, 200])  # 200: 3 runs, argmax
def test_row_argmax_equals_torch_argmax_first_maximum_on_ties(width):
    g = torch.Generator().manual_seed(width)
    x = torch.randint(-50, 50, (41, width), generator=g).float()  # many ties
    x[0, :] = -5.0  # one row all ties: column 0
    x[1, -3:] = 99.0  # the maximum in the partial last run (or the last run)
    x[2, -1], x[2, 5] = 99.0, 99.0  # tied with a later one in the last run
    x[3, 70], x[3, 65] = 99.0, 99.0  # two maxima in one run
    x[4, 130], x[4, 64] = 99.0, 99.0  # the second of two maximal runs
    index = row_argmax(x)
    assert torch.equal(index, x.argmax(dim=1))
    assert index[0] == 0 and index[2] == 5 and index[3] == 65 and index[4] == 64
