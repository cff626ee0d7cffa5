"""nmt side by side with Joey NMT 2.3.0 and OpenNMT-py 3.5.1 on Multi30k de-en.

    /work/venv/bin/python benchmarks/peers/peers.py [--updates N] [--batch B]
        [--threads T] [--minutes M] [--work DIR] [--variants A,B]
        [--systems nmt,joeynmt,onmt] [--smoke] [--write]

The peers live in their own environments (benchmarks/peers/setup_envs.sh); their
configurations are joeynmt.yaml and onmt.yaml here, nmt's overrides nmt.yaml. All
three systems read the same sentencepiece pieces, made by nmt's own data path, with
the same vocabularies; outputs are decoded with the same sentencepiece model and
scored by sacreBLEU against the raw references. Each system trains for exactly N
updates of B sentences, then translates test2016 greedily and with beam 5.

Variant A has no attention (Joey NMT always attends, so it runs in B only); B has
Luong "general" attention without input feeding. Training speed: target tokens/s
over the training log intervals after the first (warm-up) one. Wall time and peak RSS
cover the whole training process: start-up, data loading and the one validation at
the end. Translation speed: sentences/s as timed by each system around its decoding
loop (model loading excluded). `--minutes`: time limit for each run. `--smoke`: 300
pairs, 10 updates, 1 thread, to check the plumbing.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import sacrebleu
import sentencepiece as spm
import yaml

import nmt
from nmt.config import load_config
from nmt.data import prepare

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RECIPE = REPO / "recipes" / "multi30k_de_en.yaml"
RAW = REPO.parent / "shared" / "data" / "multi30k"  # ../shared/data beside the repo
VENVS = Path(os.environ.get("PEERS_VENVS", "/work/peers_venvs"))  # setup_envs.sh ROOT
NMT_BIN = Path(sys.executable).parent
SRC, TGT = "de", "en"
DECODES = {"greedy": 1, "beam5": 5}
# Both peers call torch.load() without weights_only, which torch >= 2.6 turns into a
# weights-only load that rejects their own checkpoints.
PEER_ENV = {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "PYTHONWARNINGS": "ignore"}
TS = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})"  # logging's asctime
JOEY_RATE = re.compile(TS + r" .*Step:\s+\d+, .*Tokens per Sec:\s+([\d.]+)")
ONMT_RATE = re.compile(r"\[" + TS + r" INFO\] Step\s+\d+.*; *[\d.]+/ *([\d.]+) tok/s")


@dataclass
class Settings:
    work: Path
    updates: int
    batch: int  # sentences per update, for every system
    threads: int
    minutes: float  # time limit for each training or translation run
    smoke: bool

    @property
    def log_every(self) -> int:
        """A divisor of the updates (Joey NMT needs one) giving >= 4 log intervals."""
        n = self.updates
        return max([d for d in range(1, n // 4 + 1) if n % d == 0] or [1])


@dataclass
class Result:
    system: str
    variant: str
    params: int = 0
    train_tok_s: float = 0.0
    train_wall_s: float = 0.0
    train_rss_mib: float = 0.0
    sents_s: dict = field(default_factory=dict)  # DECODES key -> sentences/s
    bleu: dict = field(default_factory=dict)


COLUMNS = [  # header, format, value of a Result
    ("params", "{:.2f} M", lambda r: r.params / 1e6),
    ("train tgt tok/s", "{:,.0f}", lambda r: r.train_tok_s),
    ("train wall s", "{:,.0f}", lambda r: r.train_wall_s),
    ("train peak RSS MiB", "{:,.0f}", lambda r: r.train_rss_mib),
    ("greedy sent/s", "{:,.1f}", lambda r: r.sents_s.get("greedy", 0)),
    ("beam 5 sent/s", "{:,.1f}", lambda r: r.sents_s.get("beam5", 0)),
    ("BLEU greedy", "{:.2f}", lambda r: r.bleu.get("greedy", 0)),
    ("BLEU beam 5", "{:.2f}", lambda r: r.bleu.get("beam5", 0)),
]


def run(cmd: list, log: Path, s: Settings, env: dict | None = None):
    """Run `cmd` with its output in `log`; returns (wall seconds, peak RSS MiB)."""
    threads = str(s.threads)
    full = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    full.update(PYTHONUNBUFFERED="1", **(env or {}))
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as out:
        p = subprocess.Popen(
            [str(c) for c in cmd],
            stdout=out,
            stderr=out,
            env=full,
            start_new_session=True,
        )
        timer = threading.Timer(s.minutes * 60, os.killpg, (p.pid, signal.SIGTERM))
        timer.start()
        try:
            _, status, usage = os.wait4(p.pid, 0)  # the rusage of this child alone
        except KeyboardInterrupt:  # the child has its own session: stop it too
            os.killpg(p.pid, signal.SIGTERM)
            raise
        finally:
            timer.cancel()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode:
        tail = "".join(log.read_text(encoding="utf-8").splitlines(True)[-15:])
        why = "killed at --minutes" if p.returncode == -signal.SIGTERM else "failed"
        raise RuntimeError(f"{cmd[0]} {why} ({p.returncode}), see {log}:\n{tail}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")[:-1]


def write_lines(path: Path, lines) -> None:
    path.write_text("".join(x + "\n" for x in lines), encoding="utf-8")


def nmt_sets(s: Settings, sections: list[str], extra: dict | None = None) -> list[str]:
    """`--set key=value` arguments: sections of nmt.yaml (or a variant), then extra."""
    cfg = yaml.safe_load((HERE / "nmt.yaml").read_text())
    items = {}
    for name in sections:
        items.update(cfg["variants"][name] if name in cfg["variants"] else cfg[name])
    if s.smoke:  # made by prepare_data
        items.update(
            {"data.files.dir": str(s.work / "raw"), "tokenizer.vocab_size": 500}
        )
    items.update(extra or {})
    text = {k: v if isinstance(v, str) else json.dumps(v) for k, v in items.items()}
    return [a for k, v in text.items() for a in ("--set", f"{k}={v}")]


def prepare_data(s: Settings) -> dict:
    """Encode the corpus with nmt; write it as pieces, with vocabularies and refs."""
    if s.smoke and not (s.work / "raw" / f"test2016.{TGT}").exists():
        for split, n in (("train", 300), ("valid", 60), ("test2016", 60)):
            for lang in (SRC, TGT):  # the first n pairs
                with gzip.open(RAW / f"{split}.{lang}.gz", "rt", encoding="utf-8") as f:
                    lines = [next(f).rstrip("\n") for _ in range(n)]
                (s.work / "raw").mkdir(parents=True, exist_ok=True)
                write_lines(s.work / "raw" / f"{split}.{lang}", lines)
    overrides = nmt_sets(s, ["data"], {"workdir": str(s.work / "nmt")})[1::2]
    corpus = prepare(load_config(RECIPE, overrides), log=lambda m: print("  " + m))
    tok, d = corpus.tokenizer, s.work / "data"
    d.mkdir(parents=True, exist_ok=True)
    test_key = next(k for k, n in corpus.test_names.items() if n == "test2016")
    for name, key in (("train", "train"), ("valid", "valid"), ("test", test_key)):
        for lang, sp, col in ((SRC, tok.src, "src_ids"), (TGT, tok.tgt, "tgt_ids")):
            rows = corpus.splits[key][col]  # unknown ids become <unk>, as in nmt
            write_lines(
                d / f"{name}.{lang}", (" ".join(map(sp.id_to_piece, x)) for x in rows)
            )
    test = corpus.splits[test_key]
    write_lines(d / f"test.raw.{SRC}", test["src"])
    write_lines(d / f"test.raw.{TGT}", test["tgt"])
    for lang, sp in ((SRC, tok.src), (TGT, tok.tgt)):  # ids 0-3: pad unk bos eos
        write_lines(d / f"vocab.{lang}", map(sp.id_to_piece, range(4, len(sp))))
    print(
        f"  {len(corpus.splits['train'])} training pairs, vocab {len(tok.src)} -> {d}"
    )
    return {"dir": d, "spm": str(tok.tgt_model), "n_test": len(test)}


def bleu(hyps: list[str], data: dict) -> float:
    refs = read_lines(data["dir"] / f"test.raw.{TGT}")
    return sacrebleu.corpus_bleu(hyps, [refs]).score


def score_pieces(path: Path, data: dict) -> float:
    """BLEU of a file of output pieces, decoded by the shared sentencepiece model."""
    sp = spm.SentencePieceProcessor(model_file=data["spm"])
    hyps = sp.decode([[sp.piece_to_id(p) for p in x.split()] for x in read_lines(path)])
    return bleu(hyps, data)


def log_rate(log: Path, pattern: re.Pattern) -> float:
    """Tokens/s over the log intervals after the first, weighted by their durations.

    Each matching line gives a timestamp and the rate of the interval it closes.
    """
    points = []
    for m in pattern.finditer(log.read_text(encoding="utf-8")):
        t = datetime.datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S").timestamp()
        points.append((t + int(m[2]) / 1000, float(m[3])))
    if len(points) < 3:
        raise RuntimeError(f"{log}: fewer than 3 training log lines to time")
    spans = [(b[0] - a[0], b[1]) for a, b in zip(points, points[1:])]
    return sum(dt * rate for dt, rate in spans) / sum(dt for dt, _ in spans)


def grep(path: Path, pattern: str) -> str:
    """The first group of the last match of `pattern` in a log."""
    return re.findall(pattern, path.read_text(encoding="utf-8"))[-1]


def nmt_system(s: Settings, variant: str, data: dict) -> Result:
    """Train with the nmt CLI, translate with its Translator (timed in the child)."""
    import torch

    out, r = s.work / f"nmt_{variant}", Result("nmt", variant)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "data").exists():  # reuse the corpus encoded by prepare_data
        (out / "data").symlink_to(s.work / "nmt" / "data")
    sets = nmt_sets(
        s,
        ["data", "model", "train", variant],
        {
            "workdir": str(out),
            "train.threads": s.threads,
            "train.max_steps": s.updates,
            "train.valid_every": s.updates,  # once, after the last update
            "train.batch_sentences": s.batch,
            "train.log_every": s.log_every,
        },
    )
    cmd = [NMT_BIN / "nmt", "train", RECIPE, *sets]
    r.train_wall_s, r.train_rss_mib = run(cmd, out / "train.log", s)
    recs = [json.loads(x) for x in read_lines(out / "model" / "log.jsonl")]
    recs = [x for x in recs if x.get("type") == "train"]
    first, last = recs[0], recs[-1]  # tok_s and elapsed are both cumulative
    tokens = last["tok_s"] * last["elapsed"] - first["tok_s"] * first["elapsed"]
    r.train_tok_s = tokens / (last["elapsed"] - first["elapsed"])
    state = torch.load(out / "model" / "best.pt", weights_only=True)["model"]
    r.params = sum(v.numel() for v in state.values())
    for key, beam in DECODES.items():
        hyp, log = out / f"test.{key}.{TGT}", out / f"translate.{key}.log"
        src = data["dir"] / f"test.raw.{SRC}"
        cmd = [NMT_BIN / "python", HERE / "nmt_translate.py", out / "model", beam]
        run([*cmd, src, hyp, s.threads], log, s)
        seconds = float(grep(log, r'\{"seconds": ([\d.e-]+)\}'))
        r.sents_s[key] = data["n_test"] / seconds
        r.bleu[key] = bleu(read_lines(hyp), data)
    return r


def template(name: str) -> dict:
    """A peer's configuration from benchmarks/peers/<name>.yaml."""
    return yaml.safe_load((HERE / f"{name}.yaml").read_text())


def joey_config(s: Settings, data: dict, out: Path, beam: int) -> dict:
    """joeynmt.yaml with this run's paths, batch size, updates and beam."""
    d, cfg = data["dir"], template("joeynmt")
    cfg["model_dir"] = str(out / "model")
    cfg["data"].update(
        train=str(d / "train"), dev=str(d / "valid"), test=str(d / "test")
    )
    cfg["data"]["src"]["voc_file"] = str(d / f"vocab.{SRC}")
    cfg["data"]["trg"]["voc_file"] = str(d / f"vocab.{TGT}")
    cfg["training"].update(batch_size=s.batch, updates=s.updates)
    cfg["training"].update(logging_freq=s.log_every, validation_freq=s.updates)
    cfg["testing"]["beam_size"] = beam
    return cfg


def joey_system(s: Settings, variant: str, data: dict) -> Result:
    """`joeynmt train`, then `joeynmt test` on a config without a dev set."""
    out, r = s.work / f"joeynmt_{variant}", Result("joeynmt", variant)
    out.mkdir(parents=True, exist_ok=True)
    joey = [VENVS / "joeynmt" / "bin" / "python", "-m", "joeynmt"]
    (out / "train.yaml").write_text(yaml.safe_dump(joey_config(s, data, out, 1)))
    cmd = [*joey, "train", out / "train.yaml", "--skip-test"]
    r.train_wall_s, r.train_rss_mib = run(cmd, out / "train.log", s, PEER_ENV)
    r.train_tok_s = log_rate(out / "train.log", JOEY_RATE)
    r.params = int(grep(out / "train.log", r"Total params: (\d+)"))
    for key, beam in DECODES.items():
        cfg, log = joey_config(s, data, out, beam), out / f"translate.{key}.log"
        del cfg["data"]["dev"]  # `test` decodes the dev set too when there is one
        (out / f"test.{key}.yaml").write_text(yaml.safe_dump(cfg))
        cmd = [*joey, "test", out / f"test.{key}.yaml", "-o", out / f"out.{key}"]
        run(cmd, log, s, PEER_ENV)
        r.sents_s[key] = data["n_test"] / float(grep(log, r"Generation took ([\d.]+)"))
        r.bleu[key] = score_pieces(out / f"out.{key}.test", data)
    return r


def onmt_config(s: Settings, variant: str, data: dict, out: Path) -> dict:
    """onmt.yaml with this run's paths, attention, batch size and updates."""
    d, cfg, n = data["dir"], template("onmt"), s.updates
    del cfg["translate"]  # onmt_translate's options
    cfg.update(save_data=str(out / "run"), save_model=str(out / "model"))
    cfg.update(src_vocab=str(d / f"vocab.{SRC}"), tgt_vocab=str(d / f"vocab.{TGT}"))
    cfg.update(train_steps=n, save_checkpoint_steps=n, valid_steps=n)
    cfg.update(report_every=s.log_every, batch_size=s.batch)
    cfg["global_attention"] = "none" if variant == "A" else "general"
    for corpus, split in (("corpus_1", "train"), ("valid", "valid")):
        paths = {"path_src": f"{split}.{SRC}", "path_tgt": f"{split}.{TGT}"}
        cfg["data"][corpus] = {k: str(d / v) for k, v in paths.items()}
    return cfg


def onmt_system(s: Settings, variant: str, data: dict) -> Result:
    """`onmt_train` (vocabularies given), then `onmt_translate -report_time`."""
    out, r = s.work / f"onmt_{variant}", Result("onmt", variant)
    out.mkdir(parents=True, exist_ok=True)
    bin_ = VENVS / "onmt" / "bin"
    (out / "train.yaml").write_text(yaml.safe_dump(onmt_config(s, variant, data, out)))
    cmd = [bin_ / "onmt_train", "-config", out / "train.yaml"]
    r.train_wall_s, r.train_rss_mib = run(cmd, out / "train.log", s, PEER_ENV)
    r.train_tok_s = log_rate(out / "train.log", ONMT_RATE)
    r.params = int(grep(out / "train.log", r"number of parameters: (\d+)"))
    decode = [
        str(x) for k, v in template("onmt")["translate"].items() for x in ("-" + k, v)
    ]
    for key, beam in DECODES.items():
        log = out / f"translate.{key}.log"
        cmd = [bin_ / "onmt_translate", "-model", out / f"model_step_{s.updates}.pt"]
        cmd += ["-src", data["dir"] / f"test.{SRC}", "-output", out / f"out.{key}"]
        cmd += ["-beam_size", beam, "-report_time", *decode]
        run(cmd, log, s, PEER_ENV)
        ms = float(grep(log, r"Average translation time \(ms\): ([\d.]+)"))
        r.sents_s[key] = 1000 / ms
        r.bleu[key] = score_pieces(out / f"out.{key}", data)
    return r


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def table(results: list[Result]) -> str:
    """Markdown: a row per run, then nmt / peer ratios within each variant."""
    head = "| variant | system | " + " | ".join(c[0] for c in COLUMNS) + " |\n"
    rows = [head + "|---" * (len(COLUMNS) + 2) + "|"]
    for r in results:
        cells = (fmt.format(get(r)) for _, fmt, get in COLUMNS)
        rows.append(f"| {r.variant} | {r.system} | " + " | ".join(cells) + " |")
    for ours in [r for r in results if r.system == "nmt"]:
        for peer in results:
            if peer.variant == ours.variant and peer.system != "nmt":
                cells = (ratio(get(ours), get(peer)) for _, _, get in COLUMNS)
                name = f"nmt / {peer.system}"
                rows.append(f"| {ours.variant} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def versions() -> str:
    """Machine and package versions, for the BENCHMARKS.md entry."""
    import torch

    def peer(venv: str, module: str) -> str:
        code = f"import {module}; print({module}.__version__)"
        py = VENVS / venv / "bin" / "python"
        done = subprocess.run([py, "-W", "ignore", "-c", code], capture_output=True)
        return done.stdout.decode().strip()

    cpu = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
    return (
        f"{cpu[1] if cpu else platform.machine()}, {os.cpu_count()} cores; nmt "
        f"{nmt.__version__}, Joey NMT {peer('joeynmt', 'joeynmt')}, OpenNMT-py "
        f"{peer('onmt', 'onmt')}, torch {torch.__version__}, sacrebleu "
        f"{sacrebleu.__version__}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--updates", type=int, default=300)
    ap.add_argument("--batch", type=int, default=256, help="sentences per update")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--minutes", type=float, default=30.0, help="limit for each run")
    ap.add_argument("--work", type=Path, default=Path("/work/peers_work"))
    ap.add_argument("--variants", default="A,B")
    ap.add_argument("--systems", default="nmt,joeynmt,onmt")
    ap.add_argument("--smoke", action="store_true", help="300 pairs, 10 updates")
    ap.add_argument("--write", action="store_true", help="append to BENCHMARKS.md")
    a = ap.parse_args()
    if a.smoke and a.write:
        ap.error("--smoke results do not belong in BENCHMARKS.md")
    if a.smoke:
        a.updates, a.batch, a.threads = 10, 32, 1
        a.work = a.work.with_name(a.work.name + "_smoke")
    s = Settings(a.work.resolve(), a.updates, a.batch, a.threads, a.minutes, a.smoke)
    print(f"preparing data in {s.work}")
    data = prepare_data(s)
    systems = {"nmt": nmt_system, "joeynmt": joey_system, "onmt": onmt_system}
    results = []
    for variant in a.variants.split(","):
        for name in a.systems.split(","):
            if name == "joeynmt" and variant == "A":
                print("A: joeynmt skipped (its recurrent decoder always attends)")
                continue
            print(f"{variant}: {name} ...", flush=True)
            try:
                results.append(systems[name](s, variant, data))
            except RuntimeError as e:  # report it, go on with the others
                print(f"  {variant}: {name} FAILED: {e}", flush=True)
                continue
            print("  " + json.dumps(asdict(results[-1])), flush=True)
    (s.work / "results.json").write_text(
        json.dumps([asdict(r) for r in results], indent=1)
    )
    text = table(results)
    print("\n" + text)
    if a.write:
        cmd = " ".join(["python", "benchmarks/peers/peers.py", *sys.argv[1:]])
        with open(REPO / "BENCHMARKS.md", "a", encoding="utf-8") as f:
            f.write(
                f"\n### Peers, {datetime.date.today()}: `{cmd}`\n\n{versions()}. "
                f"{s.updates} updates of {s.batch} sentences, {s.threads} threads. "
                "A: no attention (Joey NMT always attends); B: Luong general "
                "attention. OpenNMT-py's decoder has 2 layers (it must match the "
                "encoder's). BLEU after these updates only, not converged; "
                f"configurations in benchmarks/peers/.\n\n{text}"
            )


if __name__ == "__main__":
    main()
