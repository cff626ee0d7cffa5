"""Training and translation speed for a recipe, printed as BENCHMARKS.md rows.

    python benchmarks/speed.py recipes/toy.yaml [--set key=value ...] [--steps 60]
        [--model runs/toy/model]

Training: target tokens/s over `--steps` updates after 10 warm-up updates, on the
recipe's own batches. Translation: sentences/s and target tokens/s for greedy and
beam 5 on the first test set, with a trained model (`--model`, default the recipe's
model directory) when there is one.
"""

from __future__ import annotations

import argparse
import copy
import platform
import resource
import tempfile
import time

import torch

from nmt.config import load_config
from nmt.data.batching import make_batches
from nmt.data.corpus import prepare
from nmt.decode.translator import Translator
from nmt.metrics import bleu
from nmt.train.loop import Trainer


def train_speed(cfg, corpus, steps: int) -> float:
    cfg = copy.deepcopy(cfg)
    cfg.workdir = tempfile.mkdtemp()  # never touch a trained model directory
    tr = Trainer(cfg, corpus, log=lambda *_: None)
    t = cfg.train
    order = make_batches(
        tr.src_len, tr.tgt_len, t.batch_tokens, t.batch_sentences, t.seed, 0
    )
    batches = [tr._batch(order[i % len(order)]) for i in range(steps + 10)]
    for b in batches[:10]:
        tr._update([b], t.lr)
    start = time.perf_counter()
    for b in batches[10:]:
        tr._update([b], t.lr)
    return sum(b.n_tgt_tokens for b in batches[10:]) / (time.perf_counter() - start)


def translate_speed(model_dir, corpus, beam: int) -> tuple[float, float, float]:
    tr = Translator.load(model_dir, beam=beam, device="cpu")
    name, test = corpus.tests[0]
    src, ref = list(test["src"]), list(test["tgt"])
    tr.translate(src[:50])  # warm-up
    start = time.perf_counter()
    hyps = tr.translate(src)
    dt = time.perf_counter() - start
    n_tok = sum(len(x) for x in tr.tokenizer.encode_tgt(hyps))
    return len(src) / dt, n_tok / dt, bleu(hyps, ref)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("recipe")
    ap.add_argument("--set", dest="overrides", action="append")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--model", help="trained model directory for translation speed")
    a = ap.parse_args()
    cfg = load_config(a.recipe, a.overrides)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    corpus = prepare(cfg, log=lambda *_: None)
    model_dir = a.model or str(cfg.model_dir)
    print(
        f"# {cfg.name}: torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}"
    )
    if a.steps:
        tps = train_speed(cfg, corpus, a.steps)
        print(
            f"| {cfg.name} | train | {cfg.model.decoder.type} | "
            f"{cfg.train.batch_tokens} tok/batch | {tps:,.0f} tgt tok/s |"
        )
    try:
        Translator.load(model_dir, device="cpu")
    except Exception as e:  # no trained model: training speed only
        print(f"(no trained model in {model_dir}: {e})")
        return
    for beam in (1, 5, 10):
        sps, tps, b = translate_speed(model_dir, corpus, beam)
        kind = "greedy" if beam == 1 else f"beam {beam}"
        print(
            f"| {cfg.name} | translate | {kind} | {sps:,.1f} sent/s | {tps:,.0f} tok/s "
            f"| BLEU {b:.2f} |"
        )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {rss:,.0f} MiB")


if __name__ == "__main__":
    main()
