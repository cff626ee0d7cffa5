"""Shared fixtures: tiny recipes that train in seconds."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from nmt.config import Config, config_from_dict
from nmt.hardware import bf16_emulated

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

TINY = {
    "name": "tiny",
    "data": {
        "source": "toy",
        "toy": {"seed": 7, "train_size": 400, "valid_size": 20, "test_size": 20},
    },
    "tokenizer": {"vocab_size": 300},
    "model": {
        "embed_dim": 16,
        "encoder": {"layers": 2, "hidden": 16, "dropout": 0.0},
        "decoder": {"hidden": 32, "readout": 32, "dropout": 0.0},
    },
    "train": {
        "threads": 1,
        "lr": 0.005,
        "batch_tokens": 400,
        "max_steps": 10,
        "log_every": 5,
        "valid_every": 5,
        "patience": 0,
    },
    "decode": {"beam": 3, "batch_tokens": 500},
}


def _merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


@pytest.fixture
def tiny_raw(tmp_path) -> dict:
    return _merge(TINY, {"workdir": str(tmp_path / "work")})


@pytest.fixture
def make_config(tmp_path):
    def make(**sections) -> Config:
        raw = _merge(TINY, {"workdir": str(tmp_path / "work")})
        return config_from_dict(_merge(raw, sections), recipe_dir=str(tmp_path))

    return make


@pytest.fixture
def write_recipe(tmp_path):
    def write(raw: dict, name: str = "recipe.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(raw), encoding="utf-8")
        return path

    return write


needs_shared_data = pytest.mark.skipif(
    not (SHARED_DATA / "multi30k").is_dir(),
    reason=f"real corpora not found at {SHARED_DATA} "
    "(../shared/data beside the checkout)",
)


EMULATED_BF16 = bf16_emulated(torch.device("cpu"))
needs_native_bf16 = pytest.mark.skipif(
    EMULATED_BF16,
    reason="this CPU has no bfloat16 instructions, and nmt refuses bf16 on it "
    "(nmt/hardware.py)",
)


def nmt(*args, stdin: bytes | None = None, cwd: Path | None = None):
    """Run the `nmt` command in a subprocess, as a user would."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "nmt", *map(str, args)],
        input=stdin,
        capture_output=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """One tiny model trained through `nmt run`: (folder, recipe, process)."""
    tmp = tmp_path_factory.mktemp("e2e")
    raw = json.loads(json.dumps(TINY))
    raw["workdir"] = str(tmp / "work")
    raw["train"]["max_steps"] = 30
    recipe = tmp / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(raw))
    proc = nmt("run", recipe, "--set", "decode.beam=2")
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    return tmp, recipe, proc
