"""nmt side by side with Joey NMT 2.3.0 and OpenNMT-py 3.5.1 on Multi30k de-en.

    .venv/bin/python benchmarks/peers/peers.py [--train-minutes T] [--batch B]
        [--threads N] [--every C] [--plain-updates U] [--minutes M] [--work DIR]
        [--variants A,B] [--systems nmt,nmt-bf16,plain,onmt,joeynmt] [--smoke]
        [--write] [--table] [--merge]

The peers live in their own environments (benchmarks/peers/setup_envs.sh); their
configurations are joeynmt.yaml and onmt.yaml here, nmt's overrides nmt.yaml. All
systems read the same sentencepiece pieces, made by nmt's own data path, with the
same vocabularies; outputs are decoded with the same sentencepiece model and scored
by sacreBLEU against the raw references.

Each system trains for T minutes of wall time (start-up included; then SIGTERM) in
updates of B sentences, saving a checkpoint every C updates; the newest checkpoint
complete at T translates test2016 greedily and with beam 5, so BLEU is "after the
same training time" (nmt's beam search stops each sentence as OpenNMT-py's does,
`decode.stop: early`, and limits outputs as it does: nmt.yaml). A system with no
checkpoint complete at T keeps its speed and memory, untranslated. Variant A has
no attention (Joey NMT always attends, so it runs in B only); B has Luong
"general" attention without input feeding. In A a plain torch.nn.LSTM
encoder-decoder of nmt's size (plain_lstm.py) trains U updates on nmt's batches:
the practical speed limit. nmt also trains with bf16 autocast
and translates with bf16 autocast (`train.precision` and `decode.precision: bf16`;
the CPU's bf16 matrix units): "nmt-bf16". Training speed: seconds per update over
the log lines after the first (warm-up) interval, as target tokens/s with the
corpus's mean target length. Peak RSS: the whole training process. Translation
speed: sentences/s as timed by each system around its decoding loop (model loading
excluded), and output pieces/s (sentences/s x pieces written / sentences: models
trained for minutes loop to their length limit on some lines, and the limits
differ). `--minutes`: time limit of each translation run. `--smoke`: 300 pairs,
30-second runs, 1 thread, to check the plumbing. `--table`: no runs, the table of
the last run in --work. `--merge`: the runs made replace their rows in the last
run's results (and their minutes add to its total).
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
import torch
import yaml

import nmt
from nmt.config import load_config
from nmt.data.corpus import prepare
from nmt.hardware import bf16_emulated

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RECIPE = REPO / "recipes" / "multi30k_de_en.yaml"
RAW = REPO.parent / "shared" / "data" / "multi30k"  # ../shared/data beside the repo
VENVS = Path(os.environ.get("PEERS_VENVS", "/work/peers_venvs"))  # setup_envs.sh ROOT
NMT_BIN = Path(sys.executable).parent
# systems, run in this order per variant; "nmt-bf16" is nmt training and translating
# with bf16 autocast (train/decode.precision: bf16)
ORDER = ("nmt", "nmt-bf16", "plain", "onmt", "joeynmt")
OURS = ("nmt", "nmt-bf16")
SRC, TGT = "de", "en"
DECODES = {"greedy": 1, "beam5": 5}
# Both peers call torch.load() without weights_only, which torch >= 2.6 turns into a
# weights-only load that rejects their own checkpoints.
PEER_ENV = {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "PYTHONWARNINGS": "ignore"}
TS = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})"  # logging's asctime
JOEY_STEP = re.compile(TS + r" .*Step:\s+(\d+), .*Tokens per Sec")
ONMT_STEP = re.compile(r"\[" + TS + r" INFO\] Step\s+(\d+)/.*tok/s")


@dataclass
class Settings:
    work: Path
    train_minutes: float  # wall time of every training run, start-up included
    batch: int  # sentences per update, for every system
    threads: int
    minutes: float  # time limit for each translation run
    every: int  # checkpoint interval in updates
    plain_updates: int  # updates of the plain nn.LSTM reference
    smoke: bool

    @property
    def log_every(self) -> int:
        """Half the checkpoint interval when it divides it (Joey NMT needs that)."""
        return self.every // 2 if self.every % 2 == 0 else self.every


@dataclass
class Result:
    system: str
    variant: str
    params: int = 0
    train_tok_s: float = 0.0  # target tokens/s after the first log interval
    s_per_100: float = 0.0  # seconds per 100 updates, ditto
    updates: int = 0  # updates in the checkpoint that was translated
    train_rss_mib: float = 0.0
    sents_s: dict = field(default_factory=dict)  # DECODES key -> sentences/s
    pieces_s: dict = field(default_factory=dict)  # DECODES key -> output pieces/s
    bleu: dict = field(default_factory=dict)


COLUMNS = [  # header, format, value of a Result
    ("params", "{:.2f} M", lambda r: r.params / 1e6),
    ("train tgt tok/s", "{:,.0f}", lambda r: r.train_tok_s),
    ("s / 100 updates", "{:,.1f}", lambda r: r.s_per_100),
    ("updates in T", "{:,d}", lambda r: r.updates),
    ("train peak RSS MiB", "{:,.0f}", lambda r: r.train_rss_mib),
    ("greedy sent/s", "{:,.1f}", lambda r: r.sents_s.get("greedy", 0)),
    ("beam 5 sent/s", "{:,.1f}", lambda r: r.sents_s.get("beam5", 0)),
    ("greedy pieces/s", "{:,.0f}", lambda r: r.pieces_s.get("greedy", 0)),
    ("beam 5 pieces/s", "{:,.0f}", lambda r: r.pieces_s.get("beam5", 0)),
    ("BLEU greedy", "{:.2f}", lambda r: r.bleu.get("greedy", 0)),
    ("BLEU beam 5", "{:.2f}", lambda r: r.bleu.get("beam5", 0)),
]


@dataclass
class Done:
    rss_mib: float
    cut_at: float | None  # time.time() of the SIGTERM at the deadline, if sent


def run(cmd: list, log: Path, s: Settings, env=None, deadline: float = 0) -> Done:
    """Run `cmd` with its output in `log`. With `deadline` (seconds) the process
    group gets SIGTERM then, which is the expected end of a training run; without
    it, going over --minutes is an error."""
    threads = str(s.threads)
    full = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    full.update(PYTHONUNBUFFERED="1", **(env or {}))
    cut = []

    def stop(pid: int) -> None:
        cut.append(time.time())
        os.killpg(pid, signal.SIGTERM)

    with open(log, "w", encoding="utf-8") as out:
        p = subprocess.Popen(
            [str(c) for c in cmd],
            stdout=out,
            stderr=out,
            env=full,
            start_new_session=True,
        )
        timer = threading.Timer(deadline or s.minutes * 60, stop, (p.pid,))
        timer.start()
        try:
            _, status, usage = os.wait4(p.pid, 0)  # the rusage of this child alone
        except KeyboardInterrupt:  # the child has its own session: stop it too
            os.killpg(p.pid, signal.SIGTERM)
            raise
        finally:
            timer.cancel()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode and not (deadline and cut):
        tail = "".join(log.read_text(encoding="utf-8").splitlines(True)[-15:])
        why = "killed at --minutes" if cut else "failed"
        raise RuntimeError(f"{cmd[0]} {why} ({p.returncode}), see {log}:\n{tail}")
    return Done(usage.ru_maxrss / 1024, cut[0] if cut else None)


def pick(files: dict, done: Done, every: int) -> tuple[int, Path | None]:
    """The checkpoint to translate: the newest at a multiple of `every` updates
    that was complete (2 s old) when training was cut. {step: path} -> (step,
    path), or (0, None) when none was: the system keeps its speed and memory."""
    cut = done.cut_at or time.time()
    ok = [
        (n, f)
        for n, f in files.items()
        if n % every == 0 and f.stat().st_mtime < cut - 2
    ]
    if not ok:
        print(f"  no checkpoint complete in time ({sorted(files)}): not translated")
        return 0, None
    return max(ok)


def speed(points: list, tokens_per_update: float, log: Path) -> tuple[float, float]:
    """(target tokens/s, seconds per 100 updates) from (update, seconds) log points,
    after the first (warm-up) interval. Every system takes `--batch` sentences per
    update from the same corpus, so tokens/s = updates/s x the corpus's mean.
    A system that logs only twice in T is timed between those two."""
    if len(points) > 2:
        points = points[1:]
    if len(points) < 2:  # a slow system may log only twice in T
        raise RuntimeError(f"{log}: fewer than 2 training log lines to time")
    (n0, t0), (n1, t1) = points[0], points[-1]
    per_update = (t1 - t0) / (n1 - n0)
    return tokens_per_update / per_update, 100 * per_update


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
    for lang in (SRC, TGT):  # Joey NMT's dev set: it validates to save
        write_lines(d / f"valid16.{lang}", read_lines(d / f"valid.{lang}")[:16])
    train_tgt = corpus.splits["train"]["tgt_ids"]
    per_sentence = sum(len(x) + 1 for x in train_tgt) / len(train_tgt)  # with EOS
    print(
        f"  {len(train_tgt)} training pairs, vocab {len(tok.src)}, "
        f"{per_sentence:.2f} target tokens per sentence -> {d}"
    )
    return {
        "dir": d,
        "spm": str(tok.tgt_model),
        "n_test": len(test),
        "tok_per_update": s.batch * per_sentence,
    }


def bleu(hyps: list[str], data: dict) -> float:
    refs = read_lines(data["dir"] / f"test.raw.{TGT}")
    return sacrebleu.corpus_bleu(hyps, [refs]).score


def score_pieces(path: Path, data: dict) -> float:
    """BLEU of a file of output pieces, decoded by the shared sentencepiece model."""
    sp = spm.SentencePieceProcessor(model_file=data["spm"])
    hyps = sp.decode([[sp.piece_to_id(p) for p in x.split()] for x in read_lines(path)])
    return bleu(hyps, data)


OUTPUTS = {  # system -> the file of its test2016 output for a DECODES key
    "nmt": "test.{}.en",  # text
    "nmt-bf16": "test.{}.en",
    "joeynmt": "out.{}.test",  # pieces
    "onmt": "out.{}",  # pieces
}


def pieces_per_second(s: Settings, r: Result, data: dict) -> None:
    """Output pieces/s from sentences/s and the pieces written: models trained for
    minutes loop to their length limit on some lines, and the limits differ
    between systems, so sentences/s alone compares output lengths as much as
    speed."""
    sp = spm.SentencePieceProcessor(model_file=data["spm"])
    for key in r.sents_s:
        path = s.work / f"{r.system}_{r.variant}" / OUTPUTS[r.system].format(key)
        lines = read_lines(path)
        if r.system in OURS:
            n = sum(len(x) for x in sp.encode(lines))
        else:
            n = sum(len(x.split()) for x in lines)
        r.pieces_s[key] = r.sents_s[key] * n / data["n_test"]


def log_points(log: Path, pattern: re.Pattern) -> list[tuple[int, float]]:
    """(update, seconds) of each training log line: timestamp, then update number."""
    points = []
    for m in pattern.finditer(log.read_text(encoding="utf-8")):
        t = datetime.datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S").timestamp()
        points.append((int(m[3]), t + int(m[2]) / 1000))
    return points


def grep(path: Path, pattern: str) -> str:
    """The first group of the last match of `pattern` in a log."""
    return re.findall(pattern, path.read_text(encoding="utf-8"))[-1]


def train_for(s: Settings, r: Result, cmd: list, out: Path, env=None) -> Done:
    """One training run, cut at --train-minutes; fills in the peak RSS."""
    print(f"  training for {s.train_minutes} min: {out / 'train.log'}", flush=True)
    done = run(cmd, out / "train.log", s, env, deadline=60 * s.train_minutes)
    r.train_rss_mib = done.rss_mib
    return done


def nmt_system(
    s: Settings, variant: str, data: dict, precision: str = "fp32"
) -> Result:
    """Train with the nmt CLI, translate with its Translator (timed in the child),
    both in `precision` (train.precision, decode.precision)."""
    import torch

    name = "nmt" if precision == "fp32" else f"nmt-{precision}"
    out, r = s.work / f"{name}_{variant}", Result(name, variant)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "data").exists():  # reuse the corpus encoded by prepare_data
        (out / "data").symlink_to(s.work / "nmt" / "data")
    sets = nmt_sets(
        s,
        ["data", "model", "train", "decode", variant],
        {
            "workdir": str(out),
            "train.threads": s.threads,
            "train.valid_every": 10**9,  # never: checkpoints come from save_every
            "train.save_every": s.every,
            "train.keep_last": 4,
            "train.batch_sentences": s.batch,
            "train.log_every": s.log_every,
            "train.precision": precision,
        },
    )
    cmd = [NMT_BIN / "nmt", "train", RECIPE, *sets]
    done = train_for(s, r, cmd, out)
    recs = [json.loads(x) for x in read_lines(out / "model" / "log.jsonl")]
    points = [(x["step"], x["elapsed"]) for x in recs if x.get("type") == "train"]
    r.train_tok_s, r.s_per_100 = speed(points, data["tok_per_update"], out)
    files = {int(f.stem.split("-")[1]): f for f in (out / "model").glob("step-*.pt")}
    r.updates, ckpt = pick(files, done, s.every)
    state = torch.load(ckpt or out / "model" / "last.pt", weights_only=True)["model"]
    r.params = sum(v.numel() for v in state.values())
    for key, beam in DECODES.items() if ckpt else ():
        hyp, log = out / f"test.{key}.{TGT}", out / f"translate.{key}.log"
        src = data["dir"] / f"test.raw.{SRC}"
        cmd = [NMT_BIN / "python", HERE / "nmt_translate.py", out / "model", beam]
        run([*cmd, src, hyp, s.threads, ckpt.name, precision], log, s)
        seconds = float(grep(log, r'\{"seconds": ([\d.e-]+)\}'))
        r.sents_s[key] = data["n_test"] / seconds
        r.bleu[key] = bleu(read_lines(hyp), data)
    return r


def plain_system(s: Settings, variant: str, data: dict) -> Result:
    """benchmarks/peers/plain_lstm.py: training speed only (the practical limit)."""
    out, r = s.work / f"plain_{variant}", Result("plain nn.LSTM", variant)
    out.mkdir(parents=True, exist_ok=True)
    cmd = [NMT_BIN / "python", HERE / "plain_lstm.py", data["dir"], s.batch]
    cmd += [s.plain_updates, s.log_every, s.threads, s.every, out]
    done = run(cmd, out / "train.log", s)
    r.train_rss_mib = done.rss_mib
    recs = [json.loads(x) for x in read_lines(out / "train.log") if x[:1] == "{"]
    r.params = next(x["params"] for x in recs if "params" in x)
    points = [(x["step"], x["elapsed"]) for x in recs if "step" in x]
    r.train_tok_s, r.s_per_100 = speed(points, data["tok_per_update"], out)
    return r


def template(name: str) -> dict:
    """A peer's configuration from benchmarks/peers/<name>.yaml."""
    return yaml.safe_load((HERE / f"{name}.yaml").read_text())


def joey_config(s: Settings, data: dict, out: Path, beam: int) -> dict:
    """joeynmt.yaml with this run's paths, batch size, intervals and beam. Joey
    NMT saves a checkpoint only when it validates: the dev set is its first 16
    pairs, so that costs little."""
    d, cfg = data["dir"], template("joeynmt")
    cfg["model_dir"] = str(out / "model")
    cfg["data"].update(
        train=str(d / "train"), dev=str(d / "valid16"), test=str(d / "test")
    )
    cfg["data"]["src"]["voc_file"] = str(d / f"vocab.{SRC}")
    cfg["data"]["trg"]["voc_file"] = str(d / f"vocab.{TGT}")
    cfg["training"].update(batch_size=s.batch, updates=10**9)
    cfg["training"].update(logging_freq=s.log_every, validation_freq=s.every)
    cfg["testing"]["beam_size"] = beam
    return cfg


def joey_system(s: Settings, variant: str, data: dict) -> Result:
    """`joeynmt train`, then `joeynmt test` on a config without a dev set."""
    out, r = s.work / f"joeynmt_{variant}", Result("joeynmt", variant)
    out.mkdir(parents=True, exist_ok=True)
    joey = [VENVS / "joeynmt" / "bin" / "python", "-m", "joeynmt"]
    (out / "train.yaml").write_text(yaml.safe_dump(joey_config(s, data, out, 1)))
    cmd = [*joey, "train", out / "train.yaml", "--skip-test"]
    done = train_for(s, r, cmd, out, PEER_ENV)
    points = log_points(out / "train.log", JOEY_STEP)
    r.train_tok_s, r.s_per_100 = speed(points, data["tok_per_update"], out)
    r.params = int(grep(out / "train.log", r"Total params: (\d+)"))
    files = {int(f.stem): f for f in (out / "model").glob("[0-9]*.ckpt")}
    r.updates, ckpt = pick(files, done, s.every)
    for key, beam in DECODES.items() if ckpt else ():
        cfg, log = joey_config(s, data, out, beam), out / f"translate.{key}.log"
        del cfg["data"]["dev"]  # `test` decodes the dev set too when there is one
        cfg["testing"]["load_model"] = str(ckpt)
        (out / f"test.{key}.yaml").write_text(yaml.safe_dump(cfg))
        cmd = [*joey, "test", out / f"test.{key}.yaml", "-o", out / f"out.{key}"]
        run(cmd, log, s, PEER_ENV)
        r.sents_s[key] = data["n_test"] / float(grep(log, r"Generation took ([\d.]+)"))
        r.bleu[key] = score_pieces(out / f"out.{key}.test", data)
    return r


def onmt_config(s: Settings, variant: str, data: dict, out: Path) -> dict:
    """onmt.yaml with this run's paths, attention, batch size and intervals."""
    d, cfg = data["dir"], template("onmt")
    del cfg["translate"]  # onmt_translate's options
    cfg.update(save_data=str(out / "run"), save_model=str(out / "model"))
    cfg.update(src_vocab=str(d / f"vocab.{SRC}"), tgt_vocab=str(d / f"vocab.{TGT}"))
    cfg.update(train_steps=10**6, save_checkpoint_steps=s.every, valid_steps=10**6)
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
    done = train_for(s, r, cmd, out, PEER_ENV)
    points = log_points(out / "train.log", ONMT_STEP)
    r.train_tok_s, r.s_per_100 = speed(points, data["tok_per_update"], out)
    r.params = int(grep(out / "train.log", r"number of parameters: (\d+)"))
    files = {int(f.stem.rsplit("_", 1)[1]): f for f in out.glob("model_step_*.pt")}
    r.updates, ckpt = pick(files, done, s.every)
    decode = [
        str(x) for k, v in template("onmt")["translate"].items() for x in ("-" + k, v)
    ]
    for key, beam in DECODES.items() if ckpt else ():
        log = out / f"translate.{key}.log"
        cmd = [bin_ / "onmt_translate", "-model", ckpt]
        cmd += ["-src", data["dir"] / f"test.{SRC}", "-output", out / f"out.{key}"]
        cmd += ["-beam_size", beam, "-report_time", *decode]
        run(cmd, log, s, PEER_ENV)
        ms = float(grep(log, r"Average translation time \(ms\): ([\d.]+)"))
        r.sents_s[key] = 1000 / ms
        r.bleu[key] = score_pieces(out / f"out.{key}", data)
    return r


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def table(results: list[Result]) -> str:
    """Markdown: a row per run, then nmt / other ratios within each variant (for
    time and memory a ratio below 1 favours nmt)."""
    head = "| variant | system | " + " | ".join(c[0] for c in COLUMNS) + " |\n"
    rows = [head + "|---" * (len(COLUMNS) + 2) + "|"]
    for r in results:
        cells = (fmt.format(get(r)) if get(r) else "-" for _, fmt, get in COLUMNS)
        rows.append(f"| {r.variant} | {r.system} | " + " | ".join(cells) + " |")
    for ours in [r for r in results if r.system in OURS]:
        for other in results:
            if other.variant == ours.variant and other.system not in OURS:
                cells = (ratio(get(ours), get(other)) for _, _, get in COLUMNS)
                name = f"{ours.system} / {other.system}"
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
    ap.add_argument(
        "--train-minutes", type=float, default=4.5, help="each training run (T)"
    )
    ap.add_argument("--batch", type=int, default=256, help="sentences per update")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--every", type=int, default=20, help="checkpoint interval")
    ap.add_argument("--plain-updates", type=int, default=100)
    ap.add_argument("--minutes", type=float, default=10.0, help="limit: translation")
    ap.add_argument("--work", type=Path, default=Path("/work/peers_work"))
    ap.add_argument("--variants", default="A,B")
    ap.add_argument("--systems", default=",".join(ORDER))
    ap.add_argument("--smoke", action="store_true", help="300 pairs, 1 thread")
    ap.add_argument("--write", action="store_true", help="append to BENCHMARKS.md")
    ap.add_argument(
        "--table", action="store_true", help="no runs: the table of the last one"
    )
    ap.add_argument(
        "--merge", action="store_true", help="replace these runs in the last table"
    )
    a = ap.parse_args()
    if a.smoke and a.write:
        ap.error("--smoke results do not belong in BENCHMARKS.md")
    if a.smoke:
        a.train_minutes, a.batch, a.threads, a.every, a.plain_updates = 0.5, 32, 1, 4, 8
        a.work = a.work.with_name(a.work.name + "_smoke")
    s = Settings(
        a.work.resolve(),
        a.train_minutes,
        a.batch,
        a.threads,
        a.minutes,
        a.every,
        a.plain_updates,
        a.smoke,
    )
    begin = time.perf_counter()
    print(f"preparing data in {s.work}")
    data = prepare_data(s)
    if a.table:  # recompute what derives from the files, e.g. pieces/s
        results = [
            Result(**r) for r in json.loads((s.work / "results.json").read_text())
        ]
        for r in results:
            pieces_per_second(s, r, data)
        minutes = json.loads((s.work / "run.json").read_text())["minutes"]
        report(a, s, results, minutes)
        return
    systems = {
        "nmt": nmt_system,
        "nmt-bf16": lambda s, v, d: nmt_system(s, v, d, "bf16"),
        "plain": plain_system,
        "joeynmt": joey_system,
        "onmt": onmt_system,
    }
    results = []
    for variant in a.variants.split(","):
        for name in a.systems.split(","):
            if name == "joeynmt" and variant == "A":
                print("A: joeynmt skipped (its recurrent decoder always attends)")
                continue
            if name == "plain" and variant != "A":
                continue  # the speed limit of the model without attention
            if name == "nmt-bf16" and bf16_emulated(torch.device("cpu")):
                print(f"{variant}: nmt-bf16 skipped (no bfloat16 instructions here)")
                continue
            print(f"{variant}: {name} ...", flush=True)
            try:
                results.append(systems[name](s, variant, data))
                pieces_per_second(s, results[-1], data)
            except RuntimeError as e:  # report it, go on with the others
                print(f"  {variant}: {name} FAILED: {e}", flush=True)
                continue
            print("  " + json.dumps(asdict(results[-1])), flush=True)
    minutes = (time.perf_counter() - begin) / 60
    if a.merge:  # a re-run of some systems joins the last run's results and time
        new = {(r.system, r.variant): r for r in results}
        old = json.loads((s.work / "results.json").read_text())
        results = [
            new.pop((r["system"], r["variant"]), None) or Result(**r) for r in old
        ]
        results += list(new.values())
        minutes += json.loads((s.work / "run.json").read_text())["minutes"]
        for r in results:
            pieces_per_second(s, r, data)
    (s.work / "results.json").write_text(
        json.dumps([asdict(r) for r in results], indent=1)
    )
    (s.work / "run.json").write_text(json.dumps({"minutes": minutes}))
    report(a, s, results, minutes)


def report(a, s: Settings, results: list[Result], minutes: float) -> None:
    """Print the table; with --write, append it to BENCHMARKS.md."""
    text = table(results)
    print(f"\n{text}\nthe whole comparison took {minutes:.1f} min")
    if a.write:
        args = [x for x in sys.argv[1:] if x != "--table"]
        cmd = " ".join(["python", "benchmarks/peers/peers.py", *args])
        with open(REPO / "BENCHMARKS.md", "a", encoding="utf-8") as f:
            f.write(
                f"\n### Peers, {datetime.date.today()}: `{cmd}`\n\n{versions()}. "
                f"Each system trained for T = {s.train_minutes:g} min of wall time "
                f"(start-up included) in updates of {s.batch} sentences, "
                f"{s.threads} threads, then translated test2016 from its last "
                f"checkpoint (every {s.every} updates) saved before T. A: no "
                "attention (Joey NMT always attends); B: Luong general attention. "
                "OpenNMT-py's decoder has 2 layers (it must match the encoder's). "
                f"Whole comparison: {minutes:.1f} min. How each number is measured: "
                f"benchmarks/peers/README.md.\n\n{text}"
            )


if __name__ == "__main__":
    main()
