"""Bad recipes, bad `--set` items and bad model configs, as a user meets them.

Each case runs `nmt prepare` (or `nmt translate`) in this process through
tests/faults.py: exit status 2, one `nmt: error:` line naming the key or the file
(and line), no traceback, and no file in the recipe's folder changed.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from nmt.config import Config, load_config, load_model_config, read_yaml
from nmt.errors import NmtError
from tests.faults import assert_unchanged, run_cli, snapshot


def _prepare_fails(recipe: Path, *argv: str) -> str:
    """`nmt prepare RECIPE ARGV...`: the one error line; nothing in the recipe's
    folder changed, and no workdir made."""
    before = snapshot(recipe.parent)
    line = run_cli("prepare", recipe, *argv).error
    assert_unchanged(before, recipe.parent)
    assert not (recipe.parent / "work").exists()
    return line


# ------------------------------------------------------------ --set items

# (--set item, words the line must hold, words it must not)
SET_CASES = [
    ("zzz.q=1", ["--set zzz.q=1", "unknown recipe key 'zzz'"], ["did you mean"]),
    ("a.b.c=1", ["--set a.b.c=1", "unknown recipe key 'a'"], ["did you mean"]),
    ("=3", ["--set =3", "key", "empty"], []),
    ("train..lr=1", ["'train..lr'", "empty part"], []),
    ("nosign", ["KEY=VALUE", "'nosign'"], []),
    ("train.lr.x=1", ["'train.lr'", "not a section"], []),
    ("train.lr=.nan", ["'train.lr'", "finite", "nan"], []),
    ("train.lr=.inf", ["'train.lr'", "finite", "inf"], []),
    ("train.lr=-.inf", ["'train.lr'", "finite", "-inf"], []),
    ("decode.length_penalty=.NaN", ["'decode.length_penalty'", "finite"], []),
    ("train.lr=" + "9" * 400, ["'train.lr'", "finite"], ["9" * 100]),
    ("train.lr=fast", ["'train.lr'", "must be a number"], []),
    (
        "model.decoder.hiden=5",
        ["'model.decoder.hiden'", "did you mean 'model.decoder.hidden'"],
        [],
    ),
    ("train.beam=3", ["'train.beam'", "did you mean 'decode.beam'"], []),
    (
        "model.decoder.type=lsmt",
        ["'model.decoder.type'", "one of gru, lstm", "did you mean 'lstm'"],
        [],
    ),
    ("data=3", ["'data'", "mapping"], []),
    ("data.files.test={a: 1}", ["'data.files.test'", "must be a list"], []),
    ("data.files.test=[a, [b]]", ["'data.files.test[1]'", "must be a string"], []),
    ("train.max_steps=1.5", ["'train.max_steps'", "must be an integer"], []),
    ("train.max_steps='3'", ["'train.max_steps'", "must be an integer"], []),
    ("train.max_steps=" + "9" * 30, ["'train.max_steps'", "below 2**63"], []),
    ("name=[a, b]", ["'name'", "must be a string"], []),
    ("name={a: 1}", ["'name'", "must be a string"], []),
    (
        "data.reverse_source=yes please",
        ["'data.reverse_source'", "true or false"],
        [],
    ),
    ("train.batch_tokens=0", ["'train.batch_tokens'", "at least 1"], []),
    ("train.batch_tokens=-5", ["'train.batch_tokens'", "at least 1"], []),
    ("train.seed=-1", ["'train.seed'", "at least 0"], []),
    ("model.encoder.dropout=1.5", ["'model.encoder.dropout'", "between"], []),
    ('data.files.dir="a\\0b"', ["'data.files.dir'", "NUL"], []),
    ("data.files.dir=~no_such_user_zq/x", ["'data.files.dir'", "user"], []),
    ("data.files.test=&a [*a]", ["--set data.files.test", "refers to itself"], []),
    ("train.lr=\udcff", ["--set", "not valid UTF-8"], []),
]


@pytest.mark.parametrize(
    "item,words,absent", SET_CASES, ids=[c[0][:40] for c in SET_CASES]
)
def test_bad_set_item(write_recipe, tiny_raw, item, words, absent):
    line = _prepare_fails(
        write_recipe(tiny_raw), "--set", "train.lr=0.1", "--set", item
    )
    for w in words:
        assert w in line, (w, line)
    for w in absent:
        assert w not in line, (w, line)
    assert len(line) < 300, line


# ------------------------------------------------------------ recipe files

LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n"
    for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)

# (recipe file's text or bytes, words the line must hold, words it must not)
FILE_CASES = {
    "unknown-top-key": ("name: x\nzzz: 1\n", ["line 2", "'zzz'"], ["did you mean"]),
    "typo-top-key": ("nmae: x\n", ["line 1", "'nmae'", "did you mean 'name'"], []),
    "nested-typo": (
        "model:\n  decoder:\n    hiden: 5\n",
        ["line 3", "'model.decoder.hiden'", "did you mean 'model.decoder.hidden'"],
        [],
    ),
    "section-scalar": ("name: x\ndata: 3\n", ["line 2", "'data'", "mapping"], []),
    "section-list": ("train: [1, 2]\n", ["line 1", "'train'", "mapping"], []),
    "nan-in-file": ("train:\n  lr: .nan\n", ["line 2", "'train.lr'", "finite"], []),
    "list-key-mapping": (
        "data:\n  files:\n    test: {a: 1}\n",
        ["line 3", "'data.files.test'", "list"],
        [],
    ),
    "int-given-string": ("train:\n  max_steps: '3'\n", ["'train.max_steps'"], []),
    "string-given-map": ("name: {a: 1}\n", ["'name'", "must be a string"], []),
    "big-value-shortened": (
        "name: [" + ", ".join(["xxxxxxxxxx"] * 5000) + "]\n",
        ["'name'", "..."],
        ["'xxxxxxxxxx', " * 7],
    ),
    "duplicate-key": ("name: a\nname: b\n", ["line 2", "duplicate key 'name'"], []),
    "duplicate-key-flow": (
        "train: {lr: 0.1, lr: 0.2}\n",
        ["line 1", "duplicate key 'lr'"],
        [],
    ),
    "billion-laughs": (LAUGHS, ["refused", "alias"], []),
    "recursive-alias": ("name: &a [*a]\n", ["refused", "itself"], []),
    "deep-nesting": ("name: " + "[" * 200 + "]" * 200 + "\n", ["nested"], []),
    "not-utf8": (b"name: x\nworkdir: \xff\xfe\n", ["line 2", "not UTF-8"], []),
    "control-char": ("name: a\x01b\n", ["line 1", "invalid YAML"], []),
    "invalid-yaml": ("name: x\ndata: [unclosed\n", ["invalid YAML", "line"], []),
    "python-tag": ("name: !!python/object/apply:os.system [ls]\n", ["line 1"], []),
    "bad-int-tag": ("name: !!int abc\n", ["line 1", "cannot read 'abc'"], []),
    "bad-date": ("name: !!timestamp 2001-13-45\n", ["line 1", "2001-13-45"], []),
    "huge-int": ("train:\n  seed: " + "9" * 5000 + "\n", ["line 2", "digits"], []),
    "two-documents": ("name: a\n---\nname: b\n", ["invalid YAML", "single"], []),
    "top-level-list": ("- name\n- data\n", ["top level", "mapping", "list"], []),
    "top-level-string": ("hello\n", ["top level", "mapping", "string"], []),
    "empty": ("", ["empty"], []),
    "comments-only": ("# name: x\n", ["empty"], []),
    "over-1-MiB": ("name: x\n" + "#" * (1 << 20) + "\n", ["larger than 1 MiB"], []),
}


@pytest.mark.parametrize("case", list(FILE_CASES))
def test_bad_recipe_file(tmp_path, case):
    text, words, absent = FILE_CASES[case]
    recipe = tmp_path / "recipe.yaml"
    if isinstance(text, str):
        text = text.encode("utf-8")
    recipe.write_bytes(text)
    t0 = time.perf_counter()
    line = _prepare_fails(recipe)
    assert time.perf_counter() - t0 < 2.0
    assert str(recipe) in line, line
    for w in words:
        assert w in line, (w, line)
    for w in absent:
        assert w not in line, (w, line)
    assert len(line) < 400, line


def test_billion_laughs_refused_quickly(tmp_path):
    recipe = tmp_path / "laughs.yaml"
    recipe.write_text(LAUGHS)
    t0 = time.perf_counter()
    line = _prepare_fails(recipe)
    assert time.perf_counter() - t0 < 2.0
    assert "laughs.yaml, line" in line and "refused" in line
    with pytest.raises(NmtError, match="refused"):
        read_yaml(recipe, "recipe")


def test_billion_laughs_in_set_value(write_recipe, tiny_raw):
    laughs = "{" + LAUGHS.strip().replace("\n", ", ") + "}"
    t0 = time.perf_counter()
    line = _prepare_fails(write_recipe(tiny_raw), "--set", f"data={laughs}")
    assert time.perf_counter() - t0 < 2.0
    assert "--set data=" in line and "refused" in line


@pytest.mark.parametrize("where", ["missing", "directory"])
def test_recipe_path_not_a_file(tmp_path, where):
    recipe = tmp_path / "recipe.yaml"
    if where == "directory":
        recipe.mkdir()
    line = _prepare_fails(recipe)
    assert str(recipe) in line
    assert ("not found" if where == "missing" else "is a directory") in line


def test_set_error_names_the_set_item_not_the_file(write_recipe, tiny_raw):
    tiny_raw["train"]["max_steps"] = 10
    line = _prepare_fails(write_recipe(tiny_raw), "--set", "train.max_steps=-1")
    assert "--set train.max_steps=-1" in line and "recipe.yaml" not in line


def test_file_error_names_the_file_and_line_with_set_elsewhere(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("name: x\ntrain:\n  lr: -1\n")
    line = _prepare_fails(recipe, "--set", "train.max_steps=3")
    assert f"{recipe}, line 3" in line and "'train.lr'" in line


# ------------------------------------------------------------ numbers and words


def test_exponent_without_dot_in_file_and_set(write_recipe, tiny_raw):
    path = write_recipe(tiny_raw)
    path.write_text(path.read_text().replace("lr: 0.005", "lr: 1e-3"))
    assert "lr: 1e-3" in path.read_text()
    assert load_config(path).train.lr == 0.001
    assert load_config(path, ["train.lr=1e-3"]).train.lr == 0.001
    cfg = load_config(path, ["train.min_lr=5E-6", "train.max_minutes=2e1"])
    assert cfg.train.min_lr == 5e-6 and cfg.train.max_minutes == 20.0
    assert load_config(path, ["data.toy.train_size=6e4"]).data.toy.train_size == 60000


def test_yes_no_and_language_codes(write_recipe, tiny_raw):
    path = write_recipe(tiny_raw)
    cfg = load_config(path, ["data.reverse_source=yes", "data.dedup=off"])
    assert cfg.data.reverse_source is True and cfg.data.dedup is False
    cfg = load_config(path, ["data.src_lang=no", "data.tgt_lang=on"])
    assert (cfg.data.src_lang, cfg.data.tgt_lang) == ("no", "on")


def test_saved_config_reads_back_the_same(tmp_path, make_config):
    cfg = make_config()
    cfg.name, cfg.data.src_lang, cfg.data.files.test = "1e5", "no", ["2001-01-01"]
    cfg.train.lr = 1e-5
    cfg.save(tmp_path / "c.yaml")
    assert [p.name for p in tmp_path.iterdir()] == ["c.yaml"]  # no temp file left
    assert load_config(tmp_path / "c.yaml").to_dict() == cfg.to_dict()
    plain = yaml.safe_load((tmp_path / "c.yaml").read_text())
    assert plain["name"] == "1e5" and plain["data"]["src_lang"] == "no"


# ------------------------------------------------------------ model config.yaml


def _model_dir(tmp_path: Path, text: str | bytes | None) -> Path:
    d = tmp_path / "model"
    d.mkdir()
    if isinstance(text, str):
        text = text.encode("utf-8")
    if text is not None:
        (d / "config.yaml").write_bytes(text)
    return d


MODEL_CASES = {
    "no-config": (None, ["not found"]),
    "invalid-yaml": ("name: x\nmodel: {embed_dim: [\n", ["invalid YAML", "line"]),
    "empty": ("", ["empty"]),
    "not-a-mapping": ("- a\n", ["top level", "mapping"]),
    "unknown-key": ("name: x\nrecipe_dir: /tmp\n", ["line 2", "'recipe_dir'"]),
    "extra-nested-key": ("model:\n  encoder:\n    cells: 3\n", ["line 3", "cells"]),
    "wrong-type": ("model:\n  embed_dim: big\n", ["line 2", "'model.embed_dim'"]),
    "not-utf8": (b"name: \xff\n", ["line 1", "UTF-8"]),
    "laughs": (LAUGHS, ["refused"]),
}


@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_bad_model_config(tmp_path, case):
    text, words = MODEL_CASES[case]
    d = _model_dir(tmp_path, text)
    with pytest.raises(NmtError) as e:
        load_model_config(d)
    msg = str(e.value)
    assert "\n" not in msg and str(d / "config.yaml") in msg, msg
    for w in words:
        assert w in msg, (w, msg)


def test_model_config_is_a_directory(tmp_path):
    d = _model_dir(tmp_path, None)
    (d / "config.yaml").mkdir()
    with pytest.raises(NmtError, match="config.yaml is a directory"):
        load_model_config(d)


def test_good_model_config(tmp_path, make_config):
    cfg = make_config()
    d = _model_dir(tmp_path, None)
    cfg.save(d / "config.yaml")
    again = load_model_config(d)
    assert isinstance(again, Config) and again.to_dict() == cfg.to_dict()
    assert again.recipe_dir == "."


@pytest.mark.parametrize("case", ["no-config", "invalid-yaml", "unknown-key"])
def test_bad_model_config_through_translate(tmp_path, case):
    d = _model_dir(tmp_path, MODEL_CASES[case][0])
    before = snapshot(d)
    r = run_cli("translate", d, stdin=b"x\n")
    assert r.error.startswith("nmt: error:")  # exit 2, one line, no traceback
    assert_unchanged(before, d)
