"""What a run reports: the progress bar, and `log.jsonl` in the model folder,
one JSON record per log interval (`train`) and per validation (`valid`), from
which the training curve is drawn at the end; with `train.tensorboard`, the same
numbers as TensorBoard scalars in `<model>/tensorboard/`. Only rank 0 writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm import tqdm

from nmt.errors import NmtError
from nmt.plot import plot_log
from nmt.train.state import TrainState

if TYPE_CHECKING:
    from nmt.config import Config


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


def flat(d: dict, prefix: str = "") -> dict[str, Any]:
    """{"train.lr": 0.001, ...}: a nested mapping by key path."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


class TrainLog:
    """The records of one run, in `directory / "log.jsonl"` (written where
    `enabled`, i.e. on rank 0). Where the run's `cfg` has `train.tensorboard`,
    every numeric field of a record is also a TensorBoard scalar `<type>/<field>`
    at its step, in `directory / "tensorboard"`, made at the first record (so
    constructing writes nothing, and a fresh run's earlier folder is aside)."""

    def __init__(self, directory: Path, enabled: bool, cfg: Config | None = None):
        self.path, self.enabled = directory / "log.jsonl", enabled
        board = enabled and cfg is not None and cfg.train.tensorboard
        self._board_cfg = cfg if board else None
        self._writer: Any = None  # a SummaryWriter, once the first record is made

    def write(self, record: dict) -> None:
        """Append one record; one line (NmtError) if the file cannot be written."""
        if self.enabled:
            try:
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(record) + "\n")
            except OSError as e:
                raise NmtError(f"cannot write {self.path}: {e.strerror}") from None
        if self._board_cfg is not None:
            w = self._board()
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)) and type(v) is not bool:
                    w.add_scalar(f"{record['type']}/{k}", v, record["step"])

    def _board(self) -> Any:
        """The SummaryWriter, made (with the resolved recipe) at the first call."""
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter
            from torch.utils.tensorboard.summary import hparams

            folder = self.path.parent / "tensorboard"
            try:
                self._writer = w = SummaryWriter(str(folder))
            except OSError as e:
                raise NmtError(f"cannot write {folder}: {e.strerror}") from None
            keys = flat(self._board_cfg.to_dict())
            table = "\n".join(f"    {k}: {json.dumps(v)}" for k, v in keys.items())
            w.add_text("config", table)  # indented: shown as it is, one key a line
            values = {
                k: v if isinstance(v, (bool, int, float, str)) else json.dumps(v)
                for k, v in keys.items()
            }
            metrics = ["valid/bleu", "valid/loss", "valid/ppl"]
            for summary in hparams(values, dict.fromkeys(metrics, 0.0)):
                w.file_writer.add_summary(summary)  # HParams tab of this same run
        return self._writer

    def close(self) -> None:
        """Flush and close the TensorBoard writer (if one was made)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def train(
        self, s: TrainState, loss: float, lr: float, norms: list[torch.Tensor]
    ) -> dict:
        """Record `loss`, the mean over the updates since the last record, and
        the mean of their gradient norms before clipping (`norms`, as
        `clip_grad_norm_` returned them: read here, not in the hot loop; an fp16
        overflow's inf is left out; none without clipping)."""
        grad_norm = None
        if norms:
            n = torch.stack(norms).double()
            n = n[n.isfinite()]
            grad_norm = round(n.mean().item(), 4) if len(n) else None
        record = {
            "type": "train",
            "step": s.step,
            "epoch": s.epoch + 1,
            "loss": round(loss, 4),
            "lr": lr,
            "tok_s": round(s.tokens / s.elapsed),
            "skipped": s.skipped,  # updates skipped (non-finite loss)
            "elapsed": round(s.elapsed, 1),
        }
        if grad_norm is not None:
            record["grad_norm"] = grad_norm  # before clipping
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
        if self._writer is not None:
            self._writer.flush()

    def plot(self, title: str) -> None:
        """`training_curve.png` beside the log."""
        if self.enabled:
            plot_log(self.path, self.path.parent / "training_curve.png", title)
