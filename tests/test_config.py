import re

import pytest

from nmt.config import load_config, load_model_config
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


# (--set items, words the one error must hold): each rule that spans keys
RULES = [
    (
        ["model.attention=bahdanau", "model.input_feeding=true"],
        ["model.input_feeding: true needs model.attention: luong (got bahdanau)"],
    ),
    (
        # the encoder's outputs: 2 x 8 = 16; the decoder's hidden size: 32
        [
            "model.attention=luong",
            "model.attention_score=dot",
            "model.encoder.hidden=8",
        ],
        ["model.attention_score: dot", "model.decoder.hidden", "(32 != 16)"],
    ),
    (
        ["model.tie_embeddings=true"],
        ["model.tie_embeddings", "model.decoder.readout", "(32 != 16)"],
    ),
    (
        ["model.tie_embeddings=true", "model.decoder.conditioning=sutskever"],
        ["model.tie_embeddings", "model.decoder.hidden", "(32 != 16)"],
    ),
    (["decode.beam=2", "decode.nbest=3"], ["decode.nbest (3)", "decode.beam (2)"]),
    (["data.source=hub"], ["data.hub.path is empty"]),
]


@pytest.mark.parametrize("items,words", RULES, ids=lambda x: "-".join(x)[:40])
def test_cross_key_rules(write_recipe, tiny_raw, make_config, items, words):
    path = write_recipe(tiny_raw)
    with pytest.raises(NmtError) as e:
        load_config(path, items)
    msg = str(e.value)
    assert msg.startswith(f"recipe {path}: ") and "\n" not in msg
    for w in words:
        assert w in msg, (w, msg)
    raw: dict = {}
    for item in items:  # config_from_dict checks the same rules
        key, value = item.split("=")
        *sections, name = key.split(".")
        node = raw
        for s in sections:
            node = node.setdefault(s, {})
        node[name] = {"true": True}.get(value, int(value) if value.isdigit() else value)
    with pytest.raises(NmtError, match=re.escape(words[0])):
        make_config(**raw)


def test_rules_that_hold_pass(make_config):
    cfg = make_config(
        model={
            "attention": "luong",
            "attention_score": "dot",
            "input_feeding": True,
            "encoder": {"hidden": 16},  # 2 x 16 = decoder.hidden
            "tie_embeddings": True,
            "decoder": {"readout": 16},
        },
        decode={"beam": 3, "nbest": 3},
    )
    assert cfg.model.attention_score == "dot"
    # dot is only Luong's: Bahdanau's additive score ignores it
    make_config(model={"attention": "bahdanau", "attention_score": "dot"})
    # Sutskever's plain decoder has no readout layer: its hidden size is tied
    plain = {"conditioning": "sutskever", "hidden": 16, "readout": 99}
    make_config(model={"tie_embeddings": True, "decoder": plain})


def test_every_broken_rule_is_named_at_once(make_config):
    with pytest.raises(NmtError) as e:
        make_config(
            model={"input_feeding": True, "tie_embeddings": True},
            decode={"beam": 1, "nbest": 2},
        )
    msg = str(e.value)
    for key in ("model.input_feeding", "model.tie_embeddings", "decode.nbest"):
        assert key in msg, (key, msg)


def test_model_config_is_validated(tmp_path, make_config):
    cfg = make_config()
    cfg.model.input_feeding = True  # as an older or hand-edited config.yaml
    cfg.save(tmp_path / "config.yaml")
    with pytest.raises(NmtError, match=r"model config .*config.yaml: model.input"):
        load_model_config(tmp_path)
