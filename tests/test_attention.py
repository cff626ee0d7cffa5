"""Attention models end to end: train, translate (greedy, beam, ensemble), plot."""

from __future__ import annotations

import pytest
import yaml

from nmt.decode.translator import Translator
from tests.conftest import TINY, _merge, nmt
from tests.test_translate import SENTS


@pytest.fixture(scope="module")
def attention_model(tmp_path_factory):
    """A tiny Luong model with input feeding, trained through `nmt run`."""
    tmp = tmp_path_factory.mktemp("att")
    raw = _merge(
        TINY,
        {
            "workdir": str(tmp / "work"),
            "model": {"attention": "luong", "input_feeding": True},
            "train": {"max_steps": 20},
        },
    )
    recipe = tmp / "att.yaml"
    recipe.write_text(yaml.safe_dump(raw))
    proc = nmt("run", recipe)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    return tmp / "work" / "model"


def test_translate_beam_ensemble_and_long_lines(attention_model):
    d = attention_model
    lines = [*SENTS, " ".join(["da"] * 5000)]
    for beam in (1, 3):
        tr = Translator.load(d, beam=beam, device="cpu")
        together = tr.translate(lines)
        assert len(together) == len(lines)
        assert together[:-1] == [tr.translate([s])[0] for s in lines[:-1]]
    single = Translator.load(d, beam=3).translate_nbest(SENTS)
    ens = Translator.load([d, d], beam=3).translate_nbest(SENTS)
    assert [[t for t, _ in h] for h in single] == [[t for t, _ in h] for h in ens]


def test_attention_plot_writes_pngs(attention_model, tmp_path):
    plots = tmp_path / "plots"
    out = nmt(
        "translate",
        attention_model,
        "--attention-plot",
        plots,
        "--plot-sentences",
        "2",
        stdin="\n".join(SENTS).encode() + b"\n",
    )
    assert out.returncode == 0, out.stderr.decode()
    assert len(out.stdout.decode().splitlines()) == len(SENTS)
    pngs = sorted(plots.glob("*.png"))
    assert [p.name for p in pngs] == ["00000.png", "00001.png"]
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert p.stat().st_size > 1000


def test_attention_plot_needs_an_attention_model(trained, tmp_path):
    out = nmt(
        "translate",
        trained[0] / "work" / "model",
        "--attention-plot",
        tmp_path,
        stdin=b"da\n",
    )
    assert out.returncode == 2
    lines = out.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "model.attention: none" in lines[0]
