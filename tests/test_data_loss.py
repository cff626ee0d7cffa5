"""The seven ways ordinary commands used to destroy a user's work, each made
impossible. Every test here failed on the code before the fix."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, TINY, _merge
from tests.faults import assert_unchanged, run_cli, snapshot


def _recipe(workdir: Path, path: Path, **extra) -> Path:
    raw = _merge(TINY, {"workdir": str(workdir), **extra})
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def finished(trained, tmp_path):
    """A copy of the session's trained workdir, and a recipe that names it."""
    src_tmp, _, _ = trained
    work = tmp_path / "work"
    shutil.copytree(src_tmp / "work", work)
    return work, _recipe(work, tmp_path / "tiny.yaml", train={**TINY["train"]})


def test_translate_refuses_an_output_that_is_its_input(finished):
    work, _ = finished
    text = work.parent / "f.txt"
    text.write_text("da vaim skousts saifen.\nun pelainut dat.\n")
    before = snapshot(text)
    r = run_cli("translate", work / "model", "-i", text, "-o", text)
    assert "is also the input" in r.error
    assert_unchanged(before, text)
    link = work.parent / "link.txt"  # the same file under another name
    link.symlink_to(text)
    r = run_cli("translate", work / "model", "-i", text, "-o", link)
    assert "is also the input" in r.error
    assert_unchanged(before, text)


@pytest.mark.parametrize(
    "setting",
    ["train.precision=fp16", "train.lr=.nan", "train.device=cuda", "model.x=1"],
)
def test_a_rejected_train_keeps_the_earlier_run(finished, setting):
    work, recipe = finished
    before = snapshot(work / "model")
    r = run_cli("train", recipe, "--set", setting)
    assert r.code == 2, r.err
    assert_unchanged(before, work / "model")


def test_a_new_run_keeps_the_earlier_one_aside(finished):
    work, recipe = finished
    model = work / "model"
    before = {p.name: p.read_bytes() for p in model.iterdir() if p.is_file()}
    r = run_cli("train", recipe, "--set", "train.max_steps=2")
    assert r.code == 0, r.err
    kept = [p for p in work.iterdir() if p.name.startswith("model.")]
    assert len(kept) == 1, list(work.iterdir())
    assert f"moved to {kept[0]}" in r.out
    for name, data in before.items():  # the earlier run, byte for byte
        assert (kept[0] / name).read_bytes() == data, name
    assert (model / "last.pt").exists()


@pytest.mark.parametrize(
    "setting", ["tokenizer.vocab_size=250", "data.toy.seed=8", "data.max_len=50"]
)
def test_resume_with_other_data_or_tokenizer_is_refused_untouched(finished, setting):
    work, recipe = finished
    before = snapshot(work / "model")
    r = run_cli("train", recipe, "--resume", "--set", setting)
    key = setting.split("=")[0]
    assert key in r.error and "cannot resume" in r.error
    assert_unchanged(before, work / "model")


def test_a_second_training_on_a_busy_workdir_is_refused(finished):
    work, recipe = finished
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen(
        [sys.executable, "-m", "nmt", "train", str(recipe), "--resume",
         "--set", "train.max_steps=100000", "--set", "train.valid_every=100000"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        lock = work / ".nmt.lock"
        deadline = time.time() + 120
        while not (lock.exists() and lock.read_text().strip()):
            assert first.poll() is None, first.stderr.read().decode()[-2000:]
            assert time.time() < deadline
            time.sleep(0.05)
        before = snapshot(work / "model")
        r = run_cli("train", recipe, "--set", "train.max_steps=2")
        assert "in use by process" in r.error and str(first.pid) in r.error
        r = run_cli("run", recipe, "--resume")
        assert str(first.pid) in r.error
        assert_unchanged({k: v for k, v in before.items() if "config" in k}, work)
    finally:
        first.kill()
        first.wait()


@pytest.mark.parametrize(
    "name", ["best.safetensors", "best.pt", "last.pt", "step-00000030.pt"]
)
def test_average_never_overwrites_a_checkpoint(finished, name):
    work, _ = finished
    model = work / "model"
    before = snapshot(model)
    r = run_cli("average", model, "--last", "2", "-o", name)
    assert "would overwrite" in r.error
    assert_unchanged(before, model)


@pytest.mark.parametrize("k", ["0", "-1"])
def test_average_needs_at_least_one_checkpoint(finished, k):
    work, _ = finished
    before = snapshot(work / "model")
    r = run_cli("average", work / "model", "--last", k)
    assert r.code == 2 and "--last" in r.err
    assert_unchanged(before, work / "model")


def test_a_killed_checkpoint_write_leaves_nothing_behind(finished):
    work, recipe = finished
    model = work / "model"
    # what a write killed half-way leaves (the name pattern nmt has always used)
    for name in (".last.pt.k2j4h_ab.tmp", f".step-00000040.pt.{2**22 + 7}.x.tmp"):
        (model / name).write_bytes(os.urandom(1 << 20))
    r = run_cli("train", recipe, "--resume", "--set", "train.max_steps=32")
    assert r.code == 0, r.err
    assert not list(model.glob(".*.tmp")), list(model.glob(".*.tmp"))


def test_translation_never_drops_the_end_of_a_long_line(finished):
    """A line over data.max_len pieces is translated whole: its score differs
    from that of the line cut at the limit (the encoder reads every piece)."""
    from nmt.decode.translator import Translator

    work, _ = finished
    tr = Translator.load(work / "model", device="cpu")
    limit = tr.config.data.max_len
    words = " ".join(["dei", "pails", "getul", "pelainut"] * 60)
    ids = tr.tokenizer.encode_src([words])[0]
    assert len(ids) > limit
    cut = tr.tokenizer.src.decode(ids[:limit])
    assert tr.tokenizer.encode_src([cut])[0] == ids[:limit]
    src = work.parent / "long.txt"
    src.write_text(f"{words}\n{cut}\n")
    r = run_cli("translate", work / "model", "-i", src, "--beam", "2", "--nbest", "2")
    assert r.code == 0, r.err
    rows = [line.split(" ||| ") for line in r.out.splitlines()]
    whole = [float(s) for i, _, s in rows if i == "0"]
    part = [float(s) for i, _, s in rows if i == "1"]
    assert whole != part
    assert "truncat" not in r.err
