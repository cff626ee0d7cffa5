"""Behaviour pinned down: two small trained models (with and without attention) and
the exact output they gave for tests/golden/input.txt when they were made, greedy,
beam 5 and 3-best with scores. A change that moves code around must keep these."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults import run_cli

GOLDEN = Path(__file__).parent / "golden"
MODES = {"greedy.txt": ["--beam", "1"], "beam5.txt": ["--beam", "5"],
         "nbest3.txt": ["--beam", "5", "--nbest", "3"]}  # fmt: skip


@pytest.mark.parametrize("model", ["plain", "attention"])
@pytest.mark.parametrize("expected", list(MODES))
def test_output_is_unchanged(model, expected):
    r = run_cli("translate", GOLDEN / model, "-i", GOLDEN / "input.txt",
                "--device", "cpu", *MODES[expected])  # fmt: skip
    assert r.code == 0, r.err
    want = (GOLDEN / model / expected).read_text(encoding="utf-8").splitlines()
    got = r.out.splitlines()
    assert len(got) == len(want)
    if expected != "nbest3.txt":
        assert got == want
        return
    for g, w in zip(got, want):  # index ||| text ||| score (4 decimals)
        (gi, gt, gs), (wi, wt, ws) = g.split(" ||| "), w.split(" ||| ")
        assert (gi, gt) == (wi, wt)
        assert abs(float(gs) - float(ws)) <= 2e-4, (g, w)
