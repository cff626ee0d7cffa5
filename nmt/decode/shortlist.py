"""The vocabulary shortlist (`decode.shortlist: K`, off at 0): each batch's output
layer covers only the target pieces likely for its sources, as Marian's
`--shortlist` and Sockeye's `--restrict-lexicon` do.

For a batch, the candidates are the K best partners of every source piece in it
(the model folder's `lexicon.safetensors`, nmt/data/lexicon.py) and the
`decode.shortlist_frequent` most frequent target pieces, EOS first. The stepper
multiplies by those rows of the output layer only, so its log-probabilities are
over the candidates (normalised among them), and the searches map a chosen
column back to its piece id through the stepper's `columns`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from nmt.checkpoint import load_checkpoint
from nmt.data.lexicon import LEXICON
from nmt.errors import NmtError
from nmt.vocab import EOS, PAD


@dataclass
class Shortlist:
    table: torch.Tensor  # [source vocabulary, KEEP] target ids, best first; -1: none
    frequent: torch.Tensor  # target ids, most frequent first
    k: int  # partners per source piece
    f: int  # frequent pieces

    @classmethod
    def load(cls, model_dir: Path, k: int, f: int, tgt_vocab: int) -> Shortlist:
        path = Path(model_dir) / LEXICON
        if not path.is_file():
            raise NmtError(
                f"decode.shortlist needs {path}, which training writes; this model "
                "was trained before nmt had shortlists: set decode.shortlist: 0"
            )
        lex = load_checkpoint(path)["model"]
        table, frequent = lex.get("table"), lex.get("frequent")
        if table is None or frequent is None or table.dim() != 2:
            raise NmtError(f"{path}: not a lexical table")
        if int(table.max()) >= tgt_vocab:
            raise NmtError(f"{path} does not belong to this model's vocabulary")
        return cls(table[:, :k].long(), frequent[:f].long(), k, f)

    def columns(self, src: torch.Tensor, vocab: int) -> torch.Tensor:
        """The candidate target ids [C] for a source batch src [N, S], EOS first."""
        table = self.table.to(src.device)
        ids = table[src[src != PAD]].flatten()
        keep = torch.zeros(vocab, dtype=torch.bool, device=src.device)
        keep[ids[ids >= 0]] = True
        keep[self.frequent.to(src.device)] = True
        keep[EOS] = False
        eos = torch.tensor([EOS], device=src.device)
        return torch.cat([eos, keep.nonzero().squeeze(1)])
