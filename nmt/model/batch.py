"""What the model reads: padded id tensors (source, shifted targets)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nmt.vocab import BOS, EOS, PAD


@dataclass
class Batch:
    src: torch.Tensor  # [B, S] source ids + EOS, right-padded
    src_len: torch.Tensor  # [B] lengths including EOS (int64, on CPU)
    tgt_in: torch.Tensor | None = None  # [B, T] BOS + target ids
    tgt_out: torch.Tensor | None = None  # [B, T] target ids + EOS
    n_tgt_tokens: int = 0  # real target tokens, counted on the CPU (no device sync)

    def to(self, device: torch.device) -> Batch:
        nb = device.type == "cuda"

        def mv(t):  # pinned host memory lets the copy overlap with GPU work
            if t is None:
                return None
            return (t.pin_memory() if nb else t).to(device, non_blocking=nb)

        # src_len stays on the CPU: pack_padded_sequence wants it there
        return Batch(
            mv(self.src),
            self.src_len,
            mv(self.tgt_in),
            mv(self.tgt_out),
            self.n_tgt_tokens,
        )


def _pad(seqs: list[list[int]]) -> torch.Tensor:
    out = torch.full((len(seqs), max(len(s) for s in seqs)), PAD, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out


def source_tensor(
    src: list[list[int]], reverse: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Source ids with EOS appended; `reverse` flips the real tokens only."""
    seqs = [(s[::-1] if reverse else list(s)) + [EOS] for s in src]
    return _pad(seqs), torch.tensor([len(s) for s in seqs], dtype=torch.long)


def collate(src: list[list[int]], tgt: list[list[int]] | None, reverse: bool) -> Batch:
    s, s_len = source_tensor(src, reverse)
    if tgt is None:
        return Batch(s, s_len)
    return Batch(
        s,
        s_len,
        _pad([[BOS, *t] for t in tgt]),
        _pad([[*t, EOS] for t in tgt]),
        sum(len(t) + 1 for t in tgt),
    )
