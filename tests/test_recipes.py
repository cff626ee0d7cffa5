"""Every shipped recipe loads; the hub-only recipes build their model and train one
step on a tiny local stand-in for their hub dataset."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest

from nmt.config import load_config
from nmt.data import toy
from nmt.data.corpus import prepare
from nmt.train.loop import Trainer

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_loads(path):
    cfg = load_config(path)
    assert cfg.name == path.stem


@pytest.mark.parametrize("name", ["iwslt14_de_en", "wmt14_en_fr_sutskever"])
def test_hub_recipe_one_step_on_local_stand_in(tmp_path, name):
    cfg = load_config(Path(RECIPES[0]).parent / f"{name}.yaml")
    pairs = toy.generate(9, 60, 4, 4)
    src, tgt = cfg.data.src_lang, cfg.data.tgt_lang
    stand_in = datasets.DatasetDict(
        {
            split: datasets.Dataset.from_dict(
                {"translation": [{src: s, tgt: t} for s, t in rows]}
            )
            for split, rows in (
                (cfg.data.hub.train_split, pairs["train"]),
                (cfg.data.hub.valid_split, pairs["valid"]),
                (cfg.data.hub.test_splits[0], pairs["test"]),
            )
        }
    )
    stand_in.save_to_disk(str(tmp_path / "hub"))
    cfg.data.hub.path = str(tmp_path / "hub")
    cfg.workdir = str(tmp_path / "work")
    cfg.tokenizer.vocab_size = 400  # byte fallback needs 256 pieces for bytes
    cfg.train.max_steps, cfg.train.threads, cfg.train.device = 1, 1, "cpu"
    cfg.decode.max_len_a, cfg.decode.max_len_b = 0.0, 2
    summary = Trainer(cfg, prepare(cfg, lambda *_: None), log=lambda *_: None).train()
    assert summary["steps"] == 1 and summary["skipped_updates"] == 0
    assert (cfg.model_dir / "best.safetensors").exists()
