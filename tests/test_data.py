"""The three data sources, cleaning counts, cache and the errors users meet."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import datasets
import pytest

import nmt.data.corpus
from nmt.data import toy
from nmt.data.corpus import prepare
from nmt.errors import NmtError
from nmt.files import read_lines
from tests.conftest import SHARED_DATA, needs_shared_data


def quiet(*_):
    pass


def write_pair(directory, prefix, pairs, gz=False):
    directory.mkdir(parents=True, exist_ok=True)
    for lang, col in (("de", 0), ("en", 1)):
        text = "".join(p[col] + "\n" for p in pairs).encode()
        name = directory / f"{prefix}.{lang}{'.gz' if gz else ''}"
        name.write_bytes(gzip.compress(text) if gz else text)


@pytest.fixture
def corpus_dir(tmp_path):
    splits = toy.generate(5, 300, 20, 15)
    d = tmp_path / "corpus"
    train = splits["train"] + [
        ("", "leer"),
        ("   ", "  "),
        ("kurz", " ".join(["x"] * 40)),
    ]
    write_pair(d, "train", train, gz=True)
    write_pair(d, "valid", splits["valid"])
    write_pair(d, "test_a", splits["test"])
    write_pair(d, "test_b", splits["test"][:5], gz=True)
    return d


def data_folder(cfg):
    return Path(cfg.workdir) / "data"


def files_config(make_config, directory, **data):
    return make_config(
        data={
            "source": "files",
            "src_lang": "de",
            "tgt_lang": "en",
            "files": {"dir": str(directory), "test": ["test_a", "test_b"]},
            "max_ratio": 4.0,
            **data,
        }
    )


def test_files_source_counts_and_tests(make_config, corpus_dir):
    logs = []
    c = prepare(files_config(make_config, corpus_dir), logs.append)
    counts = c.stats["counts"]["train"]
    assert counts == {
        "read": 303,
        "empty_or_duplicate": 2,
        "too_long_or_ratio": 1,
        "kept": 300,
    }
    assert [name for name, _ in c.tests] == ["test_a", "test_b"]
    assert [len(t) for _, t in c.tests] == [15, 5]
    assert any("2 empty" in m and "1 over max_len/max_ratio" in m for m in logs)


def test_cache_is_whole_or_absent(make_config, corpus_dir, monkeypatch):
    """A run killed while preparing leaves nothing that looks like a cache; a
    folder left by a dead process is removed, a live one's is not touched."""
    cfg = files_config(make_config, corpus_dir)
    build = nmt.data.corpus._build

    def killed(cfg, root, log):
        build(cfg, root, log)
        raise KeyboardInterrupt  # after writing everything but the rename

    monkeypatch.setattr(nmt.data.corpus, "_build", killed)
    with pytest.raises(KeyboardInterrupt):
        prepare(cfg, quiet)
    folder = data_folder(cfg)
    assert [p.name for p in folder.iterdir() if p.name != "hf"] == []
    key = nmt.data.corpus.cache_key(cfg)
    dead, live = folder / f".{key}.999999999.tmp", folder / f".{key}.{os.getppid()}.tmp"
    dead.mkdir()
    live.mkdir()
    monkeypatch.setattr(nmt.data.corpus, "_build", build)
    logs = []
    c = prepare(cfg, logs.append)
    assert len(c.tests) == 2 and not dead.exists()
    left = sorted(p.name for p in folder.iterdir() if p.name != "hf")
    assert left == sorted([key, live.name])
    prepare(cfg, logs.append)
    assert "reusing cached corpus" in logs[-1]


def test_a_leftover_folder_not_named_by_a_pid_is_left_alone(make_config, corpus_dir):
    """Only folders named by a process id are checked and cleaned; any other name
    that matches the pattern neither stops preparation nor gets removed."""
    cfg = files_config(make_config, corpus_dir)
    folder = data_folder(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    other = folder / f".{nmt.data.corpus.cache_key(cfg)}.mine.tmp"
    other.mkdir()
    assert len(prepare(cfg, quiet).tests) == 2
    assert other.exists()


def test_prepare_uses_a_cache_another_run_finished_first(
    make_config, corpus_dir, monkeypatch
):
    """Two runs preparing the same corpus at once: the second to finish keeps the
    first's cache and says so."""
    cfg = files_config(make_config, corpus_dir)
    build = nmt.data.corpus._build

    def raced(cfg, root, log):
        build(cfg, root, log)
        shutil.copytree(root, root.parent / nmt.data.corpus.cache_key(cfg))  # the other

    monkeypatch.setattr(nmt.data.corpus, "_build", raced)
    logs = []
    c = prepare(cfg, logs.append)
    assert "another run prepared" in logs[-1]
    assert c.stats["counts"]["train"]["kept"] == 300
    assert not list(data_folder(cfg).glob(".*.tmp"))


def test_dedup_is_counted(make_config, tmp_path):
    pairs = toy.generate(5, 100, 5, 5)
    write_pair(tmp_path / "d", "train", pairs["train"] * 2)
    write_pair(tmp_path / "d", "valid", pairs["valid"])
    write_pair(tmp_path / "d", "test", pairs["test"])
    cfg = make_config(
        data={
            "source": "files",
            "src_lang": "de",
            "tgt_lang": "en",
            "dedup": True,
            "files": {"dir": str(tmp_path / "d")},
        }
    )
    counts = prepare(cfg, quiet).stats["counts"]["train"]
    assert counts["kept"] == len(set(pairs["train"]))


def test_tsv_source(make_config, tmp_path):
    pairs = toy.generate(5, 200, 10, 10)
    for name, rows in pairs.items():
        (tmp_path / f"{name}.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in rows))
    cfg = make_config(
        data={
            "source": "files",
            "files": {
                "dir": str(tmp_path),
                "format": "tsv",
                "train": "train.tsv",
                "valid": "valid.tsv",
                "test": ["test.tsv"],
            },
        }
    )
    c = prepare(cfg, quiet)
    assert len(c.splits["train"]) == 200 and c.tests[0][0] == "test.tsv"


def test_misaligned_files_name_both(make_config, corpus_dir):
    (corpus_dir / "valid.en").write_text("only one line\n")
    with pytest.raises(NmtError, match=r"valid.de has 20 lines, .*valid.en has 1"):
        prepare(files_config(make_config, corpus_dir), quiet)


def test_undecodable_line_named(make_config, corpus_dir):
    lines = (corpus_dir / "valid.de").read_bytes().split(b"\n")
    lines[6] = b"kaputt \xff\xfe"
    (corpus_dir / "valid.de").write_bytes(b"\n".join(lines))
    with pytest.raises(NmtError, match=r"valid.de, line 7: not valid UTF-8"):
        prepare(files_config(make_config, corpus_dir), quiet)


def test_corpus_and_input_share_one_utf8_check(make_config, corpus_dir):
    """A bad byte reads the same in a corpus file and in text to translate, and
    a Windows line end is a line end in both (nmt.files.decode_line)."""
    path = corpus_dir / "valid.de"
    lines = path.read_bytes().split(b"\n")
    lines[0] += b"\r"
    lines[6] = b"kaputt \xff\xfe"
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(NmtError) as in_corpus:
        prepare(files_config(make_config, corpus_dir), quiet)
    with pytest.raises(NmtError) as in_input:
        list(read_lines(path))
    assert str(in_corpus.value) == str(in_input.value)
    assert str(in_input.value).endswith("valid.de, line 7: not valid UTF-8 (byte 8)")
    assert next(read_lines(path)) == lines[0][:-1].decode()


def test_empty_after_filtering(make_config, corpus_dir):
    with pytest.raises(NmtError, match="empty after filtering.*max_len=1"):
        prepare(files_config(make_config, corpus_dir, max_len=1), quiet)


def test_missing_file(make_config, tmp_path):
    with pytest.raises(NmtError, match="data file not found"):
        prepare(files_config(make_config, tmp_path / "nothing"), quiet)


def _save_hub(tmp_path, layout):
    splits = toy.generate(5, 200, 10, 10)
    out = {}
    for name, rows in (
        ("train", splits["train"]),
        ("validation", splits["valid"]),
        ("test", splits["test"]),
    ):
        if layout == "translation":
            out[name] = datasets.Dataset.from_dict(
                {"translation": [{"de": s, "en": t} for s, t in rows]}
            )
        else:
            out[name] = datasets.Dataset.from_dict(
                {
                    "de": [s for s, _ in rows],
                    "en": [t for _, t in rows],
                    "id": list(range(len(rows))),
                }
            )
    path = tmp_path / f"hub_{layout}"
    datasets.DatasetDict(out).save_to_disk(str(path))
    return path, splits


@pytest.mark.parametrize("layout", ["translation", "columns"])
def test_hub_source_through_saved_dataset(make_config, tmp_path, layout):
    path, splits = _save_hub(tmp_path, layout)
    cfg = make_config(
        data={
            "source": "hub",
            "src_lang": "de",
            "tgt_lang": "en",
            "hub": {"path": str(path)},
        }
    )
    c = prepare(cfg, quiet)
    assert len(c.splits["train"]) == 200
    assert list(c.splits["valid"]["src"]) == [s for s, _ in splits["valid"]]
    assert list(c.tests[0][1]["tgt"]) == [t for _, t in splits["test"]]


def test_unreachable_hub_says_how_to_use_files(make_config, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # no retries
    cfg = make_config(
        data={"source": "hub", "hub": {"path": "no-such-user/no-such-set"}}
    )
    with pytest.raises(
        NmtError,
        match=r"cannot load hub dataset 'no-such-user/no-such-set'"
        r".*data.source=files",
    ):
        prepare(cfg, quiet)


@needs_shared_data
def test_multi30k_from_shared_data(make_config):
    cfg = make_config(
        data={
            "source": "files",
            "src_lang": "de",
            "tgt_lang": "en",
            "files": {
                "dir": str(SHARED_DATA / "multi30k"),
                "test": ["test2016", "test2017", "test2017mscoco"],
            },
        },
        tokenizer={"vocab_size": 4000, "input_sentence_size": 20000},
    )
    c = prepare(cfg, quiet)
    n = c.stats["counts"]
    assert n["train"]["read"] == 29000 and n["train"]["kept"] > 28500
    assert [len(t) for _, t in c.tests] == [1000, 1000, 461]
    assert os.path.exists(cfg.model_dir.parent / "data")
