"""`nmt recipe`: every key of a resolved recipe, with its value and its help, as
YAML that loads back to the same Config."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest

from nmt.cli import main
from nmt.config import Config, load_config

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))


def fields(cls=Config, prefix=""):
    """(key path, field) of every key and section."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.metadata.get("internal"):
            yield f"{prefix}{f.name}", f
            if dataclasses.is_dataclass(hints[f.name]):
                yield from fields(hints[f.name], f"{prefix}{f.name}.")


def test_every_key_has_a_one_line_doc():
    missing = [k for k, f in fields() if not f.metadata.get("doc")]
    assert not missing, f"keys without a doc: {missing}"
    long = [k for k, f in fields() if "\n" in f.metadata["doc"]]
    assert not long, f"docs of more than one line: {long}"


def recipe_text(capsys, *argv) -> str:
    assert main(["recipe", *map(str, argv)]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_output_loads_back_to_the_same_config(path, tmp_path, capsys):
    text = recipe_text(capsys, path)
    (tmp_path / "resolved.yaml").write_text(text, encoding="utf-8")
    assert (
        load_config(tmp_path / "resolved.yaml").to_dict() == load_config(path).to_dict()
    )


def test_every_key_is_printed_with_its_doc(capsys):
    lines = recipe_text(capsys, RECIPES[0]).splitlines()
    for key, f in fields():
        name = key.rsplit(".", 1)[-1]
        depth = key.count(".")
        hits = [
            line
            for line in lines
            if line.startswith("  " * depth + name + ":") and f.metadata["doc"] in line
        ]
        assert hits, key


def test_set_values_appear(tmp_path, capsys):
    text = recipe_text(
        capsys,
        RECIPES[0],
        "--set",
        "model.decoder.type=lstm",
        "--set",
        "data.files.test=[a, 'no', '1e5']",
        "--set",
        "name='a: #b'",
    )
    assert "--set model.decoder.type=lstm" in text.splitlines()[0]
    assert "    type: lstm " in text
    (tmp_path / "r.yaml").write_text(text, encoding="utf-8")
    cfg = load_config(tmp_path / "r.yaml")
    assert cfg.model.decoder.type == "lstm"
    assert cfg.data.files.test == ["a", "no", "1e5"]
    assert cfg.name == "a: #b"


def test_bad_recipe_is_one_error_line(tmp_path, capsys):
    (tmp_path / "r.yaml").write_text("model:\n  input_feeding: true\n")
    assert main(["recipe", str(tmp_path / "r.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.input_feeding" in err[0], err
