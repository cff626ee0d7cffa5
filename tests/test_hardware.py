import pytest
import torch

from nmt.errors import NmtError
from nmt.hardware import bf16_emulated, require_native_bf16

CPU = torch.device("cpu")


@pytest.fixture
def x86(monkeypatch):
    """A fake x86 CPU whose bf16 units the test switches on and off."""
    flags = {"bf16": False, "amx": False}
    monkeypatch.setattr(torch.cpu, "_is_avx2_supported", lambda: True)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: flags["bf16"])
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: flags["amx"])
    return flags


def test_bf16_without_bf16_units_is_refused_naming_the_key(x86):
    assert bf16_emulated(CPU)
    with pytest.raises(NmtError, match="decode.precision: bf16 needs"):
        require_native_bf16(CPU, "decode.precision")


@pytest.mark.parametrize("unit", ["bf16", "amx"])
def test_bf16_units_are_native(x86, unit):
    x86[unit] = True
    assert not bf16_emulated(CPU)
    require_native_bf16(CPU, "train.precision")  # no error


def test_gpu_is_never_emulated(x86):
    assert not bf16_emulated(torch.device("cuda"))
