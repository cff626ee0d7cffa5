"""A BENCHMARKS.md table from finished `nmt run` work directories.

    python benchmarks/runs_table.py LABEL=WORKDIR [LABEL=WORKDIR ...]

One row per run: updates, epochs, training minutes, target tokens/s, best dev BLEU
(greedy) and the BLEU/chrF of every test set, all read from `results.json`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", metavar="LABEL=WORKDIR")
    a = ap.parse_args()
    rows, tests = [], []
    for spec in a.runs:
        label, _, workdir = spec.partition("=")
        res = json.loads((Path(workdir) / "results.json").read_text(encoding="utf-8"))
        rows.append((label, res))
        for t in res["tests"]:
            if t["name"] not in tests:
                tests.append(t["name"])
    head = ["run", "updates", "epochs", "train min", "tgt tok/s", "dev BLEU"]
    head += [f"{t} BLEU / chrF" for t in tests]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for label, res in rows:
        tr = res["train"]
        by_name = {t["name"]: t for t in res["tests"]}
        cells = [
            label,
            str(tr["steps"]),
            str(tr["epochs"]),
            f"{tr['train_minutes']:.1f}",
            f"{tr['tokens_per_second']:,}",
            f"{tr['best_valid_bleu']:.2f}",
        ]
        for name in tests:
            t = by_name.get(name)
            cells.append(f"{t['bleu']:.2f} / {t['chrf']:.2f}" if t else "")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
