"""Corpus sources: the toy generator, local parallel files, or a hub dataset.

Each source yields `datasets.Dataset`s with two string columns, `src` and `tgt`,
so that a large corpus is written to Arrow and memory-mapped, never held as
Python lists.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from itertools import zip_longest
from pathlib import Path

import datasets

from nmt import toy
from nmt.config import Config
from nmt.errors import NmtError

datasets.disable_progress_bars()
datasets.logging.set_verbosity_error()


def split_key(name: str) -> str:
    """Arrow split names allow word characters only."""
    return "test_" + re.sub(r"\W", "_", name)


def _open_lines(path: Path) -> Iterator[bytes]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        yield from f


def _decode(raw: bytes, path: Path, lineno: int) -> str:
    try:
        return raw.rstrip(b"\r\n").decode("utf-8")
    except UnicodeDecodeError as e:
        raise NmtError(
            f"{path}, line {lineno}: not valid UTF-8 (byte {e.start + 1})"
        ) from None


def _pair_lines(src: str, tgt: str, stamp: str) -> Iterator[dict]:
    """Two parallel files read in lockstep; `stamp` only keys the Arrow cache."""
    del stamp
    src_p, tgt_p = Path(src), Path(tgt)
    a, b = _open_lines(src_p), _open_lines(tgt_p)
    for n, (ra, rb) in enumerate(zip_longest(a, b), start=1):
        if ra is None or rb is None:
            n_a = n - 1 + (ra is not None) + sum(1 for _ in a)
            n_b = n - 1 + (rb is not None) + sum(1 for _ in b)
            raise NmtError(
                f"parallel files differ in length: {src_p} has {n_a} lines, "
                f"{tgt_p} has {n_b}"
            )
        yield {"src": _decode(ra, src_p, n), "tgt": _decode(rb, tgt_p, n)}


def _tsv_lines(path: str, stamp: str) -> Iterator[dict]:
    del stamp
    p = Path(path)
    for n, raw in enumerate(_open_lines(p), start=1):
        cols = _decode(raw, p, n).split("\t")
        if len(cols) < 2:
            raise NmtError(f"{p}, line {n}: expected two tab-separated columns")
        yield {"src": cols[0], "tgt": cols[1]}


def _find(directory: Path, name: str) -> Path:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise NmtError(f"data file not found: {directory / name}[.gz]")


def _stamp(*paths: Path) -> str:
    return ";".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in paths)


def _from_generator(gen, cache_dir: Path, **kwargs) -> datasets.Dataset:
    try:
        return datasets.Dataset.from_generator(
            gen,
            gen_kwargs=kwargs,
            cache_dir=str(cache_dir),
            features=datasets.Features(
                {"src": datasets.Value("string"), "tgt": datasets.Value("string")}
            ),
        )
    except Exception as e:  # datasets wraps errors raised inside the generator
        cause = e
        while cause is not None and not isinstance(cause, NmtError):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:
            raise cause from None
        raise


def _files_split(cfg: Config, prefix: str, cache_dir: Path) -> datasets.Dataset:
    fc = cfg.data.files
    directory = cfg.resolve(fc.dir or ".")
    if fc.format == "tsv":
        path = _find(directory, prefix)
        return _from_generator(
            _tsv_lines, cache_dir, path=str(path), stamp=_stamp(path)
        )
    src = _find(directory, f"{prefix}.{cfg.data.src_lang}")
    tgt = _find(directory, f"{prefix}.{cfg.data.tgt_lang}")
    return _from_generator(
        _pair_lines, cache_dir, src=str(src), tgt=str(tgt), stamp=_stamp(src, tgt)
    )


def _hub_dataset(cfg: Config, split: str) -> datasets.Dataset:
    hc = cfg.data.hub
    local = cfg.resolve(hc.path) if hc.path else None
    try:
        if (
            local is not None
            and local.is_dir()
            and (
                (local / "dataset_dict.json").exists()
                or (local / "state.json").exists()
            )
        ):
            ds = datasets.load_from_disk(str(local))
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise NmtError(f"{local}: no split '{split}' (has {', '.join(ds)})")
                ds = ds[split]
            return ds
        return datasets.load_dataset(hc.path, hc.name or None, split=split)
    except NmtError:
        raise
    except Exception as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise NmtError(
            f"cannot load hub dataset '{hc.path}' split '{split}': {reason[:200]}. "
            "Without network, use local files: --set data.source=files "
            "--set data.files.dir=DIR (files DIR/<split>.<lang>[.gz])"
        ) from None


def _hub_split(cfg: Config, split: str) -> datasets.Dataset:
    """Map either hub layout to `src`/`tgt` columns."""
    hc, d = cfg.data.hub, cfg.data
    ds = _hub_dataset(cfg, split)
    layout = hc.layout
    if layout == "auto":
        layout = "translation" if "translation" in ds.column_names else "columns"
    if layout == "translation":
        if "translation" not in ds.column_names:
            raise NmtError(f"hub dataset '{hc.path}' has no 'translation' column")
        s, t = d.src_lang, d.tgt_lang

        def pick(batch):
            return {
                "src": [x[s] for x in batch["translation"]],
                "tgt": [x[t] for x in batch["translation"]],
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
            return {"src": batch[s], "tgt": batch[t]}

    return ds.map(pick, batched=True, remove_columns=ds.column_names)


def load_raw(
    cfg: Config, cache_dir: Path
) -> tuple[datasets.DatasetDict, dict[str, str]]:
    """All splits as text, plus a map from test split key to its display name."""
    d = cfg.data
    names: dict[str, str] = {}
    out: dict[str, datasets.Dataset] = {}
    if d.source == "toy":
        t = d.toy
        splits = toy.generate(t.seed, t.train_size, t.valid_size, t.test_size)
        for name, pairs in splits.items():
            key = name if name != "test" else split_key("test")
            out[key] = datasets.Dataset.from_dict(
                {"src": [s for s, _ in pairs], "tgt": [x for _, x in pairs]}
            )
        names[split_key("test")] = "test"
    elif d.source == "files":
        out["train"] = _files_split(cfg, d.files.train, cache_dir)
        out["valid"] = _files_split(cfg, d.files.valid, cache_dir)
        for name in d.files.test:
            names[split_key(name)] = name
            out[split_key(name)] = _files_split(cfg, name, cache_dir)
    else:
        out["train"] = _hub_split(cfg, d.hub.train_split)
        out["valid"] = _hub_split(cfg, d.hub.valid_split)
        for name in d.hub.test_splits:
            names[split_key(name)] = name
            out[split_key(name)] = _hub_split(cfg, name)
    return datasets.DatasetDict(out), names


def source_stamp(cfg: Config) -> str:
    """What identifies the input data beyond the recipe (file sizes and times)."""
    d = cfg.data
    if d.source != "files":
        return ""
    directory = cfg.resolve(d.files.dir or ".")
    parts = []
    for prefix in [d.files.train, d.files.valid, *d.files.test]:
        names = (
            [prefix]
            if d.files.format == "tsv"
            else [f"{prefix}.{d.src_lang}", f"{prefix}.{d.tgt_lang}"]
        )
        for n in names:
            p = _find(directory, n)
            parts.append(_stamp(p))
    return "|".join(parts)
