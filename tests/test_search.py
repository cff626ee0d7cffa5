import pytest
import torch

from nmt.decode.fast import FastStepper
from nmt.decode.search import beam_search, greedy, max_lengths
from nmt.model.batch import source_tensor
from nmt.model.seq2seq import Seq2Seq
from nmt.vocab import EOS
from tests.test_model import ATTENTION, small_model

SRC = [[4, 5, 6, 7], [8], [9, 10, 11, 12, 13, 14, 15], [16, 17]]


def sharpen(model):
    """Random weights give flat distributions; scale the output so that
    searches make confident, non-trivial choices and stop at EOS."""
    with torch.no_grad():
        model.decoder.out.weight.mul_(8.0)
        model.decoder.out.bias[3] += 2.0
    return model


def run(fn, model, srcs, plain=False, **kw):
    """fn over srcs, decoding a model through its FastStepper as the Translator
    does (`plain`: through Seq2Seq.step); any other stepper as it is."""
    if isinstance(model, Seq2Seq) and not plain:
        model = FastStepper(model)
    s, s_len = source_tensor(srcs, reverse=False)
    return fn(model, s, s_len, max_lengths(s_len, 1.5, 5), **kw)


@pytest.mark.parametrize(
    "dec,att", [("gru", None), ("lstm", None)] + [("gru", a) for a in ATTENTION]
)
def test_beam_one_equals_greedy(dec, att):
    for seed in range(3):
        model = sharpen(small_model(dec, seed=seed, attention=att))
        g = run(greedy, model, SRC)
        b = run(beam_search, model, SRC, beam=1, alpha=0.0)
        assert [h[0][0] for h in g] == [h[0][0] for h in b]
        for x, y in zip(g, b):
            assert x[0][1] == pytest.approx(y[0][1], abs=1e-4)


@pytest.mark.parametrize(
    "fn,kw", [(greedy, {}), (beam_search, {"beam": 4, "alpha": 1.0})]
)
@pytest.mark.parametrize("att", [None, ATTENTION[1], ATTENTION[2]])
def test_batch_equals_one_by_one(fn, kw, att):
    model = sharpen(small_model("gru", seed=1, attention=att))
    together = run(fn, model, SRC, **kw)
    alone = [run(fn, model, [s], **kw)[0] for s in SRC]
    assert [h[0][0] for h in together] == [h[0][0] for h in alone]


def test_nbest_sorted_and_first_is_one_best():
    model = sharpen(small_model("lstm", seed=2))
    one = run(beam_search, model, SRC, beam=5, alpha=1.0)
    many = run(beam_search, model, SRC, beam=5, alpha=1.0, nbest=5)
    for o, m in zip(one, many):
        scores = [s for _, s in m]
        assert scores == sorted(scores, reverse=True)
        assert len(m) == 5
        assert m[0][0] == o[0][0]
        assert len({tuple(t) for t, _ in m}) == len(m)  # distinct hypotheses


def test_beam_finds_at_least_greedy_score():
    model = sharpen(small_model("gru", seed=3))
    g = run(greedy, model, SRC)
    b = run(beam_search, model, SRC, beam=8, alpha=0.0)
    for x, y in zip(g, b):
        assert y[0][1] >= x[0][1] - 1e-5


class _Scripted:
    """A stand-in model whose next-token log-probabilities depend only on the step:
    'a' costs 0.4 every step; EOS costs 1 at the first step, 5 at steps 1-3 and
    0.01 from step 4 on. With alpha 1, "a a a a EOS" (-1.61 / lp(5) = -0.966) beats
    the immediate EOS (-1.0), but after step 3 the live "a a a a", normalised at
    its current length (-1.6 / lp(4) = -1.07), looks worse than -1.0."""

    A, V = 5, 8

    def __init__(self):
        self.steps = 0

    def encode(self, src, src_len):
        return _Scripted.State(0)

    def step(self, prev, state):
        self.steps += 1
        logp = torch.full((len(prev), self.V), -20.0)
        logp[:, self.A] = -0.4
        logp[:, EOS] = -1.0 if state.t == 0 else (-5.0 if state.t < 4 else -0.01)
        return logp, _Scripted.State(state.t + 1)

    class State:
        def __init__(self, t):
            self.t = t

        def reorder(self, index, sentences=None, width=1):
            return self


def test_early_stop_is_faster_and_exact_stop_finds_the_better_longer_output():
    s, s_len = source_tensor([[4, 5, 6, 7, 8, 9]], reverse=False)
    limit = torch.tensor([12])
    out = {}
    for stop in ("exact", "early"):
        model = _Scripted()
        hyps = beam_search(model, s, s_len, limit, beam=2, alpha=1.0, stop=stop)
        out[stop] = (model.steps, hyps[0][0])
    assert out["early"][0] == 4  # stopped at step 3
    assert out["early"][1] == ([], pytest.approx(-1.0))
    assert out["exact"][0] > 5  # ran until nothing live could beat -0.966
    assert out["exact"][1] == ([5, 5, 5, 5], pytest.approx(-1.61 / (10 / 6)))


def test_output_respects_length_limit():
    model = FastStepper(small_model("gru", seed=4))  # flat: rarely picks EOS
    s, s_len = source_tensor(SRC, reverse=False)
    limit = max_lengths(s_len, 1.0, 2)
    for fn, kw in ((greedy, {}), (beam_search, {"beam": 3})):
        for h, lim in zip(fn(model, s, s_len, limit, **kw), limit.tolist()):
            assert len(h[0][0]) <= lim - 1


@pytest.mark.parametrize("att", [None, *ATTENTION])
def test_beam_shares_per_sentence_state(att, monkeypatch):
    """A sentence's hypotheses share its context, memory and keys (one copy per
    sentence, left in place while no sentence leaves); the n-best lists equal those
    of copying every field for every hypothesis at every step."""
    from nmt.model.decoder import DecoderState

    model = small_model("lstm", seed=5, attention=att)
    with torch.no_grad():  # large weights: the state decides, no early EOS
        for p in model.parameters():
            p.mul_(5.0)
    full, shuffles = DecoderState.reorder, []

    def spy(self, index, sentences=None, width=1):
        out = full(self, index, sentences, width)
        shuffles.append(sentences is None and width > 1 and self.width > 1)
        assert out.context.size(0) * width == out.hidden.size(1)
        return out

    monkeypatch.setattr(DecoderState, "reorder", spy)
    fast = run(beam_search, model, SRC, beam=3, alpha=1.0, nbest=3)
    assert sum(shuffles) >= 3  # hypotheses moved, their sentences' state did not
    monkeypatch.setattr(  # every row its own sentence: all fields move
        DecoderState,
        "reorder",
        lambda self, index, sentences=None, width=1: full(self, index, index, 1),
    )
    slow = run(beam_search, model, SRC, beam=3, alpha=1.0, nbest=3)
    assert [[t for t, _ in h] for h in fast] == [[t for t, _ in h] for h in slow]
    for x, y in zip(fast, slow):
        assert [s for _, s in x] == pytest.approx([s for _, s in y], abs=1e-5)
