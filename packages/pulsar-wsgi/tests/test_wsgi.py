"""PEP 3333 semantics over real sockets: environ (checked by wsgiref.validate), wsgi.input,
wsgi.file_wrapper, start_response rules, close(), proxy headers — in both execution modes."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.validate import validator

import httpx
import pytest
from wsgi_helpers import ServerThread, connect, parse_responses, raw, read_all

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


def capture(environs: list[Environ], body: bytes = b"ok") -> Callable[..., Any]:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        environs.append(dict(environ))
        start_response(
            "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
        )
        return [body]

    return app


@pytest.mark.filterwarnings("error::wsgiref.validate.WSGIWarning")
def test_validator(thread_workers: int) -> None:
    errors: list[BaseException] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        stream = environ["wsgi.input"]
        first = stream.readline()
        rest = b"".join(stream.readlines())
        environ["wsgi.errors"].write("a line for the error log\n")
        environ["wsgi.errors"].flush()
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield first
        yield rest

    validated = validator(app)

    def guarded(environ: Environ, start_response: StartResponse) -> Any:
        try:
            return validated(environ, start_response)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
            raise

    with ServerThread(guarded, thread_workers=thread_workers) as srv, httpx.Client() as client:
        assert client.get(srv.url + "/a?b=c").content == b""
        response = client.post(srv.url + "/p", content=b"one\ntwo\nthree")
        assert response.content == b"one\ntwo\nthree"
        response = client.post(srv.url + "/chunked", content=iter([b"x\n", b"y"]))
        assert response.content == b"x\ny"
    assert errors == []


def test_environ(thread_workers: int) -> None:
    environs: list[Environ] = []
    with ServerThread(capture(environs), thread_workers=thread_workers, root_path="/api") as srv:
        raw(
            srv.port,
            b"POST /api/caf%C3%A9%20x?q=1&r=%20 HTTP/1.1\r\nHost: example.com:8080\r\n"
            b"Content-Type: text/plain\r\nContent-Length: 2\r\nX-Multi: a\r\nX-Multi: b\r\n"
            b"Cookie: a=1\r\nCookie: b=2\r\nX_Spoof: 1\r\nConnection: close\r\n\r\nhi",
        )
    env = environs[0]
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == "/api"
    assert env["PATH_INFO"] == "/caf\xc3\xa9 x"  # bytes as latin-1 (PEP 3333)
    assert env["QUERY_STRING"] == "q=1&r=%20"
    assert env["RAW_URI"] == "/api/caf%C3%A9%20x?q=1&r=%20"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["CONTENT_LENGTH"] == "2"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert env["HTTP_HOST"] == "example.com:8080"
    assert env["HTTP_X_MULTI"] == "a,b"
    assert env["HTTP_COOKIE"] == "a=1; b=2"
    assert "HTTP_X_SPOOF" not in env  # underscores would collide with dashes: dropped
    assert env["SERVER_NAME"] == "127.0.0.1"
    assert env["SERVER_PORT"] == str(srv.port)
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.version"] == (1, 0)
    assert env["wsgi.multithread"] is bool(thread_workers)
    assert env["wsgi.multiprocess"] is False
    assert env["wsgi.run_once"] is False
    assert env["wsgi.input_terminated"] is True
    assert env["SERVER_SOFTWARE"].startswith("pulsar-wsgi/")


def test_chunked_request_has_no_content_length(thread_workers: int) -> None:
    environs: list[Environ] = []
    with ServerThread(capture(environs), thread_workers=thread_workers) as srv:
        raw(
            srv.port,
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            b"3\r\nabc\r\n0\r\n\r\n",
        )
    assert "CONTENT_LENGTH" not in environs[0]


@pytest.mark.parametrize(
    ("allow", "headers", "addr", "scheme"),
    [
        (
            "127.0.0.1",
            b"X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\n",
            "1.2.3.4",
            "https",
        ),
        ("127.0.0.1", b"X-Forwarded-For: 6.6.6.6, 1.2.3.4\r\n", "1.2.3.4", "http"),
        ("127.0.0.1,1.2.3.0/24", b"X-Forwarded-For: 6.6.6.6, 1.2.3.4\r\n", "6.6.6.6", "http"),
        ("*", b'Forwarded: for="[2001:db8::1]:4711";proto=https\r\n', "2001:db8::1", "https"),
        ("127.0.0.1", b"Forwarded: for=9.9.9.9\r\nX-Forwarded-For: 1.1.1.1\r\n", "9.9.9.9", "http"),
        (
            "10.0.0.0/8",
            b"X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\n",
            "127.0.0.1",
            "http",
        ),
        ("", b"X-Forwarded-For: 1.2.3.4\r\n", "127.0.0.1", "http"),
    ],
)
def test_proxy_headers(allow: str, headers: bytes, addr: str, scheme: str) -> None:
    environs: list[Environ] = []
    with ServerThread(capture(environs), thread_workers=0, forwarded_allow_ips=allow) as srv:
        raw(srv.port, b"GET / HTTP/1.1\r\nHost: t\r\n" + headers + b"Connection: close\r\n\r\n")
    assert environs[0]["REMOTE_ADDR"] == addr
    assert environs[0]["wsgi.url_scheme"] == scheme


# -- wsgi.input -------------------------------------------------------------------------------


def test_input_api(thread_workers: int) -> None:
    results: list[Any] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        stream = environ["wsgi.input"]
        results.append(stream.read(0))
        results.append(stream.read(3))
        results.append(stream.readline())
        results.append(stream.readline(2))
        results.append(stream.readlines(1))
        results.append(list(stream))
        results.append(stream.read())
        results.append(stream.read(10))
        start_response("200 OK", [("Content-Length", "0")])
        return []

    body = b"abcdef\ngh\nij\nkl\nmn"
    with ServerThread(app, thread_workers=thread_workers) as srv:
        raw(
            srv.port,
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (len(body), body),
        )
    assert results == [b"", b"abc", b"def\n", b"gh", [b"\n"], [b"ij\n", b"kl\n", b"mn"], b"", b""]


def test_input_never_reads_past_the_body(thread_workers: int) -> None:
    bodies: list[bytes] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        bodies.append(environ["wsgi.input"].read(1 << 20))
        start_response("200 OK", [("Content-Length", "0")])
        return []

    with ServerThread(app, thread_workers=thread_workers) as srv:
        out = raw(
            srv.port,
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nConnection: close\r\n\r\nde",
        )
    assert [r.status for r in parse_responses(out)] == [200, 200]
    assert bodies == [b"abc", b"de"]


def test_input_streams_to_a_thread() -> None:
    """In the thread pool the app reads the body while it arrives."""
    first_line = threading.Event()

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        stream = environ["wsgi.input"]
        line = stream.readline()
        first_line.set()
        rest = stream.read()
        start_response("200 OK", [("Content-Length", str(len(line + rest)))])
        return [line, rest]

    with ServerThread(app, thread_workers=2) as srv, connect(srv.port) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 12\r\nConnection: close\r\n\r\nline1\n"
        )
        assert first_line.wait(5)  # before the rest of the body was sent
        sock.sendall(b"line2\n")
        assert parse_responses(read_all(sock))[0].body == b"line1\nline2\n"


def test_large_upload_with_flow_control(thread_workers: int) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        size = 0
        while chunk := environ["wsgi.input"].read(8192):
            size += len(chunk)
        start_response("200 OK", [])
        return [str(size).encode()]

    with ServerThread(app, thread_workers=thread_workers) as srv:
        body = b"z" * (3 * 1024 * 1024)
        assert httpx.post(srv.url, content=body, timeout=10).content == str(len(body)).encode()


# -- start_response and the response iterable -------------------------------------------------


def test_exc_info_before_headers_replaces_the_response(thread_workers: int) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("handled")
        except ValueError:
            start_response("503 Service Unavailable", [("Content-Length", "4")], sys.exc_info())
        return [b"oops"]

    with ServerThread(app, thread_workers=thread_workers) as srv:
        response = httpx.get(srv.url)
    assert response.status_code == 503 and response.content == b"oops"
    assert "content-type" not in response.headers


def test_exc_info_after_headers_reraises_and_closes(thread_workers: int) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"first"
        try:
            raise ValueError("late")
        except ValueError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        yield b"never"

    with ServerThread(app, thread_workers=thread_workers) as srv:
        out = raw(srv.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    response = parse_responses(out)[0]
    assert response.status == 200 and not response.complete and response.body == b"first"


def test_start_response_twice_is_an_error(thread_workers: int) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [])
        start_response("201 Created", [])
        return [b"x"]

    with ServerThread(app, thread_workers=thread_workers) as srv:
        assert httpx.get(srv.url).status_code == 500


@pytest.mark.parametrize(
    "call",
    [
        lambda sr: sr(200, []),
        lambda sr: sr("OK", []),
        lambda sr: sr("200 OK", {"a": "b"}),
        lambda sr: sr("200 OK", [("a", 1)]),
        lambda sr: sr("200 OK", [("a",)]),
    ],
    ids=["int-status", "no-code", "dict-headers", "int-value", "short-tuple"],
)
def test_start_response_checks_types(call: Callable[..., Any], thread_workers: int) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        call(start_response)
        return [b"x"]

    with ServerThread(app, thread_workers=thread_workers) as srv:
        assert httpx.get(srv.url).status_code == 500


def test_no_start_response_is_500(thread_workers: int) -> None:
    with ServerThread(lambda e, s: [b"x"], thread_workers=thread_workers) as srv:
        assert httpx.get(srv.url).status_code == 500


def test_close_is_always_called(thread_workers: int) -> None:
    closed: list[str] = []

    class Body:
        def __init__(self, name: str, fail: bool) -> None:
            self.name = name
            self.fail = fail

        def __iter__(self) -> Iterator[bytes]:
            yield b"a"
            if self.fail:
                raise RuntimeError("fail")
            yield b"b"

        def close(self) -> None:
            closed.append(self.name)

    class ListBody(list):  # type: ignore[type-arg]
        def close(self) -> None:
            closed.append("list")

    def app(environ: Environ, start_response: StartResponse) -> Any:
        start_response("200 OK", [])
        path = environ["PATH_INFO"]
        if path == "/list":
            return ListBody([b"x"])
        return Body(path, fail=path == "/fail")

    with ServerThread(app, thread_workers=thread_workers) as srv:
        with httpx.Client() as client:
            assert client.get(srv.url + "/ok").content == b"ab"
            assert client.get(srv.url + "/list").content == b"x"
        raw(srv.port, b"GET /fail HTTP/1.1\r\nHost: t\r\n\r\n")
    assert sorted(closed) == ["/fail", "/ok", "list"]


def test_legacy_write(thread_workers: int) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        write = start_response("200 OK", [])
        write(b"via ")
        write(b"write ")
        return [b"and iterable"]

    with ServerThread(app, thread_workers=thread_workers) as srv:
        assert httpx.get(srv.url).content == b"via write and iterable"


@pytest.mark.parametrize(
    ("status", "body", "length"),
    [("200 OK", [], "0"), ("204 No Content", [], None), ("200 OK", [b"ab", b"", b"c"], "3")],
)
def test_lengths(thread_workers: int, status: str, body: list[bytes], length: str | None) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response(status, [])
        return body

    with ServerThread(app, thread_workers=thread_workers) as srv:
        response = httpx.get(srv.url)
    assert response.headers.get("content-length") == length
    assert "transfer-encoding" not in response.headers
    assert response.content == b"".join(body)


# -- wsgi.file_wrapper ------------------------------------------------------------------------


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    return path


def test_file_wrapper_sendfile(thread_workers: int, data_file: Path) -> None:
    files: list[Any] = []

    def app(environ: Environ, start_response: StartResponse) -> Any:
        handle = open(data_file, "rb")  # noqa: SIM115 - closed by the server
        files.append(handle)
        if environ["PATH_INFO"] == "/offset":
            handle.seek(1000)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](handle, 8192)

    data = data_file.read_bytes()
    with ServerThread(app, thread_workers=thread_workers) as srv:
        calls: list[int] = []
        original = srv.loop.sendfile

        async def counting(*args: Any, **kwargs: Any) -> int:
            calls.append(1)
            return await original(*args, **kwargs)

        srv.loop.sendfile = counting  # type: ignore[method-assign]
        with httpx.Client() as client:
            response = client.get(srv.url + "/")
            assert response.content == data
            assert response.headers["content-length"] == str(len(data))
            assert client.get(srv.url + "/offset").content == data[1000:]
            head = client.head(srv.url + "/")
            assert head.headers["content-length"] == str(len(data)) and head.content == b""
            assert client.get(srv.url + "/").content == data  # keep-alive still fine
        assert len(calls) == 3  # HEAD sends no body
    assert all(handle.closed for handle in files)


def test_file_wrapper_without_fileno(thread_workers: int) -> None:
    import io

    def app(environ: Environ, start_response: StartResponse) -> Any:
        start_response("200 OK", [])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"in memory" * 1000), 100)

    with ServerThread(app, thread_workers=thread_workers) as srv:
        assert httpx.get(srv.url).content == b"in memory" * 1000
