"""``wsgi.input`` file semantics and unread bodies over real sockets, in both execution modes.

The bodies arrive in several TCP segments with pauses between them (the client sends each piece
with ``TCP_NODELAY`` and waits a little before the next: the pauses shape the input, nothing
waits on them): ``read(n)`` blocks until ``n`` bytes or the end of the body, ``readline``,
``readlines`` and iteration likewise, never past the body; a body the application leaves unread
is drained (up to :data:`pulsar.apps.wsgi.MAX_DRAIN`) and the next pipelined request served, or
the connection is closed after a response that says so.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import pytest
from wsgi_helpers import ServerThread, connect, parse_responses, read_all

from pulsar.apps.wsgi import MAX_DRAIN

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
PAUSE = 0.05  # between the pieces of a body: each one is a segment of its own


def send_pieces(sock: socket.socket, pieces: Sequence[bytes]) -> None:
    for i, piece in enumerate(pieces):
        if i:
            time.sleep(PAUSE)
        sock.sendall(piece)


def exchange(port: int, pieces: Sequence[bytes]) -> bytes:
    with connect(port) as sock:
        send_pieces(sock, pieces)
        return read_all(sock)


def seed_hello(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """The seed's hello world, word for word: its headers are a tuple of tuples."""
    data = b"Hello World!\n"
    status = "200 OK"
    response_headers = (("Content-type", "text/plain"), ("Content-Length", str(len(data))))
    start_response(status, response_headers)
    return [data]


# -- start_response: any sequence of (str, str) pairs ----------------------------------------


def test_tuple_headers_are_served(thread_workers: int) -> None:
    with ServerThread(seed_hello, thread_workers=thread_workers) as srv:
        response = httpx.get(srv.url + "/")
        assert response.status_code == 200
        assert response.content == b"Hello World!\n"
        assert response.headers["content-type"] == "text/plain"


class HeaderList(Sequence[tuple[str, str]]):
    """A sequence that is neither a list nor a tuple."""

    def __init__(self, *items: tuple[str, str]) -> None:
        self._items = items

    def __getitem__(self, index: Any) -> Any:
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)


@pytest.mark.parametrize(
    "headers",
    [
        (("Content-Length", "2"),),
        [("Content-Length", "2")],
        HeaderList(("Content-Length", "2"), ("X-A", "b")),
        (["Content-Length", "2"],),  # a pair as a list
    ],
    ids=["tuple", "list", "sequence", "list-pair"],
)
def test_any_sequence_of_pairs(headers: Any, thread_workers: int) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", headers)
        return [b"ok"]

    with ServerThread(app, thread_workers=thread_workers) as srv:
        for _ in range(2):  # the second answer comes from the response-head cache
            response = httpx.get(srv.url + "/")
            assert response.status_code == 200 and response.content == b"ok"


@pytest.mark.parametrize(
    "headers",
    [
        (("X-A", 1),),
        ((b"X-A", "b"),),
        (("X-A", "b\r\nX-Injected: 1"),),
        (("X-A\r\nX-B", "b"),),
        (("X-A", "b\nc"),),
        (("X-A", "b\rc"),),
        (("X A", "b"),),
        (("", "b"),),
        (("X-A", "b", "c"),),
        "X-A: b",
        {"X-A": "b"},
        None,
    ],
    ids=[
        "int-value",
        "bytes-name",
        "crlf-value",
        "crlf-name",
        "lf-value",
        "cr-value",
        "space-name",
        "empty-name",
        "triple",
        "str",
        "dict",
        "none",
    ],
)
def test_bad_headers_are_500_and_logged(
    headers: Any, thread_workers: int, caplog: pytest.LogCaptureFixture
) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", headers)
        return [b"ok"]

    with (
        caplog.at_level(logging.ERROR, logger="pulsar.wsgi.error"),
        ServerThread(app, thread_workers=thread_workers) as srv,
    ):
        response = httpx.get(srv.url + "/")
        assert response.status_code == 500
        assert b"Injected" not in response.content and "x-injected" not in response.headers
        srv.state.app = seed_hello
        assert httpx.get(srv.url + "/").status_code == 200
    assert any(r.name == "pulsar.wsgi.error" for r in caplog.records)


# -- read(n), readline(limit), readlines(hint), iteration --------------------------------------


def recorder(ops: Callable[[Any], list[Any]], results: list[Any]) -> Callable[..., Any]:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        results.append(ops(environ["wsgi.input"]))
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    return app


def test_read_n_waits_for_n_bytes(thread_workers: int) -> None:
    """``Content-Length: 10`` sent as 5 + 5 bytes: ``read(10)`` returns all ten."""
    results: list[Any] = []
    app = recorder(lambda f: [f.read(10), f.read(10), f.read()], results)
    with ServerThread(app, thread_workers=thread_workers) as srv:
        head = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\nConnection: close\r\n\r\n"
        out = exchange(srv.port, [head + b"hello", b"world"])
    assert parse_responses(out)[0].status == 200
    assert results == [[b"helloworld", b"", b""]]


def test_read_in_pieces_across_segments(thread_workers: int) -> None:
    results: list[Any] = []
    app = recorder(lambda f: [f.read(3), f.read(4), f.read(100), f.read(1)], results)
    with ServerThread(app, thread_workers=thread_workers) as srv:
        head = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\nConnection: close\r\n\r\n"
        exchange(srv.port, [head + b"a", b"bc", b"def", b"ghi"])
    assert results == [[b"abc", b"defg", b"hi", b""]]


def test_megabyte_post_read_at_once(thread_workers: int) -> None:
    """A 1,000,000-byte POST read with one ``read(CONTENT_LENGTH)`` (what Django and Flask do)."""
    body = (bytes(range(256)) * 3907)[:1_000_000]
    assert len(body) == 1_000_000

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        data = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
        digest = f"{len(data)} {hashlib.sha256(data).hexdigest()}".encode()
        start_response("200 OK", [("Content-Length", str(len(digest)))])
        return [digest]

    expected = f"1000000 {hashlib.sha256(body).hexdigest()}".encode()
    with ServerThread(app, thread_workers=thread_workers) as srv:
        assert httpx.post(srv.url + "/", content=body, timeout=20).content == expected
        head = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\nConnection: close\r\n\r\n"
        pieces = [head] + [body[i : i + 100_000] for i in range(0, len(body), 100_000)]
        assert parse_responses(exchange(srv.port, pieces))[0].body == expected


def test_chunked_body_read_n_across_chunks(thread_workers: int) -> None:
    results: list[Any] = []
    app = recorder(lambda f: [f.read(7), f.read()], results)
    with ServerThread(app, thread_workers=thread_workers) as srv:
        head = (
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        exchange(srv.port, [head + b"3\r\nabc\r\n", b"2\r\nde\r\n", b"4\r\nfghi\r\n0\r\n\r\n"])
    assert results == [[b"abcdefg", b"hi"]]


def test_lines_across_segments(thread_workers: int) -> None:
    results: list[Any] = []

    def ops(f: Any) -> list[Any]:
        return [f.readline(), f.readline(1), f.readline(100), f.readlines(2), list(f), f.read()]

    app = recorder(ops, results)
    body_pieces = [b"a", b"b\nc", b"d\nefg", b"h\nij\n", b"kl\nmn"]
    size = sum(map(len, body_pieces))
    with ServerThread(app, thread_workers=thread_workers) as srv:
        head = (
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % size
        )
        exchange(srv.port, [head + body_pieces[0], *body_pieces[1:]])
    assert results == [[b"ab\n", b"c", b"d\n", [b"efgh\n"], [b"ij\n", b"kl\n", b"mn"], b""]]


def test_readline_limit_and_readlines_hint(thread_workers: int) -> None:
    results: list[Any] = []

    def ops(f: Any) -> list[Any]:
        return [f.readline(4), f.readline(-1), f.readlines(5), f.readline(None), f.readlines()]

    app = recorder(ops, results)
    body = b"abcdefgh\n12\n34\n56\n78\n"
    with ServerThread(app, thread_workers=thread_workers) as srv:
        head = (
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
            % len(body)
        )
        exchange(srv.port, [head + body[:2], body[2:10], body[10:]])
    assert results == [[b"abcd", b"efgh\n", [b"12\n", b"34\n"], b"56\n", [b"78\n"]]]


def test_read_n_bounded_by_body_timeout() -> None:
    """Thread pool: a ``read(10)`` of a body that stops after 5 bytes fails with 408 once
    ``body_timeout`` passes; the server serves the next client."""
    errors: list[BaseException] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        try:
            environ["wsgi.input"].read(10)
        except Exception as exc:
            errors.append(exc)
            raise
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    with ServerThread(app, thread_workers=2, body_timeout=0.3) as srv:
        with connect(srv.port) as sock:
            start = time.monotonic()
            sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhello")
            out = read_all(sock)
            assert time.monotonic() - start < 5
        assert parse_responses(out)[0].status == 408
        assert errors and getattr(errors[0], "status", None) == 408
        srv.state.app = seed_hello
        assert httpx.get(srv.url + "/").status_code == 200


# -- bodies left unread: drained, the next pipelined request served ---------------------------


def paths_app(paths: list[str], read: Callable[[Any], Any]) -> Callable[..., Any]:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        paths.append(environ["PATH_INFO"])
        read(environ["wsgi.input"])
        data = environ["PATH_INFO"].encode()
        start_response("200 OK", [("Content-Length", str(len(data)))])
        return [data]

    return app


#: a body made of requests: if any were parsed as one, the app would see /evil
EVIL = b"GET /evil HTTP/1.1\r\nHost: t\r\n\r\n"


@pytest.mark.parametrize(
    "read",
    [lambda f: None, lambda f: f.read(3), lambda f: f.readline()],
    ids=["unread", "short-read", "one-line"],
)
def test_unread_body_then_pipelined_request(
    read: Callable[[Any], Any], thread_workers: int
) -> None:
    paths: list[str] = []
    body = EVIL * 3
    with ServerThread(paths_app(paths, read), thread_workers=thread_workers) as srv:
        head = b"POST /first HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body)
        nxt = b"GET /next HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        out = exchange(srv.port, [head + body[:5], body[5:40], body[40:] + nxt])
    responses = parse_responses(out)
    assert [r.body for r in responses] == [b"/first", b"/next"]
    assert paths == ["/first", "/next"]


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_unread_body_drained_in_one_write(chunked: bool, thread_workers: int) -> None:
    """Everything (head, unread body, next request) in one send."""
    paths: list[str] = []
    body = EVIL * 100
    with ServerThread(paths_app(paths, lambda f: f.read(1)), thread_workers=thread_workers) as srv:
        if chunked:
            framed = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
            head = b"POST /first HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        else:
            framed = body
            head = b"POST /first HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body)
        nxt = b"GET /next HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        out = exchange(srv.port, [head + framed + nxt])
    assert [r.body for r in parse_responses(out)] == [b"/first", b"/next"]
    assert paths == ["/first", "/next"]


def test_unread_chunked_body_beyond_the_drain_limit_closes() -> None:
    """A chunked body has no announced size: it is drained up to ``MAX_DRAIN`` bytes, then the
    connection closes; none of its bytes is parsed as a request."""
    paths: list[str] = []
    app = paths_app(paths, lambda f: f.read(10))
    piece = EVIL * 1000
    with ServerThread(app, thread_workers=2, max_body_size=MAX_DRAIN * 8) as srv:
        with connect(srv.port) as sock:
            sock.sendall(b"POST /big HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
            try:
                for _ in range(MAX_DRAIN * 4 // len(piece)):
                    sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                sock.sendall(b"0\r\n\r\n" + EVIL)
            except OSError:
                pass  # the server closed while the client was still sending
            out = read_all(sock)
        assert [r.body for r in parse_responses(out)] == [b"/big"]
        assert paths == ["/big"]
        srv.state.app = seed_hello
        assert httpx.get(srv.url + "/").status_code == 200


def test_unread_body_beyond_the_drain_limit_closes(thread_workers: int) -> None:
    """A body left unread with more than ``MAX_DRAIN`` bytes still to come is not drained: the
    response says ``Connection: close`` and the connection closes (the client knows not to
    expect an answer to what it pipelined); its bytes are never parsed as requests."""
    paths: list[str] = []
    size = MAX_DRAIN * 3
    app = paths_app(paths, lambda f: f.read(10))
    with ServerThread(app, thread_workers=thread_workers, max_body_size=size * 2) as srv:
        with connect(srv.port) as sock:
            sock.sendall(b"POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % size)
            piece = EVIL * 1000
            body = (piece * (size // len(piece) + 1))[:size]
            try:
                if thread_workers:
                    sock.sendall(body)
                else:  # inline: the app runs once the body is complete: stop before
                    sock.sendall(body[: 64 * 1024])
                    sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the server closed while the client was still sending
            out = read_all(sock)
        responses = parse_responses(out)
        if thread_workers:
            assert [r.body for r in responses] == [b"/big"]
            assert responses[0].header("connection") == "close"
        assert "/evil" not in paths
        srv.state.app = seed_hello
        assert httpx.get(srv.url + "/").status_code == 200


def test_flask_get_data_multi_segment() -> None:
    """Flask's ``request.get_data()`` (one ``read(CONTENT_LENGTH)`` underneath) in the default
    mode (thread pool), of a body that arrives in several segments."""
    flask = pytest.importorskip("flask")
    app = flask.Flask("t")

    @app.post("/upload")
    def upload() -> Any:
        data = flask.request.get_data()
        return {"size": len(data), "sha": hashlib.sha256(data).hexdigest()}

    @app.post("/form")
    def form() -> Any:
        return {"fields": dict(flask.request.form)}

    body = b"x" * 50_000 + b"y" * 50_000
    with ServerThread(app) as srv:  # the default thread pool
        head = (
            b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
            % len(body)
        )
        out = exchange(srv.port, [head, body[:10], body[10:30_000], body[30_000:]])
        response = parse_responses(out)[0]
        assert response.status == 200
        assert httpx.Response(200, content=response.body).json() == {
            "size": 100_000,
            "sha": hashlib.sha256(body).hexdigest(),
        }
        form_body = b"a=1&b=" + b"2" * 1000
        head = (
            b"POST /form HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(form_body)
        )
        out = exchange(srv.port, [head + form_body[:3], form_body[3:500], form_body[500:]])
        assert httpx.Response(200, content=parse_responses(out)[0].body).json() == {
            "fields": {"a": "1", "b": "2" * 1000}
        }


def test_answer_kept_when_read_after_the_close() -> None:
    """The client sends a body the application does not read (beyond ``MAX_DRAIN``) and reads
    the answer only once the server has closed the connection: the answer is there. (The
    server lingers, reading and dropping the rest, so that it never closes with unread bytes,
    which would reset the connection and drop what it had not sent yet; on loopback a small
    response is out before that, so this test passes with a plain close as well.)"""
    import threading

    paths: list[str] = []
    size = MAX_DRAIN * 3
    app = paths_app(paths, lambda f: f.read(10))
    with ServerThread(app, thread_workers=2, max_body_size=size * 2) as srv:
        with connect(srv.port, timeout=15) as sock:
            head = b"POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % size
            sender = threading.Thread(target=sock.sendall, args=(head + b"z" * size,))
            sender.start()
            sender.join(15)
            srv.wait_connections(0, timeout=15)  # the server closed its side
            out = read_all(sock)
        responses = parse_responses(out)
        assert [r.body for r in responses] == [b"/big"]
        assert responses[0].header("connection") == "close"
