"""Training survives and repeats: SIGKILL and resume, SIGTERM, averaging, torchrun
with gloo, two runs of one recipe."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from nmt.checkpoint import load_checkpoint
from tests.conftest import ROOT, TINY, _merge, nmt

STEPS = 40


def recipe(tmp: Path, name: str, **extra) -> Path:
    raw = _merge(
        TINY,
        {
            "workdir": str(tmp / name),
            "model": {"encoder": {"dropout": 0.2}, "decoder": {"dropout": 0.2}},
            "train": {
                "max_steps": STEPS,
                "save_every": 5,
                "valid_every": 10,
                "keep_last": 3,
                "batch_tokens": 200,
            },
        },
    )
    raw = _merge(raw, extra)
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def params(workdir: Path) -> dict:
    return torch.load(workdir / "model" / "last.pt", weights_only=True)["model"]


def start_and_wait(path: Path, ckpt: Path, sig: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nmt", "train", str(path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 300
    while not ckpt.exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.time() < deadline
        time.sleep(0.02)
    proc.send_signal(sig)
    proc.wait(timeout=120)
    return proc


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    proc = nmt("train", recipe(tmp, "straight"))
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    return tmp, params(tmp / "straight")


def test_sigkill_then_resume_equals_uninterrupted(uninterrupted):
    tmp, reference = uninterrupted
    path = recipe(tmp, "killed")
    model = tmp / "killed" / "model"
    proc = start_and_wait(path, model / "step-00000015.pt", signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    step = torch.load(model / "last.pt", weights_only=True)["step"]
    assert 15 <= step < STEPS  # killed in the middle, checkpoint intact
    assert not list(model.glob(".*.tmp"))  # no torn temporary files are used
    res = nmt("train", path, "--resume")
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    resumed = params(tmp / "killed")
    assert resumed.keys() == reference.keys()
    for k in reference:
        assert torch.equal(resumed[k], reference[k]), k


def test_sigterm_writes_last_and_resumes(uninterrupted):
    tmp, reference = uninterrupted
    path = recipe(tmp, "termed")
    model = tmp / "termed" / "model"
    proc = start_and_wait(path, model / "step-00000010.pt", signal.SIGTERM)
    err = proc.stderr.read().decode()
    assert proc.returncode == 143, err[-2000:]
    assert "Traceback" not in err and "--resume" in err
    step = torch.load(model / "last.pt", weights_only=True)["step"]
    assert 10 <= step < STEPS
    res = nmt("train", path, "--resume")
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    assert torch.load(model / "last.pt", weights_only=True)["step"] == STEPS
    resumed = params(tmp / "termed")
    assert all(torch.equal(resumed[k], reference[k]) for k in reference)


def test_average_last_k_and_translate(uninterrupted):
    tmp, _ = uninterrupted
    model = tmp / "straight" / "model"
    kept = sorted(model.glob("step-*.pt"))
    assert [p.name for p in kept] == [f"step-{s:08d}.pt" for s in (30, 35, 40)]
    res = nmt("average", model, "--last", "2")
    assert res.returncode == 0, res.stderr.decode()
    avg = load_checkpoint(model / "averaged.safetensors")
    a, b = (torch.load(p, weights_only=True)["model"] for p in kept[-2:])
    for k in a:
        assert torch.allclose(avg["model"][k], (a[k] + b[k]) / 2, atol=1e-6)
    out = nmt(
        "translate",
        model,
        "--checkpoint",
        "averaged",
        "--beam",
        "2",
        stdin=b"da vaim skousts saifen.\n\nun pelainut dat.\n",
    )
    assert out.returncode == 0, out.stderr.decode()
    assert len(out.stdout.decode().split("\n")) == 4


def test_two_runs_of_a_recipe_score_the_same_to_the_bit(tmp_path):
    """`nmt run` twice, in two processes and two folders, with dropout, two
    threads, several epochs, validation, averaging and the length penalty chosen
    on dev: the test hypotheses, scores, dev choices and kept weights are equal."""
    extra = {
        "train": {"threads": 2, "batch_tokens": 1500, "average": 3},
        "decode": {"tune_length_penalty": [0.6, 1.0, 1.4]},
    }
    out = []
    for name in ("first", "second"):
        res = nmt("run", recipe(tmp_path, name, **extra))
        assert res.returncode == 0, res.stderr.decode()[-2000:]
        results = json.loads((tmp_path / name / "results.json").read_text())
        best = load_checkpoint(tmp_path / name / "model" / "best.safetensors")
        hyps = (tmp_path / name / f"{results['tests'][0]['name']}.hyp").read_text()
        out.append((results, best["model"], hyps))
    (a, wa, ha), (b, wb, hb) = out
    assert ha == hb and len(ha.splitlines()) == a["tests"][0]["sentences"]
    assert a["train"]["epochs"] >= 2 and a["train"]["steps"] == STEPS, a["train"]
    assert [(t["bleu"], t["chrf"]) for t in a["tests"]] == [
        (t["bleu"], t["chrf"]) for t in b["tests"]
    ]
    assert a["chosen_on_dev"] == b["chosen_on_dev"]
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_torchrun_two_processes_equal_one(tmp_path):
    """Two gloo processes with half a batch each make the first update of one
    process with the whole batch."""
    extra = {
        "model": {"encoder": {"dropout": 0.0}, "decoder": {"dropout": 0.0}},
        # plain SGD: Adam's first step (g / |g|) would amplify float noise
        "train": {
            "max_steps": 1,
            "valid_every": 1000,
            "batch_tokens": 400,
            "optimizer": "sgd",
            "lr": 0.5,
        },
    }
    one = recipe(tmp_path, "one", **extra)
    two = recipe(tmp_path, "two", **extra)
    res = nmt("train", one)
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "nmt",
            "train",
            str(two),
        ],
        env=env,
        capture_output=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr.decode()[-3000:]
    a, b = params(tmp_path / "one"), params(tmp_path / "two")
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6, rtol=1e-5), k
    for name in ("one", "two"):  # both made exactly one real update
        ck = torch.load(tmp_path / name / "model" / "last.pt", weights_only=True)
        assert ck["step"] == 1 and ck["tokens"] > 0 and ck["skipped"] == 0
    log = [
        json.loads(x)
        for x in (tmp_path / "two" / "model" / "log.jsonl").read_text().splitlines()
    ]
    assert log and all(r["step"] == 1 for r in log if r["type"] == "valid")
