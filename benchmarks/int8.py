"""float32 against int8 decoding, with and without the vocabulary shortlist: the
sentences/s and BLEU of each, greedy and beam, on one test set.

    python benchmarks/int8.py MODEL_DIR SRC REF [--shortlist 50] [--repeats 3]
        [--threads 2] [--beams 1 5]

Loads each variant once, then translates the whole file `--repeats` times per
beam, the variants interleaved within each repeat so that a slow moment of the
machine hits them all; reports the median time. Prints a markdown table with the
CPU's name. Needs a quiet machine.
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import subprocess
import time

import torch

from nmt.decode.translator import Translator
from nmt.metrics import score


def _lines(path: str) -> list[str]:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return f.read().splitlines()


def cpu_name() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    name = next((x.split(":", 1)[1].strip() for x in out.splitlines()
                 if x.startswith("Model name")), "unknown CPU")  # fmt: skip
    flags = [f for f in ("avx512_vnni", "avx512_bf16", "amx_int8") if f in out]
    return f"{name} ({', '.join(flags) or 'AVX2'})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("src")
    ap.add_argument("ref")
    ap.add_argument("--shortlist", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--beams", type=int, nargs="+", default=[1, 5])
    ap.add_argument("--batch-rows", type=int, default=None,
                    help="decode.batch_rows for every variant (default: the model's)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    src, ref = _lines(a.src), _lines(a.ref)
    variants = {
        "fp32": {},
        "int8": {"precision": "int8"},
        f"int8 + shortlist {a.shortlist}": {"precision": "int8",
                                            "shortlist": a.shortlist},
        f"fp32 + shortlist {a.shortlist}": {"shortlist": a.shortlist},
    }  # fmt: skip
    loaded = {name: Translator.load(a.model_dir, device="cpu",
                                    batch_rows=a.batch_rows, **kw)
              for name, kw in variants.items()}  # fmt: skip
    rows = []
    for beam in a.beams:
        times: dict[str, list[float]] = {name: [] for name in loaded}
        bleu: dict[str, float] = {}
        for tr in loaded.values():
            tr.config.decode.beam = beam
            tr.translate(src[:20])  # warm up
        for _ in range(a.repeats):
            for name, tr in loaded.items():
                t = time.perf_counter()
                hyps = tr.translate(src)
                times[name].append(time.perf_counter() - t)
                bleu[name] = score(hyps, [ref])["bleu"]
        base = statistics.median(times["fp32"])
        for name in loaded:
            t, b = statistics.median(times[name]), bleu[name]
            gain = b - bleu["fp32"]
            rows.append(f"| {name} | {beam} | {len(src) / t:.1f} | {base / t:.2f}x "
                        f"| {b:.2f} | {gain:+.2f} |")  # fmt: skip
    print(f"{a.model_dir}, {len(src)} sentences, {a.threads} threads, {cpu_name()}")
    print("\n| decoding | beam | sent/s | vs fp32 | BLEU | vs fp32 |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
