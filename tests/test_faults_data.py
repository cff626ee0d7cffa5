"""Bad data, bad tokenizer settings and a failing filesystem during `nmt prepare`:
each gives exit status 2 and one `nmt: error:` line naming the file, line or key,
and leaves the user's files as they were (tests/faults.py)."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import yaml

import nmt.data.chunks
import nmt.data.corpus
import nmt.data.textfiles
import nmt.data.tokenizer
from nmt.data import toy
from nmt.data.tokenizer import Tokenizer
from nmt.errors import NmtError
from tests.conftest import ROOT, TINY, _merge
from tests.conftest import nmt as nmt_process
from tests.faults import assert_unchanged, run_cli, snapshot

SPLITS = toy.generate(5, 200, 10, 10)


def write_corpus(d: Path, gz: bool = False) -> Path:
    """train/valid/test .de and .en files: 200, 10 and 10 lines."""
    d.mkdir(parents=True, exist_ok=True)
    for name, rows in SPLITS.items():
        for lang, col in (("de", 0), ("en", 1)):
            text = "".join(r[col] + "\n" for r in rows).encode()
            if gz and name == "train":
                (d / f"{name}.{lang}.gz").write_bytes(gzip.compress(text))
            else:
                (d / f"{name}.{lang}").write_bytes(text)
    return d


def files_recipe(tmp: Path, workdir: Path | None = None, **data) -> Path:
    raw = _merge(
        TINY,
        {
            "workdir": str(workdir or tmp / "work"),
            "data": {
                "source": "files",
                "src_lang": "de",
                "tgt_lang": "en",
                "files": {"dir": str(tmp / "c")},
                **data,
            },
        },
    )
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


@pytest.fixture
def corpus(tmp_path) -> Path:
    return write_corpus(tmp_path / "c")


def prepare_error(recipe: Path, *owned: Path, args: tuple = ()) -> str:
    """`nmt prepare RECIPE` must fail with one line; the user's files unchanged."""
    before = snapshot(recipe, *owned)
    line = run_cli("prepare", recipe, *args).error
    assert_unchanged(before, recipe, *owned)
    return line


# ------------------------------------------------------------ 1. empty inputs


@pytest.mark.parametrize(
    "files, expected",
    [
        (
            {"train.de": "", "train.en": ""},
            r"the training files \S+/train\.de and \S+/train\.en have no lines "
            r"\(data\.files\.train\)",
        ),
        (
            {"valid.de": "", "valid.en": ""},
            r"the validation files \S+/valid\.de and \S+/valid\.en have no lines "
            r"\(data\.files\.valid\)",
        ),
        (
            {"test.de": "", "test.en": ""},
            r"the test files \S+/test\.de and \S+/test\.en have no lines "
            r"\(data\.files\.test\)",
        ),
        (
            {"valid.en": ""},
            r"parallel files differ in length: \S+/valid\.de has 10 lines, "
            r"\S+/valid\.en has 0",
        ),
        (
            {"train.de": ""},
            r"parallel files differ in length: \S+/train\.de has 0 lines, "
            r"\S+/train\.en has 200",
        ),
        (
            {"train.de": "\n" * 50, "train.en": " \n\t\n" * 25},
            r"the training set is empty after removing empty pairs \(50 read from "
            r"\S+/train\.de and \S+/train\.en\)",
        ),
        (
            {"valid.de": "\n" * 10, "valid.en": "x\n" * 10},
            r"the validation set is empty after removing empty pairs \(10 read from "
            r"\S+/valid\.de and \S+/valid\.en\)",
        ),
    ],
    ids=[
        "empty-train",
        "empty-valid",
        "empty-test",
        "valid-one-side-empty",
        "train-one-side-empty",
        "train-only-blank-lines",
        "valid-blank-on-one-side",
    ],
)
def test_empty_inputs(tmp_path, corpus, files, expected):
    for name, text in files.items():
        (corpus / name).write_text(text)
    line = prepare_error(files_recipe(tmp_path), corpus)
    assert re.search(expected, line), line


# ------------------------------------------------------------ 2. gzip


def _cut_in_half(p: Path) -> None:
    b = p.read_bytes()
    p.write_bytes(b[: len(b) // 2])


def _flip_middle(p: Path) -> None:
    b = bytearray(p.read_bytes())
    for i in range(len(b) // 2, len(b) // 2 + 40):
        b[i] ^= 0x5A
    p.write_bytes(bytes(b))


@pytest.mark.parametrize(
    "damage, expected",
    [
        (
            _cut_in_half,
            r"train\.de\.gz, after line \d+: the gzip file is truncated or damaged",
        ),
        (_flip_middle, r"train\.de\.gz(, after line \d+)?: the gzip file is trunc"),
    ],
    ids=["truncated", "corrupt-middle"],
)
def test_damaged_gzip_names_file_and_line(tmp_path, damage, expected):
    corpus = write_corpus(tmp_path / "c", gz=True)
    damage(corpus / "train.de.gz")
    line = prepare_error(files_recipe(tmp_path), corpus)
    assert re.search(expected, line), line


def test_gz_name_but_not_gzip(tmp_path, corpus):
    (corpus / "train.de").rename(corpus / "train.de.gz")
    line = prepare_error(files_recipe(tmp_path), corpus)
    assert f"{corpus / 'train.de.gz'} is not a gzip file" in line


def test_gzip_data_without_gz_name(tmp_path, corpus):
    (corpus / "train.de").write_bytes(gzip.compress((corpus / "train.de").read_bytes()))
    line = prepare_error(files_recipe(tmp_path), corpus)
    assert "train.de, line 1: not valid UTF-8" in line
    assert "looks gzip-compressed" in line


# ------------------------------------------------------------ 3. TSV columns


def tsv_recipe(tmp_path: Path, train_lines: list[str]) -> tuple[Path, Path]:
    d = tmp_path / "c"
    d.mkdir()
    rows = {name: [f"{s}\t{t}" for s, t in pairs] for name, pairs in SPLITS.items()}
    rows["train"][2:3] = train_lines
    for name, lines in rows.items():
        (d / f"{name}.tsv").write_text("".join(x + "\n" for x in lines))
    files = {"format": "tsv", "train": "train.tsv", "valid": "valid.tsv"}
    return files_recipe(
        tmp_path, files={"dir": str(d), **files, "test": ["test.tsv"]}
    ), d


@pytest.mark.parametrize(
    "bad, found",
    [("ein\tzwei\tdrei", "found 3 columns"), ("nur eine spalte", "found no tab")],
    ids=["three-columns", "one-column"],
)
def test_tsv_line_without_two_columns(tmp_path, bad, found):
    recipe, d = tsv_recipe(tmp_path, [bad])
    line = prepare_error(recipe, d)
    assert f"{d / 'train.tsv'}, line 3: expected two tab-separated columns" in line
    assert found in line


def test_tsv_blank_line_is_an_empty_pair(tmp_path):
    recipe, _ = tsv_recipe(tmp_path, ["", "   "])
    r = run_cli("prepare", recipe)
    assert r.code == 0, r.err
    stats = json.loads(
        next((tmp_path / "work" / "data").glob("*/stats.json")).read_text()
    )
    assert stats["counts"]["train"]["empty_or_duplicate"] == 2


# ------------------------------------------------------------ 4. sentencepiece


@pytest.mark.parametrize(
    "sets, expected",
    [
        (["tokenizer.character_coverage=0.9"], "tokenizer.character_coverage"),
        (["tokenizer.input_sentence_size=100"], "tokenizer.input_sentence_size"),
        (["tokenizer.vocab_size=16"], "tokenizer.vocab_size 16 is too small"),
        (
            ["tokenizer.vocab_size=100", "tokenizer.byte_fallback=true"],
            "tokenizer.vocab_size 100 is too small",
        ),
        (["tokenizer.vocab_size=3000000000"], "tokenizer.vocab_size' must be between"),
        (
            ["tokenizer.vocab_size=20", "tokenizer.joint=false"],
            "tokenizer.vocab_size 20 is too small",
        ),
    ],
    ids=[
        "coverage",
        "sentence-size",
        "vocab-small",
        "byte-fallback",
        "vocab-huge",
        "separate-small",
    ],
)
def test_sentencepiece_refusal_names_the_key(tmp_path, corpus, sets, expected):
    args = [a for s in sets for a in ("--set", s)]
    line = prepare_error(files_recipe(tmp_path), corpus, args=tuple(args))
    assert expected in line


def test_sentencepiece_with_only_overlong_sentences(tmp_path, corpus):
    long = " ".join(["wort"] * 1000)  # 5000 bytes: sentencepiece skips it
    for lang in ("de", "en"):
        (corpus / f"train.{lang}").write_text(f"{long}\n" * 20)
    line = prepare_error(files_recipe(tmp_path), corpus)
    assert "sentencepiece found no training sentence" in line
    assert "4192 bytes" in line


@pytest.mark.parametrize(
    "sets",
    [
        ["tokenizer.model_type=bpe", "tokenizer.vocab_size=100000"],
        ["tokenizer.vocab_size=100000"],
        ["tokenizer.joint=false", "tokenizer.vocab_size=100"],
    ],
    ids=["bpe-huge-vocab", "unigram-huge-vocab", "separate"],
)
def test_settings_sentencepiece_can_honour(tmp_path, corpus, sets):
    """A vocabulary larger than tiny data allows is trained smaller; separate
    vocabularies write spm.src.model and spm.tgt.model (and load from them)."""
    args = [a for s in sets for a in ("--set", s)]
    r = run_cli("prepare", files_recipe(tmp_path), *args)
    assert r.code == 0, r.err
    (cache,) = (p for p in (tmp_path / "work" / "data").iterdir() if p.name != "hf")
    tok = Tokenizer.load(cache)
    assert tok.encode_src(["ein"]) and tok.src_vocab_size > 4


# ------------------------------------------------------------ 5. data paths


def test_data_file_is_a_folder(tmp_path, corpus):
    (corpus / "valid.en").unlink()
    (corpus / "valid.en").mkdir()
    line = prepare_error(files_recipe(tmp_path), corpus)
    assert f"data file {corpus / 'valid.en'} is a folder" in line
    assert "data.files.valid" in line


def test_data_dir_missing(tmp_path):
    line = prepare_error(files_recipe(tmp_path))
    assert f"there is no folder {tmp_path / 'c'} (data.files.dir)" in line


def test_data_dir_under_a_regular_file(tmp_path, corpus):
    recipe = files_recipe(tmp_path, files={"dir": str(corpus / "train.de" / "sub")})
    line = prepare_error(recipe, corpus)
    assert f"{corpus / 'train.de'} is a file, not a folder (data.files.dir)" in line


def test_data_file_not_regular(tmp_path, corpus):
    (corpus / "test.de").unlink()
    os.mkfifo(corpus / "test.de")
    line = prepare_error(files_recipe(tmp_path), corpus)
    assert f"data file {corpus / 'test.de'} is not a regular file" in line


def test_data_file_unreadable(tmp_path, corpus, monkeypatch):
    target = corpus / "train.en"
    target.chmod(0)
    try:
        with open(target, "rb"):
            readable = True  # root reads through permissions: make open say no
    except PermissionError:
        readable = False
    if readable:
        real = open

        def denied(path, *a, **k):
            if Path(path) == target:
                raise PermissionError(13, "Permission denied", str(path))
            return real(path, *a, **k)

        monkeypatch.setattr(nmt.data.chunks, "open", denied, raising=False)
    try:
        line = prepare_error(files_recipe(tmp_path))
    finally:
        target.chmod(0o644)
    assert f"cannot read data file {target}: Permission denied" in line


# ------------------------------------------------------------ 6. the filesystem


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs (we need root to mount it)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    p = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if p.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs: {(p.stderr or p.stdout).strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk: Path) -> None:
    with open(disk / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


def _fill_before(monkeypatch, disk, owner, name):
    real = getattr(owner, name)

    def wrapper(*a, **k):
        fill(disk)
        return real(*a, **k)

    monkeypatch.setattr(owner, name, wrapper)


def _fill_after(monkeypatch, disk, owner, name):
    real = getattr(owner, name)

    def wrapper(*a, **k):
        out = real(*a, **k)
        fill(disk)
        return out

    monkeypatch.setattr(owner, name, wrapper)


@pytest.mark.parametrize(
    "stage, written",
    [
        ("tokenizer", "spm.model"),
        ("arrow", "arrow"),
        ("stats", "stats.json"),
    ],
)
def test_disk_full_while_preparing(
    tmp_path, corpus, small_disk, monkeypatch, stage, written
):
    work = small_disk / "work"
    recipe = files_recipe(tmp_path, workdir=work)
    with monkeypatch.context() as m:
        if stage == "tokenizer":
            _fill_before(m, small_disk, nmt.data.corpus, "train_tokenizer")
        elif stage == "arrow":
            _fill_before(m, small_disk, nmt.data.corpus, "encode")
        else:
            _fill_before(m, small_disk, nmt.data.corpus, "_write_stats")
        line = prepare_error(recipe, corpus)
    assert "no space left on device while writing" in line
    assert line.rstrip().endswith(written), line
    data = work / "data"
    assert not list(data.glob("*/stats.json")), "a cache that looks whole"
    assert not list(data.glob(".*.tmp")), "a temporary folder left behind"
    (small_disk / "filler").unlink()
    r = run_cli("prepare", recipe)  # space again: a whole, correct cache
    assert r.code == 0, r.err
    (stats,) = data.glob("*/stats.json")
    assert json.loads(stats.read_text())["counts"]["train"]["kept"] == 200


def test_read_only_workdir(tmp_path, corpus, small_disk):
    work = small_disk / "work"
    (work / "data").mkdir(parents=True)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    line = prepare_error(files_recipe(tmp_path, workdir=work), corpus)
    assert "read-only file system" in line.lower() and str(work) in line
    assert ".tmp" not in line  # names the workdir, not a temporary folder


def test_workdir_under_a_regular_file(tmp_path, corpus):
    blocker = tmp_path / "taken"
    blocker.write_text("a file of the user's\n")
    line = prepare_error(
        files_recipe(tmp_path, workdir=blocker / "work"), corpus, blocker
    )
    assert str(blocker) in line
    assert "is a file, not a folder" in line or "not a directory" in line.lower()


def test_permission_denied_writing_the_model(tmp_path, corpus, monkeypatch):
    """(Root writes through permissions, so the refusal is simulated where the
    model's temporary file is created.)"""
    import nmt.files

    real = nmt.files.tempfile.mkstemp

    def denied(*a, prefix="", **k):
        if "spm.model" in prefix:
            raise PermissionError(13, "Permission denied", prefix)
        return real(*a, prefix=prefix, **k)

    monkeypatch.setattr(nmt.files.tempfile, "mkstemp", denied)
    line = prepare_error(files_recipe(tmp_path), corpus)
    assert "permission denied while writing" in line
    assert line.endswith("spm.model") and ".tmp" not in line.rsplit("/", 2)[-2]


def test_disk_full_while_copying_the_model(good_model, small_disk):
    """Tokenizer.copy_to (the trainer puts the models in the model directory)."""
    tok = Tokenizer.load(good_model.parent)
    fill(small_disk)
    with pytest.raises(NmtError, match="no space left on device while writing"):
        tok.copy_to(small_disk / "model")
    assert not list((small_disk / "model").iterdir())  # no half model file


# ------------------------------------------------------------ 7. model files


@pytest.fixture(scope="module")
def good_model(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("spm")
    tmp = d / "t"
    write_corpus(tmp / "c")
    assert run_cli("prepare", files_recipe(tmp)).code == 0
    (cache,) = (p for p in (tmp / "work" / "data").iterdir() if p.name != "hf")
    return cache / "spm.model"


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing", "no sentencepiece model in"),
        ("random", "is damaged or not a sentencepiece model"),
        ("empty", "is an empty file"),
        ("truncated", "is damaged or not a sentencepiece model"),
        ("folder", "is a folder, not a file"),
        ("src-only", "spm.tgt.model: not found"),
    ],
)
def test_tokenizer_load_names_the_bad_file(tmp_path, good_model, case, expected):
    model = tmp_path / "spm.model"
    if case == "random":
        model.write_bytes(os.urandom(2000))
    elif case == "empty":
        model.write_bytes(b"")
    elif case == "truncated":
        model.write_bytes(good_model.read_bytes()[:5000])
    elif case == "folder":
        model.mkdir()
    elif case == "src-only":
        shutil.copyfile(good_model, tmp_path / "spm.src.model")
    before = snapshot(tmp_path)
    with pytest.raises(NmtError, match=expected) as e:
        Tokenizer.load(tmp_path)
    assert str(tmp_path) in str(e.value)
    assert_unchanged(before, tmp_path)


# ------------------------------------------------------------ 8. damaged cache


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A corpus, its recipe and a prepared workdir, made once."""
    tmp = tmp_path_factory.mktemp("cache")
    write_corpus(tmp / "c")
    recipe = files_recipe(tmp)
    assert run_cli("prepare", recipe).code == 0
    return tmp, recipe


def _truncate_train(cache: Path) -> None:
    _cut_in_half(cache / "arrow" / "train.arrow")


@pytest.mark.parametrize(
    "damage",
    [
        lambda c: shutil.rmtree(c / "arrow"),
        _truncate_train,
        lambda c: (c / "arrow" / "valid.arrow").unlink(),
        lambda c: (c / "stats.json").write_text("{"),
        lambda c: (c / "spm.model").write_bytes(os.urandom(3000)),
        lambda c: (c / "spm.model").unlink(),
    ],
    ids=[
        "arrow-missing",
        "arrow-truncated",
        "split-missing",
        "stats-not-json",
        "spm-corrupt",
        "spm-missing",
    ],
)
def test_damaged_cache_is_named_not_deleted(tmp_path, built, damage):
    tmp, recipe = built
    work = tmp_path / "work"
    shutil.copytree(tmp / "work", work)
    (cache,) = (p for p in (work / "data").iterdir() if p.name != "hf")
    damage(cache)
    before = snapshot(cache)
    line = prepare_error(recipe, tmp / "c", args=("--set", f"workdir={work}"))
    assert f"the cached corpus at {cache} is damaged" in line
    assert "delete that folder to rebuild it" in line
    assert_unchanged(before, cache)


# ------------------------------------------------------------ 9. hub


def hub_recipe(tmp_path: Path, **hub) -> Path:
    raw = _merge(
        TINY,
        {
            "workdir": str(tmp_path / "work"),
            "data": {"source": "hub", "hub": {"path": "some/nonexistent-name", **hub}},
        },
    )
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def _one_line(proc) -> str:
    err = proc.stderr.decode()
    lines = [x for x in err.splitlines() if x.strip()]
    assert proc.returncode == 2, err
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        "nmt: error: cannot load hub dataset 'some/nonexistent-name'"
    )
    return lines[0]


def test_hub_offline_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    line = _one_line(nmt_process("prepare", hub_recipe(tmp_path)))
    assert "data.source=files" in line


def test_hub_unreachable_one_line(tmp_path, monkeypatch):
    """Online mode without a network: huggingface_hub retries five times and
    logs each retry. The retries' waits (1+2+4+8+8 s, about 25 s in all) are
    skipped here; everything else is the real command."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    code = (
        "import sys, time; time.sleep = lambda s: None; "
        "from nmt.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", code, "prepare", str(hub_recipe(tmp_path))],
        capture_output=True,
        env=env,
        timeout=300,
    )
    _one_line(proc)


def test_hub_path_empty(tmp_path):
    line = run_cli("prepare", hub_recipe(tmp_path, path="")).error
    assert "data.hub.path is empty" in line


def _saved_hub(tmp_path: Path, rows: dict) -> Path:
    path = tmp_path / "saved"
    datasets.DatasetDict(
        {k: datasets.Dataset.from_dict(v) for k, v in rows.items()}
    ).save_to_disk(str(path))
    return path


def _columns(pairs, de="de", en="en"):
    return {de: [s for s, _ in pairs], en: [t for _, t in pairs]}


def test_hub_saved_folder_gains_no_files(tmp_path):
    """Mapping a saved dataset writes nmt's tables in the workdir, never beside
    the user's files."""
    saved = _saved_hub(
        tmp_path,
        {
            "train": _columns(SPLITS["train"]),
            "validation": _columns(SPLITS["valid"]),
            "test": _columns(SPLITS["test"]),
        },
    )
    before = snapshot(saved)
    recipe = hub_recipe(tmp_path, path=str(saved))
    r = run_cli(
        "prepare", recipe, "--set", "data.src_lang=de", "--set", "data.tgt_lang=en"
    )
    assert r.code == 0, r.err
    assert_unchanged(before, saved)
    assert set(snapshot(saved)) == set(before)


@pytest.mark.parametrize(
    "train, expected",
    [
        (
            {"translation": [{"de": "a", "fr": "b"}] * 5},
            "a 'translation' entry has no language 'en' (has de, fr); set "
            "data.tgt_lang",
        ),
        ({"de": ["a"] * 5, "en": [1] * 5}, "column 'en' holds int values, not text"),
    ],
    ids=["translation-missing-language", "column-not-text"],
)
def test_hub_rows_that_are_not_text(tmp_path, train, expected):
    valid = _columns(SPLITS["valid"])
    if "translation" in train:
        valid = {"translation": [{"de": s, "en": t} for s, t in SPLITS["valid"]]}
    saved = _saved_hub(tmp_path, {"train": train, "validation": valid, "test": valid})
    before = snapshot(saved)
    recipe = hub_recipe(tmp_path, path=str(saved))
    line = run_cli(
        "prepare", recipe, "--set", "data.src_lang=de", "--set", "data.tgt_lang=en"
    ).error
    assert expected in line
    assert_unchanged(before, saved)


# ------------------------------------------------------------ 10. the rest


@pytest.mark.parametrize(
    "tests, expected",
    [
        (["test", "test"], "'test' is listed twice"),
        (["test-a", "test_a"], "'test-a' and 'test_a' would share the split name"),
    ],
)
def test_test_sets_need_distinct_names(tmp_path, corpus, tests, expected):
    for name in set(tests) - {"test"}:
        for lang in ("de", "en"):
            shutil.copyfile(corpus / f"test.{lang}", corpus / f"{name}.{lang}")
    recipe = files_recipe(tmp_path, files={"dir": str(corpus), "test": tests})
    line = prepare_error(recipe, corpus)
    assert "data.files.test: " + expected in line
