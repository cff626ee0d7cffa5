"""The training loop: updates (gradient accumulation, clipping, skipping
non-finite losses), logging, validation, early stopping, atomic checkpoints,
exact resume and stop signals.

What the loop works on is built in `nmt.train.build`; what a checkpoint holds is
`nmt.train.state`. Constructing a Trainer reads (a resumed run's `last.pt`) but
writes nothing: `_open_run` is the one place a run starts writing, under the
workdir lock.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable
from contextlib import nullcontext

import numpy as np
import torch
from tqdm import tqdm

from nmt.config import Config
from nmt.data.batching import make_batches
from nmt.data.corpus import Corpus, cache_key
from nmt.data.rows import IdRows
from nmt.errors import NmtError, StopRequested
from nmt.model.batch import Batch, collate
from nmt.train.build import build
from nmt.train.distributed import backward
from nmt.train.log import TrainLog, progress_bar
from nmt.train.state import BEST, TrainState, save_best, save_last
from nmt.train.state import resume as load_resume
from nmt.train.validation import dev_scores
from nmt.workdir import (
    check_resume_files,
    keep_aside,
    locked,
    remove_stale_temporaries,
    start_model_dir,
)

MAX_BAD_STEPS = 20  # consecutive non-finite losses before training gives up


class Trainer:
    """Trains `cfg`'s model on `corpus` (`.train()`); with `resume`, from the
    model folder's `last.pt`. `log` gets one line per event (rank 0 only)."""

    def __init__(
        self,
        cfg: Config,
        corpus: Corpus,
        resume: bool = False,
        log: Callable[[str], None] = print,
    ):
        self.cfg, self.corpus, self.resuming = cfg, corpus, resume
        self.parts = parts = build(cfg, corpus)
        # the loop's names for the parts (one attribute look-up in the hot loop)
        self.dist, self.device = parts.dist, parts.device
        self.model, self.net, self.opt = parts.model, parts.net, parts.opt
        self.schedule, self.scaler = parts.schedule, parts.scaler
        self._autocast = parts.precision.autocast
        self.log = log if self.dist.main else (lambda *_: None)
        self.dir = cfg.model_dir
        self.records = TrainLog(self.dir, self.dist.main, cfg)
        self._norms: list[torch.Tensor] = []  # gradient norms since the last record
        train = corpus.splits["train"]
        self.src_len: np.ndarray = train.data.column("src_len").to_numpy()
        self.tgt_len: np.ndarray = train.data.column("tgt_len").to_numpy()
        self._rows = IdRows(train)  # id rows read from the memory map
        self._batches: tuple[int, list[np.ndarray]] = (-1, [])
        self.state = TrainState()
        self.bad_steps = 0  # non-finite losses in a row (not saved: resets on resume)
        self._stop_signal: int | None = None
        if resume:  # reads last.pt and checks it; writes nothing
            path = self.dir / "last.pt"
            self.state = s = load_resume(path, parts, cfg)
            self.log(
                f"resumed from {path} at step {s.step} (epoch {s.epoch + 1}, "
                f"batch {s.pos})"
            )

    # ------------------------------------------------------------ files

    def _open_run(self) -> None:
        """The one place where training starts writing to the model folder, under
        the workdir lock: a fresh run first moves an earlier run aside (never
        deletes it); a resumed one checks that its tokenizer and data are the
        run's own before anything is written."""
        tok, train = self.corpus.tokenizer, self.corpus.splits["train"]
        if self.resuming:  # on every rank: none may go on alone
            check_resume_files(self.cfg, tok, len(train))
        if not self.dist.main:
            return
        if not self.resuming:
            keep_aside(self.cfg, self.log)
        removed = remove_stale_temporaries(self.dir) if self.dir.is_dir() else []
        if removed:
            self.log(f"removed {len(removed)} temporary files of killed writes")
        if self.resuming:  # the model folder's tokenizer was checked above
            return
        start_model_dir(self.cfg, tok, train, cache_key(self.cfg))

    def _checkpoint(self, numbered: bool = True) -> None:
        if self.dist.main:
            save_last(self.dir, self.state, self.parts, self.cfg, numbered)

    # ------------------------------------------------------------ one update

    def _batch(self, idx: np.ndarray) -> Batch:
        """The batch of training rows `idx` (this rank's share), on the device."""
        mine, rows = self.dist.share(idx), self._rows
        src, tgt = rows.lists(mine, "src_ids"), rows.lists(mine, "tgt_ids")
        b = collate(src, tgt, self.cfg.data.reverse_source)
        return b.to(self.device)

    def _update(self, batches: list[Batch], lr: float) -> float | None:
        """One optimizer step over `batches` (accumulated); mean token loss or None."""
        for g in self.opt.param_groups:
            g["lr"] = lr
        self.opt.zero_grad(set_to_none=True)
        mean, n_global = backward(self.parts, batches, self.cfg.train.label_smoothing)
        if not math.isfinite(mean):
            self.state.skipped += 1
            self.bad_steps += 1
            if self.bad_steps >= MAX_BAD_STEPS:
                self._checkpoint(numbered=False)
                raise NmtError(
                    f"{MAX_BAD_STEPS} non-finite losses in a row at step "
                    f"{self.state.step}; lower train.lr (last.pt was kept)"
                )
            return None
        self.bad_steps = 0
        self.scaler.unscale_(self.opt)
        if self.cfg.train.clip_norm > 0:
            norm = torch.nn.utils.clip_grad_norm_(
                self.model.parameters(), self.cfg.train.clip_norm
            )
            self._norms.append(norm)  # a tensor: no device sync until it is logged
        self.scaler.step(self.opt)  # skips the step if fp16 gradients overflowed
        self.scaler.update()
        self.state.tokens += int(n_global)
        return mean

    # ------------------------------------------------------------ validation

    def validate(self) -> dict:
        """Dev loss, perplexity and greedy BLEU of the model now."""
        return dev_scores(
            self.model, self.corpus, self.cfg, self.device, self._autocast
        )

    def _on_validation(self, bar: tqdm) -> bool:
        """Validate on rank 0, share its BLEU, checkpoint. True: stop early."""
        s = self.state
        v = self.validate() if self.dist.main else {"bleu": 0.0}
        score = self.dist.sum(v["bleu"])  # every rank takes the same decisions
        improved = score > s.best_bleu
        s.best_bleu = max(s.best_bleu, score)
        s.bad_evals = 0 if improved else s.bad_evals + 1
        # the rate follows dev loss (smooth from the first step); stopping follows BLEU
        cut = self.schedule.on_validation(-self.dist.sum(v.get("loss", 0.0)))
        if self.dist.main:
            self.records.valid(s, v)
            bar.write(
                f"valid step {s.step}: loss {v['loss']:.3f} ppl {v['ppl']:.2f} "
                f"BLEU {v['bleu']:.2f}{' (best)' if improved else ''}"
                f"{' lr cut' if cut else ''}"
            )
            if improved:
                save_best(self.dir / BEST, self.model, s.step, v, self.cfg)
        self._checkpoint()
        patience = self.cfg.train.patience
        return bool(patience and s.bad_evals >= patience)

    # ------------------------------------------------------------ loop

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stop_signal = signum

    def _out_of_budget(self) -> bool:
        t, s = self.cfg.train, self.state
        over = bool(
            (t.max_steps and s.step >= t.max_steps)
            or (t.max_minutes and s.elapsed >= 60 * t.max_minutes)
        )
        return self.dist.any(over) if t.max_minutes else over

    def train(self) -> dict:
        """Train until a budget, early stopping or a signal ends it; the summary.
        SIGINT/SIGTERM save `last.pt` and raise StopRequested."""
        handlers = (signal.SIGINT, signal.SIGTERM)
        old = {s: signal.signal(s, self._on_signal) for s in handlers}
        try:
            with locked(self.cfg.workdir) if self.dist.main else nullcontext():
                self._open_run()
                status = self._loop()
        finally:
            self.records.close()
            for s, h in old.items():
                signal.signal(s, h)
        self.records.plot(self.cfg.name)
        summary = self.state.summary(status, self.dist.world)
        self.log(
            f"training {status}: {summary['steps']} steps, {summary['epochs']} "
            f"epochs, {summary['train_minutes']} min, {summary['tokens_per_second']} "
            f"target tokens/s, best valid BLEU {summary['best_valid_bleu']}"
        )
        # No rank may destroy its process group while another still works: rank 1
        # leaving while rank 0 plotted once ended in "terminate called without an
        # active exception" (SIGABRT) under gloo.
        self.dist.barrier()
        return summary

    def _epoch_batches(self) -> list[np.ndarray]:
        """The epoch's batches (row indices), in an order set by seed and epoch
        (built once per epoch: seconds at millions of pairs)."""
        t, epoch = self.cfg.train, self.state.epoch
        if self._batches[0] != epoch:
            sizes = (t.batch_tokens, t.batch_sentences)
            order = make_batches(self.src_len, self.tgt_len, *sizes, t.seed, epoch)
            self._batches = (epoch, order)
        return self._batches[1]

    def _loop(self) -> str:
        t = self.cfg.train
        per_epoch = math.ceil(len(self._epoch_batches()) / t.accumulate)
        total = t.max_steps or (t.max_epochs * per_epoch) or None
        bar = progress_bar(total, self.state.step, self.dist.main)
        try:
            return self._epochs(bar)
        finally:
            bar.close()  # before any error line, which must start a line of its own

    def _epochs(self, bar: tqdm) -> str:
        t, s = self.cfg.train, self.state
        if self.dist.enabled:
            self.log(
                f"{self.dist.world} processes, effective batch {t.batch_tokens} "
                f"tokens x {t.accumulate} accumulated"
            )
        start, win_loss, win_n = time.time() - s.elapsed, 0.0, 0
        validated_at, status = s.step, "finished"
        while not self._out_of_budget() and (
            not t.max_epochs or s.epoch < t.max_epochs
        ):
            batches = self._epoch_batches()
            while s.pos < len(batches) and status == "finished":
                group = batches[s.pos : s.pos + t.accumulate]
                lr = self.schedule.lr(s.step + 1, s.epoch + s.pos / len(batches))
                loss = self._update([self._batch(i) for i in group], lr)
                s.pos += len(group)
                s.step += 1
                s.elapsed = time.time() - start
                bar.update(1)
                if loss is not None:
                    win_loss, win_n = win_loss + loss, win_n + 1
                if s.step % t.log_every == 0 and win_n:
                    rec = self.records.train(s, win_loss / win_n, lr, self._norms)
                    bar.set_postfix(
                        loss=f"{rec['loss']:.3f}", tok_s=rec["tok_s"], lr=f"{lr:.1e}"
                    )
                    win_loss, win_n, self._norms = 0.0, 0, []
                if s.step % t.valid_every == 0:
                    validated_at = s.step
                    if self._on_validation(bar):
                        status = "stopped early"
                elif t.save_every and s.step % t.save_every == 0:
                    self._checkpoint()
                if self.dist.any(self._stop_signal is not None):
                    # a signal on any rank stops every rank at the same step
                    self._stop_signal = self._stop_signal or signal.SIGTERM
                    break
                if self._out_of_budget():
                    break
            if s.pos >= len(batches):
                s.epoch, s.pos = s.epoch + 1, 0
                self._checkpoint()
            if status != "finished" or self._stop_signal is not None:
                break
        if self._stop_signal is not None:
            self._stop(bar)
        if validated_at != s.step or not (self.dir / BEST).exists():
            self._on_validation(bar)
        self._checkpoint(numbered=False)
        bar.close()
        return status

    def _stop(self, bar: tqdm) -> None:
        """Save `last.pt` after a stop signal and raise StopRequested."""
        self._checkpoint(numbered=False)
        bar.close()
        name = signal.Signals(self._stop_signal).name
        self.log(
            f"{name}: saved {self.dir / 'last.pt'} at step {self.state.step}; "
            "continue with --resume"
        )
        raise StopRequested(name, str(self.dir / "last.pt"))
