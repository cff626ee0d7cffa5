"""Training: token batches, clipping, schedules, validation BLEU, early stopping,
atomic checkpoints, exact resume, and data parallelism under torchrun.

`last.pt` holds the model, optimizer, schedule, step, epoch, the position inside
the epoch's batch order and the RNG states, so resuming replays exactly what an
uninterrupted run would have done (bit for bit on CPU).
"""

from __future__ import annotations

import json
import math
import signal
import time
from contextlib import nullcontext

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from nmt.checkpoint import (
    load_checkpoint,
    load_weights,
    save_checkpoint,
    save_numbered,
)
from nmt.config import Config
from nmt.data.batching import make_batches
from nmt.data.corpus import Corpus, cache_key
from nmt.errors import NmtError, StopRequested
from nmt.files import write_text
from nmt.hardware import pick_device, require_native_bf16
from nmt.model.batch import Batch, collate
from nmt.model.seq2seq import build_model
from nmt.plot import plot_log
from nmt.train.distributed import setup
from nmt.train.schedule import Schedule
from nmt.train.validation import dev_scores
from nmt.workdir import (
    check_resume,
    check_resume_files,
    keep_aside,
    locked,
    remove_stale_temporaries,
    write_manifest,
)

MAX_BAD_STEPS = 20  # consecutive non-finite losses before training gives up
_COUNTERS = (
    "step",
    "epoch",
    "pos",
    "best_bleu",
    "bad_evals",
    "skipped",
    "elapsed",
    "tokens",
)


class Trainer:
    def __init__(self, cfg: Config, corpus: Corpus, resume: bool = False, log=print):
        self.cfg, self.corpus = cfg, corpus
        t = cfg.train
        if t.threads:
            torch.set_num_threads(t.threads)
        self.dist = setup(pick_device(t.device))
        self.device = self.dist.device if self.dist.enabled else pick_device(t.device)
        self.log = log if self.dist.main else (lambda *_: None)
        self.dir = cfg.model_dir
        torch.manual_seed(t.seed)
        tok = corpus.tokenizer
        self.resuming = resume
        self.model = build_model(cfg.model, tok.src_vocab_size, tok.tgt_vocab_size)
        self.model.to(self.device)
        self.net = self.model  # what the forward pass goes through (DDP wrapper or not)
        if self.dist.enabled:
            self.net = DistributedDataParallel(self.model)
        params = self.model.parameters()
        if t.optimizer == "adam":
            self.opt = torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)
        else:
            self.opt = torch.optim.SGD(
                params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay
            )
        self.schedule = Schedule(t)
        self.precision = t.precision
        if t.precision == "auto":
            self.precision = "bf16" if self.device.type == "cuda" else "fp32"
        if self.precision == "fp16" and self.device.type != "cuda":
            raise NmtError(
                "train.precision: fp16 needs a CUDA device; use fp32 or bf16"
            )
        if self.precision == "bf16":
            require_native_bf16(self.device, "train.precision")
        # a no-op unless fp16: scales the loss so small gradients do not underflow
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.precision == "fp16"
        )
        train = corpus.splits["train"]
        self.src_len = train.data.column("src_len").to_numpy()
        self.tgt_len = train.data.column("tgt_len").to_numpy()
        self.step = self.epoch = self.pos = 0  # pos: batches done in this epoch
        self.best_bleu, self.bad_evals, self.skipped, self.bad_steps = -1.0, 0, 0, 0
        self.elapsed, self.tokens = 0.0, 0
        self._stop_signal: int | None = None
        if resume:  # reads last.pt and checks it; writes nothing
            self._resume()

    # ------------------------------------------------------------ state

    def state(self) -> dict:
        cuda = torch.cuda.get_rng_state_all() if self.device.type == "cuda" else []
        return {
            "scaler": self.scaler.state_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "schedule": self.schedule.state_dict(),
            "rng": torch.get_rng_state(),
            "cuda_rng": cuda,
            "config": self.cfg.to_dict(),
            **{k: getattr(self, k) for k in _COUNTERS},
        }

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
        try:
            tok.copy_to(self.dir)
        except OSError as e:
            raise NmtError(f"cannot write to {self.dir}: {e.strerror}") from None
        self.cfg.save(self.dir / "config.yaml")
        write_manifest(self.cfg, cache_key(self.cfg), len(train))
        write_text(self.dir / "log.jsonl", "")

    def _resume(self) -> None:
        path = self.dir / "last.pt"
        if not path.exists():
            raise NmtError(
                f"cannot resume: {path} does not exist (train without --resume)"
            )
        ck = load_checkpoint(
            path, self.device, needs=("model", "optimizer", "schedule", "config")
        )
        check_resume(self.cfg, ck["config"], path)
        missing = [k for k in (*_COUNTERS, "rng", "cuda_rng") if k not in ck]
        if missing:
            raise NmtError(
                f"cannot resume from {path}: it holds weights but no training "
                f"state ({', '.join(missing[:3])}); train without --resume"
            )
        load_weights(self.model, ck["model"], path)
        try:
            self.opt.load_state_dict(ck["optimizer"])
            self.schedule.load_state_dict(ck["schedule"])
        except (ValueError, KeyError, TypeError) as e:
            raise NmtError(
                f"cannot resume from {path}: its optimizer state does not fit "
                f"train.optimizer={self.cfg.train.optimizer} ({e})"
            ) from None
        if ck.get("scaler"):
            self.scaler.load_state_dict(ck["scaler"])
        for k in _COUNTERS:
            setattr(self, k, ck[k])
        torch.set_rng_state(ck["rng"].cpu())
        if ck["cuda_rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state_all([s.cpu() for s in ck["cuda_rng"]])
        self.log(
            f"resumed from {path} at step {self.step} (epoch {self.epoch + 1}, "
            f"batch {self.pos})"
        )

    def _checkpoint(self, numbered: bool = True) -> None:
        if self.dist.main:
            save_checkpoint(self.state(), self.dir / "last.pt")
            if numbered:
                save_numbered(
                    self.model.state_dict(),
                    self.cfg,
                    self.step,
                    self.dir,
                    self.cfg.train.keep_last,
                )

    def _write_log(self, record: dict) -> None:
        if self.dist.main:
            path = self.dir / "log.jsonl"
            try:
                with open(path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(record) + "\n")
            except OSError as e:
                raise NmtError(f"cannot write {path}: {e.strerror}") from None

    # ------------------------------------------------------------ one update

    def _batch(self, idx) -> Batch:
        if self.dist.enabled:  # this rank's share of the global batch
            idx = idx[self.dist.rank :: self.dist.world]
        rows = self.corpus.splits["train"][idx.tolist()]
        b = collate(rows["src_ids"], rows["tgt_ids"], self.cfg.data.reverse_source)
        return b.to(self.device)

    def _autocast(self):
        if self.precision == "fp32":
            return nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _update(self, batches: list[Batch], lr: float) -> float | None:
        """One optimizer step over `batches` (accumulated); mean token loss or None."""
        for g in self.opt.param_groups:
            g["lr"] = lr
        n_local = sum(b.n_tgt_tokens for b in batches)
        n_global = self.dist.sum(n_local)
        self.opt.zero_grad(set_to_none=True)
        total = torch.zeros((), device=self.device)
        for i, b in enumerate(batches):
            last = i == len(batches) - 1
            # gradients are all-reduced once per update, after the last micro-batch
            with nullcontext() if last or not self.dist.enabled else self.net.no_sync():
                with self._autocast():
                    # DDP averages gradients over ranks: scale so the result is
                    # the gradient of the global mean token loss
                    loss = self.net(b, self.cfg.train.label_smoothing) * (
                        self.dist.world / n_global
                    )
                self.scaler.scale(loss).backward()
            total += loss.detach()
        mean = self.dist.sum(float(total)) / self.dist.world
        if not math.isfinite(mean):
            self.skipped += 1
            self.bad_steps += 1
            if self.bad_steps >= MAX_BAD_STEPS:
                self._checkpoint(numbered=False)
                raise NmtError(
                    f"{MAX_BAD_STEPS} non-finite losses in a row at step "
                    f"{self.step}; lower train.lr (last.pt was kept)"
                )
            return None
        self.bad_steps = 0
        self.scaler.unscale_(self.opt)
        if self.cfg.train.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(
                self.model.parameters(), self.cfg.train.clip_norm
            )
        self.scaler.step(self.opt)  # skips the step if fp16 gradients overflowed
        self.scaler.update()
        self.tokens += int(n_global)
        return mean

    # ------------------------------------------------------------ validation

    def validate(self) -> dict:
        return dev_scores(
            self.model, self.corpus, self.cfg, self.device, self._autocast
        )

    def _on_validation(self, bar) -> bool:
        """Validate on rank 0, share its BLEU, checkpoint. True: stop early."""
        v = self.validate() if self.dist.main else {"bleu": 0.0}
        score = self.dist.sum(v["bleu"])  # every rank takes the same decisions
        improved = score > self.best_bleu
        self.best_bleu = max(self.best_bleu, score)
        self.bad_evals = 0 if improved else self.bad_evals + 1
        # the rate follows dev loss (smooth from the first step); stopping follows BLEU
        cut = self.schedule.on_validation(-self.dist.sum(v.get("loss", 0.0)))
        if self.dist.main:
            self._write_log(
                {
                    "type": "valid",
                    "step": self.step,
                    "epoch": self.epoch + 1,
                    **v,
                    "best_bleu": self.best_bleu,
                    "elapsed": round(self.elapsed, 1),
                }
            )
            bar.write(
                f"valid step {self.step}: loss {v['loss']:.3f} ppl {v['ppl']:.2f} "
                f"BLEU {v['bleu']:.2f}{' (best)' if improved else ''}"
                f"{' lr cut' if cut else ''}"
            )
            if improved:
                save_checkpoint(
                    {
                        "model": self.model.state_dict(),
                        "step": self.step,
                        "valid": v,
                        "config": self.cfg.to_dict(),
                    },
                    self.dir / "best.pt",
                )
        self._checkpoint()
        patience = self.cfg.train.patience
        return bool(patience and self.bad_evals >= patience)

    # ------------------------------------------------------------ loop

    def _on_signal(self, signum, frame) -> None:
        self._stop_signal = signum

    def _out_of_budget(self) -> bool:
        t = self.cfg.train
        over = bool(
            (t.max_steps and self.step >= t.max_steps)
            or (t.max_minutes and self.elapsed >= 60 * t.max_minutes)
        )
        return self.dist.any(over) if t.max_minutes else over

    def train(self) -> dict:
        handlers = (signal.SIGINT, signal.SIGTERM)
        old = {s: signal.signal(s, self._on_signal) for s in handlers}
        try:
            with locked(self.cfg.workdir) if self.dist.main else nullcontext():
                self._open_run()
                status = self._loop()
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        if self.dist.main:
            plot_log(
                self.dir / "log.jsonl", self.dir / "training_curve.png", self.cfg.name
            )
        summary = {
            "status": status,
            "steps": self.step,
            "epochs": self.epoch,
            "best_valid_bleu": round(self.best_bleu, 2),
            "skipped_updates": self.skipped,
            "train_minutes": round(self.elapsed / 60, 2),
            "tokens_per_second": round(self.tokens / max(self.elapsed, 1e-9)),
            "processes": self.dist.world,
        }
        self.log(
            f"training {status}: {self.step} steps, {self.epoch} epochs, "
            f"{summary['train_minutes']} min, {summary['tokens_per_second']} target "
            f"tokens/s, best valid BLEU {summary['best_valid_bleu']}"
        )
        # No rank may destroy its process group while another still works: rank 1
        # leaving while rank 0 plotted once ended in "terminate called without an
        # active exception" (SIGABRT) under gloo.
        self.dist.barrier()
        return summary

    def _epoch_batches(self) -> list:
        t = self.cfg.train
        return make_batches(
            self.src_len,
            self.tgt_len,
            t.batch_tokens,
            t.batch_sentences,
            t.seed,
            self.epoch,
        )

    def _loop(self) -> str:
        t = self.cfg.train
        per_epoch = math.ceil(len(self._epoch_batches()) / t.accumulate)
        total = t.max_steps or (t.max_epochs * per_epoch) or None
        bar = tqdm(
            total=total,
            initial=self.step,
            desc="train",
            unit="step",
            dynamic_ncols=True,
            mininterval=1.0,
            disable=not self.dist.main,
        )
        try:
            return self._epochs(bar)
        finally:
            bar.close()  # before any error line, which must start a line of its own

    def _epochs(self, bar) -> str:
        t = self.cfg.train
        if self.dist.enabled:
            self.log(
                f"{self.dist.world} processes, effective batch {t.batch_tokens} "
                f"tokens x {t.accumulate} accumulated"
            )
        start, win_loss, win_n = time.time() - self.elapsed, 0.0, 0
        validated_at, status = self.step, "finished"
        while not self._out_of_budget() and (
            not t.max_epochs or self.epoch < t.max_epochs
        ):
            batches = self._epoch_batches()
            while self.pos < len(batches) and status == "finished":
                group = batches[self.pos : self.pos + t.accumulate]
                lr = self.schedule.lr(
                    self.step + 1, self.epoch + self.pos / len(batches)
                )
                loss = self._update([self._batch(i) for i in group], lr)
                self.pos += len(group)
                self.step += 1
                self.elapsed = time.time() - start
                bar.update(1)
                if loss is not None:
                    win_loss, win_n = win_loss + loss, win_n + 1
                if self.step % t.log_every == 0 and win_n:
                    rec = {
                        "type": "train",
                        "step": self.step,
                        "epoch": self.epoch + 1,
                        "loss": round(win_loss / win_n, 4),
                        "lr": lr,
                        "tok_s": round(self.tokens / self.elapsed),
                        "skipped": self.skipped,  # updates skipped (non-finite loss)
                        "elapsed": round(self.elapsed, 1),
                    }
                    self._write_log(rec)
                    bar.set_postfix(
                        loss=f"{rec['loss']:.3f}", tok_s=rec["tok_s"], lr=f"{lr:.1e}"
                    )
                    win_loss, win_n = 0.0, 0
                if self.step % t.valid_every == 0:
                    validated_at = self.step
                    if self._on_validation(bar):
                        status = "stopped early"
                elif t.save_every and self.step % t.save_every == 0:
                    self._checkpoint()
                if self.dist.any(self._stop_signal is not None):
                    # a signal on any rank stops every rank at the same step
                    self._stop_signal = self._stop_signal or signal.SIGTERM
                    break
                if self._out_of_budget():
                    break
            if self.pos >= len(batches):
                self.epoch, self.pos = self.epoch + 1, 0
                self._checkpoint()
            if status != "finished" or self._stop_signal is not None:
                break
        if self._stop_signal is not None:
            self._checkpoint(numbered=False)
            bar.close()
            name = signal.Signals(self._stop_signal).name
            self.log(
                f"{name}: saved {self.dir / 'last.pt'} at step {self.step}; "
                "continue with --resume"
            )
            raise StopRequested(name, str(self.dir / "last.pt"))
        if validated_at != self.step or not (self.dir / "best.pt").exists():
            self._on_validation(bar)
        self._checkpoint(numbered=False)
        bar.close()
        return status
