"""Does a model read its source? Cross-entropy with the true sources and with the
sources shuffled among the sentences, and how much the decoder's initial state
varies between sentences.

    python benchmarks/source_use.py MODEL_DIR SRC TGT [--checkpoint best]
        [--sentences N] [--threads 2]

SRC and TGT are raw text, a sentence per line (.gz read too). Prints one JSON line:
nats per target piece with the true and the shuffled sources (a model that ignores
its source scores both the same), and mean |h_0| with its standard deviation across
sentences (near 1 and near 0: a saturated bridge that starts every sentence alike).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import random
from pathlib import Path

import torch

from nmt.decode.scoring import corpus_perplexity, score_pairs
from nmt.decode.translator import Translator
from nmt.model.batch import source_tensor


def read(path: Path, n: int) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for _, line in zip(range(n), f)]


def nats(tr: Translator, src: list[str], tgt: list[str]) -> float:
    return math.log(corpus_perplexity(score_pairs(tr, src, tgt)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("src", type=Path)
    ap.add_argument("tgt", type=Path)
    ap.add_argument("--checkpoint", default="best")
    ap.add_argument("--sentences", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    tr = Translator.load(a.model_dir, a.checkpoint, device="cpu")
    src, tgt = read(a.src, a.sentences), read(a.tgt, a.sentences)
    shuffled = list(src)
    random.Random(0).shuffle(shuffled)
    ids = tr.tokenizer.encode_src(src[:200])
    with torch.no_grad():
        state = tr.model.encode(*source_tensor(ids, tr.config.data.reverse_source))
    h = state.hidden.float()  # [layers, sentences, hidden]
    print(
        json.dumps(
            {
                "checkpoint": str(a.model_dir / a.checkpoint),
                "sentences": len(src),
                "nats_true_source": round(nats(tr, src, tgt), 4),
                "nats_shuffled_source": round(nats(tr, shuffled, tgt), 4),
                "mean_abs_h0": round(h.abs().mean().item(), 4),
                "h0_std_across_sentences": round(h.std(dim=1).mean().item(), 4),
            }
        )
    )


if __name__ == "__main__":
    main()
