"""Protocol tier: HttpServerProtocol against a fake transport (flow control, pipelining, timers,
disconnects), on the test loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

from wsgi_helpers import FakeTransport, echo, fake_connection, hello, parse_responses, settle

from pulsar.apps.wsgi import MAX_PIPELINE, HttpServerProtocol, Timer

Environ = dict[str, Any]
GET = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


async def test_pipelined_answers_in_order() -> None:
    protocol, transport = fake_connection(echo, thread_workers=0)
    protocol.data_received(
        b"POST /1 HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nA"
        b"GET /2 HTTP/1.1\r\nHost: t\r\n\r\n"
        b"POST /3 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nC\r\n0\r\n\r\n"
    )
    await settle(lambda: len(parse_responses(bytes(transport.buffer))) == 3)
    assert [r.body for r in parse_responses(transport.take())] == [
        b"POST /1 A",
        b"GET /2 ",
        b"POST /3 C",
    ]
    assert not transport.closed
    protocol.connection_lost(None)


async def test_many_pipelined_requests_in_one_read_inline() -> None:
    """Inline responses are sent synchronously, one after the other, without recursion."""
    protocol, transport = fake_connection(hello, thread_workers=0)
    protocol.data_received(GET * 2000)
    responses = parse_responses(transport.take())
    assert len(responses) == 2000 and all(r.status == 200 for r in responses)
    assert not transport.closed
    protocol.connection_lost(None)


async def test_inline_list_response_needs_no_loop_iteration() -> None:
    protocol, transport = fake_connection(hello, thread_workers=0)
    protocol.data_received(GET + b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc")
    assert transport.buffer.count(b"HTTP/1.1 200") == 2  # answered before any await
    protocol.connection_lost(None)


async def test_pipeline_backlog_pauses_reading() -> None:
    release = threading.Event()

    def app(environ: Environ, start_response: Callable[..., Any]) -> list[bytes]:
        release.wait(5)
        start_response("200 OK", [("Content-Length", "0")])
        return []

    protocol, transport = fake_connection(app, thread_workers=1)
    protocol.data_received(GET * (MAX_PIPELINE + 2))
    assert not transport.reading  # too many requests waiting
    release.set()
    await settle(lambda: transport.buffer.count(b"HTTP/1.1 200") == MAX_PIPELINE + 2)
    assert transport.reading
    transport.close()
    await settle()


async def test_body_buffer_pauses_reading_until_the_app_reads() -> None:
    go = threading.Event()

    def app(environ: Environ, start_response: Callable[..., Any]) -> list[bytes]:
        go.wait(5)
        data = environ["wsgi.input"].read()
        start_response("200 OK", [])
        return [str(len(data)).encode()]

    protocol, transport = fake_connection(app, thread_workers=1)
    size = 1024 * 1024
    protocol.data_received(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % size)
    protocol.data_received(b"x" * (300 * 1024))
    assert not transport.reading  # above the high-water mark, the app reads nothing yet
    go.set()
    await settle(lambda: transport.reading)
    protocol.data_received(b"x" * (size - 300 * 1024))
    await settle(lambda: b"\r\n\r\n" in transport.buffer)
    await settle(lambda: parse_responses(bytes(transport.buffer))[0].complete)
    assert parse_responses(transport.take())[0].body == str(size).encode()
    transport.close()
    await settle()


async def test_write_back_pressure_inline() -> None:
    produced: list[int] = []

    def app(environ: Environ, start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [])
        for i in range(10):
            produced.append(i)
            yield b"chunk%d" % i

    protocol, transport = fake_connection(app, thread_workers=0)
    protocol.pause_writing()
    protocol.data_received(GET)
    await settle()
    assert produced == [0]  # waiting for the transport to drain
    protocol.resume_writing()
    await settle(lambda: len(produced) == 10)
    await settle(lambda: transport.buffer.endswith(b"0\r\n\r\n"))
    transport.close()
    await settle()


async def test_write_back_pressure_threads() -> None:
    produced: list[int] = []

    def app(environ: Environ, start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [])
        for i in range(10):
            produced.append(i)
            yield b"chunk%d" % i

    protocol, transport = fake_connection(app, thread_workers=1)
    protocol.pause_writing()
    protocol.data_received(GET)
    await settle(lambda: b"chunk0" in transport.buffer)
    await asyncio.sleep(0.05)
    assert produced == [0]  # the thread waits for the transport
    protocol.resume_writing()
    await settle(lambda: transport.buffer.endswith(b"0\r\n\r\n"))
    assert produced == list(range(10))
    transport.close()
    await settle()


async def test_disconnect_while_paused_calls_close() -> None:
    closed = threading.Event()

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            while True:
                yield b"data"

        def close(self) -> None:
            closed.set()

    for workers in (0, 1):
        protocol, transport = fake_connection(
            lambda e, s: (s("200 OK", []), Body())[1], thread_workers=workers
        )
        protocol.pause_writing()
        protocol.data_received(GET)
        await settle(lambda t=transport: b"data" in t.buffer)  # type: ignore[misc]
        protocol.connection_lost(ConnectionResetError())
        await settle(closed.is_set)
        closed.clear()


async def test_eof_after_request_finishes_the_response() -> None:
    protocol, transport = fake_connection(hello, thread_workers=1)
    protocol.data_received(GET)
    assert protocol.eof_received() is True  # keep the transport open to answer
    await settle(lambda: transport.closed)
    assert parse_responses(transport.take())[0].body == b"Hello World!\n"


async def test_eof_mid_body_fails_the_input() -> None:
    errors: list[BaseException] = []

    def app(environ: Environ, start_response: Callable[..., Any]) -> list[bytes]:
        try:
            environ["wsgi.input"].read()
        except OSError as exc:
            errors.append(exc)
            raise
        return []

    protocol, transport = fake_connection(app, thread_workers=1)
    protocol.data_received(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
    protocol.eof_received()
    await settle(lambda: transport.closed)
    assert errors and "disconnected" in str(errors[0])


async def test_keep_alive_timer() -> None:
    protocol, transport = fake_connection(hello, thread_workers=0, keep_alive=0.05)
    protocol.data_received(GET)
    await settle(lambda: protocol._timer_kind is Timer.IDLE)
    await settle(lambda: transport.closed)
    assert parse_responses(transport.take())[0].status == 200


async def test_deadlines_share_one_timer_per_tick() -> None:
    """Connections whose deadlines fall in one tick share its timer; one that closed (its
    deadline cancelled) is not called, the others time out."""
    protocol, transport = fake_connection(hello, thread_workers=0, keep_alive=0.05)
    state = protocol.state
    other = HttpServerProtocol(state=state)
    other_transport = FakeTransport(other)
    other.connection_made(other_transport)  # type: ignore[arg-type]
    gone = HttpServerProtocol(state=state)
    gone.connection_made(FakeTransport(gone))  # type: ignore[arg-type]
    for conn in (protocol, other, gone):
        conn.data_received(GET)
    assert protocol._timer is not None and gone._timer is not None
    gone.connection_lost(None)
    assert gone._timer is None
    assert all(gone not in members for members in state._ticks.values())
    await settle(lambda: transport.closed and other_transport.closed)
    assert not state._ticks or all(not members for members in state._ticks.values())


async def test_keep_alive_zero_closes_after_each_response() -> None:
    protocol, transport = fake_connection(hello, thread_workers=0, keep_alive=0)
    protocol.data_received(GET)
    await settle(lambda: transport.closed)
    assert b"Connection: close" in transport.take()


async def test_header_deadline() -> None:
    protocol, transport = fake_connection(hello, thread_workers=0, header_timeout=0.05)
    protocol.data_received(b"GET / HTTP/1.1\r\nHost:")
    await settle(lambda: transport.closed)
    assert parse_responses(transport.take())[0].status == 408


async def test_body_deadline_threads() -> None:
    def app(environ: Environ, start_response: Callable[..., Any]) -> list[bytes]:
        environ["wsgi.input"].read()
        return []

    protocol, transport = fake_connection(app, thread_workers=1, body_timeout=0.05)
    protocol.data_received(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
    await settle(lambda: transport.closed)
    assert parse_responses(transport.take())[0].status == 408


async def test_graceful_shutdown() -> None:
    protocol, transport = fake_connection(hello, thread_workers=0)
    idle, idle_transport = fake_connection(hello, thread_workers=0)
    protocol.state.connections.add(idle)
    protocol.data_received(GET)
    await protocol.state.shutdown(1.0)
    assert idle_transport.closed and transport.closed
    assert parse_responses(transport.take())[0].status == 200


def test_protocol_needs_an_app() -> None:
    import pytest

    with pytest.raises(TypeError):
        HttpServerProtocol()


# -- per-connection costs -------------------------------------------------------------------------


async def test_closed_connection_leaves_no_cyclic_garbage() -> None:
    """A connection's objects are freed by reference counting once it closes (the parser, whose
    callbacks reference the HttpConnection, is dropped), not by a garbage collection later."""
    import gc
    import weakref

    protocol, transport = fake_connection(hello, thread_workers=0)
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert parse_responses(transport.take())[0].status == 200
    await settle()  # the transport's close calls connection_lost soon
    assert protocol.disconnected
    conn = weakref.ref(protocol.conn)
    assert protocol.conn._parser is None
    protocol.conn.receive_data(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")  # ignored: the peer is gone
    assert not protocol.conn.events
    gc.disable()
    try:
        transport.protocol = None  # type: ignore[assignment]  # as asyncio's transports do
        del protocol, transport
        assert conn() is None
    finally:
        gc.enable()


def _post(body: bytes) -> bytes:
    return b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


async def test_large_body_in_one_or_several_chunks_echoes_intact() -> None:
    """Inline, a 64 KiB body that arrived in one chunk or in several is read whole by the
    application, and its echo (written head then body, no join) arrives intact. That a whole
    read of one chunk returns the chunk itself is checked in test_request_body_chunks."""
    seen: list[bytes] = []

    def app(environ: Environ, start_response: Callable[..., Any]) -> list[bytes]:
        data = environ["wsgi.input"].read()
        seen.append(data)
        start_response("200 OK", [("Content-Length", str(len(data)))])
        return [data]

    protocol, transport = fake_connection(app, thread_workers=0)
    body = bytes(range(256)) * 256  # 64 KiB
    protocol.data_received(_post(body))
    protocol.data_received(_post(body)[:1000])
    protocol.data_received(_post(body)[1000:])
    await settle(lambda: len(parse_responses(bytes(transport.buffer))) == 2)
    responses = parse_responses(transport.take())
    assert [r.body for r in responses] == [body, body] and seen == [body, body]
    protocol.connection_lost(None)


def test_request_body_chunks() -> None:
    """Chunks fed as bytes: a whole read returns the one chunk itself; partial reads, readline
    and reads across chunks see the bytes in order."""
    from pulsar.apps.wsgi._input import RequestBody

    body = RequestBody(blocking=False)
    chunk = b"abc\ndef"
    body.feed(chunk)
    body.feed(bytearray(b"\ngh"))
    body.feed(b"")
    body.end()
    assert body.buffered == 10
    assert body.read(2) == b"ab"
    assert body.readline() == b"c\n"
    assert body.buffered == 6
    body.feed(b"ij")  # after a partial read: appended behind what is left
    assert body.read() == b"def\nghij"
    assert body.read() == b"" and body.buffered == 0

    single = RequestBody(blocking=False)
    single.feed(chunk)
    single.end()
    assert single.read() is chunk

    several = RequestBody(blocking=False)
    for part in (b"12", b"34", b"5"):
        several.feed(part)
    several.end()
    assert several.read(100) == b"12345"
    several.discard()
    assert several.buffered == 0
