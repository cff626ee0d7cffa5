"""`nmt serve` under load: sentences/s and request latency, next to `nmt translate`.

    python benchmarks/serve_load.py MODEL_DIR SOURCE.txt [--beam B] [--threads N]
        [--clients 1 8 32] [--lines 1 4] [--rounds 1]

Starts `nmt serve MODEL_DIR` on a free loopback port, then for each number of
concurrent clients and each request size (lines per request) sends the lines of
SOURCE (`--rounds` times over) and measures sentences/s and the p50/p95 latency
of a request, and how many sentences a batch held on average (dynamic batching).
`nmt translate` is the same lines translated in one call of the library, in this
process, with the same threads. Prints a markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from nmt.serve.request import MAX_CHARS  # longer lines are refused

ROOT = Path(__file__).resolve().parents[1]
START_S = 300


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return "unknown CPU"
    names = re.findall(r"^Model name:\s*(.+)$", out, re.M)
    return names[0].strip() if names else "unknown CPU"


class Service:
    """`nmt serve` in a subprocess; `host`, `port` once started."""

    def __init__(self, model_dir: str, beam: int | None, threads: int):
        args = [sys.executable, "-m", "nmt", "serve", model_dir]
        args += ["--port", "0", "--device", "cpu"]
        args += ["--beam", str(beam)] if beam else []
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
        self.proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env=env)
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(
            target=lambda: [lines.put(x) for x in self.proc.stderr], daemon=True
        ).start()
        try:
            first = lines.get(timeout=START_S)
        except queue.Empty:
            first = ""
        match = re.search(r"at http://([^\s:]+):(\d+) ", first)
        if not match:
            self.stop()
            sys.exit(f"nmt serve did not start: {first.strip()}")
        self.host, self.port = match[1], int(match[2])

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def call(self, conn: http.client.HTTPConnection, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        conn.request(
            method, path, body=data, headers={"Content-Type": "application/json"}
        )
        answer = conn.getresponse()
        payload = json.loads(answer.read())
        if answer.status != 200:
            raise RuntimeError(f"{path}: {answer.status} {payload}")
        return payload

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=600)


def load(service: Service, requests: list[list[str]], clients: int, beam) -> dict:
    """Send `requests` from `clients` threads at once; throughput and latencies."""
    todo: queue.Queue[list[str]] = queue.Queue()
    for r in requests:
        todo.put(r)
    latencies: list[float] = []
    errors: list[str] = []

    def client() -> None:
        conn = service.connect()
        while True:
            try:
                lines = todo.get_nowait()
            except queue.Empty:
                break
            body = {"text": lines} | ({"beam": beam} if beam else {})
            start = time.perf_counter()
            try:
                service.call(conn, "POST", "/translate", body)
            except Exception as e:  # noqa: BLE001 (reported, not hidden)
                errors.append(repr(e))
                break
            latencies.append(time.perf_counter() - start)
        conn.close()

    conn = service.connect()
    before = service.call(conn, "GET", "/health")["served"]
    conn.close()  # the server closes idle connections (keep-alive timeout)
    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    conn = service.connect()
    after = service.call(conn, "GET", "/health")["served"]
    conn.close()
    if errors:
        sys.exit(f"requests failed: {errors[0]}")
    latencies.sort()
    batches = max(1, after["batches"] - before["batches"])
    return {
        "sent_per_s": sum(len(r) for r in requests) / wall,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p95_ms": 1000 * latencies[min(len(latencies) - 1, len(latencies) * 95 // 100)],
        "per_batch": (after["sentences"] - before["sentences"]) / batches,
    }


def translate_speed(model_dir: str, lines: list[str], beam, threads: int) -> float:
    import torch

    from nmt.decode.translator import Translator

    torch.set_num_threads(threads)
    tr = Translator.load(model_dir, beam=beam, device="cpu")
    tr.translate(lines[:8])  # warm-up
    start = time.perf_counter()
    tr.translate(lines)
    return len(lines) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("source", help="source sentences, one a line")
    ap.add_argument("--beam", type=int, help="default: the model's decode.beam")
    ap.add_argument("--threads", type=int, default=1, help="torch threads, both")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument(
        "--lines", type=int, nargs="+", default=[1, 4], help="lines per request"
    )
    ap.add_argument("--rounds", type=int, default=1, help="times over SOURCE")
    a = ap.parse_args()
    text = Path(a.source).read_text(encoding="utf-8").splitlines()
    lines = [x for x in text if x.strip() and len(x) <= MAX_CHARS] * a.rounds
    if not lines:
        sys.exit(f"{a.source}: no lines to translate")
    service = Service(a.model_dir, a.beam, a.threads)
    try:
        conn = service.connect()
        health = service.call(conn, "GET", "/health")
        service.call(conn, "POST", "/translate", {"text": lines[:4]})  # warm-up
        conn.close()
        rows = []
        for size in a.lines:
            requests = [lines[i : i + size] for i in range(0, len(lines), size)]
            for clients in a.clients:
                rows.append((clients, size, load(service, requests, clients, a.beam)))
    finally:
        service.stop()
    offline = translate_speed(a.model_dir, lines, a.beam, a.threads)
    beam = a.beam or health["beam"]
    print(
        f"nmt serve {health['model']} ({a.model_dir}), beam {beam}, "
        f"{len(lines)} sentences, {a.threads} thread(s), {cpu_name()}\n"
    )
    print(
        "| clients | lines/request | sentences/s | p50 ms | p95 ms | sentences/batch |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for clients, size, r in rows:
        print(
            f"| {clients} | {size} | {r['sent_per_s']:.1f} | {r['p50_ms']:.1f} | "
            f"{r['p95_ms']:.1f} | {r['per_batch']:.1f} |"
        )
    print(f"| nmt translate | all | {offline:.1f} | | | |")


if __name__ == "__main__":
    main()
