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
# every decoder: (decoder.type, decoder.conditioning, attention variant or None)
VARIANTS = [
    (dec, cond, att)
    for dec in ("gru", "lstm")
    for cond in ("cho", "sutskever")
    for att in (None, *ATTENTION)
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


@pytest.mark.parametrize("dec,cond,att", VARIANTS)
def test_fused_training_equals_step_by_step(dec, cond, att):
    """The teacher-forced decoder (one fused call, or its training loop for
    Bahdanau / input feeding) computes what step() computes, for every decoder:
    GRU and LSTM, Cho and Sutskever, without attention, Luong with and without
    input feeding, Bahdanau. The fused call is one nn.GRU / nn.LSTM call over
    the whole sequence wherever no recurrence runs through attention."""
    model = small_model(dec, cond, attention=att)
    b = collate([[4, 5, 6], [7, 8]], [[9, 10, 11], [12, 13, 14]], reverse=False)
    calls = []
    model.decoder.rnn.register_forward_hook(lambda *_: calls.append(1))
    fused = torch.log_softmax(model.logits(b), dim=-1)  # rows: sentence-major
    recurrent = att is not None and (att[0] == "bahdanau" or att[2])
    assert len(calls) == (0 if recurrent else 1)
    state = model.encode(b.src, b.src_len)
    steps = []
    for t in range(b.tgt_in.size(1)):
        logp, state = model.decoder.step(b.tgt_in[:, t], state)
        steps.append(logp)
    stepped = torch.stack(steps, dim=1).reshape(-1, 25)
    assert torch.allclose(fused, stepped, atol=1e-5)


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


def test_input_feeding_needs_luong(make_config):
    """A rule across keys: config.validate refuses it as the recipe loads."""
    with pytest.raises(NmtError, match="input_feeding: true needs"):
        make_config(model={"attention": "bahdanau", "input_feeding": True})


@pytest.mark.parametrize("dec", ["gru", "lstm"])
@pytest.mark.parametrize("att", [None, *ATTENTION])
def test_training_gradients_do_not_depend_on_thread_timing(dec, att):
    """Training repeats to the bit under load only if no backward adds into one
    element from several threads (atomic adds, whose order is the threads'
    timing). torch's deterministic mode runs such ops serially: the gradients
    must be the same with it and without it. Big enough (about 45,000 readout
    elements) for torch to split the work between two threads."""
    torch.manual_seed(0)
    cfg = ModelConfig(embed_dim=32)
    if att:
        cfg.attention, cfg.attention_score, cfg.input_feeding = att
    cfg.encoder.hidden, cfg.decoder.type = 32, dec
    cfg.decoder.hidden, cfg.decoder.readout = 64, 64
    model = build_model(cfg, 200, 200).train()
    rng = np.random.default_rng(0)
    lens = rng.integers(3, 21, size=64)
    batch = collate(
        [list(rng.integers(4, 200, size=n)) for n in lens],
        [list(rng.integers(4, 200, size=n)) for n in lens],
        reverse=False,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(2)

    def grads(deterministic: bool) -> dict[str, torch.Tensor]:
        torch.use_deterministic_algorithms(deterministic)
        try:
            torch.manual_seed(5)  # the same dropout masks
            model.zero_grad()
            model(batch, 0.1).backward()
        finally:
            torch.use_deterministic_algorithms(False)
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    try:
        serial, threaded = grads(True), grads(False)
    finally:
        torch.set_num_threads(threads)
    assert [n for n in serial if not torch.equal(serial[n], threaded[n])] == []
