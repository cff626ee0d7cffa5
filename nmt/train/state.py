"""What a training checkpoint (`last.pt`) holds, and resuming as loading it.

The counters are one `TrainState`; the checkpoint is one flat dict of them plus
`model`, `optimizer`, `schedule`, `scaler`, `rng`, `cuda_rng` and `config`. The
keys are those of every earlier `last.pt`, so older runs still resume. The data
position is two numbers (epoch, pos): the batch order of an epoch is a function of
the seed and the epoch (`nmt.data.batching.make_batches`), so resuming replays
exactly what an uninterrupted run would have done (bit for bit on CPU).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from nmt.checkpoint import (
    BEST,  # noqa: F401 (the loop names the best weights through this module)
    load_checkpoint,
    load_weights,
    save_checkpoint,
    save_numbered,
)
from nmt.config import Config
from nmt.errors import NmtError
from nmt.train.build import TrainParts
from nmt.workdir import check_resume


@dataclass
class TrainState:
    """The counters of a run, saved in every checkpoint."""

    step: int = 0  # updates done
    epoch: int = 0  # epochs done
    pos: int = 0  # batches done in this epoch
    best_bleu: float = -1.0  # best dev BLEU so far (-1: not validated yet)
    bad_evals: int = 0  # validations since BLEU last improved (early stopping)
    skipped: int = 0  # updates skipped for a non-finite loss
    elapsed: float = 0.0  # seconds of training, over all sessions of the run
    tokens: int = 0  # target tokens trained on (all ranks)

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The checkpoint keys the counters are saved under."""
        return tuple(f.name for f in fields(cls))

    def to_dict(self) -> dict:
        """The counters as the flat checkpoint keys."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainState:
        """The counters of a checkpoint dict (which may hold other keys too), each
        as the plain number its field holds; ValueError if one is not a number."""
        try:
            return cls(**{f.name: type(f.default)(d[f.name]) for f in fields(cls)})
        except (TypeError, ValueError, RuntimeError) as e:
            raise ValueError(f"a training counter is not a number ({e})") from None

    def summary(self, status: str, processes: int) -> dict:
        """What `Trainer.train()` returns: how the run ended and how it went."""
        return {
            "status": status,
            "steps": self.step,
            "epochs": self.epoch,
            "best_valid_bleu": round(self.best_bleu, 2),
            "skipped_updates": self.skipped,
            "train_minutes": round(self.elapsed / 60, 2),
            "tokens_per_second": round(self.tokens / max(self.elapsed, 1e-9)),
            "processes": processes,
        }


def checkpoint_dict(state: TrainState, parts: TrainParts, cfg: Config) -> dict:
    """Everything an exact resume needs, as one self-describing dict."""
    cuda = torch.cuda.get_rng_state_all() if parts.device.type == "cuda" else []
    return {
        "scaler": parts.scaler.state_dict(),
        "model": parts.model.state_dict(),
        "optimizer": parts.opt.state_dict(),
        "schedule": parts.schedule.state_dict(),
        "rng": torch.get_rng_state(),
        "cuda_rng": cuda,
        "config": cfg.to_dict(),
        **state.to_dict(),
    }


def save_last(
    directory: Path, state: TrainState, parts: TrainParts, cfg: Config, numbered: bool
) -> None:
    """`last.pt` (atomically), and with `numbered` also the weights alone as
    `step-NNNNNNNN.pt`, keeping the newest `train.keep_last` of those."""
    save_checkpoint(checkpoint_dict(state, parts, cfg), directory / "last.pt")
    if numbered:
        save_numbered(
            parts.model.state_dict(), cfg, state.step, directory, cfg.train.keep_last
        )


def save_best(
    path: Path, model: torch.nn.Module, step: int, scores: dict, cfg: Config
) -> None:
    """`best.safetensors`: the weights with the best dev BLEU so far, and their
    scores (in its metadata)."""
    save_checkpoint(
        {
            "model": model.state_dict(),
            "step": step,
            "valid": scores,
            "config": cfg.to_dict(),
        },
        path,
    )


def resume(path: Path, parts: TrainParts, cfg: Config) -> TrainState:
    """Load `path` (a `last.pt`) into `parts` and the RNGs; its counters. Checks
    first that the recipe's data, tokenizer and model settings are the ones it
    was made with. Reads only; one line (NmtError) for any checkpoint that does
    not fit."""
    if not path.exists():
        raise NmtError(f"cannot resume: {path} does not exist (train without --resume)")
    ck = load_checkpoint(
        path, parts.device, needs=("model", "optimizer", "schedule", "config")
    )
    check_resume(cfg, ck["config"], path)
    missing = [k for k in (*TrainState.keys(), "rng", "cuda_rng") if k not in ck]
    if missing:
        raise NmtError(
            f"cannot resume from {path}: it holds weights but no training "
            f"state ({', '.join(missing[:3])}); train without --resume"
        )
    try:
        state = TrainState.from_dict(ck)
    except ValueError as e:
        raise NmtError(f"cannot resume from {path}: {e}") from None
    load_weights(parts.model, ck["model"], path)
    try:
        parts.opt.load_state_dict(ck["optimizer"])
        parts.schedule.load_state_dict(ck["schedule"])
    except (ValueError, KeyError, TypeError) as e:
        raise NmtError(
            f"cannot resume from {path}: its optimizer state does not fit "
            f"train.optimizer={cfg.train.optimizer} ({e})"
        ) from None
    if ck.get("scaler"):
        parts.scaler.load_state_dict(ck["scaler"])
    torch.set_rng_state(ck["rng"].cpu())
    if ck["cuda_rng"] and parts.device.type == "cuda":
        torch.cuda.set_rng_state_all([s.cpu() for s in ck["cuda_rng"]])
    return state
