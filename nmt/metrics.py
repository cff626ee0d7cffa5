"""Scores from sacreBLEU on detokenized text, always with their signatures."""

from __future__ import annotations

from sacrebleu.metrics import BLEU, CHRF, TER

from nmt.errors import NmtError


def score(hyps: list[str], refs: list[list[str]], ter: bool = False) -> dict:
    """Corpus BLEU and chrF (and TER); `refs` is a list of reference streams."""
    for i, r in enumerate(refs):
        if len(r) != len(hyps):
            raise NmtError(
                f"reference {i + 1} has {len(r)} lines but the hypothesis has {len(hyps)}"
            )
    bleu, chrf = BLEU(), CHRF()
    out = {
        "bleu": round(bleu.corpus_score(hyps, refs).score, 2),
        "chrf": round(chrf.corpus_score(hyps, refs).score, 2),
        "signature": {"bleu": str(bleu.get_signature()), "chrf": str(chrf.get_signature())},
    }
    if ter:
        t = TER()
        out["ter"] = round(t.corpus_score(hyps, refs).score, 2)
        out["signature"]["ter"] = str(t.get_signature())
    return out


def bleu(hyps: list[str], refs: list[str]) -> float:
    return BLEU().corpus_score(hyps, [refs]).score
