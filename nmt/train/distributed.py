"""Data-parallel training under `torchrun` (gloo on CPU, NCCL on GPU).

Without torchrun's environment everything here is a no-op for one process.
Each global batch is split across ranks (rank r takes rows r, r + W, ...), and
the loss is normalised by the global token count, so N processes compute the
same update as one process with the whole batch.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.distributed as dist

from nmt.model.batch import Batch

if TYPE_CHECKING:
    from nmt.config import Config
    from nmt.data.corpus import Corpus
    from nmt.train.build import TrainParts


@dataclass
class Dist:
    """This process's place in the process group; one process without one."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")  # where collectives' tensors live

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    def sum(self, value: float) -> float:
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return float(t.item())

    def any(self, flag: bool) -> bool:
        """True on every rank if it is true on any rank (stop decisions)."""
        return self.sum(1.0 if flag else 0.0) > 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def share(self, idx: np.ndarray) -> np.ndarray:
        """This rank's rows of a global batch's row indices."""
        return idx[self.rank :: self.world] if self.enabled else idx


def backward(
    parts: TrainParts, batches: list[Batch], label_smoothing: float
) -> tuple[float, float]:
    """Accumulate into the gradients (zeroed by the caller) the gradient of the
    global mean token loss over this rank's micro-batches `batches`, all-reduced
    once, after the last one. Returns (mean loss over all ranks, global token
    count); the loss may be non-finite, and then nothing should step."""
    d, net, scaler, autocast = (
        parts.dist,
        parts.net,
        parts.scaler,
        parts.precision.autocast,
    )
    n_global = d.sum(sum(b.n_tgt_tokens for b in batches))
    total = torch.zeros((), device=parts.device)
    for i, b in enumerate(batches):
        last = i == len(batches) - 1
        with nullcontext() if last or not d.enabled else net.no_sync():
            with autocast():
                # DDP averages gradients over ranks: scale so the result is the
                # gradient of the global mean token loss
                loss = net(b, label_smoothing) * (d.world / n_global)
            scaler.scale(loss).backward()
        total += loss.detach()
    return d.sum(float(total)) / d.world, n_global


def setup(device: torch.device) -> Dist:
    """Join the process group that torchrun describes in the environment."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    if device.type == "cuda":
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    return Dist(rank, world, local, device)


def shutdown() -> None:
    """Leave the process group (at the end of `nmt train` under torchrun)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def prepare_once(cfg: Config) -> Corpus:
    """Prepare the corpus on rank 0 first; the other ranks then read its cache."""
    from nmt.data.corpus import prepare
    from nmt.hardware import pick_device

    d = setup(pick_device(cfg.train.device))
    if d.main:
        corpus = prepare(cfg)
    d.barrier()
    if not d.main:
        corpus = prepare(cfg, log=lambda *_: None)
    return corpus
