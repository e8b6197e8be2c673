"""Real-socket tier: a server on 127.0.0.1 port 0, raw sockets and httpx, both execution modes.

Every bad input is followed by a check that the server keeps serving the next client.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psutil
import pytest
from wsgi_helpers import ServerThread, connect, echo, hello, parse_responses, raw, read_all

GET = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def still_serving(server: ServerThread) -> None:
    """A fresh client gets a normal answer."""
    response = httpx.get(server.url + "/", timeout=5)
    assert response.status_code == 200


def error_then_serving(server: ServerThread, data: bytes, status: int) -> None:
    out = raw(server.port, data)
    responses = parse_responses(out)
    assert responses and responses[-1].status == status, out
    assert responses[-1].header("connection") == "close"
    still_serving(server)


@pytest.fixture
def server(thread_workers: int) -> Iterator[ServerThread]:
    with ServerThread(echo, thread_workers=thread_workers, max_body_size=4096) as srv:
        yield srv


def test_hello_httpx(thread_workers: int) -> None:
    with ServerThread(hello, thread_workers=thread_workers) as srv, httpx.Client() as client:
        for _ in range(3):  # keep-alive: one connection
            response = client.get(srv.url + "/")
            assert response.status_code == 200
            assert response.text == "Hello World!\n"
            assert response.headers["server"] == "pulsar"
            assert "date" in response.headers
        assert srv.state.total_connections == 1
        wait_for(lambda: srv.state.requests == 3)  # counted just after the response is written


def test_post_and_chunked_request(server: ServerThread) -> None:
    with httpx.Client() as client:
        response = client.post(server.url + "/p", content=b"x" * 3000)
        assert response.content == b"POST /p " + b"x" * 3000
        assert response.headers["transfer-encoding"] == "chunked"
        response = client.post(server.url + "/c", content=iter([b"ab", b"cd"]))  # chunked
        assert response.content == b"POST /c abcd"


def test_pipelining_answered_in_order(server: ServerThread) -> None:
    data = b"".join(
        b"POST /%d HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%d" % (i, len(str(i)), i)
        for i in range(20)
    )
    out = raw(server.port, data + b"GET /last HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    bodies = [r.body for r in parse_responses(out)]
    assert bodies == [b"POST /%d %d" % (i, i) for i in range(20)] + [b"GET /last "]


def test_http10(server: ServerThread) -> None:
    out = raw(server.port, b"GET /old HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Connection: close\r\n" in out and b"chunked" not in out
    assert out.endswith(b"\r\n\r\nGET /old ")


def test_connection_close_honoured(server: ServerThread) -> None:
    out = raw(server.port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" + GET)
    assert len(parse_responses(out)) == 1


def test_head_has_no_body(thread_workers: int) -> None:
    with ServerThread(hello, thread_workers=thread_workers) as srv:
        out = raw(
            srv.port,
            b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n"
            b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        head, _, rest = out.partition(b"\r\n\r\n")
        assert b"Content-Length: 13" in head
        assert rest.startswith(b"HTTP/1.1 200 OK")  # no body bytes between the two


def test_expect_continue(server: ServerThread) -> None:
    with connect(server.port) as sock:
        sock.sendall(
            b"POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"body")
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        responses = parse_responses(read_all(sock))
    assert [r.body for r in responses] == [b"POST /e body", b"GET / "]


def test_expect_continue_answered_without_reading(thread_workers: int) -> None:
    """An app that answers without reading the body: no 100, and the connection closes."""
    with ServerThread(hello, thread_workers=thread_workers) as srv, connect(srv.port) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        if thread_workers:
            out = read_all(sock)
            assert not out.startswith(b"HTTP/1.1 100")
            assert b"Connection: close" in out
        else:  # inline: the body is read before the app runs, so it is asked for
            assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
            sock.sendall(b"body")
            out = sock.recv(1000)
            assert b"Connection" not in out
    assert parse_responses(out)[-1].body == b"Hello World!\n"


# -- bad input: each followed by a normal request ---------------------------------------------


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET/ HTTP/1.1\r\nHost: t\r\n\r\n", 400),  # malformed request line
        (b"GET / HTTP/1.1 extra\r\n\r\n", 400),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),  # TLS to a plain port
        (b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n", 400),  # invalid header bytes
        (b"GET / HTTP/1.1\r\nHost: t\r\nX\x7fY: z\r\n\r\n", 400),
        (
            b"POST / HTTP/1.1\r\nHost: t\r\n"
            b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: t\r\n"
            b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
            400,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: t\r\n"
            b"Transfer-Encoding: chunked\r\n\r\nxyz\r\nabc\r\n0\r\n\r\n",
            400,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: t\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n-1\r\nabc\r\n0\r\n\r\n",
            400,
        ),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),  # target too long
        (b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"a" * 9000 + b"\r\n\r\n", 431),  # header too large
        (b"GET / HTTP/1.1\r\nHost: t\r\n" + b"X: y\r\n" * 101 + b"\r\n", 431),  # too many headers
        (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n", 413),  # body too large
        (b"BREW / HTTP/1.1\r\nHost: t\r\n\r\n", 501),
    ],
    ids=[
        "request-line",
        "request-line-extra",
        "tls-handshake",
        "header-nul",
        "header-name-del",
        "cl-te",
        "te-cl",
        "chunk-size",
        "chunk-size-negative",
        "line-too-long",
        "header-too-large",
        "too-many-headers",
        "body-too-large",
        "unknown-method",
    ],
)
def test_bad_requests(server: ServerThread, data: bytes, status: int) -> None:
    error_then_serving(server, data, status)


def test_chunked_body_too_large(server: ServerThread) -> None:
    chunks = b"".join(b"400\r\n" + b"x" * 1024 + b"\r\n" for _ in range(5))
    out = raw(
        server.port, b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
    )
    assert parse_responses(out)[-1].status == 413
    still_serving(server)


def test_body_longer_than_content_length(server: ServerThread) -> None:
    """The request is answered; the extra bytes are not a request: the connection closes."""
    out = raw(server.port, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabcXYZ\r\n\r\n")
    responses = parse_responses(out)
    assert [r.body for r in responses] == [b"POST / abc"]
    assert responses[0].header("connection") == "close"
    still_serving(server)


def test_body_shorter_than_content_length(server: ServerThread) -> None:
    with connect(server.port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        sock.shutdown(socket.SHUT_WR)  # then the client stops sending
        out = read_all(sock)
    assert b"200 OK" not in out
    server.wait_connections(0)
    still_serving(server)


def test_smuggled_request_never_reaches_the_app(thread_workers: int) -> None:
    seen: list[str] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        seen.append(environ["PATH_INFO"])
        environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Length", "0")])
        return []

    with ServerThread(app, thread_workers=thread_workers) as srv:
        attack = (
            b"POST /a HTTP/1.1\r\nHost: t\r\n"
            b"Content-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        out = raw(srv.port, attack)
        assert parse_responses(out)[0].status == 400
        assert seen == []


# -- application faults -----------------------------------------------------------------------


def _app(kind: str) -> Callable[..., Any]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if kind == "before":
            raise RuntimeError("boom before start_response")
        if kind == "non-iterable":
            start_response("200 OK", [])
            return 42
        if kind == "bad-header":
            start_response("200 OK", [("Bad Header", "x")])
            return [b"x"]
        if kind == "after-start":
            start_response("200 OK", [])
            raise RuntimeError("boom after start_response")

        def body() -> Iterator[bytes]:
            start_response("200 OK", [("Content-Length", "100")])
            yield b"partial"
            raise RuntimeError("boom after the headers were sent")

        return body()

    return app


@pytest.mark.parametrize("kind", ["before", "non-iterable", "bad-header", "after-start"])
def test_app_error_before_headers_is_500(
    thread_workers: int, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    with ServerThread(_app(kind), thread_workers=thread_workers) as srv:
        out = raw(srv.port, GET)
        responses = parse_responses(out)
        assert [r.status for r in responses] == [500]
        assert responses[0].header("connection") == "close"
        assert b"boom" not in out  # no traceback to the client
    assert any(r.name == "pulsar.wsgi.error" for r in caplog.records)


def test_app_error_after_headers_closes(thread_workers: int) -> None:
    with ServerThread(_app("streaming"), thread_workers=thread_workers) as srv:
        out = raw(srv.port, GET + GET)
        responses = parse_responses(out)
        assert len(responses) == 1 and not responses[0].complete  # truncated: never valid
        assert responses[0].body == b"partial"
        with ServerThread(hello) as other:
            still_serving(other)
        srv.factory.state.app = hello
        still_serving(srv)


def test_client_disconnect_mid_response(thread_workers: int) -> None:
    closed = threading.Event()
    produced: list[int] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            for i in range(100_000):
                produced.append(i)
                yield b"x" * 65536

        def close(self) -> None:
            closed.set()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Body:
        start_response("200 OK", [])
        return Body()

    with ServerThread(app, thread_workers=thread_workers) as srv:
        with connect(srv.port) as sock:
            sock.sendall(GET)
            sock.recv(65536)
        assert closed.wait(5), "close() of the iterable not called"
        # back-pressure: far fewer chunks produced than the 6.5 GB the app offers
        assert len(produced) < 1000
        srv.wait_connections(0)
        srv.factory.state.app = hello
        still_serving(srv)


def test_slow_reader_is_not_buffered_without_bound(thread_workers: int) -> None:
    produced: list[int] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [])
        for i in range(2000):
            produced.append(i)
            yield b"y" * 65536  # 128 MiB offered

    with ServerThread(app, thread_workers=thread_workers) as srv, connect(srv.port) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(GET)
        sock.recv(1000)
        time.sleep(0.3)  # the client reads nothing more
        assert len(produced) < 200  # bounded by socket buffers + the transport high-water mark


# -- timeouts ---------------------------------------------------------------------------------


def test_keep_alive_idle_timeout(thread_workers: int) -> None:
    with ServerThread(hello, thread_workers=thread_workers, keep_alive=0.2) as srv:
        with connect(srv.port) as sock:
            sock.sendall(GET)
            start = time.monotonic()
            out = read_all(sock)
            assert time.monotonic() - start < 3
        assert len(parse_responses(out)) == 1
        srv.wait_connections(0)


def test_header_deadline_slowloris(thread_workers: int) -> None:
    with ServerThread(hello, thread_workers=thread_workers, header_timeout=0.3) as srv:
        with connect(srv.port) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
            start = time.monotonic()
            try:
                for _ in range(50):  # one header byte every 50 ms: never complete in time
                    sock.sendall(b"X")
                    time.sleep(0.05)
            except OSError:
                pass
            out = read_all(sock)
            assert time.monotonic() - start < 2.5
        assert parse_responses(out)[0].status == 408
        still_serving(srv)


def test_silent_connection_closed_without_response(thread_workers: int) -> None:
    with ServerThread(hello, thread_workers=thread_workers, header_timeout=0.2) as srv:
        with connect(srv.port) as sock:
            assert read_all(sock) == b""
        still_serving(srv)


def test_body_stall_timeout(server: ServerThread) -> None:
    server.state.body_timeout = 0.3
    with connect(server.port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc")
        out = read_all(sock)
    assert parse_responses(out)[0].status == 408
    still_serving(server)


# -- many connections -------------------------------------------------------------------------


@pytest.fixture
def many_fds() -> Iterator[None]:
    """Room for 1,000 connections on both sides (raise the soft limit up to the hard one)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2200
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"needs {wanted} file descriptors, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.usefixtures("many_fds")
def test_thousand_idle_connections_dropped(thread_workers: int) -> None:
    process = psutil.Process()
    with ServerThread(hello, thread_workers=thread_workers) as srv:
        still_serving(srv)
        before = process.num_fds()
        socks = []
        try:
            for _ in range(1000):
                socks.append(socket.create_connection(("127.0.0.1", srv.port)))
            srv.wait_connections(1000, timeout=20)
        finally:
            for sock in socks:
                sock.close()
        srv.wait_connections(0, timeout=20)
        assert process.num_fds() <= before + 5  # the server's fds were closed as well
        still_serving(srv)


def test_statistics(thread_workers: int) -> None:
    with ServerThread(hello, thread_workers=thread_workers) as srv:
        still_serving(srv)
        wait_for(lambda: srv.state.requests == 1)
        stats = srv.call(srv.state.statistics)
        assert stats["requests"] == 1
        assert stats["mode"] == ("threads" if thread_workers else "inline")


def test_rejected_request_answer_survives_the_clients_flood(thread_workers: int) -> None:
    """A bad request followed by 4 MB the client is still sending: the 400 arrives (the
    server lingers, reading and dropping, instead of resetting the connection), then the
    connection closes and the server goes on serving."""
    with ServerThread(hello, thread_workers=thread_workers) as srv, connect(srv.port) as sock:
        flood = b"x" * (4 * 1024 * 1024)
        errors: list[BaseException] = []

        def send() -> None:
            try:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n" + flood)
            except OSError as exc:
                errors.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        out = read_all(sock, timeout=10)
        sender.join(10)
        responses = parse_responses(out)
        assert responses and responses[0].status == 400, (out[:200], errors)
        assert responses[0].header("connection") == "close"
        still_serving(srv)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_tcp_nodelay_on_accepted_sockets(thread_workers: int, loop: str) -> None:
    """The adapter sets no socket option: outside pulsar, ``loop.create_server`` (stock asyncio,
    uvloop) turns TCP_NODELAY on for the TCP sockets it accepts; under ``WSGIServer`` pulsar's
    socket layer does (pulsar-core's tests). Without it keep-alive stalls on delayed ACKs."""
    factory = asyncio.new_event_loop
    if loop == "uvloop":
        factory = pytest.importorskip("uvloop").new_event_loop
    with (
        ServerThread(hello, thread_workers=thread_workers, loop_factory=factory) as srv,
        connect(srv.port) as client,
    ):
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")

        def nodelay() -> list[int]:
            return [
                conn.transport.get_extra_info("socket").getsockopt(
                    socket.IPPROTO_TCP, socket.TCP_NODELAY
                )
                for conn in srv.state.connections
            ]

        flags = srv.call(nodelay)
        assert flags and all(flags), flags


def test_one_request_counter(thread_workers: int) -> None:
    """Requests are counted once: by the ``on_request`` hook when there is one (under
    WSGIServer, the socket layer's ``max_requests`` count), else by ``ServerState``."""
    calls: list[int] = []

    def hook() -> None:
        calls.append(1)

    with ServerThread(hello, thread_workers=thread_workers, on_request=hook) as srv:
        with httpx.Client() as client:
            for _ in range(3):
                assert client.get(srv.url + "/").status_code == 200
        wait_for(lambda: len(calls) == 3)
        assert srv.state.requests == 0
        assert "requests" not in srv.call(srv.state.statistics)
