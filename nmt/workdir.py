"""A training workdir's safety: one writer at a time, an earlier run kept aside
(never deleted), and resume only with the data and tokenizer it was made with.

Everything here checks before it touches anything, so a refused command leaves
the workdir exactly as it found it.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from nmt.config import Config
from nmt.errors import NmtError
from nmt.files import process_alive

LOCK = ".nmt.lock"
# what a run must share with the checkpoint it resumes from
_RESUME_SECTIONS = ("data", "tokenizer", "model")
_held: dict[str, int] = {}  # workdir -> open lock file descriptor of this process


@contextmanager
def locked(workdir: str | Path, command: str = "train"):
    """Hold the workdir's lock for the block; a second process is refused with
    one line naming the first. Reentrant within one process. The lock is the
    kernel's (flock), so a killed process never leaves a stale one."""
    root = Path(workdir).resolve()
    key = str(root)
    if key in _held or int(os.environ.get("RANK", "0")) > 0:  # torchrun: rank 0 locks
        yield
        return
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise NmtError(f"cannot use workdir {workdir}: {e.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
        os.close(fd)
        raise NmtError(
            f"workdir {workdir} is in use by process {holder or '(unknown)'}; "
            "wait for it to finish or stop it first"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} (nmt {command})\n".encode(), 0)
    _held[key] = fd
    try:
        yield
    finally:
        del _held[key]
        os.ftruncate(fd, 0)
        os.close(fd)  # closing releases the lock


def run_files(cfg: Config) -> list[Path]:
    """What an earlier `nmt train` / `nmt run` left in the workdir."""
    work, model = Path(cfg.workdir), cfg.model_dir
    found = [p for p in model.iterdir()] if model.is_dir() else []
    found += [work / "results.json"] if (work / "results.json").exists() else []
    return found + sorted(work.glob("*.hyp"))


def keep_aside(cfg: Config, log: Callable[[str], None]) -> Path | None:
    """Move an earlier run's model folder (and its results) to
    `<workdir>/model.<time>/`, so that a fresh run starts in an empty folder and
    the earlier model stays whole. Returns the new place, or None."""
    if not run_files(cfg):
        return None
    work = Path(cfg.workdir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest = work / f"model.{stamp}"
    n = 1
    while dest.exists():
        n += 1
        dest = work / f"model.{stamp}-{n}"
    try:
        if cfg.model_dir.is_dir():
            os.rename(cfg.model_dir, dest)
        else:
            dest.mkdir()
        for p in [work / "results.json", *work.glob("*.hyp")]:
            if p.exists():
                os.rename(p, dest / p.name)
    except OSError as e:
        raise NmtError(
            f"cannot keep the earlier run aside in {dest}: {e.strerror}"
        ) from None
    log(
        f"an earlier run was in {cfg.model_dir}: moved to {dest} (nothing deleted; "
        "--resume continues a run instead)"
    )
    return dest


def _differences(a: dict, b: dict, prefix: str = "") -> list[tuple]:
    out = []
    for k in sorted(set(a) | set(b)):
        key = f"{prefix}.{k}" if prefix else k
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _differences(va, vb, key)
        elif va != vb:
            out.append((key, va, vb))
    return out


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_resume(cfg: Config, saved: dict, where: Path) -> None:
    """Refuse to resume when the recipe's data, tokenizer or model settings are
    not those that `saved` (a checkpoint's config) was trained with."""
    now = cfg.to_dict()
    diffs = [
        d for s in _RESUME_SECTIONS for d in _differences(saved.get(s, {}), now[s], s)
    ]
    if diffs:
        key, old, new = diffs[0]
        more = f" (and {len(diffs) - 1} more)" if len(diffs) > 1 else ""
        raise NmtError(
            f"cannot resume: {key} is {_short(new)} here but {_short(old)} in "
            f"{where}{more}; resume with the same settings, or train without "
            "--resume to start a new run (the earlier one is kept)"
        )


def check_resume_files(cfg: Config, tokenizer, train_pairs: int) -> None:
    """The tokenizer in the model folder is the one the data was encoded with, and
    the training set has as many pairs as when the run started (run.json)."""
    for name in {tokenizer.src_model.name, tokenizer.tgt_model.name}:
        mine = cfg.model_dir / name
        theirs = Path(tokenizer.src_model.parent) / name
        if not mine.is_file() or mine.read_bytes() != theirs.read_bytes():
            raise NmtError(
                f"cannot resume: {mine} is not the tokenizer the data is now "
                "encoded with (were the data files or tokenizer changed?); train "
                "without --resume to start a new run (the earlier one is kept)"
            )
    manifest = read_manifest(cfg)
    if manifest and manifest.get("train_pairs") != train_pairs:
        raise NmtError(
            f"cannot resume: the training set now has {train_pairs} pairs, the run "
            f"in {cfg.model_dir} started with {manifest.get('train_pairs')} (were "
            "the data files changed?)"
        )


def read_manifest(cfg: Config) -> dict:
    path = cfg.model_dir / "run.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def start_model_dir(cfg: Config, tok, train, data_key: str) -> None:
    """What a fresh run writes into its model folder first: the tokenizer, the
    resolved recipe, `run.json` (which data cache, how many pairs), the
    shortlist's lexical table and an empty `log.jsonl`."""
    from nmt.data import lexicon
    from nmt.files import write_text

    try:
        tok.copy_to(cfg.model_dir)
    except OSError as e:
        raise NmtError(f"cannot write to {cfg.model_dir}: {e.strerror}") from None
    cfg.save(cfg.model_dir / "config.yaml")
    record = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "data_cache": data_key,
        "train_pairs": len(train),
    }
    write_text(cfg.model_dir / "run.json", json.dumps(record, indent=1) + "\n")
    lexicon.write(cfg.model_dir, train, tok.src_vocab_size, tok.tgt_vocab_size)
    write_text(cfg.model_dir / "log.jsonl", "")


# Killed writes' leftovers: `atomic`'s files, and the average `nmt run` tries on dev
# (`DEV_AVERAGE.<pid>.safetensors`, nmt/train/finish.py).
DEV_AVERAGE = ".dev-average"
TEMPORARIES = (".*.tmp", f"{DEV_AVERAGE}.*.safetensors")


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Temporary files of writes that were killed half-way (`TEMPORARIES`). The
    caller holds the workdir lock, so no live writer of this workdir owns them;
    a file whose name holds the id of a live process is left alone all the same."""
    removed = []
    found = {p for pattern in TEMPORARIES for p in Path(directory).glob(pattern)}
    for p in sorted(found):
        parts = p.name.split(".")
        pids = [int(x) for x in parts if x.isdigit()]
        if any(pid > 0 and pid != os.getpid() and process_alive(pid) for pid in pids):
            continue
        try:
            p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


def precheck(cfg: Config, resume: bool) -> None:
    """What `nmt train` / `nmt run` can refuse before preparing any data: a device
    or precision this machine lacks, and a resume that cannot work."""
    from nmt.checkpoint import load_checkpoint
    from nmt.hardware import pick_device, require_decode_precision
    from nmt.train.build import require_tensorboard, resolve_precision

    resolve_precision(cfg.train.precision, pick_device(cfg.train.device))
    require_tensorboard(cfg.train)  # the Trainer's own checks, before any data
    require_decode_precision(pick_device("auto"), cfg.decode.precision)
    if resume:
        last = cfg.model_dir / "last.pt"
        if not last.exists():
            raise NmtError(
                f"cannot resume: {last} does not exist (train without --resume)"
            )
        check_resume(cfg, load_checkpoint(last, needs=("config",))["config"], last)
