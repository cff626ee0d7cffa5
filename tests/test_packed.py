import copy
import pickle

import pytest
import torch
import torch.nn.functional as F

import nmt.decode.fast as fast
from nmt.decode.fast import Packed


@pytest.mark.parametrize("bias", [True, False])
def test_packed_equals_linear_on_any_rows(bias):
    """The oneDNN product (with the weight reordered once) gives F.linear's numbers
    for row counts that do not fill its blocks and for a strided input."""
    torch.manual_seed(0)
    w, b = torch.randn(37, 24), torch.randn(37) if bias else None
    p = Packed(w, b)
    if torch.backends.mkldnn.is_available():
        assert p.blocked is not None  # the fast path is the one measured
    for rows in (1, 3, 17, 64):
        x = torch.randn(rows, 24)
        assert torch.allclose(p(x), F.linear(x, w, b), atol=1e-5)
    x = torch.randn(10, 48)[:, ::2]  # not contiguous
    assert torch.allclose(p(x), F.linear(x, w, b), atol=1e-5)


def test_packed_falls_back_where_onednn_cannot_run():
    """float64 weights, and autocast (bf16 decoding): plain products, in the
    dtype autocast asks for."""
    w, b = torch.randn(8, 4, dtype=torch.float64), torch.randn(8, dtype=torch.float64)
    p = Packed(w, b)
    assert p.blocked is None
    x = torch.randn(3, 4, dtype=torch.float64)
    assert torch.allclose(p(x), F.linear(x, w, b))
    w32, b32 = w.float(), b.float()
    q = Packed(w32, b32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = q(x.float())
    assert y.dtype == torch.bfloat16
    assert torch.allclose(y.float(), F.linear(x.float(), w32, b32), atol=0.1)


def test_packed_weight_follows_no_gradient():
    """Decoding only: the product keeps no graph even for a weight that wants one."""
    lin = torch.nn.Linear(6, 5)
    y = Packed(lin.weight, lin.bias)(torch.randn(2, 6))
    assert not y.requires_grad


def test_a_model_that_has_decoded_can_be_copied_and_pickled():
    """The oneDNN copy of a weight cannot be copied; a Packed drops it and packs
    again, so copy.deepcopy and torch.save of a decoder keep working."""
    lin = torch.nn.Linear(6, 5)
    p = Packed(lin.weight, lin.bias)
    x = torch.randn(3, 6)
    for q in (copy.deepcopy(p), pickle.loads(pickle.dumps(p))):
        assert torch.allclose(q(x), p(x))
        assert (q.blocked is None) == (p.blocked is None)


@pytest.mark.parametrize("error", [AttributeError, RuntimeError])
def test_packing_falls_back_where_the_onednn_ops_are_absent_or_fail(monkeypatch, error):
    """An absent op (AttributeError from torch.ops) or one that fails at its first
    use: checked once, then every Packed runs the plain product."""

    def broken(*args):
        raise error("no oneDNN here")

    monkeypatch.setattr(fast, "_packed_linear", broken)
    fast.onednn_works.cache_clear()
    try:
        assert not fast.onednn_works()
        w, b = torch.randn(7, 5), torch.randn(7)
        p = Packed(w, b)
        assert p.blocked is None
        x = torch.randn(3, 5)
        assert torch.allclose(p(x), F.linear(x, w, b), atol=1e-6)
    finally:
        fast.onednn_works.cache_clear()


@pytest.mark.filterwarnings("ignore:torch.is_autocast_cpu_enabled")
def test_autocast_query_works_without_a_device_argument():
    """torch before 2.4: is_autocast_enabled() takes no device; the query then
    asks is_autocast_cpu_enabled() for the CPU."""
    real = torch.is_autocast_enabled

    def old(*args):
        if args:
            raise TypeError("is_autocast_enabled() takes 0 positional arguments")
        return real("cuda")

    def ask(device):
        with pytest.MonkeyPatch.context() as mp:  # torch.autocast itself asks too
            mp.setattr(torch, "is_autocast_enabled", old)
            return fast._autocast_query()(device)

    assert ask("cpu") is False
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert ask("cpu") is True
        assert ask("cuda") is False
