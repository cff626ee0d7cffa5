"""Pictures: the training curve (loss and validation BLEU against steps) and
attention heatmaps (source pieces x output pieces)."""

from __future__ import annotations

import json
from pathlib import Path


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, png_path: Path) -> None:
    """Atomically: a reader never sees half a PNG, a failure keeps the old one."""
    from nmt.files import output_file

    with output_file(png_path, mode="wb") as f:
        fig.savefig(f, dpi=100, format="png")
    plt.close(fig)


def plot_log(log_path: Path, png_path: Path, title: str = "") -> None:
    plt = _pyplot()
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
    _save(plt, fig, png_path)


def plot_attention(
    src: list[str], tgt: list[str], weights, png_path: Path, title: str = ""
) -> None:
    """weights [len(tgt), len(src)]: row t is where output piece t looked."""
    plt = _pyplot()
    w, h = max(4.0, 0.35 * len(src) + 1.5), max(3.0, 0.3 * len(tgt) + 1.5)
    fig, ax = plt.subplots(figsize=(w, h))
    im = ax.imshow(weights, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(src)), src, rotation=90, fontsize=8)
    ax.set_yticks(range(len(tgt)), tgt, fontsize=8)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    _save(plt, fig, png_path)


def plot_attention_maps(maps, folder: Path) -> None:
    """One heatmap PNG per (source pieces, output pieces, weights) in `maps`,
    numbered from 00000.png in `folder` (made if missing)."""
    from nmt.errors import NmtError

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise NmtError(f"--attention-plot {folder}: {e.strerror}") from None
    for i, (src, tgt, w) in enumerate(maps):
        plot_attention(src, tgt, w, folder / f"{i:05d}.png", f"line {i + 1}")
