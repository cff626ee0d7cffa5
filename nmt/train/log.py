"""What a run reports: the progress bar, and `log.jsonl` in the model folder,
one JSON record per log interval (`train`) and per validation (`valid`), from
which the training curve is drawn at the end. Only rank 0 writes."""

from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

from nmt.errors import NmtError
from nmt.plot import plot_log
from nmt.train.state import TrainState


def progress_bar(total: int | None, initial: int, enabled: bool) -> tqdm:
    """The `train` progress bar on stderr, in steps (rank 0 only)."""
    return tqdm(
        total=total,
        initial=initial,
        desc="train",
        unit="step",
        dynamic_ncols=True,
        mininterval=1.0,
        disable=not enabled,
    )


class TrainLog:
    """The records of one run, in `directory / "log.jsonl"` (written where
    `enabled`, i.e. on rank 0)."""

    def __init__(self, directory: Path, enabled: bool):
        self.path, self.enabled = directory / "log.jsonl", enabled

    def write(self, record: dict) -> None:
        """Append one record; one line (NmtError) if the file cannot be written."""
        if self.enabled:
            try:
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(record) + "\n")
            except OSError as e:
                raise NmtError(f"cannot write {self.path}: {e.strerror}") from None

    def train(self, s: TrainState, loss: float, lr: float) -> dict:
        """Record `loss`, the mean over the updates since the last record."""
        record = {
            "type": "train",
            "step": s.step,
            "epoch": s.epoch + 1,
            "loss": loss,
            "lr": lr,
            "tok_s": round(s.tokens / s.elapsed),
            "skipped": s.skipped,  # updates skipped (non-finite loss)
            "elapsed": round(s.elapsed, 1),
        }
        self.write(record)
        return record

    def valid(self, s: TrainState, scores: dict) -> None:
        """Record the dev scores of a validation (nmt.train.validation)."""
        self.write(
            {
                "type": "valid",
                "step": s.step,
                "epoch": s.epoch + 1,
                **scores,
                "best_bleu": s.best_bleu,
                "elapsed": round(s.elapsed, 1),
            }
        )

    def plot(self, title: str) -> None:
        """`training_curve.png` beside the log."""
        if self.enabled:
            plot_log(self.path, self.path.parent / "training_curve.png", title)
