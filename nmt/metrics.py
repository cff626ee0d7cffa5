"""Scores from sacreBLEU on detokenized text, always with their signatures."""

from __future__ import annotations

from sacrebleu.metrics import BLEU, CHRF, TER

from nmt.errors import NmtError


def score(hyps: list[str], refs: list[list[str]], ter: bool = False) -> dict:
    """Corpus BLEU and chrF (and TER); `refs` is a list of reference streams."""
    if not hyps:
        raise NmtError("nothing to score: the hypothesis file has no lines")
    for i, r in enumerate(refs):
        if len(r) != len(hyps):
            raise NmtError(
                f"reference {i + 1} has {len(r)} lines "
                f"but the hypothesis has {len(hyps)}"
            )
    bleu, chrf = BLEU(), CHRF()
    out = {
        "bleu": round(bleu.corpus_score(hyps, refs).score, 2),
        "chrf": round(chrf.corpus_score(hyps, refs).score, 2),
        "signature": {
            "bleu": str(bleu.get_signature()),
            "chrf": str(chrf.get_signature()),
        },
    }
    if ter:
        t = TER()
        out["ter"] = round(t.corpus_score(hyps, refs).score, 2)
        out["signature"]["ter"] = str(t.get_signature())
    return out


def bleu(hyps: list[str], refs: list[str]) -> float:
    return BLEU().corpus_score(hyps, [refs]).score


def sentence_scores(hyps: list[str], refs: list[list[str]]) -> list[dict]:
    bleu_m, chrf_m = BLEU(effective_order=True), CHRF()
    out = []
    for i, h in enumerate(hyps):
        r = [stream[i] for stream in refs]
        out.append(
            {
                "bleu": round(bleu_m.sentence_score(h, r).score, 2),
                "chrf": round(chrf_m.sentence_score(h, r).score, 2),
            }
        )
    return out


def compare(
    hyps_a: list[str], hyps_b: list[str], refs: list[list[str]], n_samples: int = 1000
) -> dict:
    """sacreBLEU's paired bootstrap resampling of system B against system A."""
    from sacrebleu.significance import PairedTest

    if len(hyps_b) != len(hyps_a):
        raise NmtError(
            f"--compare file has {len(hyps_b)} lines, the hypothesis {len(hyps_a)}"
        )
    test = PairedTest(
        [("A", hyps_a), ("B", hyps_b)],
        {"BLEU": BLEU(), "chrF": CHRF()},
        refs,
        test_type="bs",
        n_samples=n_samples,
    )
    signatures, results = test()
    out = {}
    for name in signatures:  # "BLEU", "chrF2"
        a, b = results[name]
        out["bleu" if name == "BLEU" else "chrf"] = {
            "a": _summary(a),
            "b": _summary(b),
            "p_value": round(float(b.p_value), 4),
            "significant": bool(b.p_value < 0.05),
            "signature": str(signatures[name]),
        }
    return out


def _summary(r) -> dict:
    """A sacreBLEU significance Result as plain floats (it holds numpy values)."""
    return {k: round(float(getattr(r, k)), 2) for k in ("score", "mean", "ci")}


def report(out: dict) -> str:
    """`nmt evaluate`'s text from `score`'s dict, with "per_sentence" (from
    `sentence_scores`) and "compare" (from `compare`) where they are present."""
    per = out.get("per_sentence", [])
    lines = [
        f"{i}\tBLEU {r['bleu']:.2f}\tchrF {r['chrf']:.2f}" for i, r in enumerate(per, 1)
    ]
    for m, name in (("bleu", "BLEU"), ("chrf", "chrF"), ("ter", "TER")):
        if m in out:
            lines.append(f"{name:<4} {out[m]:.2f}  {out['signature'][m]}")
    for m, r in out.get("compare", {}).items():
        verdict = "significant" if r["significant"] else "not significant"
        lines.append(
            f"{m}: A {_ci(r['a'])}, B {_ci(r['b'])}, p = {r['p_value']:.4f}: "
            f"{verdict} at 0.05"
        )
    if out.get("compare"):
        lines.append(next(iter(out["compare"].values()))["signature"])
    return "\n".join(lines)


def _ci(r: dict) -> str:
    """score (bootstrap mean ± 95% interval)"""
    return f"{r['score']:.2f} ({r['mean']:.2f} ± {r['ci']:.2f})"
