"""A synthetic parallel corpus of any size, written as a user's files would be.

    python benchmarks/scale_corpus.py OUT_DIR PAIRS [--prefix train] [--gzip]

writes OUT_DIR/<prefix>.src and OUT_DIR/<prefix>.tgt (one sentence per line).

The shape is that of real text, not of the toy task:
- each side has a lexicon of 40,000 words built from syllables, used with Zipf
  frequencies, so sentencepiece splits the rarer words into several pieces;
- sentence lengths are log-normal (a mean of about 17 words, 20+ pieces, a tail
  to 90 words);
- the target is a noisy word-by-word rendering of the source: words mapped
  through a fixed lexicon, some dropped, some function words inserted;
- noise for the cleaning to remove: empty lines on either side, lines of
  hundreds of words, targets far longer than their source, repeated pairs.

Lines are built with numpy a chunk at a time (bytes gathered from a table of
words), so 16 million pairs take minutes, and memory stays flat.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
from pathlib import Path

import numpy as np

WORDS = 40_000
CHUNK = 200_000  # pairs built at once
_CONSONANTS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z"]
_VOWELS = ["a", "e", "i", "o", "u", "ei", "au"]


def _lexicon(rng: np.random.Generator, extra: list[str]) -> list[str]:
    """WORDS distinct words of 1-4 syllables (the most frequent are short)."""
    cons = list(rng.permutation(_CONSONANTS))
    syllables = [c + v for c in cons for v in _VOWELS] + [
        c + v + e for c in cons[:6] for v in _VOWELS[:5] for e in ("n", "r", "s")
    ]
    words, seen = [], set()
    while len(words) < WORDS:
        rank = len(words)
        n_syl = 1 + min(3, int(rng.integers(0, 2 + rank // 4000)))
        w = "".join(syllables[i] for i in rng.integers(0, len(syllables), n_syl))
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


class _Table:
    """Words as one byte array, each followed by a space, for numpy gathers."""

    def __init__(self, words: list[str]):
        enc = [w.encode() + b" " for w in words]
        self.bytes = np.frombuffer(b"".join(enc), dtype=np.uint8)
        self.len = np.array([len(e) for e in enc], dtype=np.int64)
        self.start = np.concatenate([[0], np.cumsum(self.len)[:-1]])

    def lines(self, tokens: np.ndarray, lengths: np.ndarray) -> list[bytes]:
        """The lines (without newline) for a token stream cut into lengths >= 1."""
        size = self.len[tokens]
        out_end = np.cumsum(size)
        out_start = out_end - size
        gather = np.repeat(self.start[tokens] - out_start, size) + np.arange(
            out_end[-1]
        )
        buf = self.bytes[gather]
        buf[out_end[np.cumsum(lengths) - 1] - 1] = ord("\n")  # last space -> EOL
        return buf.tobytes().split(b"\n")[:-1]


class Generator:
    """Pairs drawn from one seed: same seed, same corpus."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.src = _Table(_lexicon(self.rng, []))
        self.tgt = _Table(_lexicon(self.rng, []))
        # the target word of each source word: frequent maps to frequent
        jitter = self.rng.normal(0, 50 + np.arange(WORDS) * 0.05)
        self.mapping = np.argsort(np.arange(WORDS) + jitter)
        ranks = np.arange(1, WORDS + 1, dtype=np.float64)
        p = 1.0 / ranks**1.05
        self.cdf = np.cumsum(p / p.sum())

    def _words(self, n: int) -> np.ndarray:
        return np.minimum(np.searchsorted(self.cdf, self.rng.random(n)), WORDS - 1)

    def chunk(self, n: int) -> tuple[list[bytes], list[bytes]]:
        rng = self.rng
        lengths = np.clip(np.round(rng.lognormal(2.7, 0.5, n)), 1, 90).astype(np.int64)
        src_tok = self._words(int(lengths.sum()))
        # per source word: 0 (dropped), 1, or 2 target words (an inserted one first)
        counts = rng.choice(3, size=len(src_tok), p=[0.05, 0.85, 0.10])
        line = np.repeat(np.arange(n), lengths)
        first = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        counts[first] = np.maximum(counts[first], 1)  # no empty targets here
        tgt_tok = np.repeat(self.mapping[src_tok], counts)
        inserted = np.repeat(counts == 2, counts) & np.concatenate(
            [[True], np.diff(np.repeat(np.arange(len(src_tok)), counts)) != 0]
        )
        tgt_tok[inserted] = rng.integers(0, 30, int(inserted.sum()))  # function words
        tgt_len = np.bincount(np.repeat(line, counts), minlength=n)
        src, tgt = self.src.lines(src_tok, lengths), self.tgt.lines(tgt_tok, tgt_len)
        self._noise(src, tgt)
        return src, tgt

    def _noise(self, src: list[bytes], tgt: list[bytes]) -> None:
        """About 2% of the pairs broken the ways real corpora are."""
        n, rng = len(src), self.rng
        for i in rng.choice(n, n // 200, replace=False):  # an empty side
            (src if rng.random() < 0.5 else tgt)[i] = b""
        for i in rng.choice(n, n // 1000, replace=False):  # a paragraph, not a line
            src[i] = b" ".join([src[i]] * 20)
            tgt[i] = b" ".join([tgt[i]] * 20)
        for i in rng.choice(n, n // 200, replace=False):  # misaligned lengths
            tgt[i] = b" ".join([tgt[i]] * 5)
        for i in rng.choice(n, n // 200, replace=False):  # a repeated pair
            j = int(rng.integers(0, n))
            src[i], tgt[i] = src[j], tgt[j]


def write_corpus(
    out_dir: Path, pairs: int, prefix: str = "train", seed: int = 0, gz: bool = False
) -> list[Path]:
    """Write <prefix>.src/.tgt (.gz) with `pairs` lines each; the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    gen = Generator(seed)
    suffix = ".gz" if gz else ""
    paths = [out_dir / f"{prefix}.src{suffix}", out_dir / f"{prefix}.tgt{suffix}"]
    opener = (
        (lambda p: gzip.open(p, "wb", compresslevel=1))
        if gz
        else (
            lambda p: open(p, "wb")  # noqa: SIM115
        )
    )
    with opener(paths[0]) as fs, opener(paths[1]) as ft:
        done = 0
        while done < pairs:
            src, tgt = gen.chunk(min(CHUNK, pairs - done))
            fs.write(b"\n".join(src) + b"\n")
            ft.write(b"\n".join(tgt) + b"\n")
            done += len(src)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("pairs", type=int)
    ap.add_argument("--prefix", default="train")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gzip", action="store_true")
    a = ap.parse_args()
    t0 = time.time()
    paths = write_corpus(a.out_dir, a.pairs, a.prefix, a.seed, a.gzip)
    mb = sum(p.stat().st_size for p in paths) / 2**20
    print(
        f"wrote {a.pairs} pairs ({mb:.0f} MiB) in {time.time() - t0:.1f} s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
