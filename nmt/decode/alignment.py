"""Word alignments from attention: `nmt translate --alignment`.

Each output line gets its hard alignment in Pharaoh format, `text ||| i-j ...`:
i is a 0-based source word and j a 0-based target word, words being the
whitespace-separated tokens (`str.split()`) of the input line and of the output
line. For every output piece (not EOS) the source piece with the largest
attention weight (not EOS; ties: the first) is taken, both pieces are mapped to
their words, and each pair is written once, sorted by (i, j). An empty input
line, or an output with no words, gives an empty alignment: `text ||| ` (the
separator is always there, so every line splits into the same fields). With
--nbest N the alignment is a fourth field: `index ||| text ||| score ||| i-j`.

Pieces are mapped to words through sentencepiece's character offsets into the
input line and into the decoded output, not by counting ▁ marks: a piece belongs
to the word that holds most of its characters, and a piece with none (a bare ▁
word-start mark, a control piece) to the word that starts after it. So words
are exactly those of the text, also where normalisation drops characters or an
unknown piece prints as ` ⁇ `.

The weights come from one teacher-forced pass over (source, chosen output)
pairs after the search, in length-sorted batches of at most
`decode.batch_tokens`: the model's own training forward, whose attention calls
a forward hook records (one fused call for Luong without input feeding, one per
step, batched over sentences, otherwise). With an ensemble, the first model's
attention aligns the ensemble's output, as `Translator.attention_maps` does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

import numpy as np
import sentencepiece as spm
import torch

from nmt.data.batching import make_batches
from nmt.decode.translator import Translator, _one_line
from nmt.errors import NmtError
from nmt.files import chunks
from nmt.model.batch import collate
from nmt.model.seq2seq import Seq2Seq
from nmt.vocab import PAD


def alignment_model(tr: Translator) -> Seq2Seq:
    """The (first) model, if it has attention and the tokenizer gives character
    offsets; one NmtError line otherwise, before anything is translated."""
    model = tr.models[0]
    if model.decoder.attn is None:
        raise NmtError(
            "--alignment needs a model with attention "
            "(this one has model.attention: none)"
        )
    try:  # character offsets came with sentencepiece 0.2.2's API
        tr.tokenizer.src.encode("", return_type="offset_mapping")
    except (TypeError, ValueError):
        raise NmtError(
            f"--alignment needs sentencepiece 0.2.2 or newer (this is "
            f"{spm.__version__}); pip install -U sentencepiece"
        ) from None
    return model


def attention_weights(
    model: Seq2Seq,
    src: list[list[int]],
    tgt: list[list[int]],
    reverse: bool,
    device: torch.device,
    batch_tokens: int,
) -> list[np.ndarray | None]:
    """For each (source ids, output ids) pair, the attention weights [T + 1, S + 1]
    of the teacher-forced decoder: row t while producing output piece t (the
    last row: EOS), columns the source pieces in the order the encoder reads
    them (reversed with data.reverse_source), EOS last; the numbers of
    `Translator.attention_maps`. None for an empty source (nothing was run)."""
    out: list[np.ndarray | None] = [None] * len(src)
    real = [k for k, s in enumerate(src) if s]
    if not real:
        return out
    src_len = np.array([len(src[k]) for k in real])
    tgt_len = np.array([len(tgt[k]) for k in real])
    recorded: list[torch.Tensor] = []
    hook = model.decoder.attn.register_forward_hook(
        lambda _module, _args, result: recorded.append(result[1])
    )
    try:
        for idx in make_batches(src_len, tgt_len, batch_tokens):
            rows = [real[i] for i in idx]
            batch = collate([src[k] for k in rows], [tgt[k] for k in rows], reverse)
            batch = batch.to(device)
            recorded.clear()
            with torch.no_grad():
                state = model.encode(batch.src, batch.src_len)
                model.decoder(batch.tgt_in, state, batch.tgt_out != PAD)
            # [N, T, S] from the fused call, or T steps of [N, S]
            w = recorded[0] if recorded[0].dim() == 3 else torch.stack(recorded, 1)
            w = w.float().cpu().numpy()
            for n, k in enumerate(rows):
                out[k] = w[n, : len(tgt[k]) + 1, : len(src[k]) + 1]
    finally:
        hook.remove()
    return out


def span_words(text: str, spans: list[tuple[int, int]]) -> list[int | None]:
    """The word of `text` (index into `text.split()`) that each piece belongs to,
    from the piece's character span [begin, end): the word holding most of its
    non-space characters (the first on a tie), else the word that starts after
    it (a bare ▁, a control piece); None where no word follows."""
    word: list[int | None] = []  # per character; None on whitespace
    n, inside = -1, False
    for ch in text:
        if ch.isspace():  # what str.split() splits on
            inside = False
            word.append(None)
            continue
        n += 0 if inside else 1
        inside = True
        word.append(n)
    after: list[int | None] = [None] * (len(text) + 1)  # first word at or after
    for k in range(len(text) - 1, -1, -1):
        after[k] = word[k] if word[k] is not None else after[k + 1]
    out = []
    for begin, end in spans:
        held = Counter(w for w in word[begin:end] if w is not None)
        if held:
            out.append(max(held, key=lambda w: (held[w], -w)))
        else:
            out.append(after[min(end, len(text))])
    return out


def hard_alignment(
    weights: np.ndarray, src_words: list[int | None], tgt_words: list[int | None]
) -> list[tuple[int, int]]:
    """weights [T, S] over output and source pieces (no EOS, source in its own
    order) -> the unique (source word, target word) pairs, sorted: each output
    piece with a word is paired with the source piece of largest weight among
    those with a word."""
    if weights.shape != (len(tgt_words), len(src_words)):
        raise ValueError(f"weights {weights.shape} for {len(tgt_words)} x "
                         f"{len(src_words)} pieces")  # fmt: skip
    has_word = np.array([w is not None for w in src_words], dtype=bool)
    if not has_word.any() or not tgt_words:
        return []
    best = np.where(has_word, weights, -np.inf).argmax(axis=1)
    pairs = {
        (src_words[s], tgt_words[t])
        for t, s in enumerate(best.tolist())
        if tgt_words[t] is not None
    }
    return sorted(pairs)


def pharaoh(pairs: list[tuple[int, int]]) -> str:
    return " ".join(f"{i}-{j}" for i, j in pairs)


def translate_aligned(
    tr: Translator, lines: list[str], progress=None
) -> list[list[tuple[str, float, str]]]:
    """For each line its n-best (text, score, Pharaoh alignment); the texts and
    scores are those of `tr.translate_nbest`."""
    model = alignment_model(tr)
    if not lines:
        return []
    cfg, tok = tr.config, tr.tokenizer
    reverse = cfg.data.reverse_source
    src = tok.encode_src(lines)
    hyps = tr._decode(src, tr.nbest, progress)  # the search translate_nbest runs
    flat = [(k, ids, score) for k, h in enumerate(hyps) for ids, score in h]
    outputs = [ids for _, ids, _ in flat]
    sources = [src[k] for k, _, _ in flat]
    weights = attention_weights(model, sources, outputs, reverse, tr.device,
                                cfg.decode.batch_tokens)  # fmt: skip
    src_words = [
        span_words(line, m["offsets"])
        for line, m in zip(lines, tok.src.encode(lines, return_type="offset_mapping"))
    ]
    decoded = tok.tgt.decode(outputs, return_type="offset_mapping")
    out: list[list[tuple[str, float, str]]] = [[] for _ in lines]
    for (k, ids, score), w, m in zip(flat, weights, decoded):
        pairs = []
        if w is not None:
            w = w[: len(ids), : len(src[k])]  # no EOS row or column
            w = w[:, ::-1] if reverse else w  # source pieces in their own order
            pairs = hard_alignment(w, src_words[k], span_words(m["text"], m["offsets"]))
        out[k].append((_one_line(m["text"]), score, pharaoh(pairs)))
    return out


def translate_aligned_stream(
    tr: Translator,
    lines: Iterable[str],
    write: Callable[[str], None],
    chunk: int = 10000,
    progress=None,
) -> int:
    """`Translator.translate_stream` with the alignment appended to each line
    (see the module docstring); returns the number of input lines."""
    n = 0
    for block in chunks(lines, chunk):
        for i, hyps in enumerate(translate_aligned(tr, block, progress)):
            if tr.nbest == 1:
                text, _, align = hyps[0]
                write(f"{text} ||| {align}\n")
            else:
                for text, score, align in hyps:
                    write(f"{n + i} ||| {text} ||| {score:.4f} ||| {align}\n")
        n += len(block)
    return n
