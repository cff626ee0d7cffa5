"""Corpus sources: the toy generator, local parallel files, or a hub dataset.

Each split becomes a source that `nmt.data.stream` reads a chunk at a time:
local files straight from disk (`FileSource`), hub and toy data through their
Arrow-backed `datasets.Dataset` (`RowSource`), so a large corpus is never held
as Python lists. This module picks the recipe's source and names the splits.
"""

from __future__ import annotations

import re
from pathlib import Path

import datasets

from nmt.config import Config
from nmt.data import toy
from nmt.data.chunks import FileSource, RowSource
from nmt.data.hub import hub_split
from nmt.data.textfiles import file_stamp, split_files
from nmt.errors import NmtError

datasets.disable_progress_bars()
datasets.logging.set_verbosity_error()


def split_key(name: str) -> str:
    """Arrow split names allow word characters only."""
    return "test_" + re.sub(r"\W", "_", name)


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


def load_sources(cfg: Config, cache_dir: Path) -> tuple[dict, dict[str, str]]:
    """Every split's source, plus a map from test split key to its display name."""
    d = cfg.data
    names: dict[str, str] = {}
    out: dict = {}
    if d.source == "toy":
        t = d.toy
        splits = toy.generate(t.seed, t.train_size, t.valid_size, t.test_size)
        for name, pairs in splits.items():
            key = name if name != "test" else split_key("test")
            out[key] = RowSource(
                datasets.Dataset.from_dict(
                    {"src": [s for s, _ in pairs], "tgt": [x for _, x in pairs]}
                )
            )
        names[split_key("test")] = "test"
    elif d.source == "files":
        f = d.files
        for key, prefix, rkey in [
            ("train", f.train, "data.files.train"),
            ("valid", f.valid, "data.files.valid"),
            *[(None, t, "data.files.test") for t in f.test],
        ]:
            key = key or _test_key(names, prefix, rkey)
            out[key] = FileSource(split_files(cfg, prefix, rkey), rkey)
    else:
        out["train"] = RowSource(hub_split(cfg, d.hub.train_split, cache_dir))
        out["valid"] = RowSource(hub_split(cfg, d.hub.valid_split, cache_dir))
        for name in d.hub.test_splits:
            key = _test_key(names, name, "data.hub.test_splits")
            out[key] = RowSource(hub_split(cfg, name, cache_dir))
    return out, names


def origin(cfg: Config, split: str) -> str:
    """Where one split ("train", "valid") comes from, for messages."""
    d = cfg.data
    if d.source == "toy":
        return "the toy generator (data.toy)"
    if d.source == "hub":
        name = d.hub.train_split if split == "train" else d.hub.valid_split
        return f"hub dataset '{d.hub.path}' split '{name}'"
    key = f"data.files.{split}"
    paths = split_files(cfg, getattr(d.files, split), key)
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
        parts.extend(file_stamp(p) for p in split_files(cfg, prefix, key))
    return "|".join(parts)
