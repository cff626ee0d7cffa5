"""Broken inputs and broken environments for translate, evaluate, score, average,
train and run: each is one line and exit status 2 (or works, where it should),
never a traceback, and no file that was there before changes."""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file

from nmt.checkpoint import load_checkpoint
from tests.conftest import ROOT, TINY, _merge
from tests.faults import assert_unchanged, run_cli, small_disk, snapshot

LINES = b"da vaim skousts saifen.\nun pelainut dat.\n"


@pytest.fixture
def home(trained, tmp_path):
    """A private copy of the trained workdir, a recipe naming it, an input file."""
    work = tmp_path / "work"
    shutil.copytree(trained[0] / "work", work)
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(_merge(TINY, {"workdir": str(work)})))
    (tmp_path / "in.txt").write_bytes(LINES)
    return tmp_path


def fails(home: Path, *argv, stdin: bytes | None = b"") -> str:
    """The one error line of `nmt ARGV`, with every file under home unchanged."""
    before = snapshot(home)
    line = run_cli(*argv, stdin=stdin).error
    assert_unchanged(before, home)
    return line


def model(home: Path) -> Path:
    return home / "work" / "model"


# ---------------------------------------------------------------- translate


@pytest.mark.parametrize(
    "output, words",
    [
        ("{home}", "is a folder"),
        ("{home}/in.txt/x.txt", "is a file, not a folder"),
        ("/dev/full", "No space left on device"),
    ],
)
def test_translate_output_that_cannot_be_written(home, output, words):
    out = output.format(home=home)
    assert words in fails(
        home, "translate", model(home), "-i", home / "in.txt", "-o", out
    )


def test_translate_output_in_a_missing_folder_is_created(home):
    out = home / "new" / "deeper" / "out.txt"
    r = run_cli("translate", model(home), "-i", home / "in.txt", "-o", out)
    assert r.code == 0, r.err
    assert len(out.read_text().splitlines()) == 2
    assert not list(out.parent.glob(".*.tmp"))


def test_translate_failing_half_way_keeps_the_old_output(home, monkeypatch):
    from nmt.decode.translator import Translator

    out = home / "out.txt"
    out.write_text("an earlier translation\n")
    real, calls = Translator.translate_nbest, {"n": 0}

    def flaky(self, lines, progress=None):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real(self, lines, progress)

    monkeypatch.setattr(Translator, "translate_nbest", flaky)
    stream = Translator.translate_stream

    def in_chunks_of_two(self, lines, write, chunk=10000, progress=None):
        return stream(self, lines, write, 2, progress)

    monkeypatch.setattr(Translator, "translate_stream", in_chunks_of_two)
    src = home / "many.txt"
    src.write_bytes(LINES * 3)
    line = fails(home, "translate", model(home), "-i", src, "-o", out)
    assert "No space left" in line
    assert out.read_text() == "an earlier translation\n"
    assert not list(home.glob(".*.tmp"))


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda h: h / "missing.txt", "input file not found"),
        (lambda h: h, "is a folder"),
    ],
)
def test_translate_input_that_cannot_be_read(home, make, words):
    assert words in fails(home, "translate", model(home), "-i", make(home))


def test_translate_input_from_a_fifo_and_dev_stdin(home):
    fifo = home / "pipe"
    os.mkfifo(fifo)

    def feed():
        with open(fifo, "wb") as f:
            f.write(LINES)

    t = threading.Thread(target=feed)
    t.start()
    r = run_cli("translate", model(home), "-i", fifo)
    t.join(timeout=30)
    assert r.code == 0, r.err
    assert len(r.out.splitlines()) == 2
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "nmt", "translate", str(model(home))]
    p = subprocess.run(
        [*cmd, "-i", "/dev/stdin"], input=LINES, capture_output=True, env=env,
        timeout=300,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr.decode()
    assert p.stdout.decode() == r.out


def test_translate_with_stdin_closed(home):
    assert "standard input is closed" in fails(
        home, "translate", model(home), stdin=None
    )


def test_translate_with_stdout_closed_or_a_reader_that_leaves(home):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "nmt", "translate", str(model(home))]
    src = home / "many.txt"
    src.write_bytes(LINES * 5000)
    closed = subprocess.run(
        [*cmd, "-i", str(src)], capture_output=True, env=env, timeout=300,
        preexec_fn=lambda: os.close(1),
    )  # fmt: skip
    err = closed.stderr.decode()
    assert closed.returncode == 2 and "Traceback" not in err, err
    assert "standard output is closed" in err
    p = subprocess.Popen(
        [*cmd, "-i", str(src)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=env,
    )  # fmt: skip
    p.stdout.readline()
    p.stdout.close()  # like `| head -1`
    err = p.stderr.read().decode()
    assert p.wait(timeout=300) == 0 and "Traceback" not in err, err


def test_translate_non_utf8_input(home):
    bad = home / "latin1.txt"
    bad.write_bytes("ok\ncaf\xe9\n".encode("latin-1"))
    line = fails(home, "translate", model(home), "-i", bad, "-o", home / "out.txt")
    assert "latin1.txt, line 2" in line
    assert not (home / "out.txt").exists()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--beam", "100000"], "wider than the target vocabulary"),
        (["--beam", "0"], "decode.beam"),
        (["--nbest", "0"], "decode.nbest"),
        (["--batch-tokens", "0"], "decode.batch_tokens"),
        (["--length-penalty", "-1"], "decode.length_penalty"),
        (["--beam", "two"], "invalid int value"),
        (["--no-such-flag"], "unrecognized arguments"),
        (["--checkpoint", "nope.pt"], "checkpoint not found"),
        (["--attention-plot", "{home}/in.txt"], "is a file, not a folder"),
        (["--attention-plot", "{home}/plots"], "need a model with attention"),
    ],
)
def test_translate_bad_options(home, args, words):
    args = [a.format(home=home) for a in args]
    assert words in fails(home, "translate", model(home), *args, stdin=LINES)


def _corrupt_checkpoint(m: Path) -> None:
    (m / "best.safetensors").write_bytes(os.urandom(4000))


def _truncated_safetensors(m: Path) -> None:
    data = (m / "best.safetensors").read_bytes()
    (m / "best.safetensors").write_bytes(data[: len(data) // 2])


def _safetensors_of_other_weights(m: Path) -> None:
    save_file({"w": torch.zeros(3)}, m / "best.safetensors")


def _corrupt_old_checkpoint(m: Path) -> None:  # a directory of before safetensors
    (m / "best.safetensors").unlink()
    (m / "best.pt").write_bytes(os.urandom(4000))


def _checkpoint_without_model(m: Path) -> None:
    (m / "best.safetensors").unlink()
    torch.save({"step": 3}, m / "best.pt")


def _checkpoint_that_runs_code(m: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch /tmp/nmt-pwned",))

    (m / "best.safetensors").unlink()
    (m / "best.pt").write_bytes(pickle.dumps({"model": Evil()}))


def _no_config(m: Path) -> None:
    (m / "config.yaml").unlink()


def _config_a_list(m: Path) -> None:
    (m / "config.yaml").write_text("- a\n- b\n")


def _no_tokenizer(m: Path) -> None:
    (m / "spm.model").unlink()


def _corrupt_tokenizer(m: Path) -> None:
    (m / "spm.model").write_bytes(b"\x00garbage" * 100)


def _weights_of_another_size(m: Path) -> None:
    raw = yaml.safe_load((m / "config.yaml").read_text())
    raw["model"]["embed_dim"] = 24
    (m / "config.yaml").write_text(yaml.safe_dump(raw))


@pytest.mark.parametrize(
    "damage, words",
    [
        (_corrupt_checkpoint, "not a readable checkpoint"),
        (_truncated_safetensors, "not a readable checkpoint"),
        (_safetensors_of_other_weights, "do not fit"),
        (_corrupt_old_checkpoint, "not a readable checkpoint"),
        (_checkpoint_without_model, "no model"),
        (_checkpoint_that_runs_code, "not a readable checkpoint"),
        (_no_config, "config.yaml"),
        (_config_a_list, "config.yaml"),
        (_no_tokenizer, "spm.model"),
        (_corrupt_tokenizer, "spm.model"),
        (_weights_of_another_size, "do not fit"),
    ],
)
def test_translate_from_a_damaged_model_directory(home, damage, words):
    damage(model(home))
    assert words in fails(home, "translate", model(home), stdin=LINES)
    assert not Path("/tmp/nmt-pwned").exists()


def test_translate_model_directory_missing_or_a_file(home):
    assert "not found" in fails(home, "translate", home / "nothing", stdin=LINES)
    assert "model directory" in fails(home, "translate", home / "in.txt", stdin=LINES)


# ---------------------------------------------------------------- evaluate, score


def _files(home: Path, **texts: str) -> dict[str, Path]:
    out = {}
    for name, text in texts.items():
        out[name] = home / f"{name}.txt"
        out[name].write_text(text)
    return out


@pytest.mark.parametrize(
    "texts, args, words",
    [
        ({"h": "", "r": ""}, ["--hyp", "{h}", "--ref", "{r}"], "nothing to score"),
        ({"r": "a\n"}, ["--hyp", "{home}/no.txt", "--ref", "{r}"], "not found"),
        ({"h": "a\n"}, ["--hyp", "{h}", "--ref", "{home}/no.txt"], "not found"),
        ({"h": "a\nb\n", "r": "a\n"}, ["--hyp", "{h}", "--ref", "{r}"], "has 1 lines"),
        (
            {"h": "a\n", "r": "a\n", "c": "a\nb\n"},
            ["--hyp", "{h}", "--ref", "{r}", "--compare", "{c}"],
            "--compare file has 2 lines",
        ),
        ({"r": "a\n"}, ["--model", "{model}", "--ref", "{r}"], "needs --src"),
        ({"r": "a\n"}, ["--ref", "{r}"], "one of the arguments --hyp --model"),
    ],
)
def test_evaluate_bad_inputs(home, texts, args, words):
    paths = {k: str(v) for k, v in _files(home, **texts).items()}
    args = [a.format(home=home, model=model(home), **paths) for a in args]
    assert words in fails(home, "evaluate", *args)


def test_score_bad_inputs(home):
    f = _files(home, s="a\nb\n", t="a\n")
    assert "source has 2 lines" in fails(
        home, "score", model(home), "--src", f["s"], "--tgt", f["t"]
    )
    assert "not found" in fails(
        home, "score", model(home), "--src", home / "no.txt", "--tgt", f["t"]
    )


# ---------------------------------------------------------------- average


def test_average_bad_inputs(home):
    m = model(home)
    assert "not found" in fails(home, "average", home / "nothing")
    empty = home / "empty_model"
    empty.mkdir()
    assert "no step-*.pt" in fails(home, "average", empty)
    steps = sorted(m.glob("step-*.pt"))
    ck = torch.load(steps[0], weights_only=True)
    ck["model"] = {k: torch.zeros(3) for k in ck["model"]}
    torch.save(ck, steps[0])
    assert "other weights" in fails(home, "average", m, "--last", "5")
    steps[1].write_bytes(b"not a checkpoint")
    assert "not a readable checkpoint" in fails(home, "average", m, "--last", "5")


# ---------------------------------------------------------------- train and run


def test_resume_without_or_from_an_unfit_last_checkpoint(home):
    m, recipe = model(home), home / "tiny.yaml"
    (m / "last.pt").write_bytes(os.urandom(100))
    assert "not a readable checkpoint" in fails(home, "train", recipe, "--resume")
    best = load_checkpoint(m / "best.safetensors")
    torch.save(best, m / "last.pt")  # weights, no optimizer state
    assert "no optimizer" in fails(home, "train", recipe, "--resume")
    (m / "last.pt").unlink()
    assert "does not exist" in fails(home, "run", recipe, "--resume")


def test_train_refusals_before_any_data_is_prepared(home, tmp_path):
    recipe = home / "tiny.yaml"
    fresh = tmp_path / "fresh.yaml"
    fresh.write_text(yaml.safe_dump(_merge(TINY, {"workdir": str(home / "w2")})))
    assert "no CUDA GPU" in fails(home, "train", fresh, "--set", "train.device=cuda")
    assert "fp16 needs a CUDA" in fails(home, "run", recipe, "--set",
                                        "train.precision=fp16")  # fmt: skip
    assert not (home / "w2").exists()


def test_workdir_that_cannot_be_created(home):
    bad = home / "in.txt" / "work"
    raw = _merge(TINY, {"workdir": str(bad)})
    recipe = home / "bad.yaml"
    recipe.write_text(yaml.safe_dump(raw))
    assert "in.txt" in fails(home, "train", recipe)


def test_interrupt_before_training_says_so_without_a_resume_hint(home, monkeypatch):
    import nmt.data.corpus

    def interrupted(cfg, log=print):
        raise KeyboardInterrupt

    monkeypatch.setattr(nmt.data.corpus, "prepare", interrupted)
    raw = _merge(TINY, {"workdir": str(home / "w3")})
    recipe = home / "w3.yaml"
    recipe.write_text(yaml.safe_dump(raw))
    r = run_cli("train", recipe)
    assert r.code == 130 and r.err.strip() == "nmt: interrupted", r.err


def test_disk_full_during_training_is_one_line_and_keeps_the_last_checkpoint(home):
    """The workdir on a tmpfs just large enough for the data and one checkpoint:
    a later checkpoint does not fit."""
    work = home / "work"
    used_kb = sum(p.stat().st_size for p in work.rglob("*") if p.is_file()) // 1024
    best_kb = (model(home) / "last.pt").stat().st_size // 1024
    with small_disk(home / "disk", used_kb + best_kb + 64) as disk:
        shutil.copytree(work, disk / "work")
        for p in (disk / "work" / "model").glob("step-*.pt"):
            p.unlink()
        raw = _merge(TINY, {"workdir": str(disk / "work")})
        raw["train"].update(max_steps=60, save_every=1, keep_last=50)
        recipe = home / "full.yaml"
        recipe.write_text(yaml.safe_dump(raw))
        line = run_cli("train", recipe, "--resume").error
        assert "No space left on device" in line
        last = disk / "work" / "model" / "last.pt"
        assert not list((disk / "work" / "model").glob(".*.tmp"))
        assert torch.load(last, weights_only=True)["step"] >= 30  # whole, not torn


def test_sigint_during_training_saves_and_hints_resume(home):
    log = model(home) / "log.jsonl"
    logged = len(log.read_text().splitlines())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen(
        [sys.executable, "-m", "nmt", "train", str(home / "tiny.yaml"), "--resume",
         "--set", "train.max_steps=100000", "--set", "train.log_every=1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    deadline = time.time() + 120
    while len(log.read_text().splitlines()) <= logged:  # training steps now
        assert p.poll() is None and time.time() < deadline, p.stderr.read()
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 130, err
    assert "Traceback" not in err and "stopped by SIGINT" in err
    assert "--resume" in err
    assert torch.load(model(home) / "last.pt", weights_only=True)["step"] > 30
