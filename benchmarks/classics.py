"""The classic results of RNN translation, reproduced on Multi30k de-en at an equal
number of updates, each next to the figure its paper reports.

    python benchmarks/classics.py [--steps 800] [--workdir /tmp/nmt_classics]
        [--only base reversed ...]

Trains one model a row with `nmt run recipes/multi30k_de_en.yaml --set
data.source=files --set train.max_steps=STEPS ...` from the card's model (GRU
decoder, source not reversed, no attention; same seed, same batches; one change a
row), then scores test2016 (cased, detokenized sacreBLEU, the recipe's
beam of 5 unless the row says otherwise). Beam against greedy, checkpoint
averaging and the ensemble reuse the trained models. A row whose results.json
exists is not trained again, so a killed benchmark continues where it stopped.
Writes WORKDIR/classics.md and classics.json. Needs a quiet machine: 11-18
minutes a row at 800 updates, 1 h 44 min in all, on a 2-core AMX Xeon.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
from pathlib import Path

import torch

from nmt.checkpoint import average
from nmt.decode.translator import Translator
from nmt.metrics import score

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "multi30k_de_en.yaml"
DATA = ROOT.parent / "shared" / "data" / "multi30k"

# name: (what changes, --set items)
ROWS = {
    "base": ("the card's model: GRU decoder fed c at every step (Cho)", []),
    "reversed": ("source reversed (Sutskever)", ["data.reverse_source=true"]),
    "untied": ("the base model, output layer not tied to the embeddings",
               ["model.tie_embeddings=false"]),
    # Sutskever's readout is the decoder's 512 units: too wide to tie to 256
    "init_only": ("c as the decoder's initial state only (Sutskever), untied",
                  ["model.decoder.conditioning=sutskever",
                   "model.tie_embeddings=false"]),
    "lstm": ("LSTM decoder", ["model.decoder.type=lstm"]),
    "luong": ("Luong general attention", ["model.attention=luong"]),
    "bahdanau": ("Bahdanau attention", ["model.attention=bahdanau"]),
    "seed2": ("the base model, seed 2 (for the ensemble)", ["train.seed=2"]),
}  # fmt: skip

# effect: (row a, row b, what the paper reports for a -> b)
EFFECTS = [
    ("source reversal", "base", "reversed",
     "Sutskever et al. 2014, Table 1 (WMT'14 en-fr, beam 12): 26.17 -> 30.59 (+4.42)"),
    ("c at every step against the initial state only (untied)", "init_only",
     "untied", "Cho et al. 2014 report no such comparison"),
    ("tied against untied output layer", "untied", "base",
     "Press and Wolf 2017: tying lowers language-model perplexity"),
    ("GRU against LSTM decoder", "lstm", "base",
     "no translation figure in Cho et al. 2014 or Chung et al. 2014"),
    ("Luong attention against none", "base", "luong",
     "Luong et al. 2015 (WMT'14 en-de): up to +5.0 (local attention, abstract)"),
    ("Bahdanau attention against none", "base", "bahdanau",
     "Bahdanau et al. 2015 (WMT'14 en-fr): RNNencdec-50 17.82 -> RNNsearch-50 26.75"),
    ("Bahdanau against Luong attention", "luong", "bahdanau", "-"),
    ("beam 5 against greedy", "base greedy", "base",
     "Sutskever et al. 2014, Table 1 (5 LSTMs): beam 1 33.00 -> beam 12 34.81"),
    ("averaging the last 5 checkpoints (every 100 updates)", "base",
     "base averaged", "-"),
    ("an ensemble of two", "base", "ensemble base + seed2",
     "Sutskever et al. 2014, Table 1: 1 LSTM 30.59 -> 2 LSTMs 33.27 (beam 12)"),
]  # fmt: skip


def lines(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return f.read().splitlines()


def train(name: str, sets: list[str], steps: int, work: Path) -> dict:
    out = work / name
    done = out / "results.json"
    if not done.is_file():
        cmd = [sys.executable, "-m", "nmt", "run", str(RECIPE)]
        fixed = [
            "data.source=files",
            f"train.max_steps={steps}",
            "train.max_epochs=0",
            "train.average=0",
            "decode.tune_length_penalty=[]",
            "data.reverse_source=false",  # the card's model, whatever the recipe
            "model.decoder.type=gru",
            "train.save_every=100",  # numbered checkpoints for the averaging row
            f"workdir={out}",
        ]
        for s in fixed + sets:
            cmd += ["--set", s]
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    return json.loads(done.read_text())


def bleu(model, src: list[str], ref: list[str], **kw) -> float:
    hyps = Translator.load(model, device="cpu", **kw).translate(src)
    return score(hyps, [ref])["bleu"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/nmt_classics"))
    ap.add_argument("--only", nargs="+", choices=list(ROWS), default=list(ROWS))
    a = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"classics.py needs the Multi30k files in {DATA}")
    torch.set_num_threads(2)
    src = lines(DATA / "test2016.de.gz")
    ref = lines(DATA / "test2016.en.gz")
    got: dict[str, float] = {}
    runs = {}
    for name in a.only:
        runs[name] = train(name, ROWS[name][1], a.steps, a.workdir)
        got[name] = runs[name]["tests"][0]["bleu"]
    if "base" in runs:
        model = a.workdir / "base" / "model"
        got["base greedy"] = bleu(model, src, ref, beam=1)
        average(model, 5, "classics-average.safetensors")
        got["base averaged"] = bleu(model, src, ref, checkpoint="classics-average")
    if {"base", "seed2"} <= set(runs):
        pair = [str(a.workdir / n / "model") for n in ("base", "seed2")]
        got["ensemble base + seed2"] = bleu(pair, src, ref)
    rows = [
        "| effect | a -> b | test2016 BLEU | change | the paper |",
        "|---|---|---|---|---|",
    ]
    for effect, x, y, paper in EFFECTS:
        if x in got and y in got:
            rows.append(
                f"| {effect} | {x} -> {y} | {got[x]:.2f} -> {got[y]:.2f} | "
                f"{got[y] - got[x]:+.2f} | {paper} |"
            )
    speed = {n: r["train"].get("tokens_per_second") for n, r in runs.items()}
    table = "\n".join(rows)
    a.workdir.mkdir(parents=True, exist_ok=True)
    (a.workdir / "classics.md").write_text(table + "\n")
    blob = {"steps": a.steps, "bleu": got, "train_tok_s": speed}
    (a.workdir / "classics.json").write_text(json.dumps(blob, indent=1) + "\n")
    print(table)


if __name__ == "__main__":
    main()
