"""`nmt run`: prepare, train, translate every test set, score, write results.json."""

from __future__ import annotations

import json
from pathlib import Path

from nmt.config import Config
from nmt.data import toy
from nmt.data.corpus import Corpus, prepare
from nmt.decode.translator import Translator
from nmt.files import write_text
from nmt.metrics import score
from nmt.train.finish import finish, translate_set
from nmt.train.loop import Trainer
from nmt.workdir import locked, precheck


def baselines(cfg: Config, corpus: Corpus) -> dict:
    """BLEU of trivial systems on the first test set: how hard is the task?"""
    name, test = corpus.tests[0]
    src, ref = list(test["src"]), list(test["tgt"])
    out = {"copy_source": round(score(src, [ref])["bleu"], 2)}
    if cfg.data.source == "toy":
        out["word_for_word"] = round(
            score([toy.gloss(s) for s in src], [ref])["bleu"], 2
        )
    return out


def evaluate_tests(cfg: Config, corpus: Corpus) -> list[dict]:
    tr = Translator.load(cfg.model_dir, beam=cfg.decode.beam)
    results = []
    for name, test in corpus.tests:
        src, ref = list(test["src"]), list(test["tgt"])
        hyps = translate_set(tr, src, f"translate {name}")
        write_text(Path(cfg.workdir, f"{name}.hyp"), "".join(h + "\n" for h in hyps))
        s = score(hyps, [ref])
        results.append({"name": name, "sentences": len(src), "beam": tr.beam, **s})
    return results


def table(results: list[dict], base: dict) -> str:
    lines = [f"{'test set':<20} {'sents':>6} {'BLEU':>7} {'chrF':>7}"]
    for r in results:
        lines.append(
            f"{r['name']:<20} {r['sentences']:>6} {r['bleu']:>7.2f} {r['chrf']:>7.2f}"
        )
    for k, v in base.items():
        lines.append(f"{'baseline ' + k:<27} {v:>7.2f}")
    if results:
        lines.append(results[0]["signature"]["bleu"])
    return "\n".join(lines)


def run(cfg: Config, resume: bool = False, log=print) -> dict:
    precheck(cfg, resume)  # what would fail after the training fails now
    with locked(cfg.workdir, "run"):
        return _run(cfg, resume, log)


def _run(cfg: Config, resume: bool, log) -> dict:
    corpus = prepare(cfg, log)
    base = baselines(cfg, corpus)
    log(
        "baseline BLEU on the first test set: "
        + ", ".join(f"{k} {v:.2f}" for k, v in base.items())
    )
    summary = Trainer(cfg, corpus, resume=resume, log=log).train()
    chosen = finish(cfg, corpus, log)  # averaging and the length penalty, on dev
    results = evaluate_tests(cfg, corpus)
    out = {
        "name": cfg.name,
        "tests": results,
        "baselines": base,
        "train": summary,
        **({"chosen_on_dev": chosen} if chosen else {}),
        "data": corpus.stats["counts"],
    }
    path = Path(cfg.workdir) / "results.json"
    write_text(path, json.dumps(out, indent=2))
    log(table(results, base))
    log(f"results written to {path}")
    return out
