"""What `nmt translate`, `nmt evaluate` and `nmt score` do with their parsed
arguments: refuse what can be refused first, then call the library."""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import math
import sys
from pathlib import Path

from nmt.errors import NmtError
from nmt.files import check_output, count_lines, output_file, read_lines


def _progress(total: int, desc: str, unit: str):
    """A progress bar on stderr (stdout holds the output)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, **_BAR)


_BAR = {"file": sys.stderr, "dynamic_ncols": True, "mininterval": 1.0}
# Translator.load's options that `nmt translate` takes from the command line
_DECODE_OPTIONS = ("checkpoint", "device", "beam", "nbest", "batch_tokens")
_DECODE_OPTIONS += ("batch_rows", "length_penalty", "stop", "precision", "shortlist")


def cmd_translate(a: argparse.Namespace) -> None:
    from nmt.decode.translator import Translator

    # everything that can be refused is refused before the model loads
    stream = _streaming(a)
    total = count_lines(a.input)
    if a.output:
        check_output(a.output, inputs=(a.input,))
    plots = Path(a.attention_plot) if a.attention_plot else None
    if plots and plots.exists() and not plots.is_dir():
        raise NmtError(f"--attention-plot {plots} is a file, not a folder")
    dirs = a.model_dir if len(a.model_dir) > 1 else a.model_dir[0]
    tr = Translator.load(dirs, **{k: getattr(a, k) for k in _DECODE_OPTIONS})
    translate = tr.translate_stream
    if a.alignment:
        from nmt.decode.alignment import alignment_model, translate_aligned_stream

        alignment_model(tr)  # no attention: say so before translating
        translate = functools.partial(translate_aligned_stream, tr)
    lines = read_lines(a.input)
    if stream:
        return _translate_streaming(tr, translate, lines, typed=_typed(a))
    first: list[str] = []  # the lines --attention-plot draws
    if a.attention_plot:
        tr.attention_model()  # no attention: say so before translating
        first = list(itertools.islice(lines, a.plot_sentences))
        lines = itertools.chain(first, lines)
    with (
        output_file(a.output, inputs=(a.input,)) as out,
        _progress(total, "translate", "sent") as bar,
    ):
        n = translate(lines, out.write, progress=bar.update)
    if a.attention_plot:
        from nmt.plot import plot_attention_maps

        plot_attention_maps(tr.attention_maps(first), plots)
        print(f"wrote {len(first)} attention plots to {plots}", file=sys.stderr)
    print(f"translated {n} lines (beam {tr.beam})", file=sys.stderr)


def _streaming(a: argparse.Namespace) -> bool:
    """--stream, or by default when a person types the input: stdin is a terminal
    and no -i, -o or --attention-plot asks for a whole file. Streaming refuses
    -o (written atomically, so whole only at the end) and --attention-plot
    (drawn once all lines are read)."""
    if a.stream is None:
        return _typed(a) and not (a.output or a.attention_plot)
    if a.stream and a.output:
        raise NmtError(
            "--stream writes each line as it is translated, but -o is written "
            "whole at the end; stream into a file with '> FILE', or drop --stream"
        )
    if a.stream and a.attention_plot:
        raise NmtError("--attention-plot needs all lines first; drop --stream")
    return a.stream


def _typed(a: argparse.Namespace) -> bool:
    """The input is typed by a person: read from stdin, which is a terminal."""
    return a.input is None and sys.stdin is not None and sys.stdin.isatty()


def _translate_streaming(tr, translate, lines, typed: bool) -> None:
    """Each line translated alone as soon as it is read (a batch of one: the
    batch mode's result), its output line(s) written and flushed at once; no
    progress bar, which would mix with a person's typing. End of input (Ctrl-D
    on a terminal) ends it normally."""
    if sys.stdout is None:
        raise NmtError("standard output is closed; give an output file with -o")
    if typed:
        print("type a line to translate it; Ctrl-D ends", file=sys.stderr)

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    n = translate(lines, write, chunk=1)
    print(f"translated {n} lines (beam {tr.beam})", file=sys.stderr)


def cmd_evaluate(a: argparse.Namespace) -> None:
    from nmt.metrics import compare, report, score, sentence_scores

    refs = [list(read_lines(r)) for r in a.ref]
    if a.model:
        if not a.src:
            raise NmtError("evaluate --model needs --src SRC")
        from nmt.decode.translator import Translator

        count_lines(a.src)
        hyps = Translator.load(a.model, beam=a.beam).translate(list(read_lines(a.src)))
    else:
        hyps = list(read_lines(a.hyp))
    s = score(hyps, refs, ter=a.ter)
    out: dict = {**s, "sentences": len(hyps)}
    if a.sentence:
        out["per_sentence"] = sentence_scores(hyps, refs)
    if a.compare:
        out["compare"] = compare(hyps, list(read_lines(a.compare)), refs)
    print(json.dumps(out) if a.json else report(out))


def cmd_score(a: argparse.Namespace) -> None:
    from nmt.decode.scoring import corpus_perplexity, score_pairs
    from nmt.decode.translator import Translator

    tr = Translator.load(a.model_dir, checkpoint=a.checkpoint, device=a.device)
    src, tgt = list(read_lines(a.src)), list(read_lines(a.tgt))
    with _progress(len(src), "score", "pair") as bar:
        scores = score_pairs(tr, src, tgt, progress=bar.update)
    for lp, n in scores:
        print(f"{lp:.4f}\t{math.exp(-lp / max(n, 1)):.4f}")
    print(
        f"corpus perplexity {corpus_perplexity(scores):.4f} over {len(scores)} pairs, "
        f"{sum(n for _, n in scores)} target tokens",
        file=sys.stderr,
    )
