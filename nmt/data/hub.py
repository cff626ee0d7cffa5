"""Hub datasets: a name on the Hugging Face hub, or a folder written by
`save_to_disk`, mapped to the `src`/`tgt` columns every source yields.

A failure (no network, no such split, rows that are not text) is one NmtError
that says what to set instead; the hub libraries' retry chatter is silenced.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import datasets

from nmt.config import Config
from nmt.data.textfiles import PAIR_FEATURES
from nmt.errors import NmtError

_HUB_LOGGERS = (
    "huggingface_hub",
    "datasets",
    "fsspec",
    "filelock",
    "urllib3",
    "httpx",
    "httpcore",
)


@contextmanager
def _quiet_hub() -> Iterator[None]:
    """No retry chatter from the hub libraries: a failure is said in one line."""
    loggers = [logging.getLogger(n) for n in _HUB_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _hub_dataset(cfg: Config, split: str) -> datasets.Dataset:
    hc = cfg.data.hub
    if not hc.path:
        raise NmtError(
            "data.source is hub but data.hub.path is empty: set it to a hub name "
            "or to a folder written by save_to_disk"
        )
    local = cfg.resolve(hc.path)
    saved = local.is_dir() and (
        (local / "dataset_dict.json").exists() or (local / "state.json").exists()
    )
    try:
        with _quiet_hub():
            if saved:
                ds = datasets.load_from_disk(str(local))
                if isinstance(ds, datasets.DatasetDict):
                    if split not in ds:
                        raise NmtError(
                            f"{local}: no split '{split}' (has {', '.join(ds)})"
                        )
                    ds = ds[split]
                return ds
            return datasets.load_dataset(hc.path, hc.name or None, split=split)
    except NmtError:
        raise
    except Exception as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        if saved:
            raise NmtError(
                f"cannot load the saved dataset {local} (data.hub.path), split "
                f"'{split}': {reason[:200]}"
            ) from None
        raise NmtError(
            f"cannot load hub dataset '{hc.path}' split '{split}': {reason[:200]}. "
            "Without network, use local files: --set data.source=files "
            "--set data.files.dir=DIR (files DIR/<split>.<lang>[.gz])"
        ) from None


def _text(value, where: str) -> str:
    """A hub field as text: a missing value is an empty one (cleaned and counted)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise NmtError(f"{where} holds {type(value).__name__} values, not text")
    return value


def hub_split(cfg: Config, split: str, cache_dir: Path) -> datasets.Dataset:
    """One split of the recipe's hub dataset as `src`/`tgt` text columns, from
    either layout (a 'translation' column of language dicts, or two columns)."""
    hc, d = cfg.data.hub, cfg.data
    ds = _hub_dataset(cfg, split)
    name = f"hub dataset '{hc.path}' split '{split}'"
    if len(ds) == 0:
        raise NmtError(f"{name} has no rows")
    layout = hc.layout
    if layout == "auto":
        layout = "translation" if "translation" in ds.column_names else "columns"
    if layout == "translation":
        if "translation" not in ds.column_names:
            raise NmtError(f"hub dataset '{hc.path}' has no 'translation' column")
        s, t = d.src_lang, d.tgt_lang

        def field(x, lang: str) -> str:
            if not isinstance(x, dict) or lang not in x:
                has = ", ".join(map(str, x)) if isinstance(x, dict) else "no languages"
                key = "data.src_lang" if lang == s else "data.tgt_lang"
                raise NmtError(
                    f"{name}: a 'translation' entry has no language '{lang}' "
                    f"(has {has}); set {key}"
                )
            return _text(x[lang], f"{name}, translation '{lang}'")

        def pick(batch):
            return {
                "src": [field(x, s) for x in batch["translation"]],
                "tgt": [field(x, t) for x in batch["translation"]],
            }
    else:
        s, t = hc.src_field or d.src_lang, hc.tgt_field or d.tgt_lang
        for col in (s, t):
            if col not in ds.column_names:
                raise NmtError(
                    f"hub dataset '{hc.path}' has no column '{col}' "
                    f"(columns: {', '.join(ds.column_names)}); set data.hub.src_field"
                )

        def pick(batch):
            return {
                "src": [_text(v, f"{name}, column '{s}'") for v in batch[s]],
                "tgt": [_text(v, f"{name}, column '{t}'") for v in batch[t]],
            }

    # The mapped table goes to nmt's own cache, never beside the dataset's files
    # (a folder written by save_to_disk belongs to the user).
    fp = getattr(ds, "_fingerprint", None) or f"{hc.path}:{hc.name}:{split}"
    blob = json.dumps([fp, layout, s, t])
    out = cache_dir / "hub" / f"{hashlib.sha256(blob.encode()).hexdigest()[:16]}.arrow"
    out.parent.mkdir(parents=True, exist_ok=True)
    return ds.map(
        pick,
        batched=True,
        remove_columns=ds.column_names,
        features=PAIR_FEATURES,
        cache_file_name=str(out),
        load_from_cache_file=False,
    )
