"""Beam search time against greedy time, with repeats (single timings are noisy).

    python benchmarks/beam_ratio.py MODEL_DIR SOURCE_FILE [--beam 5] [--repeats 5]
        [--threads 2] [--checkpoint best] [--stop exact|early]
        [--precision fp32|bf16]

Loads the model once, translates the whole file greedily and with the beam in turn,
`--repeats` times each, and prints the median times, sentences/s and their ratio.
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import time

import torch

from nmt.decode.translator import Translator


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("source", help="source file, plain or .gz")
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--checkpoint", default="best", help="file in MODEL_DIR")
    ap.add_argument("--stop", choices=["exact", "early"], help="beam search's rule")
    ap.add_argument("--precision", choices=["fp32", "bf16"], help="decode.precision")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    tr = Translator.load(
        a.model_dir,
        checkpoint=a.checkpoint,
        stop=a.stop,
        precision=a.precision,
        device="cpu",
    )
    opener = gzip.open if a.source.endswith(".gz") else open
    with opener(a.source, "rt", encoding="utf-8") as f:
        src = [line.rstrip("\n") for line in f]
    tr.translate(src[:50])  # warm-up
    times: dict[int, list[float]] = {1: [], a.beam: []}
    for _ in range(a.repeats):
        for beam in times:
            tr.config.decode.beam = beam
            start = time.perf_counter()
            tr.translate(src)
            times[beam].append(time.perf_counter() - start)
    g, b = statistics.median(times[1]), statistics.median(times[a.beam])
    for name, beam, med in (("greedy", 1, g), (f"beam {a.beam}", a.beam, b)):
        runs = ", ".join(f"{t:.2f}" for t in times[beam])
        print(f"{name:<8} {med:.2f} s ({len(src) / med:.1f} sent/s)  runs: {runs}")
    print(f"beam {a.beam} / greedy = {b / g:.2f}")


if __name__ == "__main__":
    main()
