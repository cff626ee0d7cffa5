"""Corpus sources: the toy generator, local parallel files, or a hub dataset.

Each source yields `datasets.Dataset`s with two string columns, `src` and `tgt`,
so that a large corpus is written to Arrow and memory-mapped, never held as
Python lists.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import re
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import zip_longest
from pathlib import Path

import datasets

from nmt.config import Config
from nmt.data import toy
from nmt.errors import NmtError

datasets.disable_progress_bars()
datasets.logging.set_verbosity_error()


def split_key(name: str) -> str:
    """Arrow split names allow word characters only."""
    return "test_" + re.sub(r"\W", "_", name)


_FEATURES = datasets.Features(
    {"src": datasets.Value("string"), "tgt": datasets.Value("string")}
)
_GZIP_MAGIC = b"\x1f\x8b"


def _strerror(e: OSError) -> str:
    return e.strerror or str(e) or type(e).__name__


def _open_lines(path: Path) -> Iterator[bytes]:
    """The raw lines of a data file, gunzipped when its name ends in .gz. Any read
    error (unreadable, truncated or not gzip at all) is one NmtError naming the
    file and the line it was reading."""
    gz = path.suffix == ".gz"
    try:
        f = gzip.open(path, "rb") if gz else open(path, "rb")  # noqa: SIM115
    except OSError as e:
        raise NmtError(f"cannot read data file {path}: {_strerror(e)}") from None
    n = 0
    with f:
        try:
            for raw in f:
                n += 1
                yield raw
        except gzip.BadGzipFile as e:
            if n == 0:
                raise NmtError(
                    f"{path} is not a gzip file, though its name ends in .gz "
                    "(compress it with gzip, or drop the .gz)"
                ) from None
            raise NmtError(_broken_gzip(path, n, e)) from None
        except (EOFError, zlib.error) as e:
            raise NmtError(_broken_gzip(path, n, e)) from None
        except OSError as e:
            raise NmtError(
                f"{path}, line {n + 1}: cannot read: {_strerror(e)}"
            ) from None


def _broken_gzip(path: Path, n: int, e: Exception) -> str:
    # gzip decompresses ahead of the lines it returns: the damage is after line n
    where = f"{path}, after line {n}" if n else str(path)
    return f"{where}: the gzip file is truncated or damaged ({e})"


def _decode(raw: bytes, path: Path, lineno: int) -> str:
    try:
        return raw.rstrip(b"\r\n").decode("utf-8")
    except UnicodeDecodeError as e:
        hint = ""
        if lineno == 1 and raw.startswith(_GZIP_MAGIC):
            hint = "; it looks gzip-compressed: name it with .gz"
        raise NmtError(
            f"{path}, line {lineno}: not valid UTF-8 (byte {e.start + 1}){hint}"
        ) from None


def _pair_lines(src: str, tgt: str, stamp: str) -> Iterator[dict]:
    """Two parallel files read in lockstep; `stamp` only keys the Arrow cache."""
    del stamp
    src_p, tgt_p = Path(src), Path(tgt)
    a, b = _open_lines(src_p), _open_lines(tgt_p)
    try:
        for n, (ra, rb) in enumerate(zip_longest(a, b), start=1):
            if ra is None or rb is None:
                n_a = n - 1 + (ra is not None) + sum(1 for _ in a)
                n_b = n - 1 + (rb is not None) + sum(1 for _ in b)
                raise NmtError(
                    f"parallel files differ in length: {src_p} has {n_a} lines, "
                    f"{tgt_p} has {n_b}"
                )
            yield {"src": _decode(ra, src_p, n), "tgt": _decode(rb, tgt_p, n)}
    finally:
        a.close()
        b.close()


def _tsv_lines(path: str, stamp: str) -> Iterator[dict]:
    """One pair per line, source TAB target. A blank line is an empty pair
    (removed and counted as empty, like blank lines of parallel text files)."""
    del stamp
    p = Path(path)
    for n, raw in enumerate(_open_lines(p), start=1):
        line = _decode(raw, p, n)
        if not line.strip():
            yield {"src": "", "tgt": ""}
            continue
        cols = line.split("\t")
        if len(cols) != 2:
            found = "no tab" if len(cols) == 1 else f"{len(cols)} columns"
            raise NmtError(
                f"{p}, line {n}: expected two tab-separated columns "
                f"(source, target), found {found}"
            )
        yield {"src": cols[0], "tgt": cols[1]}


def _in_the_way(path: Path) -> Path | None:
    """The nearest existing ancestor of path when it is not a folder (ENOTDIR)."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def _find(directory: Path, name: str, key: str = "data.files.train") -> Path:
    """<directory>/<name> or its .gz; otherwise one NmtError saying why not."""
    candidates = (directory / name, directory / f"{name}.gz")
    try:
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        for candidate in candidates:
            if candidate.is_dir():
                raise NmtError(f"data file {candidate} is a folder, not a file ({key})")
            if candidate.exists():
                raise NmtError(f"data file {candidate} is not a regular file ({key})")
    except OSError as e:  # e.g. a folder on the way that may not be searched
        raise NmtError(f"cannot read data file {e.filename}: {_strerror(e)}") from None
    wanted = f"data file not found: {directory / name}[.gz]"
    blocker = _in_the_way(candidates[0])
    if blocker is not None:
        raise NmtError(f"{wanted}: {blocker} is a file, not a folder (data.files.dir)")
    if not directory.is_dir():
        raise NmtError(f"{wanted}: there is no folder {directory} (data.files.dir)")
    raise NmtError(f"{wanted} ({key})")


def _stamp(*paths: Path) -> str:
    parts = []
    for p in paths:
        try:
            st = p.stat()
        except OSError as e:
            raise NmtError(f"cannot read data file {p}: {_strerror(e)}") from None
        parts.append(f"{p}:{st.st_size}:{st.st_mtime_ns}")
    return ";".join(parts)


def _from_generator(gen, cache_dir: Path, **kwargs) -> datasets.Dataset:
    # A generator that yields nothing is an empty split, which datasets refuses
    # to build ("corresponds to no data"); reading the first row also reports an
    # unreadable or misaligned file before datasets wraps the error.
    peek = gen(**kwargs)
    try:
        empty = next(peek, None) is None
    finally:
        peek.close()
    if empty:
        return datasets.Dataset.from_dict({"src": [], "tgt": []}, features=_FEATURES)
    try:
        return datasets.Dataset.from_generator(
            gen, gen_kwargs=kwargs, cache_dir=str(cache_dir), features=_FEATURES
        )
    except Exception as e:  # datasets wraps errors raised inside the generator
        cause = e
        while cause is not None and not isinstance(cause, NmtError):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:
            raise cause from None
        raise


_ROLES = {
    "data.files.train": "the training",
    "data.files.valid": "the validation",
    "data.files.test": "the test",
}


def _split_files(cfg: Config, prefix: str, key: str) -> list[Path]:
    """The file(s) that hold one split: a .tsv, or the source and target files."""
    fc = cfg.data.files
    directory = cfg.resolve(fc.dir or ".")
    if fc.format == "tsv":
        return [_find(directory, prefix, key)]
    return [
        _find(directory, f"{prefix}.{cfg.data.src_lang}", key),
        _find(directory, f"{prefix}.{cfg.data.tgt_lang}", key),
    ]


def _files_split(
    cfg: Config, prefix: str, cache_dir: Path, key: str = "data.files.train"
) -> datasets.Dataset:
    paths = _split_files(cfg, prefix, key)
    if len(paths) == 1:
        ds = _from_generator(
            _tsv_lines, cache_dir, path=str(paths[0]), stamp=_stamp(*paths)
        )
    else:
        src, tgt = paths
        ds = _from_generator(
            _pair_lines, cache_dir, src=str(src), tgt=str(tgt), stamp=_stamp(*paths)
        )
    if len(ds) == 0:
        what = "file" if len(paths) == 1 else "files"
        names = " and ".join(str(p) for p in paths)
        raise NmtError(f"{_ROLES[key]} {what} {names} have no lines ({key})")
    return ds


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


def _hub_split(cfg: Config, split: str, cache_dir: Path) -> datasets.Dataset:
    """Map either hub layout to `src`/`tgt` columns."""
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
        features=_FEATURES,
        cache_file_name=str(out),
        load_from_cache_file=False,
    )


def _test_key(names: dict[str, str], name: str, key: str) -> str:
    """The split key of one test set, recorded in names; two sets that would
    share a key (listed twice, or 'a-b' beside 'a_b') are refused."""
    k = split_key(name)
    if k in names:
        what = (
            f"'{name}' is listed twice"
            if names[k] == name
            else f"'{names[k]}' and '{name}' would share the split name '{k}'"
        )
        raise NmtError(f"{key}: {what}; every test set needs its own name")
    names[k] = name
    return k


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
        f = d.files
        out["train"] = _files_split(cfg, f.train, cache_dir, "data.files.train")
        out["valid"] = _files_split(cfg, f.valid, cache_dir, "data.files.valid")
        for name in d.files.test:
            key = _test_key(names, name, "data.files.test")
            out[key] = _files_split(cfg, name, cache_dir, "data.files.test")
    else:
        out["train"] = _hub_split(cfg, d.hub.train_split, cache_dir)
        out["valid"] = _hub_split(cfg, d.hub.valid_split, cache_dir)
        for name in d.hub.test_splits:
            key = _test_key(names, name, "data.hub.test_splits")
            out[key] = _hub_split(cfg, name, cache_dir)
    return datasets.DatasetDict(out), names


def origin(cfg: Config, split: str) -> str:
    """Where one split ("train", "valid") comes from, for messages."""
    d = cfg.data
    if d.source == "toy":
        return "the toy generator (data.toy)"
    if d.source == "hub":
        name = d.hub.train_split if split == "train" else d.hub.valid_split
        return f"hub dataset '{d.hub.path}' split '{name}'"
    key = f"data.files.{split}"
    paths = _split_files(cfg, getattr(d.files, split), key)
    return " and ".join(str(p) for p in paths)


def source_stamp(cfg: Config) -> str:
    """What identifies the input data beyond the recipe (file sizes and times)."""
    d = cfg.data
    if d.source != "files":
        return ""
    parts = []
    for prefix, key in [
        (d.files.train, "data.files.train"),
        (d.files.valid, "data.files.valid"),
        *[(t, "data.files.test") for t in d.files.test],
    ]:
        parts.extend(_stamp(p) for p in _split_files(cfg, prefix, key))
    return "|".join(parts)
