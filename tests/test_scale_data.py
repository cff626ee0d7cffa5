"""Preparation streams (bounded Python memory), does not depend on the number
of processes, and ranks of a two-process run read disjoint halves of an epoch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import yaml

import nmt.data.chunks
from benchmarks.scale_corpus import write_corpus
from nmt.config import load_config
from nmt.data.corpus import prepare
from nmt.data.rows import IdRows
from tests.conftest import ROOT, TINY, _merge


def scale_recipe(tmp: Path, pairs: int, **data) -> Path:
    d = tmp / "corpus"
    if not (d / "train.src").exists():
        write_corpus(d, pairs, "train", seed=0)
        write_corpus(d, 300, "valid", seed=1)
        write_corpus(d, 300, "test", seed=2)
    raw = _merge(
        TINY,
        {
            "workdir": str(tmp / "work"),
            "data": {
                "source": "files",
                "src_lang": "src",
                "tgt_lang": "tgt",
                "files": {"dir": str(d)},
                **data,
            },
            "tokenizer": {"vocab_size": 1000, "input_sentence_size": 20000},
        },
    )
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _peak_heap(tmp: Path, pairs: int) -> tuple[float, dict]:
    cfg = load_config(scale_recipe(tmp, pairs, num_proc=1, dedup=True))
    tracemalloc.start()
    try:
        c = prepare(cfg, lambda *_: None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, c.stats["counts"]["train"]


def test_preparing_200k_pairs_holds_no_corpus_in_memory(tmp_path, monkeypatch):
    """200k pairs are ~40 MB of text on disk, far more as Python objects; the
    Python heap of preparing them stays under 40 MB and no larger than for 50k
    pairs: a chunk (10k pairs here) and the tokenizer's sample are all it holds."""
    monkeypatch.setattr(nmt.data.chunks, "CHUNK", 10_000)
    monkeypatch.setattr(nmt.data.chunks, "_BLOCK", 1 << 20)
    small, _ = _peak_heap(tmp_path / "small", 50_000)
    peak, counts = _peak_heap(tmp_path / "big", 200_000)
    corpus = sum(p.stat().st_size for p in (tmp_path / "big/corpus").glob("train.*"))
    assert corpus > 35e6
    assert counts["read"] == 200_000 and counts["kept"] > 190_000
    assert peak < 40e6, f"peak Python heap {peak / 1e6:.1f} MB"
    assert peak < 1.15 * small, f"{peak / 1e6:.1f} MB, 50k pairs: {small / 1e6:.1f}"


def _cache(cfg) -> dict:
    root = next(p for p in (Path(cfg.workdir) / "data").iterdir() if p.name != "hf")
    out = {"stats": json.loads((root / "stats.json").read_text())}
    out["spm"] = (root / "spm.model").read_bytes()
    for f in sorted((root / "arrow").iterdir()):
        with pa.ipc.open_stream(pa.OSFile(str(f))) as r:
            out[f.name] = r.read_all()
    return out


def test_one_and_two_processes_write_the_same_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(nmt.data.chunks, "CHUNK", 4000)
    caches = []
    for procs in (1, 2):
        d = tmp_path / f"p{procs}"
        d.mkdir()
        if caches:  # the same corpus files
            (d / "corpus").symlink_to(tmp_path / "p1" / "corpus")
        cfg = load_config(scale_recipe(d, 30_000, num_proc=procs, dedup=True))
        prepare(cfg, lambda *_: None)
        caches.append(_cache(cfg))
    a, b = caches
    assert a.keys() == b.keys() and "train.arrow" in a
    assert a["stats"] == b["stats"] and a["spm"] == b["spm"]
    counts = a["stats"]["counts"]["train"]
    assert counts["read"] == 30_000 and 0 < counts["kept"] < 30_000
    for k in a:
        if k.endswith(".arrow"):
            assert a[k].equals(b[k]), k
    assert a["train.arrow"].num_rows == counts["kept"]
    assert a["train.arrow"].schema.field("src_ids").type == pa.list_(pa.int16())
    # training reads rows from the memory map across the file's record batches
    train = prepare(cfg, lambda *_: None).splits["train"]
    assert train.data.table.column("src_ids").num_chunks > 5
    idx = np.random.default_rng(0).choice(len(train), 500, replace=False)
    rows = IdRows(train)
    for col in ("src_ids", "tgt_ids"):
        assert rows.lists(idx, col) == train[idx.tolist()][col]
        values, lengths = rows.flat(idx, col)
        assert lengths.tolist() == [len(r) for r in train[idx.tolist()][col]]
        assert values.tolist() == [i for r in train[idx.tolist()][col] for i in r]


def test_dedup_keeps_first_copies_only(tmp_path):
    cfg = load_config(scale_recipe(tmp_path, 20_000, num_proc=1, dedup=True))
    c = prepare(cfg, lambda *_: None)
    train = c.splits["train"]
    pairs = list(zip(train["src"], train["tgt"]))
    assert len(set(pairs)) == len(pairs)
    # every pair of the file that survives the filters is there, in file order
    src = (tmp_path / "corpus" / "train.src").read_text().split("\n")[:-1]
    tgt = (tmp_path / "corpus" / "train.tgt").read_text().split("\n")[:-1]
    kept = set(pairs)
    want = list(dict.fromkeys(p for p in zip(src, tgt) if p in kept))
    assert want == pairs


RANKS_SCRIPT = """
import sys, atexit, numpy as np, os
import nmt.train.loop as loop
from nmt.cli import main
seen = []
real = loop.Trainer._batch
def spy(self, idx):
    seen.append(self.dist.share(idx).copy())
    return real(self, idx)
loop.Trainer._batch = spy
def save():
    rows = np.concatenate(seen) if seen else np.zeros(0, int)
    np.save(os.path.join(sys.argv[1], f"rank{os.environ['RANK']}.npy"), rows)
atexit.register(save)
sys.exit(main(["train", sys.argv[2]]))
"""


def test_two_ranks_read_disjoint_batches_covering_the_epoch(tmp_path):
    recipe = scale_recipe(tmp_path, 3000, max_len=60)
    raw = yaml.safe_load(recipe.read_text())
    raw["train"].update(max_epochs=1, max_steps=0, valid_every=100000)
    recipe.write_text(yaml.safe_dump(raw))
    script = tmp_path / "ranks.py"
    script.write_text(RANKS_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += ["--nproc_per_node=2", str(script), str(tmp_path), str(recipe)]
    res = subprocess.run(cmd, env=env, capture_output=True, timeout=600)
    assert res.returncode == 0, res.stderr.decode()[-3000:]
    r0, r1 = (np.load(tmp_path / f"rank{r}.npy") for r in (0, 1))
    kept = prepare(load_config(recipe), lambda *_: None).stats["counts"]["train"]
    assert len(r0) and len(r1)
    assert not set(r0.tolist()) & set(r1.tolist())
    assert sorted(np.concatenate([r0, r1]).tolist()) == list(range(kept["kept"]))


@pytest.mark.parametrize("procs", [1, 2])
def test_misaligned_files_found_before_any_encoding(tmp_path, procs, monkeypatch):
    from nmt.errors import NmtError

    monkeypatch.setattr(nmt.data.chunks, "CHUNK", 1000)
    recipe = scale_recipe(tmp_path, 5000, num_proc=procs)
    tgt = tmp_path / "corpus" / "train.tgt"
    tgt.write_bytes(b"".join(tgt.read_bytes().splitlines(keepends=True)[:4321]))
    with pytest.raises(NmtError, match="has 5000 lines, .* has 4321"):
        prepare(load_config(recipe), lambda *_: None)


def test_prepare_from_a_script_read_on_stdin(tmp_path):
    """Worker processes re-import the main script; one piped into `python -` has
    no file, so preparation runs in the one process instead of failing."""
    recipe = scale_recipe(tmp_path, 3000, num_proc=2)
    code = (
        "import nmt.data.chunks as ch\nch.CHUNK = 500\n"
        "from nmt.config import load_config\nfrom nmt.data.corpus import prepare\n"
        f"c = prepare(load_config({str(recipe)!r}), lambda *_: None)\n"
        "print(c.stats['counts']['train']['read'])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, "-"], input=code, text=True, capture_output=True, env=env
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["3000"]
