"""The training-curve picture: training loss and validation BLEU against steps."""

from __future__ import annotations

import json
from pathlib import Path


def plot_log(log_path: Path, png_path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, valid = [], []
    for line in Path(log_path).read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        (train if rec["type"] == "train" else valid).append(rec)
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(
            [r["step"] for r in train],
            [r["loss"] for r in train],
            color="tab:blue",
            label="train loss",
        )
    if valid:
        ax.plot(
            [r["step"] for r in valid],
            [r["loss"] for r in valid],
            color="tab:cyan",
            marker="o",
            label="valid loss",
        )
    ax.set_xlabel("step")
    ax.set_ylabel("loss per token")
    if valid:
        ax2 = ax.twinx()
        ax2.plot(
            [r["step"] for r in valid],
            [r["bleu"] for r in valid],
            color="tab:red",
            marker="s",
            label="valid BLEU (greedy)",
        )
        ax2.set_ylabel("BLEU")
        ax2.legend(loc="lower right")
    ax.legend(loc="upper right")
    ax.set_title(title or png_path.parent.parent.name)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
