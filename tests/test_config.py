import pytest

from nmt.config import load_config
from nmt.errors import NmtError


def test_defaults_and_override(write_recipe, tiny_raw):
    path = write_recipe(tiny_raw)
    cfg = load_config(
        path,
        [
            "model.decoder.type=lstm",
            "data.reverse_source=true",
            "train.lr=0.01",
            "data.files.test=[a, b]",
        ],
    )
    assert cfg.model.decoder.type == "lstm"
    assert cfg.data.reverse_source is True
    assert cfg.train.lr == 0.01
    assert cfg.data.files.test == ["a", "b"]
    assert cfg.decode.length_penalty == 1.0  # a default fills what the recipe omits


def test_unknown_key_suggests_closest(write_recipe, tiny_raw):
    tiny_raw["model"]["decoder"]["hiden"] = 5
    with pytest.raises(
        NmtError,
        match=r"unknown recipe key 'model.decoder.hiden'.*"
        r"did you mean 'model.decoder.hidden'",
    ):
        load_config(write_recipe(tiny_raw))


@pytest.mark.parametrize(
    "key,value,msg",
    [
        ("train.lr", "fast", "must be a number"),
        ("train.max_steps", 1.5, "must be an integer"),
        ("data.reverse_source", "yes please", "must be true or false"),
        ("model.decoder.type", "rnn", "must be one of gru, lstm"),
        ("model.encoder.dropout", 1.5, "must be between 0.0 and 0.95"),
        ("train.batch_tokens", 0, "must be at least 1"),
    ],
)
def test_bad_values_name_the_key(write_recipe, tiny_raw, key, value, msg):
    with pytest.raises(NmtError, match=rf"'{key}' {msg}"):
        load_config(write_recipe(tiny_raw), [f"{key}={value}"])


def test_missing_recipe(tmp_path):
    with pytest.raises(NmtError, match="recipe not found"):
        load_config(tmp_path / "nope.yaml")


def test_invalid_yaml_names_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\ndata: [unclosed\n")
    with pytest.raises(NmtError, match="line"):
        load_config(p)


def test_resolved_config_round_trips(tmp_path, make_config):
    cfg = make_config()
    cfg.save(tmp_path / "c.yaml")
    again = load_config(tmp_path / "c.yaml")
    assert again.to_dict() == cfg.to_dict()
