"""Test helpers of pulsar-wsgi: a server on a background loop, raw clients, a fake transport."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httptools

from pulsar.apps.wsgi import HttpServerProtocol, create_protocol_factory


class ServerThread:
    """``loop.create_server`` on 127.0.0.1 port 0 with a wsgi protocol factory, its loop running
    in a background thread (so tests may use blocking clients)."""

    def __init__(
        self,
        app: Callable[..., Any],
        *,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop,
        **settings: Any,
    ) -> None:
        settings.setdefault("access_log", False)
        self.factory = create_protocol_factory(app, **settings)
        self.state = self.factory.state
        self.loop = loop_factory()
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.Server | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self._ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        self._server = await self.loop.create_server(self.factory, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def __enter__(self) -> ServerThread:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc: Any) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            await self.state.shutdown(1.0)
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn()`` on the server loop and return its result."""

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connections(self) -> int:
        return int(self.call(lambda: len(self.state.connections)))

    def wait_connections(self, n: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while self.connections() != n:
            assert time.monotonic() < deadline, f"{self.connections()} connections, not {n}"
            time.sleep(0.01)


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_all(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Read until the server closes the connection."""
    sock.settimeout(timeout)
    out = bytearray()
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        out += data
    return bytes(out)


def raw(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data`` and read until the server closes the connection."""
    with contextlib.closing(connect(port, timeout)) as sock:
        sock.sendall(data)
        return read_all(sock, timeout)


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    complete: bool = False

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


class _Collector:
    def __init__(self) -> None:
        self.responses: list[Response] = []
        self.parser: Any = None

    def on_message_begin(self) -> None:
        self.responses.append(Response(0))

    def on_header(self, name: bytes, value: bytes) -> None:
        self.responses[-1].headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.responses[-1].status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.responses[-1].body += body

    def on_message_complete(self) -> None:
        self.responses[-1].complete = True


def parse_responses(data: bytes) -> list[Response]:
    """The responses in ``data`` (the last may be incomplete; not for HEAD responses)."""
    collector = _Collector()
    parser = httptools.HttpResponseParser(collector)
    collector.parser = parser
    with contextlib.suppress(httptools.HttpParserError):
        parser.feed_data(data)
    return collector.responses


class FakeTransport:
    """An in-memory transport: records writes, read pausing, closing."""

    def __init__(self, protocol: HttpServerProtocol, *, peer: Any = ("10.0.0.1", 5000)) -> None:
        self.protocol = protocol
        self.buffer = bytearray()
        self.closed = False
        self.aborted = False
        self.reading = True
        self.peer = peer
        self.extra: dict[str, Any] = {
            "peername": peer,
            "sockname": ("127.0.0.1", 8000),
            "sslcontext": None,
            "socket": None,
        }

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.buffer += data

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.extra.get(name, default)

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def abort(self) -> None:
        self.aborted = True
        self.close()

    def take(self) -> bytes:
        data = bytes(self.buffer)
        self.buffer.clear()
        return data


def fake_connection(
    app: Callable[..., Any], **settings: Any
) -> tuple[HttpServerProtocol, FakeTransport]:
    """A protocol connected to a :class:`FakeTransport` (call from a running loop)."""
    settings.setdefault("access_log", False)
    factory = create_protocol_factory(app, **settings)
    protocol = factory()
    transport = FakeTransport(protocol)
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return protocol, transport


async def settle(predicate: Callable[[], bool] | None = None, timeout: float = 5.0) -> None:
    """Let the loop (and worker threads) run until ``predicate()`` (or a few iterations)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    if predicate is None:
        for _ in range(20):
            await asyncio.sleep(0)
        return
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def hello(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    data = b"Hello World!\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]


def echo(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
    """Streams back the method, path and request body."""
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    yield f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']} ".encode()
    yield body
