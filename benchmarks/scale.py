"""Scale benchmark (issue 23): preparation and training at millions of pairs.

    python benchmarks/scale.py [--sizes 1000000 4000000 16000000] [--steps 30]
        [--out /tmp/nmt_scale] [--ddp-size 4000000] [--keep]

For each size it writes a synthetic corpus (benchmarks/scale_corpus.py: train of
that size, valid and test of 2000 pairs) and a recipe with the model and train
settings of recipes/multi30k_de_en.yaml (with a GRU decoder, source not reversed),
then measures, each in a child process:
- `nmt prepare`: wall time, peak RSS of its whole process tree (and of its
  largest process, polled from /proc every 0.15 s), the cache's size on disk;
- building one epoch's batches (nmt.data.batching.make_batches) from the cache;
- `nmt train` for --steps updates: target tokens/s from log.jsonl (the median of
  the log intervals after the first, which holds the warm-up), peak RSS;
- at --ddp-size, the same training under torchrun with 2 processes of 1 thread.
Multi30k, with the same model and steps, is the reference row. Writes scale.md,
scale.json, scale.png and scale.log (the children's stdout) to --out. Without
--keep each size's folder is deleted once measured (16M pairs: ~3 GB of text and
a ~6 GB cache).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
M30K = ROOT / "recipes" / "multi30k_de_en.yaml"
sys.path.insert(0, str(HERE))
from scale_corpus import write_corpus  # noqa: E402

MIB = 2**20
NMT = [sys.executable, "-m", "nmt"]
DDP = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
DDP += ["--nproc_per_node=2", "-m", "nmt"]
# the child that times one epoch's batches, as the Trainer builds them
BATCHES = """
import json, sys, time
from pathlib import Path
from nmt.config import load_config
from nmt.data.batching import make_batches
from nmt.data.corpus import cache_key, prepare
cfg = load_config(sys.argv[1], sys.argv[2:])
corpus = prepare(cfg, log=lambda *_: None)
table = corpus.splits["train"].data
src_len, tgt_len = (table.column(c).to_numpy() for c in ("src_len", "tgt_len"))
t = cfg.train
start = time.perf_counter()
batches = make_batches(src_len, tgt_len, t.batch_tokens, t.batch_sentences,
                       seed=t.seed, epoch=0)
seconds = time.perf_counter() - start
cache = Path(cfg.workdir) / "data" / cache_key(cfg)
print(json.dumps({"seconds": seconds, "batches": len(batches), "cache": str(cache),
                  "stats": corpus.stats}))
"""


def say(msg: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def label(n: int) -> str:
    for div, unit in ((10**6, "M"), (10**3, "k")):
        if n >= div and n % div == 0:
            return f"{n // div}{unit}"
    return str(n)


# ------------------------------------------------------------ process trees


def tree(root: int) -> list[int]:
    """root and all its descendants now (ppid from every /proc/<pid>/stat)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue  # gone meanwhile
            ppid = int(stat.rsplit(")", 1)[1].split()[1])  # comm may hold spaces
            children.setdefault(ppid, []).append(int(d))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def memory(pid: int) -> tuple[int, int]:
    """(VmRSS, RssAnon) of pid in bytes; zeros once it is gone."""
    got = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "RssAnon:")):
                    k, v = line.split(":")
                    got[k] = int(v.split()[0]) * 1024
    except OSError:
        pass
    return got.get("VmRSS", 0), got.get("RssAnon", 0)


def rank_of(pid: int) -> int | None:
    """The RANK in pid's environment (a torchrun worker), else None."""
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    ranks = [int(e[5:]) for e in env if e.startswith(b"RANK=")]
    return ranks[0] if ranks else None


def watch(cmd: list[str], log: Path) -> dict:
    """Run cmd (stdout appended to log, stderr to ours, so progress bars show)
    while polling the memory of its process tree; stops the benchmark if it fails."""
    say("$ " + " ".join(cmd[1:] if cmd[0] == sys.executable else cmd))
    tree_peak = anon_peak = 0
    peaks: dict[int, int] = {}  # pid -> its peak VmRSS
    ranks: dict[int, int | None] = {}  # pid -> RANK (torchrun workers)
    with open(log, "a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        offset = out.tell()
        start = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=out, cwd=ROOT)
        while child.poll() is None:
            now = {pid: memory(pid) for pid in tree(child.pid)}
            tree_peak = max(tree_peak, sum(rss for rss, _ in now.values()))
            anon_peak = max(anon_peak, sum(anon for _, anon in now.values()))
            for pid, (rss, _) in now.items():
                peaks[pid] = max(peaks.get(pid, 0), rss)
                if ranks.get(pid) is None:  # read again: it may not have exec'd yet
                    ranks[pid] = rank_of(pid)
            time.sleep(0.15)
        wall = time.perf_counter() - start
    if child.returncode:
        sys.exit(f"scale: {' '.join(cmd)} failed (exit {child.returncode}); see {log}")
    with open(log) as f:
        f.seek(offset)
        data = [line.rstrip() for line in f if line.startswith("data:")]
    for line in data:
        say(line)
    by_rank = {r: peaks[pid] for pid, r in ranks.items() if r is not None}
    return {
        "wall_s": round(wall, 2),
        "peak_tree_mib": round(tree_peak / MIB),
        "peak_tree_anon_mib": round(anon_peak / MIB),
        "peak_proc_mib": round(max(peaks.values(), default=0) / MIB),
        "rank_peak_mib": {r: round(v / MIB) for r, v in sorted(by_rank.items())},
        "data_lines": data,
        "load_avg_1min": os.getloadavg()[0],  # > 2 here: others shared the cores
    }


# ------------------------------------------------------------ measurements


def disk_bytes(folder: Path) -> int:
    """Bytes the files under folder take on disk (as du counts them)."""
    return sum(
        (Path(d) / f).stat().st_blocks * 512
        for d, _, files in os.walk(folder)
        for f in files
    )


def tokens_per_second(log_jsonl: Path) -> dict:
    """Training speed from log.jsonl. Its tok_s is cumulative since the start,
    so the rate of each log interval is recovered from tok_s x elapsed; the
    median is over the intervals after the first record (warm-up, first batches)."""
    recs = [json.loads(line) for line in log_jsonl.read_text().splitlines() if line]
    recs = [r for r in recs if r.get("type") == "train"]
    done = [(r["tok_s"] * r["elapsed"], r["elapsed"]) for r in recs]
    pairs = zip(done, done[1:])
    rates = [(t1 - t0) / (e1 - e0) for (t0, e0), (t1, e1) in pairs if e1 > e0]
    median = statistics.median(rates) if rates else None
    median = median or (recs[-1]["tok_s"] if recs else None)
    return {
        "tok_s": round(median) if median else None,
        "interval_tok_s": [round(r) for r in rates],
        "logged_tok_s": [r["tok_s"] for r in recs],
        "steps": recs[-1]["step"] if recs else 0,
    }


def measure(
    recipe: Path, sets: list[str], workdir: Path, log: Path, corpus: Path | None = None
) -> dict:
    """prepare, one epoch's batches, train: the numbers of one table row."""
    flags = [x for s in sets for x in ("--set", s)]
    prep = watch([*NMT, "prepare", str(recipe), *flags], log)
    say("timing one epoch's batches")
    cmd = [sys.executable, "-c", BATCHES, str(recipe), *sets]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT, check=True)
    b = json.loads(out.stdout.splitlines()[-1])
    limit = spm_rate(Path(b["cache"]), corpus) if corpus else None
    train = watch([*NMT, "train", str(recipe), *flags], log)
    train.update(tokens_per_second(workdir / "model" / "log.jsonl"))
    counts = b["stats"]["counts"]["train"]
    row = {
        "pairs_read": counts["read"],
        "pairs_kept": counts["kept"],
        "prepare": prep,
        "cache_gib": round(disk_bytes(Path(b["cache"])) / 2**30, 3),
        "epoch_batches_s": round(b["seconds"], 3),
        "epoch_batches": b["batches"],
        "spm_limit": limit,
        "train": train,
    }
    say(
        f"kept {row['pairs_kept']}, prepare {prep['wall_s']} s, "
        f"{prep['peak_tree_mib']} MiB; train {train['tok_s']} tok/s"
    )
    return row


def log_every(steps: int) -> int:
    """10 (the issue's), fewer for short runs so there are intervals to time."""
    return max(1, min(10, steps // 3))


def scale_recipe(folder: Path, steps: int) -> Path:
    """The size's recipe: its corpus, Multi30k's model and train settings."""
    m30k = yaml.safe_load(M30K.read_text())
    train = dict(m30k["train"], threads=2, batch_tokens=4000, max_steps=steps)
    train.update(max_epochs=0, max_minutes=0, valid_every=100_000)
    # the one validation, at the end, on 100 dev sentences: a short one
    train.update(log_every=log_every(steps), valid_bleu_sentences=100)
    data = {"source": "files", "src_lang": "src", "tgt_lang": "tgt", "max_len": 100}
    data.update(dedup=True, files={"dir": str(folder / "corpus")})
    tok = {"model_type": "unigram", "vocab_size": 8000, "joint": True}
    recipe = {"name": f"scale_{folder.name}", "workdir": str(folder / "work")}
    recipe.update(data=data, tokenizer={**tok, **(m30k.get("tokenizer") or {})})
    model = dict(m30k["model"])  # the card's GRU model, as BENCHMARKS.md measured
    model["decoder"] = dict(model["decoder"], type="gru")
    recipe.update(model=model, train=train)
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def remove(folder: Path, out: Path) -> None:
    """Delete one of our folders, never anything outside --out."""
    if folder.exists():
        assert folder.resolve().parent == out.resolve(), folder
        shutil.rmtree(folder)


def one_size(n: int, a: argparse.Namespace, log: Path) -> dict:
    folder = a.out / label(n)
    remove(folder, a.out)  # an earlier run's cache would be reused
    say(f"{label(n)}: writing {n} pairs to {folder / 'corpus'}")
    start = time.perf_counter()
    files = write_corpus(folder / "corpus", n, "train", seed=0)
    gen_train = time.perf_counter() - start
    files += write_corpus(folder / "corpus", 2000, "valid", seed=1)
    files += write_corpus(folder / "corpus", 2000, "test", seed=2)
    row = {"size": n, "label": label(n), "generate_s": round(gen_train, 1)}
    row["generate_all_s"] = round(time.perf_counter() - start, 1)
    row["corpus_mib"] = round(sum(f.stat().st_size for f in files) / MIB)
    say(f"{label(n)}: corpus {row['corpus_mib']} MiB in {row['generate_s']} s")
    recipe = scale_recipe(folder, a.steps)
    row.update(measure(recipe, [], folder / "work", log, folder / "corpus"))
    if n == a.ddp_size:
        ddp = watch([*DDP, "train", str(recipe), "--set", "train.threads=1"], log)
        ddp.update(tokens_per_second(folder / "work" / "model" / "log.jsonl"))
        row["ddp"] = ddp
        say(f"{label(n)} DDP x2: {ddp['tok_s']} tok/s, ranks {ddp['rank_peak_mib']}")
    if not a.keep:
        remove(folder, a.out)
    return row


def multi30k(a: argparse.Namespace, log: Path) -> dict:
    workdir = a.out / "m30k"
    remove(workdir, a.out)
    sets = ["data.source=files", f"train.max_steps={a.steps}"]
    sets += ["train.max_minutes=0", "train.valid_every=100000"]
    sets += [f"train.log_every={log_every(a.steps)}", "train.valid_bleu_sentences=100"]
    sets += [f"workdir={workdir}", "model.decoder.type=gru"]
    sets += ["data.reverse_source=false"]
    say("Multi30k reference")
    return {"label": "Multi30k", "sets": sets, **measure(M30K, sets, workdir, log)}


# ------------------------------------------------------------ report


def cpu() -> str:
    info = subprocess.run(["lscpu"], stdout=subprocess.PIPE, text=True).stdout
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    flags = fields.get("Flags", "").split()
    isa = [f for f in ("avx512f", "avx512_bf16", "avx2") if f in flags] or ["no AVX2"]
    model = fields.get("Model name", "?").strip()
    return f"{model} ({', '.join(isa)}), {os.cpu_count()} cores"


# sentencepiece's own rate, the limit of preparation: one process per core, each
# encoding its share of the first pairs (already in memory) with the cache's model
SPM_RATE = """
import json, os, sys, time
from multiprocessing import get_context
import sentencepiece as spm
def run(args):
    model, src, tgt, barrier = args
    sp = spm.SentencePieceProcessor(model_file=model)
    barrier.wait()
    start = time.perf_counter()
    sp.encode(src)
    sp.encode(tgt)
    return time.perf_counter() - start
model, corpus, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
lines = [open(f"{corpus}/train.{x}", encoding="utf-8").read(400 * n).split("\\n")[:n]
         for x in ("src", "tgt")]
procs = len(os.sched_getaffinity(0))
ctx = get_context("fork")
barrier = ctx.Manager().Barrier(procs)
share = [(model, lines[0][i::procs], lines[1][i::procs], barrier) for i in range(procs)]
with ctx.Pool(procs) as pool:
    seconds = max(pool.map(run, share))
print(json.dumps({"pairs": n, "processes": procs, "pairs_s": round(n / seconds)}))
"""


def spm_rate(cache: Path, corpus: Path, pairs: int = 200_000) -> dict:
    """sentencepiece encoding pairs/s on every core (the limit of preparation)."""
    cmd = [sys.executable, "-c", SPM_RATE, str(cache / "spm.model"), str(corpus)]
    out = subprocess.run([*cmd, str(pairs)], stdout=subprocess.PIPE, text=True)
    return json.loads(out.stdout.splitlines()[-1])


def table(result: dict) -> str:
    cols = ["corpus", "pairs kept", "prepare s", "prepare pairs/s (spm limit)",
            "prepare peak RSS tree MiB (largest process)", "cache GiB",
            "epoch batches s (batches)", "train tok/s",
            "train peak RSS tree MiB"]  # fmt: skip
    lines = [f"# nmt scale benchmark: {result['cpu']}; torch {result['torch']}, "
             f"{result['steps']} steps", "", "| " + " | ".join(cols) + " |",
             "|" + "---|" * len(cols)]  # fmt: skip
    for r in [*result["sizes"], result["multi30k"]]:
        p, t = r["prepare"], r["train"]
        rate = f"{r['pairs_read'] / p['wall_s']:,.0f}"
        if r.get("spm_limit"):
            rate += f" ({r['spm_limit']['pairs_s']:,})"
        lines.append(
            f"| {r['label']} | {r['pairs_kept']:,} | {p['wall_s']:.1f} | {rate} | "
            f"{p['peak_tree_mib']:,} ({p['peak_proc_mib']:,}) | {r['cache_gib']:.3f} "
            f"| {r['epoch_batches_s']:.2f} ({r['epoch_batches']:,}) | "
            f"{t['tok_s'] or 0:,} | {t['peak_tree_mib']:,} |"
        )
    for r in (r for r in result["sizes"] if "ddp" in r):
        d = r["ddp"]
        ranks = ", ".join(f"rank {k}: {v:,}" for k, v in d["rank_peak_mib"].items())
        lines.append(
            f"| {r['label']} DDP 2x1 thread | {r['pairs_kept']:,} | - | - | - | - | - "
            f"| {d['tok_s'] or 0:,} | {d['peak_tree_mib']:,} ({ranks}) |"
        )
    big, ref = (result["sizes"] or [result["multi30k"]])[-1], result["multi30k"]
    if big is not ref and big["train"]["tok_s"] and ref["train"]["tok_s"]:
        ratio = big["train"]["tok_s"] / ref["train"]["tok_s"]
        lines += ["", f"train tok/s {big['label']} / Multi30k: {ratio:.2f}"]
    small = result["sizes"][0] if len(result["sizes"]) > 1 else None
    if small and big["train"]["tok_s"] and small["train"]["tok_s"]:
        ratio = big["train"]["tok_s"] / small["train"]["tok_s"]
        lines += [f"train tok/s {big['label']} / {small['label']} (same sentence "
                  f"shape): {ratio:.2f}"]  # fmt: skip
    gen = ", ".join(f"{r['label']} {r['generate_s']} s" for r in result["sizes"])
    lines += ["", f"corpus generation (not part of preparation): {gen}"]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["sizes"]
    x = [r["size"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.loglog(x, [r["prepare"]["wall_s"] for r in rows], "o-", label="prepare")
    ax1.loglog(x, [r["generate_s"] for r in rows], "s--", label="corpus generation")
    ax1.set(xlabel="training pairs", ylabel="seconds", title="time")
    ax2.loglog(x, [r["prepare"]["peak_tree_mib"] for r in rows], "o-", label="tree")
    ax2.loglog(x, [r["prepare"]["peak_proc_mib"] for r in rows], "s--", label="largest")
    ax2.set(xlabel="training pairs", ylabel="peak RSS (MiB)", title="prepare memory")
    for ax, y0 in ((ax1, rows[0]["prepare"]["wall_s"]),
                   (ax2, rows[0]["prepare"]["peak_tree_mib"])):  # fmt: skip
        ax.loglog(x, [y0 * n / x[0] for n in x], ":", color="gray", label="linear")
    ax2.set_ylim(100, 100_000)
    for ax in (ax1, ax2):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"nmt prepare: {result['cpu']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--sizes", type=int, nargs="+", default=[10**6, 4 * 10**6, 16 * 10**6]
    )
    ap.add_argument("--steps", type=int, default=30, help="training updates per run")
    ap.add_argument("--out", type=Path, default=Path("/tmp/nmt_scale"))
    ap.add_argument(
        "--ddp-size", type=int, default=4 * 10**6, help="size run on 2 ranks"
    )
    ap.add_argument("--keep", action="store_true", help="keep corpora and caches")
    a = ap.parse_args()
    a.out = a.out.resolve()
    a.out.mkdir(parents=True, exist_ok=True)
    log = a.out / "scale.log"
    result = {
        "cpu": cpu(),
        "torch": version("torch"),
        "steps": a.steps,
        "args": {k: str(v) for k, v in vars(a).items()},
        "multi30k": multi30k(a, log),
        "sizes": [],
    }
    save(result, a.out)
    for n in sorted(a.sizes):
        result["sizes"].append(one_size(n, a, log))
        save(result, a.out)  # a long run that fails later keeps what it measured
    print((a.out / "scale.md").read_text())
    say(f"wrote {a.out / 'scale.md'}, scale.json, scale.png")


def save(result: dict, out: Path) -> None:
    (out / "scale.md").write_text(table(result))
    (out / "scale.json").write_text(json.dumps(result, indent=1) + "\n")
    if result["sizes"]:
        plot(result, out / "scale.png")


if __name__ == "__main__":
    main()
