"""Responses by status code and the latency histogram (``_metrics``): the arithmetic, then a
real server on 127.0.0.1 in both serving modes (inline and thread pool)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from wsgi_helpers import ServerThread, raw

from pulsar.apps.wsgi._metrics import LATENCY_BUCKETS, ResponseStats


def test_buckets_are_prometheus_upper_bounds() -> None:
    stats = ResponseStats()
    stats.record(200, 0.0005)  # on a bound: in that bucket (le is inclusive)
    stats.record(200, 0.00051)
    stats.record(404, -1.0)  # the clock stepped back: 0
    stats.record(500, 11.0)  # above the last bound: +Inf only
    snap = stats.snapshot()
    assert snap["statuses"] == {200: 2, 404: 1, 500: 1}
    latency = snap["latency"]
    assert latency["le"] == list(LATENCY_BUCKETS)
    assert latency["le"] == sorted(latency["le"]) and latency["le"][-1] == 10.0
    assert latency["buckets"][:2] == [2, 3]
    assert latency["buckets"][-1] == 3 and latency["count"] == 4
    assert latency["sum"] == 0.0005 + 0.00051 + 11.0
    assert all(a <= b for a, b in zip(latency["buckets"], latency["buckets"][1:], strict=False))


def test_empty_snapshot() -> None:
    snap = ResponseStats().snapshot()
    assert snap["statuses"] == {}
    assert snap["latency"]["count"] == 0 and snap["latency"]["sum"] == 0.0
    assert snap["latency"]["buckets"] == [0] * len(LATENCY_BUCKETS)


def wait_for(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.02)
    return value


def routes(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    path = environ["PATH_INFO"]
    if path == "/missing":
        start_response("404 Not Found", [("Content-Length", "0")])
        return [b""]
    if path == "/fail":
        raise RuntimeError("the application failed")  # the server answers 500
    if path == "/slow":
        time.sleep(0.06)
    if path == "/stream":

        def stream() -> Iterator[bytes]:
            time.sleep(0.03)  # before the first byte: counted
            yield b"first "
            time.sleep(0.5)  # after it: not (the client's reading speed, for a stream)
            yield b"last"

        start_response("200 OK", [("Content-Type", "text/plain")])
        return stream()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
    return [b"ok\n"]


def test_statuses_and_latency_in_statistics(thread_workers: int) -> None:
    with ServerThread(routes, thread_workers=thread_workers) as srv:
        with httpx.Client(base_url=srv.url) as client:
            for _ in range(7):
                assert client.get("/").status_code == 200
            for _ in range(3):
                assert client.get("/missing").status_code == 404
            for _ in range(2):
                assert client.get("/fail").status_code == 500
            assert client.get("/slow").status_code == 200
            stream = client.get("/stream")
            assert stream.status_code == 200 and stream.text == "first last"
        # a request the server cannot parse: its own 400 is counted too
        assert raw(srv.port, b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n").startswith(b"HTTP/1.1 400")

        def counted() -> dict[str, Any] | None:
            stats = srv.call(srv.state.statistics)
            return stats if stats["latency"]["count"] == 15 else None

        stats = wait_for(counted)
        assert stats["statuses"] == {200: 9, 400: 1, 404: 3, 500: 2}
        latency = stats["latency"]
        le = dict(zip(latency["le"], latency["buckets"], strict=True))
        # the slow one took more than 50 ms, the stream's first byte more than 25 ms; the
        # stream's 500 ms after its first byte are not counted
        assert le[0.025] <= 13 and le[0.05] <= 14 and le[0.25] == 15
        assert 0.09 <= latency["sum"] < 0.5
        assert sum(stats["statuses"].values()) == latency["count"]
