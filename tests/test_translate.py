"""Translator API, ensembles, forced-decoding scores and significance tests."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys

import pytest

from nmt.data.corpus import prepare
from nmt.decode.scoring import corpus_perplexity, score_pairs
from nmt.decode.translator import Translator
from nmt.train.loop import Trainer
from tests.conftest import ROOT, needs_native_bf16, nmt

SENTS = [
    "da vaim skousts saifen.",
    "",
    "   ",
    "dei pails getul pelainut da skasaimil.",
    "un pelainut dat.",
]


def model_dir(trained):
    return trained[0] / "work" / "model"


def test_api_one_line_per_input_and_batch_invariance(trained):
    for beam in (1, 3):
        tr = Translator.load(model_dir(trained), beam=beam, device="cpu")
        together = tr.translate(SENTS)
        alone = [tr.translate([s])[0] for s in SENTS]
        assert together == alone
        assert len(together) == len(SENTS) and together[1] == "" and together[2] == ""


@pytest.mark.parametrize("beam", [1, 3])
def test_batch_rows_caps_hypotheses_per_batch(trained, monkeypatch, beam):
    """decode.batch_rows bounds sentences x beam in every batch; the output does
    not depend on it."""
    import nmt.decode.translator as T

    lines = [s for s in SENTS if s.strip()] * 7
    default = Translator.load(model_dir(trained), beam=beam, device="cpu")
    expected = default.translate(lines)
    sizes = []
    for name in ("greedy", "beam_search"):
        inner = getattr(T, name)
        monkeypatch.setattr(
            T,
            name,
            lambda m, s, *a, _f=inner, **k: sizes.append(len(s)) or _f(m, s, *a, **k),
        )
    capped = Translator.load(model_dir(trained), beam=beam, batch_rows=6, device="cpu")
    assert capped.translate(lines) == expected
    assert sum(sizes) == len(lines) and max(sizes) == 6 // beam


@needs_native_bf16
def test_bf16_decoding_runs_under_autocast_and_mostly_agrees(trained, monkeypatch):
    import torch

    d = model_dir(trained)
    fp32 = Translator.load(d, beam=3, device="cpu").translate(SENTS * 4)
    bf16 = Translator.load(d, beam=3, precision="bf16", device="cpu")
    seen = []
    inner = bf16.stepper.step

    def step(prev, state):
        seen.append(torch.is_autocast_enabled("cpu"))
        return inner(prev, state)

    monkeypatch.setattr(bf16.stepper, "step", step)
    out = bf16.translate(SENTS * 4)
    assert seen and all(seen)
    assert len(out) == len(SENTS) * 4 and out[1] == ""
    assert sum(a == b for a, b in zip(fp32, out)) >= 0.75 * len(out)


def test_ensemble_of_one_equals_the_model(trained):
    d = model_dir(trained)
    single = Translator.load(d, beam=3).translate_nbest(SENTS)
    ens = Translator.load([d, d], beam=3).translate_nbest(SENTS)
    assert [[t for t, _ in h] for h in single] == [[t for t, _ in h] for h in ens]
    for a, b in zip(single, ens):
        assert a[0][1] == pytest.approx(b[0][1], abs=1e-4)
    out = nmt("translate", d, d, "--beam", "2", stdin="\n".join(SENTS).encode() + b"\n")
    assert out.returncode == 0 and len(out.stdout.decode().splitlines()) == len(SENTS)


def test_ensemble_needs_same_vocabulary(make_config, trained):
    cfg = make_config(tokenizer={"vocab_size": 250}, train={"max_steps": 2})
    Trainer(cfg, prepare(cfg, lambda *_: None), log=lambda *_: None).train()
    out = nmt("translate", model_dir(trained), cfg.model_dir, stdin=b"x\n")
    assert out.returncode == 2
    assert "target vocabulary" in out.stderr.decode()


def test_score_perplexity_matches_validation(trained):
    d = model_dir(trained)
    tmp = trained[0]
    split = prepare(_config(trained), lambda *_: None).splits["valid"]
    tr = Translator.load(d, checkpoint="last.pt")
    scores = score_pairs(tr, list(split["src"]), list(split["tgt"]))
    last = [
        json.loads(x)
        for x in (d / "log.jsonl").read_text().splitlines()
        if json.loads(x)["type"] == "valid"
    ][-1]
    assert corpus_perplexity(scores) == pytest.approx(last["ppl"], rel=1e-4)
    src, tgt = tmp / "s.txt", tmp / "t.txt"
    src.write_text("".join(s + "\n" for s in split["src"]))
    tgt.write_text("".join(t + "\n" for t in split["tgt"]))
    out = nmt("score", d, "--src", src, "--tgt", tgt, "--checkpoint", "last.pt")
    rows = out.stdout.decode().splitlines()
    assert len(rows) == len(split)
    lp, ppl = map(float, rows[0].split("\t"))
    assert lp < 0 and ppl == pytest.approx(math.exp(-lp / scores[0][1]), rel=1e-3)
    m = re.search(r"corpus perplexity ([0-9.]+)", out.stderr.decode())
    assert m and float(m.group(1)) == pytest.approx(last["ppl"], rel=1e-3)


def _config(trained):
    from nmt.config import load_config

    return load_config(trained[1])


def test_compare_agrees_with_sacrebleu(tmp_path):
    refs = [f"the cat number {i} sat on the mat today" for i in range(60)]
    a = [r if i % 3 else r.replace("cat", "dog") for i, r in enumerate(refs)]
    b = [
        r if i % 2 else r.replace("mat", "rug").replace("sat", "lay")
        for i, r in enumerate(refs)
    ]
    for name, lines in (("ref", refs), ("a", a), ("b", b)):
        (tmp_path / name).write_text("".join(x + "\n" for x in lines))
    ours = nmt(
        "evaluate",
        "--ref",
        tmp_path / "ref",
        "--hyp",
        tmp_path / "a",
        "--compare",
        tmp_path / "b",
        "--json",
    )
    assert ours.returncode == 0, ours.stderr.decode()
    res = json.loads(ours.stdout)["compare"]["bleu"]
    theirs = subprocess.run(
        [
            sys.executable,
            "-m",
            "sacrebleu",
            str(tmp_path / "ref"),
            "-i",
            str(tmp_path / "a"),
            str(tmp_path / "b"),
            "-m",
            "bleu",
            "--paired-bs",
            "-f",
            "json",
        ],
        capture_output=True,
        text=True,
    )
    assert theirs.returncode == 0, theirs.stderr
    base, other = json.loads(theirs.stdout)
    assert res["p_value"] == pytest.approx(other["BLEU"]["p_value"], abs=1e-4)
    assert res["p_value"] < 0.05 and res["significant"]
    for ours_row, theirs_row in ((res["a"], base), (res["b"], other)):
        assert ours_row["score"] == pytest.approx(theirs_row["BLEU"]["score"], abs=0.01)
        assert ours_row["mean"] == pytest.approx(theirs_row["BLEU"]["mean"], abs=0.01)
        assert ours_row["ci"] == pytest.approx(theirs_row["BLEU"]["ci"], abs=0.01)


def test_sentence_scores(tmp_path):
    (tmp_path / "r").write_text("a b c d\nthe cat sat\n")
    (tmp_path / "h").write_text("a b c d\nthe dog sat\n")
    out = nmt(
        "evaluate",
        "--ref",
        tmp_path / "r",
        "--hyp",
        tmp_path / "h",
        "--sentence",
        "--json",
    )
    per = json.loads(out.stdout)["per_sentence"]
    assert per[0]["bleu"] == 100.0 and per[1]["bleu"] < 100.0


def test_decoding_benchmarks_run_on_a_trained_model(trained, tmp_path):
    """benchmarks/beam_ratio.py and the peers' timer drive the Translator API as a
    user's script would; they must keep working as that API changes."""
    src = tmp_path / "src.txt"
    src.write_text("".join(s + "\n" for s in SENTS))
    py, root = sys.executable, str(ROOT)
    proc = subprocess.run(
        [py, "benchmarks/beam_ratio.py", model_dir(trained), src, "--beam", "2"]
        + ["--repeats", "1", "--threads", "1"],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": root},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert re.search(r"beam 2 / greedy = \d+\.\d\d", proc.stdout)
    out = tmp_path / "out.txt"
    proc = subprocess.run(
        [py, "benchmarks/peers/nmt_translate.py", model_dir(trained), "2", src, out]
        + ["1"],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": root},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["seconds"] > 0
    assert len(out.read_text().split("\n")) == len(SENTS) + 1
    words = [s for s in SENTS if s.strip()]
    tgt = tmp_path / "tgt.txt"
    src.write_text("".join(s + "\n" for s in words))
    tgt.write_text("".join(s + "\n" for s in reversed(words)))
    proc = subprocess.run(
        [py, "benchmarks/source_use.py", model_dir(trained), src, tgt]
        + ["--threads", "1"],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": root},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout)
    assert got["sentences"] == len(words)
    assert got["nats_true_source"] > 0 and got["nats_shuffled_source"] > 0
    assert 0 < got["mean_abs_h0"] < 1  # the tiny model's bridge: tanh (Cho)


@pytest.mark.parametrize(
    "key, value",
    [("conditioning", "sutskever"), ("hidden", 20)],  # other names / other shapes
)
def test_weights_that_do_not_fit_the_config_are_one_line(trained, tmp_path, key, value):
    """A checkpoint from another model (or another nmt): exit 2, one line."""
    import shutil

    import yaml

    src = model_dir(trained)
    dst = shutil.copytree(src, tmp_path / "model")
    cfg = yaml.safe_load((dst / "config.yaml").read_text(encoding="utf-8"))
    assert cfg["model"]["decoder"][key] != value
    cfg["model"]["decoder"][key] = value
    (dst / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    out = nmt("translate", dst, stdin=b"un pelainut dat.\n")
    err = out.stderr.decode().strip()
    assert out.returncode == 2, err
    assert len(err.splitlines()) == 1 and "do not fit" in err, err
    assert str(dst) in err
