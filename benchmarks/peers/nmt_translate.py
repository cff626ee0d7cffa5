"""Translate a file with nmt's Translator and time the decoding alone.

    python nmt_translate.py MODEL_DIR BEAM SRC OUT THREADS [CHECKPOINT [PRECISION]]

Prints {"seconds": ...}: the time of Translator.translate over all lines, without
loading the model, as Joey NMT's "Generation took" and OpenNMT-py's -report_time do.
"""

import json
import sys
import time

import torch

from nmt.decode.translator import Translator

model, beam, src, out, threads, *rest = sys.argv[1:]
checkpoint, precision = (rest + ["best", "fp32"][len(rest) :])[:2]
torch.set_num_threads(int(threads))
tr = Translator.load(
    model, checkpoint=checkpoint, beam=int(beam), precision=precision, device="cpu"
)
with open(src, encoding="utf-8") as f:
    lines = f.read().split("\n")[:-1]
start = time.perf_counter()
hyps = tr.translate(lines)
seconds = time.perf_counter() - start
with open(out, "w", encoding="utf-8") as f:
    f.write("".join(h + "\n" for h in hyps))
print(json.dumps({"seconds": seconds}))
