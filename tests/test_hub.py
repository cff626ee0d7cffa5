"""Models on the hub without a network: `nmt push --dry-run` writes what would be
uploaded, its card is valid hub metadata, a repo in the hub's own cache layout
loads by its id with HF_HUB_OFFLINE=1, and every failure is one line, status 2."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from nmt.decode.translator import Translator
from tests.conftest import ROOT

LINES = b"da vaim skousts saifen.\n\nun pelainut dat.\n"
REPO = "alice/nmt-tiny"


def nmt_env(*args, env: dict, stdin: bytes = b"", cwd: Path | None = None):
    """`nmt ...` in a subprocess whose hub settings are `env` (the hub library
    reads them at import)."""
    full = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT),
            "HF_HUB_DISABLE_TELEMETRY": "1", **env}  # fmt: skip
    if "HF_TOKEN" not in env:
        full.pop("HF_TOKEN", None)
    return subprocess.run([sys.executable, "-m", "nmt", *map(str, args)],
                          input=stdin, capture_output=True, cwd=cwd, env=full,
                          timeout=300)  # fmt: skip


def one_line_error(proc) -> str:
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    lines = [x for x in err.splitlines() if x.startswith("nmt: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def pushed(trained, tmp_path_factory):
    """(model dir, the --dry-run folder of `nmt push MODEL alice/nmt-tiny`)."""
    tmp, _, _ = trained
    model = tmp / "work" / "model"
    out = tmp_path_factory.mktemp("push") / "upload"
    proc = nmt_env("push", model, REPO, "--dry-run", out, env={})
    assert proc.returncode == 0, proc.stderr.decode()
    return model, out


def test_dry_run_holds_what_translation_needs_and_no_pickle(pushed):
    model, out = pushed
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["README.md", "best.safetensors", "config.yaml",
                            "lexicon.safetensors", "log.jsonl", "results.json",
                            "spm.model", "training_curve.png"])  # fmt: skip
    assert (out / "best.safetensors").read_bytes() == (
        model / "best.safetensors"
    ).read_bytes()
    want = Translator.load(model, device="cpu").translate(LINES.decode().split("\n"))
    got = Translator.load(out, device="cpu").translate(LINES.decode().split("\n"))
    assert got == want


def test_the_card_is_valid_hub_metadata_with_the_results(pushed):
    model, out = pushed
    card = ModelCard.load(out / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "nmt" and data["pipeline_tag"] == "translation"
    assert data["license"] == "other"  # left for the user to set
    results = json.loads((out / "results.json").read_text())
    (test,) = results["tests"]
    by_metric = {e.metric_type: e for e in card.data.eval_results}
    assert by_metric["bleu"].metric_value == test["bleu"]
    assert by_metric["chrf"].metric_value == test["chrf"]
    assert by_metric["bleu"].metric_args["signature"] == test["signature"]["bleu"]
    assert by_metric["bleu"].dataset_name == "test"
    assert (model / "config.yaml").read_text() in card.text  # the recipe
    assert f"nmt translate {REPO}" in card.text


def test_card_languages_and_datasets_come_from_the_recipe(tmp_path):
    from nmt.card import card_text
    from nmt.config import config_from_dict
    from tests.conftest import TINY, _merge

    raw = _merge(TINY, {"data": {"source": "hub", "src_lang": "de",
                                 "tgt_lang": "en",
                                 "hub": {"path": "bentrevett/multi30k"}}})  # fmt: skip
    cfg = config_from_dict(raw, recipe_dir=str(tmp_path))
    card = ModelCard(card_text(cfg, "name: x\n", None, REPO, "cc-by-nc-4.0"))
    assert card.data.language == ["de", "en"]
    assert card.data.datasets == ["bentrevett/multi30k"]
    assert card.data.license == "cc-by-nc-4.0" and not card.data.eval_results
    assert "No test scores" in card.text


def _fill_hub_cache(cache: Path, repo: str, files: Path) -> Path:
    """`files` as the hub library caches a download: blobs named by their hash,
    a snapshot folder of links to them, refs/main naming the commit."""
    root = cache / ("models--" + repo.replace("/", "--"))
    commit = hashlib.sha1(repo.encode()).hexdigest()
    snap = root / "snapshots" / commit
    (root / "blobs").mkdir(parents=True)
    snap.mkdir(parents=True)
    for f in files.iterdir():
        data = f.read_bytes()
        blob = root / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snap / f.name).symlink_to(os.path.relpath(blob, snap))
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)
    return snap


def test_load_by_repo_id_from_the_hub_cache_offline(pushed, tmp_path):
    model, out = pushed
    cache = tmp_path / "hub"
    _fill_hub_cache(cache, REPO, out)
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    want = nmt_env("translate", model, stdin=LINES, env=env)
    assert want.returncode == 0, want.stderr.decode()
    got = nmt_env("translate", REPO, stdin=LINES, env=env, cwd=tmp_path)
    assert got.returncode == 0, got.stderr.decode()
    assert got.stdout == want.stdout and len(got.stdout.split(b"\n")) == 4
    # the Python API, in this process: the hub library reads the cache at call time
    os.environ.update(env)
    try:
        from huggingface_hub import constants

        old = constants.HF_HUB_CACHE, constants.HF_HUB_OFFLINE
        constants.HF_HUB_CACHE, constants.HF_HUB_OFFLINE = str(cache), True
        tr = Translator.load(REPO, device="cpu")
        assert tr.translate(["un pelainut dat."]) == [
            want.stdout.decode().split("\n")[2]
        ]
    finally:
        constants.HF_HUB_CACHE, constants.HF_HUB_OFFLINE = old
        for k in env:
            os.environ.pop(k, None)


def test_a_local_directory_wins_over_the_hub(pushed, tmp_path):
    _, out = pushed
    cache = tmp_path / "hub"
    snap = _fill_hub_cache(cache, REPO, out)
    (snap / "config.yaml").unlink()  # the cached repo would fail
    local = tmp_path / REPO
    shutil.copytree(out, local)
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    got = nmt_env("translate", REPO, stdin=LINES, env=env, cwd=tmp_path)
    assert got.returncode == 0, got.stderr.decode()


def test_not_cached_offline_is_one_line(tmp_path):
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    err = one_line_error(nmt_env("translate", REPO, stdin=LINES, env=env))
    assert "not in the hub cache" in err and REPO in err


class _NoSuchRepo(BaseHTTPRequestHandler):
    """A hub endpoint that knows no repo: what huggingface.co answers for one."""

    def _answer(self):
        body = b'{"error":"Repository not found"}'
        self.send_response(404)
        self.send_header("X-Error-Code", "RepoNotFound")
        self.send_header("X-Error-Message", "Repository not found")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_POST = _answer

    def log_message(self, *args):
        pass


def test_an_unknown_repo_is_one_line(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NoSuchRepo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {"HF_ENDPOINT": f"http://127.0.0.1:{server.server_port}",
               "HF_HUB_CACHE": str(tmp_path / "hub")}  # fmt: skip
        err = one_line_error(nmt_env("translate", "alice/no-such-model",
                                     stdin=LINES, env=env))  # fmt: skip
        assert "no model repo of that name on the hub" in err
    finally:
        server.shutdown()


def test_push_refusals_are_one_line(trained, pushed, tmp_path):
    tmp, _, _ = trained
    model = tmp / "work" / "model"
    nohub = {"HF_HOME": str(tmp_path / "hf")}  # no stored token, no HF_TOKEN
    assert "no Hugging Face token" in one_line_error(
        nmt_env("push", model, REPO, env=nohub)
    )
    assert "not a hub repo id" in one_line_error(
        nmt_env("push", model, "no-owner", env=nohub)
    )
    assert "model directory not found" in one_line_error(
        nmt_env("push", tmp_path / "none", REPO, env=nohub)
    )
    _, out = pushed
    before = sorted(p.name for p in out.iterdir())
    assert "not an empty folder" in one_line_error(
        nmt_env("push", model, REPO, "--dry-run", out, env=nohub)
    )
    assert sorted(p.name for p in out.iterdir()) == before
