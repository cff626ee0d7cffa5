"""The `nmt` command: parses arguments and calls the library, nothing more."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from nmt.errors import NmtError, StopRequested


class _Parser(argparse.ArgumentParser):
    """Usage mistakes are one line too (argparse prints its usage text first)."""

    def error(self, message: str):
        self.exit(2, f"nmt: error: {message} (see {self.prog} --help)\n")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number, got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _recipe_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", help="recipe YAML file")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        metavar="KEY=VALUE",
        help="override a recipe key, e.g. --set model.decoder.type=lstm",
    )


def _model_args(p: argparse.ArgumentParser, many: bool = False) -> None:
    p.add_argument(
        "model_dir",
        nargs="+" if many else None,
        help="model directory (<workdir>/model)" + ("; several: an ensemble" * many),
    )
    p.add_argument("--checkpoint", default="best", help="weights in MODEL_DIR")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])


def parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="nmt", description="Recurrent neural machine translation.")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="prepare + train + translate the test sets + score")
    _recipe_args(p)
    p.add_argument("--resume", action="store_true", help="continue from last.pt")
    p = sub.add_parser("prepare", help="data and tokenizer only (cached)")
    _recipe_args(p)
    p = sub.add_parser("lexicon", help="write the shortlist's table into the model")
    _recipe_args(p)
    p = sub.add_parser("train", help="train a model (prepares data if needed)")
    _recipe_args(p)
    p.add_argument("--resume", action="store_true", help="continue exactly")
    p = sub.add_parser("recipe", help="print the resolved recipe: every key and help")
    _recipe_args(p)
    p = sub.add_parser("translate", help="translate text (stdin/stdout by default)")
    _model_args(p, many=True)
    p.add_argument("-i", "--input", help="input file (default: stdin)")
    p.add_argument("-o", "--output", help="output file (default: stdout)")
    p.add_argument("--beam", type=int, help="beam size (default: the recipe's)")
    p.add_argument(
        "--nbest",
        type=int,
        default=1,
        help="hypotheses per input: 'i ||| text ||| score'",
    )
    p.add_argument("--batch-tokens", type=int, help="default: decode.batch_tokens")
    p.add_argument(
        "--batch-rows", type=int, help="sentences x beam (decode.batch_rows)"
    )
    p.add_argument("--length-penalty", type=float, help="GNMT alpha")
    p.add_argument("--stop", choices=["exact", "early"], help="default: decode.stop")
    p.add_argument(
        "--precision", choices=["fp32", "bf16", "int8"], help="decode.precision"
    )
    p.add_argument(
        "--shortlist", type=int, metavar="K", help="decode.shortlist (0: off)"
    )
    p.add_argument(
        "--stream",
        action=argparse.BooleanOptionalAction,
        help="translate and flush each line as it arrives (default: when stdin is "
        "a terminal)",
    )
    p.add_argument(
        "--alignment",
        action="store_true",
        help="append ' ||| i-j ...' (source-target word pairs; attention models)",
    )
    p.add_argument(
        "--attention-plot",
        metavar="DIR",
        help="write an attention heatmap PNG per sentence (attention models)",
    )
    p.add_argument(
        "--plot-sentences",
        type=int,
        default=10,
        metavar="N",
        help="how many sentences --attention-plot draws, from the first (default 10)",
    )
    p = sub.add_parser("average", help="average the last K numbered checkpoints")
    p.add_argument("model_dir", help="model directory (<workdir>/model)")
    p.add_argument("--last", type=_positive, default=5, help="how many checkpoints (K)")
    p.add_argument(
        "-o", "--output", default="averaged.safetensors", help="file in MODEL_DIR"
    )
    p = sub.add_parser("serve", help="an HTTP translation API and a web page")
    _model_args(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8000, help="port to listen on")
    p.add_argument("--beam", type=int, help="default beam (requests may set it)")
    p.add_argument(
        "--precision", choices=["fp32", "bf16", "int8"], help="decode.precision"
    )
    p.add_argument("--shortlist", type=int, metavar="K", help="decode.shortlist")
    p = sub.add_parser("push", help="upload a model directory to the Hugging Face hub")
    p.add_argument("model_dir", help="model directory (<workdir>/model)")
    p.add_argument("repo_id", help="hub repo, owner/name (made if it does not exist)")
    p.add_argument("--private", action="store_true", help="a new repo is private")
    p.add_argument("--license", default="other", help="the card's license id")
    p.add_argument("--dry-run", metavar="DIR", help="write the upload to DIR instead")
    p = sub.add_parser("evaluate", help="sacreBLEU BLEU and chrF with signatures")
    p.add_argument("--ref", action="append", required=True, help="reference file(s)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--hyp", help="hypothesis file")
    g.add_argument("--model", help="model directory: translate --src first")
    p.add_argument("--src", help="source file (with --model)")
    p.add_argument("--beam", type=int, help="beam size (with --model)")
    p.add_argument("--ter", action="store_true", help="also TER")
    p.add_argument("--sentence", action="store_true", help="per-sentence BLEU and chrF")
    p.add_argument(
        "--compare",
        metavar="HYP_B",
        help="paired bootstrap resampling (sacreBLEU): is HYP_B different?",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p = sub.add_parser("score", help="log P(target | source) per pair (forced)")
    _model_args(p)
    p.add_argument("--src", required=True, help="source file")
    p.add_argument("--tgt", required=True, help="target file")
    return ap


def dispatch(a: argparse.Namespace) -> None:
    if a.command == "serve":
        from nmt.serve import serve

        return serve(a.model_dir, a.host, a.port, checkpoint=a.checkpoint,
                     device=a.device, beam=a.beam, precision=a.precision,
                     shortlist=a.shortlist)  # fmt: skip
    if a.command in ("translate", "evaluate", "score"):
        from nmt import commands

        return getattr(commands, f"cmd_{a.command}")(a)
    if a.command == "push":
        from nmt.hub import push

        return push(a.model_dir, a.repo_id, a.private, a.dry_run, a.license)
    if a.command == "average":
        from nmt.checkpoint import average

        out = average(Path(a.model_dir), a.last, a.output)
        print(f"wrote {out}; translate with --checkpoint {out.name}")
        return None
    from nmt.config import load_config

    cfg = load_config(a.recipe, a.overrides)
    if a.command == "recipe":
        from nmt.schema import describe

        sets = "".join(f" --set {s}" for s in a.overrides or [])
        print(f"# nmt recipe {a.recipe}{sets}: every key, its value and its help")
        print(describe(cfg), end="")
        return None
    if a.command == "lexicon":
        from nmt.data.corpus import prepare
        from nmt.data.lexicon import write_for
        from nmt.workdir import locked

        with locked(cfg.workdir, a.command):
            print(f"wrote {write_for(cfg, prepare(cfg))}")
        return None
    if a.command == "prepare":
        from nmt.data.corpus import prepare

        prepare(cfg)
        return None
    from nmt.workdir import locked, precheck

    precheck(cfg, a.resume)  # before any data is prepared or any file touched
    with locked(cfg.workdir, a.command):
        if a.command == "run":
            from nmt.experiment import run

            run(cfg, resume=a.resume)
        else:
            from nmt.train.distributed import prepare_once, shutdown
            from nmt.train.loop import Trainer

            try:
                Trainer(cfg, prepare_once(cfg), resume=a.resume).train()
            finally:
                shutdown()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        dispatch(args)
    except NmtError as e:
        print(f"nmt: error: {e}", file=sys.stderr)
        return 2
    except StopRequested as e:  # training saved last.pt, then stopped
        print(
            f"nmt: stopped by {e.signal}; saved {e.checkpoint}, continue with --resume",
            file=sys.stderr,
        )
        return 143 if e.signal == "SIGTERM" else 130
    except KeyboardInterrupt:
        print("nmt: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left (`| head`): not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the exit's flush must not fail too
        return 0
    except OSError as e:  # the filesystem or the machine, not a bug: one line
        where = f" ({e.filename})" if e.filename else ""
        print(f"nmt: error: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
