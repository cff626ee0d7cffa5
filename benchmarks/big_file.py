"""Peak memory of `nmt translate` on big inputs: it must stay flat with file size.

    python benchmarks/big_file.py MODEL_DIR [--lines 10000 1000000] [--beam 1]

Writes toy-language files of the given sizes to a temporary folder, translates each
with the `nmt translate` command in a child process, and prints lines, seconds,
sentences/s and the child's peak RSS. The output line count is checked.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nmt.data import toy


def write_input(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    pool = [toy.sentence_pair(rng)[0] for _ in range(5000)]
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(pool[i % len(pool)] + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("--lines", type=int, nargs="+", default=[10000, 1000000])
    ap.add_argument("--beam", type=int, default=1)
    a = ap.parse_args()
    print("| lines | seconds | sent/s | peak RSS (MiB) |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in a.lines:
            src, out = Path(tmp) / f"in{n}.txt", Path(tmp) / f"out{n}.txt"
            write_input(src, n)
            # each size in its own child: ru_maxrss of children is a running max
            code = (
                "import resource, subprocess, sys;"
                "r = subprocess.run(sys.argv[1:]);"
                "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);"
                "sys.exit(r.returncode)"
            )
            cmd = [
                sys.executable,
                "-c",
                code,
                sys.executable,
                "-m",
                "nmt",
                "translate",
                a.model_dir,
                "-i",
                str(src),
                "-o",
                str(out),
                "--beam",
                str(a.beam),
            ]
            start = time.perf_counter()
            res = subprocess.run(cmd, capture_output=True, text=True)
            dt = time.perf_counter() - start
            if res.returncode != 0:
                sys.exit(res.stderr[-2000:])
            rss_mib = int(res.stdout.split()[-1]) / 1024
            with open(out, "rb") as f:
                got = sum(1 for _ in f)
            assert got == n, f"{got} output lines for {n} input lines"
            print(f"| {n:,} | {dt:.0f} | {n / dt:,.0f} | {rss_mib:,.0f} |")


if __name__ == "__main__":
    main()
