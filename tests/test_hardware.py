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


@pytest.mark.parametrize(
    "flags, emulated",
    [("fpu avx2 fma", True), ("avx2 avx512f avx512_bf16", False),
     ("avx2 amx_bf16 amx_tile", False), ("neon asimd", False)],
)  # fmt: skip
def test_a_torch_without_the_cpu_probes_reads_proc_cpuinfo(
    monkeypatch, tmp_path, flags, emulated
):
    """torch before 2.5 has no torch.cpu._is_avx512_bf16_supported: the flags come
    from /proc/cpuinfo instead, so bf16 is still refused where it would be emulated."""
    import builtins

    import nmt.hardware

    for probe in ("_is_avx2_supported", "_is_avx512_bf16_supported",
                  "_is_amx_tile_supported"):  # fmt: skip
        monkeypatch.delattr(torch.cpu, probe, raising=False)
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    real_open = builtins.open

    def fake_open(path, *a, **k):
        return real_open(info if path == "/proc/cpuinfo" else path, *a, **k)

    monkeypatch.setattr(nmt.hardware, "open", fake_open, raising=False)
    assert bf16_emulated(CPU) is emulated
