"""The maps that turn raw text splits into training data: clean (strip, drop
empty pairs, optionally duplicates), encode to sentencepiece ids, and filter
by length and length ratio, with the counts that `nmt prepare` reports.

Each is a batched `datasets` map or filter, so a large corpus streams through
Arrow instead of Python lists.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import datasets

from nmt.config import Config
from nmt.data.tokenizer import Tokenizer

_MAP = {"batched": True, "batch_size": 2000, "load_from_cache_file": False}


def text_column(ds: datasets.Dataset, col: str) -> Iterator[str]:
    """The strings of one column, read a batch at a time (to train the
    tokenizer without holding the corpus in memory)."""
    for batch in ds.iter(batch_size=10000):
        yield from batch[col]


def clean(ds: datasets.Dataset, dedup: bool) -> datasets.Dataset:
    """Pairs stripped of outer white space; a pair with an empty side is
    dropped (it teaches nothing), and with dedup every repeat of a pair."""

    def strip(b):
        return {
            "src": [s.strip() for s in b["src"]],
            "tgt": [t.strip() for t in b["tgt"]],
        }

    ds = ds.map(strip, **_MAP)
    ds = ds.filter(
        lambda b: [bool(s and t) for s, t in zip(b["src"], b["tgt"])], **_MAP
    )
    if dedup:
        seen: set[bytes] = set()

        def first(b):
            keep = []
            for s, t in zip(b["src"], b["tgt"]):
                h = hashlib.blake2b(f"{s}\t{t}".encode(), digest_size=12).digest()
                keep.append(h not in seen)
                seen.add(h)
            return keep

        ds = ds.filter(first, **_MAP)
    return ds


def encode(ds: datasets.Dataset, tok: Tokenizer) -> datasets.Dataset:
    """ds with `src_ids`, `tgt_ids` and their lengths added (the lengths let
    batching sort and bucket without reading the ids)."""

    def enc(b):
        s, t = tok.encode_src(b["src"]), tok.encode_tgt(b["tgt"])
        return {
            "src_ids": s,
            "tgt_ids": t,
            "src_len": [len(x) for x in s],
            "tgt_len": [len(x) for x in t],
        }

    return ds.map(enc, **_MAP)


def length_filter(
    ds: datasets.Dataset, max_len: int, max_ratio: float
) -> datasets.Dataset:
    """The encoded pairs with both sides 1..max_len ids long and lengths within
    max_ratio of each other (a far longer side is usually a misalignment)."""

    def keep(b):
        out = []
        for s, t in zip(b["src_len"], b["tgt_len"]):
            ok = 0 < s <= max_len and 0 < t <= max_len
            out.append(ok and max(s, t) <= max_ratio * min(s, t))
        return out

    return ds.filter(keep, **_MAP)


def encode_splits(
    cfg: Config,
    raw: datasets.DatasetDict,
    train: datasets.Dataset,
    tok: Tokenizer,
    n_raw: int,
) -> tuple[dict[str, datasets.Dataset], dict[str, dict[str, int]]]:
    """Every split of raw encoded, with its counts. `train` is raw["train"]
    already cleaned (n_raw pairs before) and is also length-filtered; valid is
    cleaned here; test sets are translated whole, so never filtered."""
    n_clean = len(train)
    out: dict[str, datasets.Dataset] = {}
    counts: dict[str, dict[str, int]] = {}
    for key, ds in raw.items():
        if key == "train":
            enc = length_filter(
                encode(train, tok), cfg.data.max_len, cfg.data.max_ratio
            )
            counts[key] = {
                "read": n_raw,
                "empty_or_duplicate": n_raw - n_clean,
                "too_long_or_ratio": n_clean - len(enc),
                "kept": len(enc),
            }
        elif key == "valid":
            enc = encode(clean(ds, dedup=False), tok)
            counts[key] = {"read": len(ds), "kept": len(enc)}
        else:
            enc = encode(ds, tok)
            counts[key] = {"read": len(ds), "kept": len(enc)}
        out[key] = enc
    return out, counts
