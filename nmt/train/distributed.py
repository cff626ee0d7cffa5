"""Data-parallel training under `torchrun` (gloo on CPU, NCCL on GPU).

Without torchrun's environment everything here is a no-op for one process.
Each global batch is split across ranks (rank r takes rows r, r + W, ...), and
the loss is normalised by the global token count, so N processes compute the
same update as one process with the whole batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Dist:
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
    if dist.is_initialized():
        dist.destroy_process_group()


def prepare_once(cfg):
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
