"""BLEU by source length (in words) on a recipe's first test set.

    python benchmarks/by_length.py recipes/toy.yaml [--model runs/toy/model] [--beam 5]

Prints a Markdown table: length bucket, sentences, BLEU, exact matches.
"""

from __future__ import annotations

import argparse

from nmt.config import load_config
from nmt.data.corpus import prepare
from nmt.decode.translator import Translator
from nmt.metrics import bleu

BUCKETS = [(1, 6), (7, 9), (10, 13), (14, 1000)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("recipe")
    ap.add_argument("--set", dest="overrides", action="append")
    ap.add_argument("--model")
    ap.add_argument("--beam", type=int, default=5)
    a = ap.parse_args()
    cfg = load_config(a.recipe, a.overrides)
    name, test = prepare(cfg, log=lambda *_: None).tests[0]
    src, ref = list(test["src"]), list(test["tgt"])
    hyp = Translator.load(a.model or cfg.model_dir, beam=a.beam).translate(src)
    print(f"{name}, beam {a.beam}\n")
    print("| source words | sentences | BLEU | exact |")
    print("|---|---|---|---|")
    for lo, hi in BUCKETS:
        rows = [i for i, s in enumerate(src) if lo <= len(s.split()) <= hi]
        if not rows:
            continue
        h, r = [hyp[i] for i in rows], [ref[i] for i in rows]
        exact = sum(x == y for x, y in zip(h, r)) / len(rows)
        label = f"{lo}-{hi}" if hi < 1000 else f"{lo}+"
        print(f"| {label} | {len(rows)} | {bleu(h, r):.1f} | {100 * exact:.0f}% |")
    print(
        f"| all | {len(src)} | {bleu(hyp, ref):.1f} | "
        f"{100 * sum(x == y for x, y in zip(hyp, ref)) / len(src):.0f}% |"
    )


if __name__ == "__main__":
    main()
