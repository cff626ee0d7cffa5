"""The speed limit: a plain torch.nn.LSTM encoder-decoder, trained on nmt's batches.

    python plain_lstm.py DATA_DIR BATCH UPDATES LOG_EVERY THREADS SAVE_EVERY OUT_DIR

The same layers and sizes as nmt's variant A model in peers.py (embeddings 256,
2-layer bidirectional LSTM encoder 256 per direction, the linear bridge of nmt's
Sutskever conditioning, a 1-layer LSTM decoder of 512 started from it, a tanh
readout of 512, the output layer) written as the shortest straightforward PyTorch:
cuDNN-style fused nn.LSTM calls, the logits of real target positions only, computed
and scored in slices of CHUNK positions (as nmt's loss is, so that the two differ
only in the rest), Adam, label smoothing 0.1, clipping at 5. The batches are nmt's
own (`make_batches` with nmt's seed over the same pieces), so any gap between this
and `nmt train` is overhead in nmt. Like every system in the comparison it saves the
model and optimizer every SAVE_EVERY updates (OUT_DIR/plain.pt). Prints {"params":
...}, then one JSON line per LOG_EVERY updates, like nmt's log.jsonl: {"step",
"elapsed", "tokens"}.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from nmt.data.batching import make_batches
from nmt.model.batch import collate
from nmt.vocab import PAD

EMBED, ENC, DEC, SEED, DROPOUT = 256, 256, 512, 1, 0.3
CHUNK = 512  # target positions per slice of the loss: 16 MB of 8000-way logits


class Plain(nn.Module):
    def __init__(self, src_vocab: int, tgt_vocab: int):
        super().__init__()
        self.src_embed = nn.Embedding(src_vocab, EMBED, padding_idx=PAD)
        self.tgt_embed = nn.Embedding(tgt_vocab, EMBED, padding_idx=PAD)
        self.encoder = nn.LSTM(
            EMBED, ENC, 2, batch_first=True, bidirectional=True, dropout=DROPOUT
        )
        self.to_state = nn.Linear(4 * ENC, 2 * DEC)
        self.decoder = nn.LSTM(EMBED, DEC, 1, batch_first=True)
        self.readout = nn.Linear(DEC, DEC)
        self.out = nn.Linear(DEC, tgt_vocab)
        self.drop = nn.Dropout(DROPOUT)
        for p in self.parameters():
            nn.init.uniform_(p, -0.08, 0.08)

    def forward(self, batch) -> torch.Tensor:
        x = self.drop(self.src_embed(batch.src))
        packed = pack_padded_sequence(
            x, batch.src_len, batch_first=True, enforce_sorted=False
        )
        _, (h, _) = self.encoder(packed)
        n = batch.src.size(0)
        final = h.transpose(0, 1).reshape(n, -1)
        h0, c0 = self.to_state(final).view(n, 2, DEC).unbind(1)
        y, _ = self.decoder(
            self.drop(self.tgt_embed(batch.tgt_in)),
            (h0.unsqueeze(0).contiguous(), c0.unsqueeze(0).contiguous()),
        )
        real = batch.tgt_out != PAD
        r = self.drop(torch.tanh(self.readout(self.drop(y[real]))))
        gold = batch.tgt_out[real]
        loss = r.new_zeros(())
        for i in range(0, r.size(0), CHUNK):  # bounded logits, as nmt's loss
            loss = loss + F.cross_entropy(
                self.out(r[i : i + CHUNK]),
                gold[i : i + CHUNK],
                label_smoothing=0.1,
                reduction="sum",
            )
        return loss


def read_ids(path: Path, vocab: dict) -> list[list[int]]:
    with open(path, encoding="utf-8") as f:
        return [[vocab[p] for p in line.split()] for line in f]


def main() -> None:
    data, batch, updates, log_every, threads, save_every, out = sys.argv[1:]
    data, batch, updates = Path(data), int(batch), int(updates)
    log_every, save_every = int(log_every), int(save_every)
    torch.set_num_threads(int(threads))
    torch.manual_seed(SEED)
    vocabs = {}
    for lang in ("de", "en"):  # ids 0-3 are pad unk bos eos, as in nmt
        pieces = (data / f"vocab.{lang}").read_text(encoding="utf-8").split("\n")[:-1]
        vocabs[lang] = {p: i + 4 for i, p in enumerate(pieces)}
    src = read_ids(data / "train.de", vocabs["de"])
    tgt = read_ids(data / "train.en", vocabs["en"])
    model = Plain(len(vocabs["de"]) + 4, len(vocabs["en"]) + 4)
    opt = torch.optim.Adam(model.parameters(), lr=0.002)
    print(json.dumps({"params": sum(p.numel() for p in model.parameters())}))
    src_len = np.array([len(s) for s in src])
    tgt_len = np.array([len(t) for t in tgt])
    step, tokens, epoch, start = 0, 0, 0, time.perf_counter()
    model.train()
    while step < updates:
        for idx in make_batches(src_len, tgt_len, 0, batch, SEED, epoch):
            b = collate([src[i] for i in idx], [tgt[i] for i in idx], False)
            loss = model(b)
            opt.zero_grad(set_to_none=True)
            (loss / b.n_tgt_tokens).backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            step, tokens = step + 1, tokens + b.n_tgt_tokens
            if step % save_every == 0:
                state = {"model": model.state_dict(), "optimizer": opt.state_dict()}
                torch.save(state, Path(out) / "plain.pt")
            if step % log_every == 0:
                elapsed = time.perf_counter() - start
                print(json.dumps({"step": step, "elapsed": elapsed, "tokens": tokens}))
            if step == updates:
                break
        epoch += 1
    sys.stdout.flush()


if __name__ == "__main__":
    main()
