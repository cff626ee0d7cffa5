"""Inference weights as safetensors: no pickle, the same translations as the torch
file they came from, tied weights kept tied, and model directories of before
(best.pt) still load."""

from __future__ import annotations

import json
import shutil
import struct
import zipfile
from pathlib import Path

import pytest
import torch

from nmt.checkpoint import find, load_checkpoint, save_checkpoint
from nmt.config import config_from_dict
from nmt.model.seq2seq import build_model
from tests.conftest import TINY, _merge
from tests.faults import run_cli

GOLDEN = Path(__file__).parent / "golden"
DTYPES = {"F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL"}


def _as_safetensors(model: str, tmp_path: Path) -> Path:
    """A copy of a golden (torch-format) model directory, its best.pt rewritten as
    best.safetensors and removed."""
    out = tmp_path / model
    shutil.copytree(GOLDEN / model, out)
    save_checkpoint(load_checkpoint(out / "best.pt"), out / "best.safetensors")
    (out / "best.pt").unlink()
    return out


def _structure(path: Path) -> tuple[dict, int]:
    """The header of a safetensors file, checked to be the whole file's layout:
    an 8-byte length, that many bytes of JSON, then the tensors' bytes back to
    back to the end. Anything else (a pickle, a zip) fails here."""
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = len(data) - 8 - n
    spans = sorted(
        tuple(v["data_offsets"]) for k, v in header.items() if k != "__metadata__"
    )
    assert spans[0][0] == 0 and spans[-1][1] == body
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # no gaps
    for k, v in header.items():
        if k != "__metadata__":
            assert v["dtype"] in DTYPES, (k, v["dtype"])
    meta = header.get("__metadata__", {})
    assert all(isinstance(x, str) for x in meta.values())
    return header, body


@pytest.mark.parametrize("model", ["plain", "attention"])
def test_safetensors_translate_as_the_torch_file_did(model, tmp_path):
    converted = _as_safetensors(model, tmp_path)
    assert find(converted, "best").name == "best.safetensors"
    for expected, args in (("greedy.txt", ["--beam", "1"]), ("beam5.txt", [])):
        r = run_cli("translate", converted, "-i", GOLDEN / "input.txt",
                    "--device", "cpu", "--beam", "5", *args)  # fmt: skip
        assert r.code == 0, r.err
        want = (GOLDEN / model / expected).read_text(encoding="utf-8")
        assert r.out == want
    a = load_checkpoint(GOLDEN / model / "best.pt")
    b = load_checkpoint(converted / "best.safetensors")
    assert a["config"] == b["config"] and a["step"] == b["step"]
    assert set(a["model"]) == set(b["model"])
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_a_model_directory_of_before_still_loads():
    """tests/golden holds best.pt, as nmt wrote it before safetensors; the golden
    tests translate from it. Here: `best` and `best.pt` both name it."""
    for name in ("best", "best.pt", "best.safetensors"):
        assert find(GOLDEN / "plain", name) == GOLDEN / "plain" / "best.pt"


def test_the_safetensors_file_holds_no_pickle(trained):
    tmp, _, _ = trained
    path = tmp / "work" / "model" / "best.safetensors"
    header, body = _structure(path)
    weights = [k for k in header if k != "__metadata__"]
    assert body == sum(
        v["data_offsets"][1] - v["data_offsets"][0]
        for k, v in header.items()
        if k in weights
    )
    meta = json.loads(header["__metadata__"]["nmt"])  # plain JSON, nothing else
    assert meta["config"]["name"] == "tiny" and isinstance(meta["step"], int)
    assert not zipfile.is_zipfile(path)  # torch's own format is a zip of pickles


def test_tied_weights_are_stored_once_and_stay_tied(tmp_path):
    raw = _merge(TINY, {"model": {"tie_embeddings": True,
                                  "decoder": {"readout": 16}}})  # fmt: skip
    cfg = config_from_dict(raw, recipe_dir=str(tmp_path))
    model = build_model(cfg.model, 50, 60)
    path = tmp_path / "w.safetensors"
    save_checkpoint({"model": model.state_dict(), "step": 1}, path)
    header, _ = _structure(path)
    assert "decoder.out.weight" not in header or "decoder.embed.weight" not in header
    state = load_checkpoint(path)["model"]
    assert set(state) == set(model.state_dict())
    fresh = build_model(cfg.model, 50, 60)
    fresh.load_state_dict(state)
    assert fresh.decoder.out.weight is fresh.decoder.embed.weight
    assert torch.equal(fresh.decoder.out.weight, model.decoder.out.weight)


def test_average_writes_safetensors_and_refuses_other_names(trained):
    tmp, _, _ = trained
    model = tmp / "work" / "model"
    r = run_cli("average", model, "--last", "2", "-o", "avg2.safetensors")
    assert r.code == 0, r.err
    _structure(model / "avg2.safetensors")
    assert load_checkpoint(model / "avg2.safetensors")["averaged"]
    r = run_cli("average", model, "--last", "2", "-o", "avg2.bin")
    assert r.code == 2 and "ending in .safetensors" in r.error
    (model / "avg2.safetensors").unlink()
