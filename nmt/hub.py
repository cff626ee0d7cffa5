"""Models on the Hugging Face hub: `nmt push` uploads a model directory with its
card; `Translator.load("user/name")` downloads one into the hub's cache, once.

What travels is what translation needs and nothing that unpickles: `config.yaml`,
the sentencepiece model(s), the weights as `.safetensors` (a directory from before
safetensors has its `best.pt` converted on the way) and the shortlist's
`lexicon.safetensors`, `results.json`, `log.jsonl`,
the training curve and the generated README.md. Never `last.pt` (optimizer
state) or the numbered checkpoints. Downloads take the same files only.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

from nmt.checkpoint import SAFETENSORS, find, load_checkpoint, save_checkpoint
from nmt.config import load_model_config
from nmt.data.tokenizer import Tokenizer
from nmt.errors import NmtError
from nmt.quoting import show_path

# owner/name, as the hub spells repo ids (a leading dot or dash is not allowed)
REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}")
DOWNLOAD = ["config.yaml", "*.model", "*.safetensors", "*.json", "*.md"]
EXTRAS = ("log.jsonl", "training_curve.png")


def resolve(name: str | Path) -> Path:
    """The model directory `name` names: a local path if one exists (it wins over
    the hub), else for an `owner/name` id the hub's cached snapshot of that repo,
    downloaded first if it is not cached."""
    path = Path(name).expanduser()
    if path.exists() or not REPO_ID.fullmatch(str(name)):
        return path
    return _download(str(name))


def _download(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_id} is not a local model directory, and"
    try:
        folder = Path(snapshot_download(repo_id, allow_patterns=DOWNLOAD))
    except GatedRepoError:
        raise NmtError(
            f"{where} the hub repo is gated: accept its terms on the hub and "
            "log in (`hf auth login` or HF_TOKEN)"
        ) from None
    except RepositoryNotFoundError:
        raise NmtError(
            f"{where} there is no model repo of that name on the hub (or it is "
            "private and you are not logged in)"
        ) from None
    except RevisionNotFoundError:
        raise NmtError(f"{where} its hub repo has no main revision") from None
    except LocalEntryNotFoundError:  # offline, or no network, and not cached
        raise NmtError(
            f"{where} it is not in the hub cache and the hub cannot be reached "
            "(no network, or HF_HUB_OFFLINE is set)"
        ) from None
    except Exception as e:  # HTTP, the network library's own errors, the disk
        raise NmtError(
            f"{where} downloading it from the hub failed: {_first(e)}"
        ) from None
    if not (folder / "config.yaml").is_file():
        raise NmtError(
            f"hub repo {repo_id} is not an nmt model (it has no config.yaml)"
        )
    return folder


def stage(model_dir: Path, repo_id: str, out: Path, license: str) -> list[Path]:
    """Write into `out` (an empty folder) what `nmt push` uploads; the files."""
    from nmt.card import card_text, results_of

    cfg = load_model_config(model_dir)
    tok = Tokenizer.load(model_dir)  # checks the tokenizer files are there
    best = find(model_dir, "best")
    ck = load_checkpoint(best)  # reads and checks it (it is converted if .pt)
    for model in {tok.src_model, tok.tgt_model}:
        shutil.copy2(model, out / model.name)
    shutil.copy2(model_dir / "config.yaml", out / "config.yaml")
    if best.suffix == SAFETENSORS:
        shutil.copy2(best, out / best.name)
    else:  # a directory from before safetensors, or one that never validated
        keep = {k: v for k, v in ck.items() if k in ("model", "step", "valid")}
        save_checkpoint({**keep, "config": ck.get("config")}, out / "best.safetensors")
    for other in sorted(model_dir.glob("*" + SAFETENSORS)):
        if other.name != "best.safetensors":
            load_checkpoint(other)
            shutil.copy2(other, out / other.name)
    results = results_of(model_dir, cfg)  # this run's scores, or None
    if results is not None:  # the very numbers the card shows
        text = json.dumps(results, indent=2) + "\n"
        (out / "results.json").write_text(text, encoding="utf-8")
    for name in EXTRAS:
        if (model_dir / name).is_file():
            shutil.copy2(model_dir / name, out / name)
    recipe = (model_dir / "config.yaml").read_text(encoding="utf-8")
    card = card_text(cfg, recipe, results, repo_id, license)
    (out / "README.md").write_text(card, encoding="utf-8")
    return sorted(out.iterdir())


def push(
    model_dir: str | Path,
    repo_id: str,
    private: bool = False,
    dry_run: str | Path | None = None,
    license: str = "other",
) -> None:
    """Upload `model_dir` to the hub repo `repo_id` (made if it does not exist),
    or with `dry_run` write exactly what would be uploaded into that folder."""
    model_dir = Path(model_dir).expanduser()
    if not model_dir.is_dir():
        raise NmtError(f"model directory not found: {show_path(model_dir)}")
    if not REPO_ID.fullmatch(repo_id):
        raise NmtError(
            f"{repo_id!r} is not a hub repo id; write it as owner/name, "
            "e.g. alice/nmt-de-en"
        )
    if dry_run is not None:
        dest = Path(dry_run).expanduser()
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise NmtError(
                f"--dry-run {show_path(dest)} exists and is not an empty folder; "
                "name a new one"
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
        try:
            files = stage(model_dir, repo_id, tmp, license)
            size = sum(f.stat().st_size for f in files) / 1e6
            if dest.exists():
                dest.rmdir()  # the empty folder the user named
            tmp.rename(dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        print(f"wrote {len(files)} files ({size:.1f} MB) to {dest}: what "
              f"`nmt push` would upload to {repo_id}")  # fmt: skip
        return
    _upload(model_dir, repo_id, private, license)


def _upload(model_dir: Path, repo_id: str, private: bool, license: str) -> None:
    from huggingface_hub import HfApi, get_token

    if not get_token():
        raise NmtError(
            "no Hugging Face token: log in with `hf auth login`, or set HF_TOKEN "
            "(a token with write access)"
        )
    with tempfile.TemporaryDirectory(prefix="nmt-push-") as tmp:
        files = stage(model_dir, repo_id, Path(tmp), license)
        api = HfApi()
        try:
            url = api.create_repo(repo_id, private=private, exist_ok=True)
            api.upload_folder(
                repo_id=repo_id,
                folder_path=tmp,
                commit_message=f"nmt push {model_dir.name}",
            )
        except Exception as e:  # HTTP, the network library's own errors
            raise NmtError(f"pushing to {repo_id} failed: {_first(e)}") from None
        size = sum(f.stat().st_size for f in files) / 1e6
    print(f"pushed {len(files)} files ({size:.1f} MB) to {url}", file=sys.stderr)


def _first(e: Exception) -> str:
    """The first line of an exception's message (hub errors run to several)."""
    lines = str(e).strip().splitlines()
    return f"{lines[0]} ({type(e).__name__})" if lines else type(e).__name__
