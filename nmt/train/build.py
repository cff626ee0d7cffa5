"""What training is made of, built from a Config and a Corpus: the process group,
the device, the precision, the model (and its DDP wrapper), the optimiser, the
schedule and the gradient scaler.

Building here and looping in `nmt.train.loop` keeps the loop free of config
parsing. Building reads and writes no files, so a refused setting costs nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

import torch
from torch.nn.parallel import DistributedDataParallel

from nmt.config import Config, TrainConfig
from nmt.data.corpus import Corpus
from nmt.errors import NmtError
from nmt.hardware import keep_freed_memory, pick_device, require_native_bf16
from nmt.model.seq2seq import Seq2Seq, build_model
from nmt.train.distributed import Dist, setup
from nmt.train.schedule import Schedule


def require_tensorboard(t: TrainConfig) -> None:
    """Refuse (one line) `train.tensorboard: true` without the tensorboard
    package, before anything is built or written."""
    if not t.tensorboard:
        return
    try:
        importlib.import_module("torch.utils.tensorboard")  # imports tensorboard
    except ImportError:
        raise NmtError(
            "train.tensorboard: true needs the tensorboard package: "
            'pip install "nmt[tensorboard]"'
        ) from None


def resolve_precision(name: str, device: torch.device) -> str:
    """`train.precision` as training will use it on `device`: "auto" becomes bf16
    on CUDA and fp32 elsewhere. Refuses (one line) fp16 off CUDA and bf16 where
    this CPU would emulate it. `nmt.workdir.precheck` calls this too, so a recipe
    is refused before any data is prepared, for the same reasons as here."""
    if name == "auto":
        name = "bf16" if device.type == "cuda" else "fp32"
    if name == "fp16" and device.type != "cuda":
        raise NmtError("train.precision: fp16 needs a CUDA device; use fp32 or bf16")
    if name == "bf16":
        require_native_bf16(device, "train.precision")
    return name


@dataclass
class Precision:
    """Mixed precision: which autocast the forward pass runs under."""

    name: str  # fp32, bf16 or fp16 (resolved, never "auto")
    device_type: str  # "cpu" or "cuda"
    dtype: torch.dtype | None = field(init=False)  # None: fp32, no autocast

    def __post_init__(self) -> None:
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name)

    def autocast(self) -> AbstractContextManager:
        """A fresh context for one forward pass (a no-op for fp32)."""
        if self.name == "fp32":
            return nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def scaler(self) -> torch.amp.GradScaler:
        """A no-op unless fp16: it scales the loss so that small gradients do not
        underflow, and skips steps whose gradients overflowed."""
        return torch.amp.GradScaler(self.device_type, enabled=self.name == "fp16")


def make_optimizer(
    t: TrainConfig, params: Iterable[torch.nn.Parameter]
) -> torch.optim.Optimizer:
    """Adam or SGD (with momentum) as `train.optimizer` says."""
    if t.optimizer == "adam":
        return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)
    return torch.optim.SGD(
        params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay
    )


@dataclass
class TrainParts:
    """Everything an update touches. `net` is what the forward pass goes through:
    the DDP wrapper under torchrun, else `model` itself."""

    dist: Dist
    device: torch.device
    precision: Precision
    model: Seq2Seq
    net: torch.nn.Module
    opt: torch.optim.Optimizer
    schedule: Schedule
    scaler: torch.amp.GradScaler


def build(cfg: Config, corpus: Corpus) -> TrainParts:
    """Join torchrun's process group (if any), choose the device and precision
    (refused before the model is built), then build the model from `train.seed`,
    so the same recipe gives the same initial weights on every rank and run."""
    t = cfg.train
    require_tensorboard(t)
    if t.threads:
        torch.set_num_threads(t.threads)
    if t.keep_freed_memory:
        keep_freed_memory()
    device = pick_device(t.device)
    dist = setup(device)
    if dist.enabled:
        device = dist.device  # cuda:LOCAL_RANK under NCCL
    precision = Precision(resolve_precision(t.precision, device), device.type)
    torch.manual_seed(t.seed)
    tok = corpus.tokenizer
    model = build_model(cfg.model, tok.src_vocab_size, tok.tgt_vocab_size)
    model.to(device)
    net = DistributedDataParallel(model) if dist.enabled else model
    return TrainParts(
        dist=dist,
        device=device,
        precision=precision,
        model=model,
        net=net,
        opt=make_optimizer(t, model.parameters()),
        schedule=Schedule(t),
        scaler=precision.scaler(),
    )
