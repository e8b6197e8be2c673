"""The access log: the compiled format gives gunicorn's lines, lines are written per loop
iteration (one write per handler for a burst of pipelined requests), other logging set-ups get
one record per line, and nothing is lost at shutdown."""

from __future__ import annotations

import base64
import io
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from wsgi_helpers import ServerThread, hello, parse_responses, raw

from pulsar.apps.wsgi import AccessLogger

ENVIRON = {
    "REMOTE_ADDR": "10.1.2.3",
    "REQUEST_METHOD": "POST",
    "RAW_URI": "/p?q=1",
    "PATH_INFO": "/p",
    "SCRIPT_NAME": "/app",
    "QUERY_STRING": "q=1",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "HTTP_USER_AGENT": "ua/1",
    "HTTP_REFERER": "http://ref/",
    "HTTP_X_FOO": "foo",
    "CONTENT_TYPE": "text/plain",
    "HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"alice:pw").decode(),
}
HEADERS = [("Content-Type", "text/html"), ("X-Out", "out")]


@pytest.mark.parametrize(
    "fmt",
    [
        '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"',  # gunicorn's default
        "%(m)s %(U)s %(q)s %(H)s %(B)s %(p)s",
        "%({X-Foo}i)s %({Content-Type}i)s %({x-out}o)s %({REMOTE_ADDR}e)s %({nope}i)s",
        "100%% {literal} 'quoted' %(s)s",
        "%(T)s %(M)s %(D)s %(L)s",
        "%(h)s %(unknown)s",
    ],
    ids=["default", "request", "headers", "literals", "durations", "unknown-field"],
)
def test_compiled_format_matches_the_generic_one(fmt: str) -> None:
    logger = AccessLogger(True, fmt)
    generic = AccessLogger(True, fmt)
    generic._compiled = None  # the lazy-mapping path
    for size in (0, 1234):
        args = (ENVIRON, "201 Created", HEADERS, size, 1.5)
        for _ in range(3):  # %(t)s: the two calls may fall on each side of a second
            compiled, lazy = logger.format(*args), generic.format(*args)
            if compiled == lazy:
                break
        assert compiled == lazy
    assert "alice" in AccessLogger(True, "%(u)s").format(ENVIRON, "200 OK", [], 0, 0.0)


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, s: str) -> int:
        self.writes += 1
        return super().write(s)


@pytest.fixture
def access_handler() -> Iterator[tuple[logging.Logger, logging.StreamHandler[Any], CountingStream]]:
    """A logger of the test's own (pytest adds its capture handlers to the loggers it sees)
    with one stream handler; :func:`serve` gives it to the server's access log."""
    logger = logging.getLogger("test.pulsar.wsgi.access")
    stream = CountingStream()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("[%(name)s %(levelname)s] %(message)s <end>"))
    saved = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield logger, handler, stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def wait_lines(stream: io.StringIO, n: int) -> None:
    wait_for(lambda: len(stream.getvalue().splitlines()) >= n)


def serve(logger: logging.Logger, thread_workers: int, access_log: bool = True) -> ServerThread:
    """A server whose access log goes to ``logger``."""
    server = ServerThread(hello, thread_workers=thread_workers, access_log=access_log)
    state = server.state
    state.access = AccessLogger(access_log, state.access.fmt, logger=logger)
    return server


PIPELINED = (
    b"".join(b"GET /r%d HTTP/1.1\r\nHost: t\r\n\r\n" % i for i in range(30))
    + b"GET /last HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
)


def test_lines_are_batched(
    access_handler: tuple[logging.Logger, logging.StreamHandler[Any], CountingStream],
) -> None:
    logger, handler, stream = access_handler
    logger.handlers = [handler]  # without pytest's capture handlers (they take the slow path)
    with serve(logger, 0) as srv:
        assert len(parse_responses(raw(srv.port, PIPELINED))) == 31
        wait_lines(stream, 31)  # written within FLUSH_DELAY
    lines = stream.getvalue().splitlines()
    assert len(lines) == 31
    assert lines[0].startswith("[test.pulsar.wsgi.access INFO] 127.0.0.1 - - [")
    assert all(line.endswith(" <end>") for line in lines)
    assert '"GET /r7 HTTP/1.1" 200 13 "-" "-"' in lines[7]
    assert stream.writes < 10  # one write per batch, not one per line


def test_filters_get_one_record_per_line(
    access_handler: tuple[logging.Logger, logging.StreamHandler[Any], CountingStream],
) -> None:
    logger, handler, stream = access_handler
    seen: list[str] = []

    def keep(record: logging.LogRecord) -> bool:
        seen.append(record.getMessage())
        return "/r3 " not in record.getMessage()

    handler.addFilter(keep)
    with serve(logger, 4) as srv:
        assert len(parse_responses(raw(srv.port, PIPELINED))) == 31
        wait_for(lambda: len(seen) == 31)
    assert len(seen) == 31  # one record per line
    lines = stream.getvalue().splitlines()
    assert len(lines) == 30 and not any("/r3 " in line for line in lines)


def test_pending_lines_written_at_shutdown(
    access_handler: tuple[logging.Logger, logging.StreamHandler[Any], CountingStream],
) -> None:
    logger, _, stream = access_handler
    with serve(logger, 0) as srv:
        # a line logged with a loop waits for its iteration; close() writes it
        access = srv.state.access
        srv.call(
            lambda: access.log(ENVIRON, "200 OK", [], 5, 0.0, srv.loop)  # type: ignore[arg-type]
        )
    assert '"POST /p?q=1 HTTP/1.1" 200 5' in stream.getvalue()
    assert access.pending == 0


def test_access_log_off_writes_nothing(
    access_handler: tuple[logging.Logger, logging.StreamHandler[Any], CountingStream],
) -> None:
    logger, _, stream = access_handler
    with serve(logger, 0, access_log=False) as srv:
        assert len(parse_responses(raw(srv.port, PIPELINED))) == 31
    assert stream.getvalue() == "" and stream.writes == 0


def test_max_pending_flushes_at_once(
    access_handler: tuple[logging.Logger, logging.StreamHandler[Any], CountingStream],
) -> None:
    """A burst of MAX_PENDING lines is written without waiting for FLUSH_DELAY."""
    import asyncio

    from pulsar.apps.wsgi._accesslog import MAX_PENDING

    logger, handler, stream = access_handler
    logger.handlers = [handler]
    access = AccessLogger(True, "%(r)s %(s)s", logger=logger)
    loop = asyncio.new_event_loop()
    try:
        for _ in range(MAX_PENDING - 1):
            access.log(ENVIRON, "200 OK", [], 1, 0.0, loop)
        assert access.pending == MAX_PENDING - 1 and stream.getvalue() == ""
        access.log(ENVIRON, "200 OK", [], 1, 0.0, loop)
        assert access.pending == 0
        assert stream.getvalue().count("POST /p?q=1 HTTP/1.1 200 <end>\n") == MAX_PENDING
        assert stream.writes == 1
    finally:
        loop.close()
