"""The end of `nmt run`: checkpoint averaging and the length penalty, chosen on dev.

Both are judged by the BLEU of the recipe's own search (`decode.beam`) on the dev
set, never on a test set, and each is kept only where it gains:

- `train.average: N` averages the newest N numbered checkpoints. An average that
  beats `best.safetensors` on dev takes its place, and the single best checkpoint
  stays beside it as `best-single.safetensors`.
- `decode.tune_length_penalty: [...]` decodes dev with each penalty and writes the
  winner into the model's `config.yaml`, so that `nmt translate` decodes as the
  scores `nmt run` reports were decoded.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from nmt.checkpoint import BEST, average, load_checkpoint, numbered
from nmt.config import Config, load_model_config
from nmt.data.corpus import Corpus
from nmt.decode.translator import Translator
from nmt.files import atomic
from nmt.metrics import score
from nmt.workdir import DEV_AVERAGE

SINGLE = "best-single.safetensors"


def translate_set(tr: Translator, src: list[str], desc: str) -> list[str]:
    """`tr.translate(src)` under a progress bar."""
    with tqdm(
        total=len(src), desc=desc, unit="sent", dynamic_ncols=True, mininterval=1.0
    ) as bar:
        return tr.translate(src, progress=bar.update)


def finish(cfg: Config, corpus: Corpus, log: Callable[[str], None]) -> dict:
    """Average and tune as the recipe asks; what was tried and what was kept."""
    t, d, model_dir = cfg.train, cfg.decode, cfg.model_dir
    valid = corpus.splits["valid"]
    src, ref = list(valid["src"]), list(valid["tgt"])

    def dev_bleu(checkpoint: str, penalty: float | None = None) -> float:
        tr = Translator.load(model_dir, checkpoint=checkpoint, length_penalty=penalty)
        hyps = translate_set(tr, src, f"dev, {checkpoint.strip('.')}")
        return round(score(hyps, [ref])["bleu"], 2)

    out: dict = {}
    known: dict[float, float] = {}  # penalty -> dev BLEU of the weights now best
    have = len(numbered(model_dir))
    if t.average > 1 and have > 1:
        out["average"] = a = _average(model_dir, min(t.average, have), dev_bleu, log)
        if "dev_bleu" in a:  # decoded at the recipe's penalty: not again
            known[d.length_penalty] = max(a["dev_bleu"], a["best_dev_bleu"])
    if d.tune_length_penalty:
        tried = {
            a: known[a] if a in known else dev_bleu(BEST, a)
            for a in d.tune_length_penalty
        }
        # ties go to the penalty nearest the recipe's own
        chosen = max(tried, key=lambda a: (tried[a], -abs(a - d.length_penalty)))
        mine = load_model_config(model_dir)
        mine.decode.length_penalty = cfg.decode.length_penalty = chosen
        mine.save(model_dir / "config.yaml")
        out["length_penalty"] = {"tried": tried, "chosen": chosen}
        log(
            "length penalty on dev: "
            + ", ".join(f"{a:g}: {b:.2f}" for a, b in tried.items())
            + f"; decoding with {chosen:g}"
        )
    return out


def _average(model_dir: Path, n: int, dev_bleu, log) -> dict:
    """Average the newest `n` numbered checkpoints; the average replaces the best
    weights when its dev BLEU is higher."""
    best = model_dir / BEST
    if not best.is_file():  # training stopped before it validated
        return {"checkpoints": n, "kept": False}
    base = dev_bleu(BEST)
    candidate = model_dir / f"{DEV_AVERAGE}.{os.getpid()}.safetensors"
    try:
        average(model_dir, n, candidate.name)
        mean = dev_bleu(candidate.name)
        kept = mean > base
        if kept:
            if "averaged" not in load_checkpoint(best):  # keep the single best once
                with atomic(model_dir / SINGLE) as f:
                    f.write(best.read_bytes())
            os.replace(candidate, best)
    finally:
        candidate.unlink(missing_ok=True)
    log(
        f"average of the last {n} checkpoints: dev BLEU {mean:.2f} against "
        f"{base:.2f} for the best one; "
        + (f"the average is now {BEST} ({SINGLE}: the single best)" if kept else
           "keeping the best one")
    )  # fmt: skip
    return {"checkpoints": n, "dev_bleu": mean, "best_dev_bleu": base, "kept": kept}
