"""The end of `nmt run`: checkpoint averaging and the length penalty, chosen on dev."""

from __future__ import annotations

import yaml

from nmt.checkpoint import BEST, load_checkpoint, numbered
from nmt.config import load_model_config
from nmt.data.corpus import prepare
from nmt.decode.translator import Translator
from nmt.experiment import run
from nmt.metrics import score
from nmt.train.finish import SINGLE, _average


def _dev_bleu(cfg, corpus, **kw) -> float:
    valid = corpus.splits["valid"]
    hyps = Translator.load(cfg.model_dir, **kw).translate(list(valid["src"]))
    return round(score(hyps, [list(valid["tgt"])])["bleu"], 2)


def test_run_averages_and_tunes_on_dev_and_translate_decodes_as_scored(make_config):
    cfg = make_config(
        train={"max_steps": 30, "valid_every": 5, "average": 3},
        decode={"tune_length_penalty": [0.0, 1.0, 3.0]},
    )
    out = run(cfg, log=lambda _: None)
    chosen = out["chosen_on_dev"]
    avg, lp = chosen["average"], chosen["length_penalty"]
    assert avg["checkpoints"] == 3
    assert avg["kept"] == (avg["dev_bleu"] > avg["best_dev_bleu"])
    best = load_checkpoint(cfg.model_dir / BEST)
    assert ("averaged" in best) == avg["kept"]
    assert (cfg.model_dir / SINGLE).is_file() == avg["kept"]
    tried = {float(a): b for a, b in lp["tried"].items()}
    assert set(tried) == {0.0, 1.0, 3.0}
    assert tried[lp["chosen"]] == max(tried.values())
    # the model folder now decodes with the chosen penalty, by default
    assert load_model_config(cfg.model_dir).decode.length_penalty == lp["chosen"]
    corpus = prepare(cfg, lambda _: None)
    assert _dev_bleu(cfg, corpus) == tried[lp["chosen"]]
    # and the weights kept score what the averaging step said they would
    kept = max(avg["dev_bleu"], avg["best_dev_bleu"])
    assert _dev_bleu(cfg, corpus, length_penalty=1.0) == kept == tried[1.0]
    saved = yaml.safe_load((cfg.model_dir / "config.yaml").read_text())
    assert saved["decode"]["length_penalty"] == lp["chosen"]


def test_an_average_that_wins_replaces_best_and_keeps_the_single_best(make_config):
    cfg = make_config(train={"max_steps": 20, "valid_every": 5})
    run(cfg, log=lambda _: None)
    d = cfg.model_dir
    single = (d / BEST).read_bytes()
    wins = {BEST: 1.0}  # any other checkpoint (the candidate average) scores 2.0
    out = _average(d, 3, lambda ck: wins.get(ck, 2.0), lambda _: None)
    assert out["kept"] and out["dev_bleu"] == 2.0
    assert (d / SINGLE).read_bytes() == single
    assert load_checkpoint(d / BEST)["averaged"] == [p.name for p in numbered(d)[-3:]]
    # averaging again does not take the average for the single best
    _average(d, 2, lambda ck: wins.get(ck, 2.0), lambda _: None)
    assert (d / SINGLE).read_bytes() == single
    assert sorted(p.name for p in d.glob(".*")) == []  # no candidate left behind


def test_an_average_that_loses_changes_nothing(make_config):
    cfg = make_config(train={"max_steps": 20, "valid_every": 5})
    run(cfg, log=lambda _: None)
    d = cfg.model_dir
    before = (d / BEST).read_bytes()
    out = _average(d, 3, lambda ck: 2.0 if ck == BEST else 1.0, lambda _: None)
    assert not out["kept"]
    assert (d / BEST).read_bytes() == before
    assert not (d / SINGLE).exists()
    assert sorted(p.name for p in d.glob(".*")) == []


def test_a_killed_runs_dev_average_is_removed_when_training_starts_again(tmp_path):
    """`_average` writes `.dev-average.<pid>.safetensors` beside the model; a run
    killed while it decoded dev leaves it, and the next run holding the workdir
    clears it, but never one whose process still lives."""
    import os

    from nmt.workdir import remove_stale_temporaries

    dead = tmp_path / ".dev-average.999999999.safetensors"
    live = tmp_path / f".dev-average.{os.getppid()}.safetensors"
    mine = tmp_path / BEST
    for p in (dead, live, mine):
        p.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == [dead]
    assert live.is_file() and mine.is_file() and not dead.exists()
