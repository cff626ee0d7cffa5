import copy

import numpy as np
import pytest
import torch

from nmt.config import ModelConfig
from nmt.data.batching import make_batches
from nmt.errors import NmtError
from nmt.model.batch import collate, source_tensor
from nmt.model.seq2seq import build_model
from nmt.vocab import EOS, PAD

# attention variants: (model.attention, model.attention_score, model.input_feeding)
ATTENTION = [
    ("luong", "general", False),
    ("luong", "dot", True),
    ("bahdanau", "general", False),
]


def small_model(dec="gru", cond="cho", layers=2, seed=0, attention=None):
    torch.manual_seed(seed)
    cfg = ModelConfig(embed_dim=8)
    if attention:
        cfg.attention, cfg.attention_score, cfg.input_feeding = attention
    cfg.encoder.hidden, cfg.encoder.layers, cfg.encoder.dropout = 6, layers, 0.0
    cfg.decoder.type, cfg.decoder.conditioning = dec, cond
    cfg.decoder.hidden, cfg.decoder.readout, cfg.decoder.dropout = 12, 12, 0.0
    cfg.decoder.layers = 2
    return build_model(cfg, 30, 25).eval()


def test_reverse_flips_real_tokens_only():
    src, lens = source_tensor([[5, 6, 7], [8, 9]], reverse=True)
    assert src.tolist() == [[7, 6, 5, EOS], [9, 8, EOS, PAD]]
    assert lens.tolist() == [4, 3]
    src, _ = source_tensor([[5, 6, 7], [8, 9]], reverse=False)
    assert src.tolist() == [[5, 6, 7, EOS], [8, 9, EOS, PAD]]


def test_collate_shifts_target():
    b = collate([[4, 5]], [[6, 7, 8]], reverse=False)
    assert b.tgt_in.tolist() == [[2, 6, 7, 8]]
    assert b.tgt_out.tolist() == [[6, 7, 8, EOS]]
    assert b.n_tgt_tokens == 4


def test_batches_cover_everything_once_within_budget():
    rng = np.random.default_rng(0)
    s, t = rng.integers(1, 40, 1000), rng.integers(1, 40, 1000)
    batches = make_batches(s, t, 300, seed=1, epoch=2)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    for b in batches:
        longest = int(np.maximum(s[b], t[b]).max()) + 1
        assert longest * len(b) <= 300 or len(b) == 1
    again = make_batches(s, t, 300, seed=1, epoch=2)
    assert all((x == y).all() for x, y in zip(batches, again))
    other = make_batches(s, t, 300, seed=1, epoch=3)
    assert [b.tolist() for b in other] != [b.tolist() for b in batches]
    capped = make_batches(s, t, 10**6, max_sentences=7)
    assert sorted(np.concatenate(capped).tolist()) == list(range(1000))
    assert max(len(b) for b in capped) == 7
    # length-sorted within batches: lengths inside a batch are close
    spread = np.mean([np.ptp(s[b]) for b in batches])
    assert spread < 10


@pytest.mark.parametrize("dec", ["gru", "lstm"])
def test_shapes_and_lstm_forget_bias(dec):
    model = small_model(dec)
    b = collate([[4, 5, 6], [7]], [[3 + 5, 9], [10, 11, 12]], reverse=False)
    logits = model.logits(b)
    assert logits.shape == (b.n_tgt_tokens, 25)
    bias = model.encoder.rnn.bias_ih_l0
    assert torch.all(bias[6:12] == 1.0)


@pytest.mark.parametrize(
    "dec,cond", [("gru", "cho"), ("lstm", "cho"), ("lstm", "sutskever")]
)
def test_encoder_padding_invariance(dec, cond):
    model = small_model(dec, cond)
    alone, alone_len = source_tensor([[4, 5, 6]], reverse=False)
    batch, batch_len = source_tensor(
        [[4, 5, 6], [7, 8, 9, 10, 11, 12, 13]], reverse=False
    )
    a = model.encode(alone, alone_len)
    b = model.encode(batch, batch_len)
    assert torch.allclose(a.context[0], b.context[0], atol=1e-6)
    assert torch.allclose(a.hidden[:, 0], b.hidden[:, 0], atol=1e-6)


@pytest.mark.parametrize("lengths", [[5, 2, 7, 1], [4, 4, 4]])
def test_encoder_cpu_paths_equal_packed_lstm(lengths):
    """With gradients on the CPU, mixed lengths run each layer and direction on
    padded input (Encoder._padded) and equal lengths one nn.LSTM call: outputs,
    final states and every gradient are those of nn.LSTM on packed input."""
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
    from nmt.model.dropout import Dropout

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


@pytest.mark.parametrize(
    "dec,cond,att",
    [("gru", "cho", None), ("lstm", "cho", None), ("gru", "sutskever", None)]
    + [("gru", "cho", a) for a in ATTENTION]
    + [("lstm", "sutskever", a) for a in ATTENTION],
)
def test_fused_training_equals_step_by_step(dec, cond, att):
    """The teacher-forced decoder (one fused call, or its training loop for
    Bahdanau / input feeding) computes what step() computes."""
    model = small_model(dec, cond, attention=att)
    b = collate([[4, 5, 6], [7, 8]], [[9, 10, 11], [12, 13, 14]], reverse=False)
    fused = torch.log_softmax(model.logits(b), dim=-1)  # rows: sentence-major
    state = model.encode(b.src, b.src_len)
    steps = []
    for t in range(b.tgt_in.size(1)):
        logp, state = model.decoder.step(b.tgt_in[:, t], state)
        steps.append(logp)
    stepped = torch.stack(steps, dim=1).reshape(-1, 25)
    assert torch.allclose(fused, stepped, atol=1e-5)


def _stepped(model, b, grad: bool) -> torch.Tensor:
    with torch.set_grad_enabled(grad):
        state = model.encode(b.src, b.src_len)
        out = []
        for t in range(b.tgt_in.size(1)):
            logp, state = model.decoder.step(b.tgt_in[:, t], state)
            out.append(logp)
    return torch.stack(out).detach()


@pytest.mark.parametrize(
    "dec,cond,att",
    [("gru", "cho", None), ("lstm", "sutskever", None)]
    + [("gru", "cho", a) for a in ATTENTION],
)
def test_decode_tables_equal_the_products_and_follow_weight_updates(
    dec, cond, att, monkeypatch
):
    """Without gradients, step() looks each previous word's shares of the gates
    and readout up in per-word tables: the same numbers as the products, and an
    in-place weight update (an optimizer step) makes it rebuild them."""
    model = small_model(dec, cond, attention=att)
    b = collate([[4, 5, 6], [7, 8]], [[9, 10, 11], [12, 13, 14]], reverse=False)
    products, looked_up = _stepped(model, b, True), _stepped(model, b, False)
    with torch.no_grad():
        assert model.decoder.tables() is not None
    assert torch.allclose(products, looked_up, atol=1e-5)
    with torch.no_grad():
        model.decoder.embed.weight.mul_(1.5)
        model.decoder.out.weight.mul_(2.0)
    updated = _stepped(model, b, False)
    assert not torch.allclose(updated, looked_up, atol=1e-3)
    assert torch.allclose(updated, _stepped(model, b, True), atol=1e-5)
    clone = copy.deepcopy(model)  # its tables hold oneDNN copies of weights
    assert torch.allclose(_stepped(clone, b, False), updated, atol=1e-5)
    monkeypatch.setattr("nmt.model.decoder.TABLE_BYTES", 0)  # too large: products
    with torch.no_grad():
        model.decoder.out.weight.mul_(1.0)  # a new version: tables remade
        assert model.decoder.tables().gates is None
    assert torch.allclose(updated, _stepped(model, b, False), atol=1e-5)


def test_sutskever_feeds_no_context():
    model = small_model("lstm", "sutskever")
    assert model.decoder.rnn.input_size == 8
    cho = small_model("lstm", "cho")
    assert cho.decoder.rnn.input_size == 8 + 12


@pytest.mark.parametrize("dec", ["gru", "lstm"])
def test_sutskever_initial_state_is_linear_in_the_source_summary(dec):
    """The source reaches a Sutskever decoder only through s_0, which must not
    saturate: through tanh it did, and the model stopped reading its source."""
    model = small_model(dec, "sutskever")
    assert not hasattr(model.bridge, "to_context")
    f1, f2 = 50 * torch.randn(2, 3, model.encoder.final_dim)
    a, b, mid = (model.bridge(f) for f in (f1, f2, (f1 + f2) / 2))
    assert torch.equal(a.context, f1)
    pairs = [(a.hidden, b.hidden, mid.hidden)]
    if dec == "lstm":
        pairs.append((a.cell, b.cell, mid.cell))
    for x, y, m in pairs:
        assert x.abs().max() > 5  # far outside tanh's range
        assert torch.allclose(m, (x + y) / 2, atol=1e-4)


@pytest.mark.parametrize("att", ATTENTION)
def test_attention_weights_sum_to_one_and_skip_padding(att):
    model = small_model("gru", attention=att)
    src, src_len = source_tensor([[4, 5, 6], [7, 8, 9, 10, 11, 12, 13]], False)
    state = model.encode(src, src_len)
    prev = torch.tensor([2, 2])
    for _ in range(3):
        _, state = model.decoder.step(prev, state)
        w = state.weights
        assert torch.allclose(w.sum(dim=1), torch.ones(2), atol=1e-6)
        assert torch.all(w[0, 4:] == 0.0)  # sentence 0: 3 tokens + EOS, then padding
        assert torch.all(w[0, :4] > 0.0)
        prev = torch.tensor([5, 6])


@pytest.mark.parametrize("att", ATTENTION)
def test_attention_padding_invariance(att):
    """A sentence decodes to the same log-probabilities alone and padded in a batch."""
    model = small_model("lstm", attention=att)
    alone, alone_len = source_tensor([[4, 5, 6]], reverse=False)
    batch, batch_len = source_tensor([[4, 5, 6], [7, 8, 9, 10, 11, 12]], False)
    sa, sb = model.encode(alone, alone_len), model.encode(batch, batch_len)
    for tok in [2, 7, 9]:
        la, sa = model.decoder.step(torch.tensor([tok]), sa)
        lb, sb = model.decoder.step(torch.tensor([tok, tok]), sb)
        assert torch.allclose(la[0], lb[0], atol=1e-5)


def test_input_feeding_needs_luong():
    cfg = ModelConfig(embed_dim=8, attention="bahdanau", input_feeding=True)
    with pytest.raises(NmtError, match="input_feeding: true needs"):
        build_model(cfg, 30, 25)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_chunked_loss_equals_whole_batch_loss(monkeypatch, smoothing):
    """Seq2Seq.forward's loss over chunks of target positions (here 2 rows of 25
    logits per chunk, with a ragged last chunk) is the same sum, with the same
    gradients, as one cross-entropy over all the logits at once."""
    import torch.nn.functional as F

    import nmt.model.seq2seq

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
    monkeypatch.setattr(nmt.model.seq2seq, "LOSS_CHUNK", 2 * 25)
    torch.manual_seed(1)
    chunked = model(b, label_smoothing=smoothing)
    assert gold.numel() % 2 == 1  # 7 positions: 3 chunks of 2 and one of 1
    assert torch.allclose(chunked, whole, atol=1e-5)
    for a, c in zip(g_whole, grads(chunked)):
        assert torch.allclose(a, c, atol=1e-5)
