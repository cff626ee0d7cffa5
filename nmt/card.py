"""The model card of a model directory: the hub's README.md, YAML metadata on top.

The metadata is written through `huggingface_hub.ModelCardData`, so it is what the
hub parses: languages, the hub datasets it was trained on, BLEU and chrF of every
test set with their sacreBLEU signatures (model-index), and a license field that
the user sets (`other` until they do). The body holds the results table, the
recipe the model was trained with (`config.yaml`) and how to use it.
"""

from __future__ import annotations

import json
from pathlib import Path

from nmt.config import Config


def results_of(model_dir: Path, cfg: Config) -> dict | None:
    """The `results.json` of this model: in the directory itself (a downloaded
    model), or in the workdir above it that `nmt run` wrote, if it names the same
    run. None when the model was trained with `nmt train` and never scored."""
    for path in (model_dir / "results.json", model_dir.parent / "results.json"):
        try:
            res = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(res, dict) and res.get("name") == cfg.name:
            return res
    return None


def _datasets(cfg: Config) -> tuple[list[str], str]:
    """(hub dataset ids for the metadata, the data in words for the body)."""
    d = cfg.data
    if d.source == "hub":
        path = d.hub.path
        local = Path(cfg.recipe_dir, path).expanduser().exists()
        name = f"{path} ({d.hub.name})" if d.hub.name else path
        return ([] if local else [path]), f"`{name}` (Hugging Face `datasets`)"
    if d.source == "files":
        return [], f"local files, `{d.files.dir or '.'}/{d.files.train}.*`"
    return [], "the synthetic toy pair of nmt (`data.source: toy`)"


def model_in_words(cfg: Config) -> str:
    m = cfg.model
    attention = "no attention" if m.attention == "none" else f"{m.attention} attention"
    return (
        f"{m.encoder.layers}-layer bidirectional LSTM encoder ({m.encoder.hidden} "
        f"units per direction), {m.decoder.layers}-layer {m.decoder.type.upper()} "
        f"decoder ({m.decoder.hidden} units, conditioned the {m.decoder.conditioning} "
        f"way), {attention}, embeddings of {m.embed_dim}"
        + (", source reversed" if cfg.data.reverse_source else "")
    )


def card_text(
    cfg: Config, recipe: str, results: dict | None, repo_id: str, license: str
) -> str:
    """README.md for the hub: metadata and body."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    src, tgt = cfg.data.src_lang, cfg.data.tgt_lang
    hub_sets, data_words = _datasets(cfg)
    tests = (results or {}).get("tests", [])
    evals = [
        EvalResult(
            task_type="translation",
            task_name=f"Translation {src}-{tgt}",
            dataset_type=hub_sets[0] if hub_sets else cfg.name,
            dataset_name=t["name"],
            dataset_split=t["name"],
            metric_type=metric,
            metric_name=f"{metric.upper() if metric == 'bleu' else 'chrF'} "
            "(sacreBLEU, cased, detokenized)",
            metric_value=t[metric],
            metric_args={"signature": t["signature"][metric], "beam": t["beam"]},
        )
        for t in tests
        for metric in ("bleu", "chrf")
        if metric in t
    ]
    toy = cfg.data.source == "toy"  # its "languages" are made up: no codes
    data = ModelCardData(
        language=None if toy else sorted({src, tgt}),
        license=license,
        library_name="nmt",
        pipeline_tag="translation",
        tags=[
            "translation",
            "seq2seq",
            "rnn",
            "lstm",
            *([] if toy else [f"{src}-{tgt}"]),
        ],
        datasets=hub_sets or None,
        metrics=["bleu", "chrf"] if evals else None,
        model_name=repo_id,
        eval_results=evals or None,
    )
    rows = [
        f"| {t['name']} | {t['sentences']} | {t['beam']} | {t['bleu']:.2f} "
        f"| {t.get('chrf', float('nan')):.2f} |"
        for t in tests
    ]
    table = (
        "| test set | sentences | beam | BLEU | chrF |\n|---|---|---|---|---|\n"
        + "\n".join(rows)
        + f"\n\nsacreBLEU signature: `{tests[0]['signature']['bleu']}`"
        if tests
        else "No test scores: this model was trained with `nmt train`; "
        "`nmt run` scores every test set."
    )
    train = (results or {}).get("train", {})
    trained = (
        f"{train['steps']} updates in {train['train_minutes']} minutes"
        f" ({train['tokens_per_second']} target tokens/s). "
        if train
        else ""
    )
    license_words = (
        "not set. Its weights derive from the training data: set `license:` "
        "above to terms that the data allows before you share it."
        if license == "other"
        else f"`{license}`."
    )
    body = f"""
# {repo_id}

A {src}→{tgt} translation model trained with nmt, the toolkit for recurrent
sequence-to-sequence translation: {model_in_words(cfg)}.

Trained on {data_words}. {trained}License: {license_words}

## Results

{table}

## Use it

With nmt installed (its README, "Install"):

```bash
echo "{"Ein Satz ." if src == "de" else "A sentence ."}" | nmt translate {repo_id}
nmt translate {repo_id} -i input.{src} -o output.{tgt} --beam 5
```

```python
from nmt.decode.translator import Translator

translator = Translator.load("{repo_id}")
print(translator.translate(["..."]))
```

The model is downloaded once into the Hugging Face cache; with
`HF_HUB_OFFLINE=1` it loads from there.

## Files

- `best.safetensors`: the weights (safetensors: no pickle); other
  `*.safetensors` are averaged checkpoints (`--checkpoint NAME`) and the
  lexical table of `--shortlist K` (`lexicon.safetensors`).
- `config.yaml`: the resolved recipe below; `spm*.model`: the sentencepiece
  tokenizer(s); `results.json`, `log.jsonl`: the scores and the training log.

## Recipe

```yaml
{recipe.rstrip()}
```
"""
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")  # parses it back
    return str(card)
