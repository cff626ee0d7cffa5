"""Learning-rate schedules: constant, reduce-on-plateau (of dev loss), Sutskever's
halving every half epoch, warmup.

`train.warmup_steps` adds a linear warmup in front of any schedule. The state that
a schedule accumulates (plateau decays) is saved in checkpoints.
"""

from __future__ import annotations

import math

from nmt.config import TrainConfig


class Schedule:
    """The learning rate of each update, from `train.*` and what validations
    reported so far."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.decays = 0  # plateau: how many times the rate was cut
        self.bad_evals = 0
        self.best = -math.inf

    def lr(self, step: int, epoch: float) -> float:
        """Rate for update number `step` (1-based) at fractional epoch `epoch`."""
        c = self.cfg
        lr = c.lr
        if c.schedule == "plateau":
            lr *= c.decay_factor**self.decays
        elif c.schedule == "sutskever" and epoch >= c.decay_start_epoch:
            halvings = int((epoch - c.decay_start_epoch) / 0.5) + 1
            lr *= c.decay_factor**halvings
        elif c.schedule == "warmup" and c.warmup_steps:
            lr *= min(1.0, math.sqrt(c.warmup_steps / max(step, 1)))
        if c.schedule != "constant":
            lr = max(lr, c.min_lr)
        if c.warmup_steps and step < c.warmup_steps:
            lr *= step / c.warmup_steps
        return lr

    def on_validation(self, metric: float) -> bool:
        """Record a dev score (higher is better); True if the rate was cut."""
        if metric > self.best:
            self.best, self.bad_evals = metric, 0
            return False
        self.bad_evals += 1
        if (
            self.cfg.schedule == "plateau"
            and self.bad_evals > self.cfg.plateau_patience
        ):
            self.decays += 1
            self.bad_evals = 0
            return True
        return False

    def state_dict(self) -> dict:
        return {"decays": self.decays, "bad_evals": self.bad_evals, "best": self.best}

    def load_state_dict(self, d: dict) -> None:
        self.decays, self.bad_evals, self.best = d["decays"], d["bad_evals"], d["best"]
