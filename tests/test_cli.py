"""End to end through the `nmt` command, as a user types it."""

from __future__ import annotations

import json

import pytest

from tests.conftest import EMULATED_BF16, nmt


def one_error_line(proc) -> str:
    assert proc.returncode == 2, proc.stderr.decode()
    err = proc.stderr.decode().strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nmt: error:"), err
    assert "Traceback" not in proc.stderr.decode()
    return err[0]


def test_run_writes_model_dir_and_results(trained):
    tmp, _, proc = trained
    work = tmp / "work"
    model = work / "model"
    for name in (
        "config.yaml",
        "spm.model",
        "best.safetensors",
        "last.pt",
        "log.jsonl",
        "training_curve.png",
    ):
        assert (model / name).is_file(), name
    assert (model / "training_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = json.loads((work / "results.json").read_text())
    (test,) = res["tests"]
    assert test["name"] == "test" and test["sentences"] == 20
    assert 0 <= test["bleu"] <= 100 and "nrefs:1" in test["signature"]["bleu"]
    assert "chrf" in test and res["train"]["steps"] == 30
    assert "word_for_word" in res["baselines"]
    records = [json.loads(x) for x in (model / "log.jsonl").read_text().splitlines()]
    assert {r["type"] for r in records} == {"train", "valid"}
    assert b"BLEU" in proc.stdout


def test_translate_one_line_per_input_line(trained, tmp_path):
    tmp, _, _ = trained
    text = (
        "da vaim skousts saifen.\n\n   \nda \x07 bell\tand tab\x0b here.\n"
        + " ".join(["dei"] * 5000)
        + "\nlast line without newline"
    )
    src = tmp_path / "in.txt"
    src.write_text(text, encoding="utf-8")
    out = tmp_path / "out.txt"
    proc = nmt("translate", tmp / "work" / "model", "-i", src, "-o", out, "--beam", "2")
    assert proc.returncode == 0, proc.stderr.decode()
    lines = out.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and len(lines) - 1 == 6
    assert lines[1] == "" and lines[2] == ""
    assert "truncated" not in proc.stderr.decode()  # long lines are read whole
    # stdin/stdout give the same as files
    piped = nmt(
        "translate", tmp / "work" / "model", "--beam", "2", stdin=src.read_bytes()
    )
    assert piped.stdout.decode() == out.read_text(encoding="utf-8")


def test_nbest_format(trained, tmp_path):
    tmp, _, _ = trained
    proc = nmt(
        "translate",
        tmp / "work" / "model",
        "--beam",
        "3",
        "--nbest",
        "3",
        stdin=b"da vaim skousts saifen.\nun pelainut dat.\n",
    )
    rows = [r.split(" ||| ") for r in proc.stdout.decode().splitlines()]
    assert [int(r[0]) for r in rows] == [0, 0, 0, 1, 1, 1]
    for i in (0, 3):
        scores = [float(r[2]) for r in rows[i : i + 3]]
        assert scores == sorted(scores, reverse=True)


def test_evaluate_json(trained, tmp_path):
    tmp, _, _ = trained
    hyp, ref = tmp_path / "h.txt", tmp_path / "r.txt"
    hyp.write_text("the cat sat on the mat\na b c d\n")
    ref.write_text("the cat sat on the mat\na b c e\n")
    proc = nmt("evaluate", "--ref", ref, "--hyp", hyp, "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    res = json.loads(proc.stdout)
    assert 0 < res["bleu"] < 100 and res["chrf"] > 50
    assert res["signature"]["bleu"].startswith("nrefs:1")
    proc = nmt("evaluate", "--ref", ref, "--ref", ref, "--hyp", hyp, "--json")
    assert json.loads(proc.stdout)["signature"]["bleu"].startswith("nrefs:2")


def test_user_mistakes_get_one_line_and_status_2(trained, tmp_path):
    tmp, recipe, _ = trained
    assert "recipe not found" in one_error_line(nmt("train", tmp_path / "missing.yaml"))
    assert "did you mean 'train.max_steps'" in one_error_line(
        nmt("train", recipe, "--set", "train.max_step=3")
    )
    assert "must be an integer" in one_error_line(
        nmt("train", recipe, "--set", "train.max_steps=many")
    )
    assert "model directory not found" in one_error_line(
        nmt("translate", tmp_path / "no_model", stdin=b"x\n")
    )
    model = tmp / "work" / "model"
    for opt, key in [("--beam", "decode.beam"), ("--batch-rows", "decode.batch_rows")]:
        line = one_error_line(nmt("translate", model, opt, "-2", stdin=b"x\n"))
        assert f"'{key}' must be at least 1; got -2" in line
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("ok line\ncaf\xe9 au lait\n".encode("latin-1"))
    line = one_error_line(nmt("translate", tmp / "work" / "model", "-i", bad))
    assert "latin1.txt, line 2" in line and "UTF-8" in line
    hyp = tmp_path / "h.txt"
    hyp.write_text("a\nb\n")
    ref = tmp_path / "r.txt"
    ref.write_text("a\n")
    assert "has 1 lines" in one_error_line(nmt("evaluate", "--ref", ref, "--hyp", hyp))


@pytest.mark.skipif(not EMULATED_BF16, reason="this CPU runs bf16 natively")
def test_bf16_where_the_cpu_would_emulate_it_is_one_clear_error(trained, tmp_path):
    tmp, recipe, _ = trained
    src = tmp_path / "in.txt"
    src.write_text("a b c\n")
    err = one_error_line(
        nmt("translate", tmp / "work" / "model", "-i", src, "--precision", "bf16")
    )
    assert "decode.precision: bf16 needs a CPU with bfloat16 instructions" in err
    err = one_error_line(nmt("run", recipe, "--set", "train.precision=bf16"))
    assert "train.precision: bf16" in err
