"""`nmt serve`: the HTTP API gives what `nmt translate` gives, under concurrent
load; every bad request is a one-line JSON error and the service goes on; the
batcher puts requests that wait together into one batch; start and stop are one
line each."""

from __future__ import annotations

import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from nmt.serve.batcher import Batcher
from nmt.serve.request import (
    MAX_BODY_BYTES,
    MAX_CHARS,
    MAX_SENTENCES,
    BadRequest,
    parse_translate,
)
from tests.conftest import nmt
from tests.faults import run_cli
from tests.serving import STOPPED, Server

GOLDEN = Path(__file__).parent / "golden"
LINES = (GOLDEN / "input.txt").read_text(encoding="utf-8").split("\n")[:-1]
WAIT_S = 60  # bounded waits in the in-process batcher tests


def translate(model: Path, lines: list[str], beam: int | None) -> dict[str, str]:
    """`nmt translate MODEL [--beam B]` on `lines`: line -> its translation."""
    extra = [] if beam is None else ["--beam", str(beam)]
    r = nmt("translate", model, "--device", "cpu", *extra,
            stdin="".join(f"{x}\n" for x in lines).encode())  # fmt: skip
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    out = r.stdout.decode().split("\n")[:-1]
    assert len(out) == len(lines)
    return dict(zip(lines, out))


BAD = {  # name: (body, status)
    "not json": (b'{"text": ["a"', 400),
    "not utf-8": (b'{"text": ["\xff\xfe"]}', 400),
    "not an object": (b'["a sentence"]', 400),
    "no text": (b"{}", 400),
    "unknown field": (b'{"text": ["a"], "beams": 2}', 400),
    "text a string": (b'{"text": "a sentence"}', 400),
    "text not strings": (b'{"text": ["a", 3]}', 400),
    "lone surrogate": (b'{"text": ["\\ud800"]}', 400),
    "beam a string": (b'{"text": ["a"], "beam": "3"}', 400),
    "beam a float": (b'{"text": ["a"], "beam": 2.0}', 400),
    "beam a boolean": (b'{"text": ["a"], "beam": true}', 400),
    "beam 0": (b'{"text": ["a"], "beam": 0}', 400),
    "beam too wide": (b'{"text": ["a"], "beam": 17}', 400),
    "attention not a flag": (b'{"text": ["a"], "attention": 1}', 400),
    "attention, none here": (b'{"text": ["a"], "attention": true}', 400),
    "too many sentences": (b'{"text": [%s]}' % b",".join([b'"a"'] * 65), 413),
    "sentence too long": (b'{"text": ["%s"]}' % (b"a" * (MAX_CHARS + 1)), 413),
    "body too large": (b'{"text": ["%s"]}' % (b" " * MAX_BODY_BYTES), 413),
}


def test_api_answers_as_translate_does(trained):
    model = trained[0] / "work" / "model"
    expected = {beam: translate(model, LINES, beam) for beam in (1, 3, None)}
    with Server(model) as server:
        assert server.beam == 2  # the recipe's decode.beam (conftest: --set)
        status, health = server.request("/health")
        assert status == 200 and health["status"] == "ok"
        assert health["beam"] == 2 and health["attention"] is False
        assert health["limits"]["max_sentences"] == MAX_SENTENCES

        # 8 clients at once, each its own lines (overlapping), beams 1, 3, default
        start = threading.Barrier(8, timeout=WAIT_S)

        def client(i: int) -> int:
            beam = (1, 3, None)[i % 3]
            mine = LINES[i * 2 : i * 2 + 6]
            body = {"text": mine} if beam is None else {"text": mine, "beam": beam}
            start.wait()
            got = server.post("/translate", body)["translations"]
            assert got == [expected[beam][x] for x in mine], (i, beam)
            for line in mine[:3]:  # and one line at a time
                one = server.post("/translate", {**body, "text": [line]})
                assert one["translations"] == [expected[beam][line]], (i, line)
            return 1 + 3

        with ThreadPoolExecutor(8) as pool:
            requests = sum(pool.map(client, range(8)))
        served = server.request("/health")[1]["served"]
        assert served["requests"] == requests
        assert 1 <= served["batches"] <= served["requests"]
        # (that concurrent requests do share batches is timing; the batcher
        # tests below check it deterministically)

        for name, (body, status) in BAD.items():
            got, answer = server.request("/translate", body)
            assert got == status, (name, got, answer)
            assert list(answer) == ["error"], (name, answer)
            message = answer["error"]
            assert message and "\n" not in message and len(message) < 200, name
        for path, status in (("/nope", 404), ("/translate", 405)):
            got, answer = server.request(path)
            assert got == status and list(answer) == ["error"], (path, answer)

        # still serving, and still right
        assert server.request("/health")[0] == 200
        got = server.post("/translate", {"text": LINES[:4], "beam": 3})
        assert got["translations"] == [expected[3][x] for x in LINES[:4]]
        assert server.post("/translate", {"text": []}) == {"translations": []}
        code, err = server.stop(signal.SIGTERM)
    assert code == 0, err
    assert not any("Traceback" in x for x in err), err
    summary = STOPPED.match(err[-1])
    assert summary, err
    assert int(summary[1]) == requests + 1  # the empty request asks no batch


def test_attention_answer_and_ctrl_c():
    model = GOLDEN / "attention"
    lines = [LINES[4], "", LINES[0]]
    want = translate(model, lines, 2)
    with Server(model) as server:
        assert server.request("/health")[1]["attention"] is True
        got = server.post("/translate", {"text": lines, "beam": 2, "attention": True})
        assert got["translations"] == [want[x] for x in lines]
        assert len(got["attention"]) == len(lines)
        for amap in got["attention"]:
            assert set(amap) == {"source", "target", "weights"}
            rows, src = amap["weights"], amap["source"]
            assert len(rows) == len(amap["target"]) and amap["target"][-1] == "</s>"
            assert all(len(r) == len(src) for r in rows)
            assert all(abs(sum(r) - 1) < 1e-2 for r in rows)  # a distribution
        code, err = server.stop(signal.SIGINT)
    assert code == 0, err
    assert STOPPED.match(err[-1]), err


def test_port_in_use_is_one_line():
    with Server(GOLDEN / "plain") as server:
        port = server.url.rsplit(":", 1)[1]
        r = run_cli("serve", GOLDEN / "plain", "--port", port)
        assert "in use" in r.error
        assert server.request("/health")[0] == 200  # the first one is unharmed


@pytest.mark.parametrize(
    "args, says",
    [
        (["/no/such/model"], "model directory not found"),
        ([str(GOLDEN / "plain"), "--port", "70000"], "--port 70000"),
        ([str(GOLDEN / "plain"), "--beam", "17"], "nmt serve allows (16)"),
    ],
)
def test_bad_start_is_one_line(args, says):
    assert says in run_cli("serve", args[0], "--port", "0", *args[1:]).error


def test_without_the_extra_says_how_to_install(monkeypatch):
    for name in ("nmt.serve.app", "nmt.serve.server"):
        monkeypatch.delitem(sys.modules, name, raising=False)  # imported anew
    for name in ("fastapi", "uvicorn"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails, as if absent
    r = run_cli("serve", GOLDEN / "plain")
    assert (
        r.error
        == 'nmt: error: nmt serve needs the serve extra: pip install "nmt[serve]"'
    )


@pytest.mark.parametrize("name", [x for x in BAD if x != "attention, none here"])
def test_request_rules(name):
    body, status = BAD[name]
    with pytest.raises(BadRequest) as e:
        parse_translate(body, default_beam=2, max_beam=16)
    assert e.value.status == status


def test_request_defaults():
    req = parse_translate(b'{"text": ["a", ""]}', default_beam=2, max_beam=16)
    assert (req.text, req.beam, req.attention) == (["a", ""], 2, False)


class _Gate:
    """A fake model call that waits until released, recording each batch."""

    def __init__(self):
        self.calls: list[tuple] = []
        self.entered, self.release = threading.Event(), threading.Event()

    def __call__(self, key, lines):
        self.calls.append((key, list(lines)))
        self.entered.set()
        assert self.release.wait(WAIT_S)
        if "boom" in lines:
            raise RuntimeError("boom")
        return [f"{key}:{x}" for x in lines]


def test_batcher_puts_waiting_requests_in_one_batch():
    work = _Gate()
    batcher = Batcher(work, wait_s=0.001)
    try:
        first = batcher.submit(1, ["a"])
        assert work.entered.wait(WAIT_S)  # the worker is busy with `first`
        same = [batcher.submit(1, [f"s{i}", f"t{i}"]) for i in range(5)]
        other = batcher.submit(3, ["o"])
        late = batcher.submit(1, ["late"])
        work.release.set()
        assert first.result(WAIT_S) == ["1:a"]
        assert [f.result(WAIT_S) for f in same] == [
            [f"1:s{i}", f"1:t{i}"] for i in range(5)
        ]
        assert other.result(WAIT_S) == ["3:o"] and late.result(WAIT_S) == ["1:late"]
    finally:
        batcher.close(WAIT_S)
    # all that waited with beam 1 went in one batch, beam 3 in its own
    assert [len(lines) for _, lines in work.calls] == [1, 11, 1]
    assert [key for key, _ in work.calls] == [1, 1, 3]
    assert batcher.stats() == {"requests": 8, "sentences": 13, "batches": 3}


def test_batcher_caps_a_batch_and_isolates_a_failure():
    work = _Gate()
    batcher = Batcher(work, wait_s=0.001, max_sentences=4)
    try:
        first = batcher.submit(1, ["a"])
        assert work.entered.wait(WAIT_S)
        good = [batcher.submit(1, ["x", "y"]) for _ in range(3)]
        bad = batcher.submit(1, ["boom"])
        work.release.set()
        first.result(WAIT_S)
        assert [f.result(WAIT_S) for f in good] == [["1:x", "1:y"]] * 3
        with pytest.raises(RuntimeError):
            bad.result(WAIT_S)
    finally:
        batcher.close(WAIT_S)
    sizes = [len(lines) for _, lines in work.calls]
    assert max(sizes) <= 4 and sum(sizes[1:]) > 7  # the failed batch was retried


def test_framework_validation_errors_are_one_line_400s():
    """FastAPI's own checks (typed parameters) answer as ours do, not with 422."""
    from types import SimpleNamespace

    from fastapi.testclient import TestClient

    from nmt.serve.app import make_app

    model = SimpleNamespace(beam=2, max_beam=16, has_attention=False, info=dict)
    app = make_app(model, SimpleNamespace(stats=dict))

    @app.get("/typed")
    async def typed(n: int) -> dict:
        return {"n": n}

    answer = TestClient(app).get("/typed", params={"n": "two"})
    assert answer.status_code == 400
    assert list(answer.json()) == ["error"] and "n" in answer.json()["error"]
