"""Prepare a corpus: load, clean, train the tokenizer, encode, filter, cache.

Loading is in `sources`, the cleaning and encoding maps in `clean`; this module
runs them in order and keeps the result.

The result lives in `<workdir>/data/<key>/`, keyed by the data and tokenizer
settings (and the input files' sizes and times), so a second run reuses the
encoded Arrow tables and a changed setting re-encodes.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import datasets
from pyarrow.lib import ArrowException
from tqdm import tqdm

from nmt.config import Config
from nmt.data import chunks
from nmt.data.sources import load_sources, origin, source_stamp
from nmt.data.stream import Rules, encode, processes, sample
from nmt.data.tokenizer import Tokenizer, train_tokenizer, write_error
from nmt.errors import NmtError
from nmt.files import process_alive


@dataclass
class Corpus:
    """A prepared corpus: the encoded splits (memory-mapped from the cache), the
    tokenizer they were encoded with, and the counts `nmt prepare` reported."""

    # columns: src, tgt, src_ids, tgt_ids, src_len, tgt_len
    splits: datasets.DatasetDict
    tokenizer: Tokenizer
    test_names: dict[str, str]  # split key -> display name
    stats: dict

    @property
    def tests(self) -> list[tuple[str, datasets.Dataset]]:
        """The test sets as (display name, split), in recipe order."""
        return [(name, self.splits[key]) for key, name in self.test_names.items()]


def cache_key(cfg: Config) -> str:
    """The cache folder's name: a hash of every setting that changes the encoded
    ids (data, tokenizer, input files' sizes and times), and nothing else."""
    data = cfg.to_dict()["data"]
    data.pop("reverse_source")  # applied when batching; the ids do not change
    data.pop("num_proc")  # the same cache on any number of processes
    blob = json.dumps(
        {
            "data": data,
            "tokenizer": cfg.to_dict()["tokenizer"],
            "files": source_stamp(cfg),
            "recipe_dir": cfg.recipe_dir if cfg.data.source != "toy" else "",
            "layout": 2,  # one Arrow stream file per split (nmt.data.stream)
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _os_cause(e: BaseException) -> OSError | None:
    """The OSError behind e (datasets and pyarrow wrap them), if any."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, OSError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


# errors of writing (the disk, its permissions), as opposed to a damaged file
_WRITE_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EFBIG,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.ENOTDIR,
    errno.EEXIST,
    errno.EISDIR,
}
_WRITE_WORDS = (
    "No space left",
    "Not enough disk space",  # datasets checks before it writes
    "Read-only file system",
    "Permission denied",
)


@contextmanager
def _writing(path: Path, cache: bool = False) -> Iterator[None]:
    """A filesystem error in the block (a full disk, a read-only or unwritable
    folder) becomes one NmtError naming the path being written. With cache=True
    the block also reads nmt's own tables under path: a file there that cannot
    be read is a damaged cache, and the message says how to rebuild it."""
    try:
        yield
    except NmtError:
        raise
    except Exception as e:
        err = _os_cause(e)
        writing = err is not None and (
            err.errno in _WRITE_ERRNOS or any(w in str(err) for w in _WRITE_WORDS)
        )
        if cache and not writing and isinstance(err or e, (OSError, ArrowException)):
            reason = str(err or e).splitlines()[0] or type(e).__name__
            reason = reason if len(reason) <= 200 else reason[:200] + "..."
            raise NmtError(
                f"the cache at {path} is damaged ({reason}); delete that folder "
                "to rebuild it"
            ) from None
        if err is None:
            raise
        raise write_error(err, path) from None


def prepare(cfg: Config, log: Callable[[str], None] = print) -> Corpus:
    """Build (or reuse) the encoded corpus for this recipe."""
    final = Path(cfg.workdir) / "data" / cache_key(cfg)
    if (final / "stats.json").exists():
        log(f"data: reusing cached corpus {final}")
        return _load(final)

    # Built under a name of this process's own and renamed when complete: a run
    # killed half-way (or stopped by a full disk) leaves no cache that looks
    # whole, and two runs preparing the same corpus at once do not write into
    # each other's files.
    root = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    try:
        with _writing(final.parent):
            final.parent.mkdir(parents=True, exist_ok=True)
            for stale in final.parent.glob(f".{final.name}.*.tmp"):
                pid = stale.name.split(".")[-2]
                if pid.isdigit() and not process_alive(
                    int(pid)
                ):  # left by a killed run
                    shutil.rmtree(stale, ignore_errors=True)
            shutil.rmtree(root, ignore_errors=True)  # an earlier process, this pid
            root.mkdir()
    except NmtError as e:
        msg = str(e).replace(str(root), str(final.parent))
        raise NmtError(f"workdir {cfg.workdir}: {msg}") from None
    try:
        try:
            _build(cfg, root, log)
        except NmtError as e:  # name where the file goes, not the temporary folder
            raise NmtError(str(e).replace(str(root), str(final))) from None
        with _writing(final):
            if final.exists() and not (final / "stats.json").exists():
                shutil.rmtree(final)  # half-written by an nmt from before this scheme
            try:
                os.rename(root, final)
            except OSError:
                if not (final / "stats.json").exists():
                    raise
                log(f"data: another run prepared {final} at the same time; using it")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return _load(final)


def _load(root: Path) -> Corpus:
    """The cached corpus in root (memory-mapped); a damaged one is named, never
    deleted (it is the user's disk: they decide)."""
    try:
        stats = json.loads((root / "stats.json").read_text(encoding="utf-8"))
        splits = datasets.DatasetDict(
            {
                key: datasets.Dataset.from_file(str(root / "arrow" / f"{key}.arrow"))
                for key in stats["counts"]
            }
        )
        for key, n in stats["counts"].items():
            if len(splits[key]) != n["kept"]:
                raise ValueError(f"{key} has {len(splits[key])} rows, not {n['kept']}")
        tok = Tokenizer.load(root)
        test_names = stats["test_names"]
    except Exception as e:  # noqa: BLE001  (whatever the damage, the same advice)
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        if not isinstance(e, NmtError) and len(reason) > 200:
            reason = reason[:200] + "..."
        raise NmtError(
            f"the cached corpus at {root} is damaged ({reason}); delete that "
            "folder to rebuild it"
        ) from None
    return Corpus(splits, tok, test_names, stats)


_BAR = {"unit": "pair", "unit_scale": True, "dynamic_ncols": True, "mininterval": 1.0}


def _bar(desc: str, total: int | None = None, split: str = "train") -> tqdm:
    """A progress bar in pairs on stderr; none for the small splits."""
    return tqdm(
        desc=desc, total=total, disable=split != "train", file=sys.stderr, **_BAR
    )


def _build(cfg: Config, root: Path, log: Callable[[str], None]) -> None:
    """Read, clean, tokenize and encode the corpus into the empty folder root."""
    d, tc = cfg.data, cfg.tokenizer
    hf = Path(cfg.workdir) / "data" / "hf"  # datasets' tables of hub/toy text
    with _writing(hf, cache=True):
        sources, test_names = load_sources(cfg, hf)

    # 1. count the pairs (misaligned files fail here), check every line, and
    # draw the tokenizer's sample; worker processes pay from three chunks on
    n_raw = sources["train"].count()
    procs = processes(d.num_proc) if n_raw > 2 * chunks.CHUNK else 1
    with _bar("read train", n_raw) as bar:
        size = tc.input_sentence_size // 2 if tc.joint else tc.input_sentence_size
        src, tgt, n_raw, n_clean = sample(
            sources["train"], n_raw, size, d.dedup, procs, bar.update
        )
    if n_clean == 0:
        raise NmtError(
            "the training set is empty after removing empty pairs "
            f"({n_raw} read from {origin(cfg, 'train')})"
        )
    log(
        f"data: training tokenizer ({tc.model_type}, vocab {tc.vocab_size}, "
        f"{'joint' if tc.joint else 'separate'}) on {len(src)} of {n_clean} pairs"
    )
    with _writing(root):
        tok = train_tokenizer(src, tgt, root, tc)
    del src, tgt

    # 2. encode every split into its Arrow file
    arrow = root / "arrow"
    counts: dict[str, dict[str, int]] = {}
    for key, source in sources.items():
        rules = Rules(clean=not key.startswith("test_"))
        if key == "train":
            rules = Rules(True, d.max_len, d.max_ratio, d.dedup)
        with _writing(arrow, cache=True), _bar(f"encode {key}", n_raw, key) as bar:
            arrow.mkdir(exist_ok=True)
            path = arrow / f"{key}.arrow"
            c = encode(
                source, rules, tok, path, procs if key == "train" else 1, bar.update
            )
        if key == "train":
            counts[key] = {
                "read": c["read"],
                "empty_or_duplicate": c["empty"] + c["duplicate"],
                "too_long_or_ratio": c["too_long"],
                "kept": c["kept"],
            }
        else:
            counts[key] = {"read": c["read"], "kept": c["kept"]}
    if counts["train"]["kept"] == 0:
        raise NmtError(
            "the training set is empty after filtering "
            f"(data.max_len={cfg.data.max_len}, "
            f"data.max_ratio={cfg.data.max_ratio}): {counts['train']}"
        )
    if counts["valid"]["kept"] == 0:
        raise NmtError(
            "the validation set is empty after removing empty pairs "
            f"({counts['valid']['read']} read from {origin(cfg, 'valid')})"
        )
    c = counts["train"]
    log(
        f"data: train {c['read']} pairs read, {c['empty_or_duplicate']} empty"
        f"{' or duplicate' if cfg.data.dedup else ''}, {c['too_long_or_ratio']} over "
        f"max_len/max_ratio, {c['kept']} kept; valid {counts['valid']['kept']}; "
        + ", ".join(f"{test_names[k]} {counts[k]['kept']}" for k in test_names)
    )
    stats = {
        "counts": counts,
        "test_names": test_names,
        "src_vocab": tok.src_vocab_size,
        "tgt_vocab": tok.tgt_vocab_size,
    }
    _write_stats(root / "stats.json", stats)


def _write_stats(path: Path, stats: dict) -> None:
    """The file whose presence marks a cache complete: written last."""
    with _writing(path):
        path.write_text(json.dumps(stats, indent=1))
