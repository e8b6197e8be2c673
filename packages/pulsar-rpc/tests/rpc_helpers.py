"""Helpers of the pulsar-rpc tests (importable by name: ``import rpc_helpers as h``).

Handlers, WSGI environs, and a real HTTP server.

``serve(app)`` runs a WSGI application on 127.0.0.1, port 0, in a background thread and returns
its URL. The server is chosen by :data:`SERVER`: the real-socket tests only use ``serve``, so
switching them to another WSGI server is a change here.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import socketserver
import threading
import time
from collections.abc import Callable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from pulsar.apps import rpc

#: the server of the real-socket tests: ``pulsar`` (pulsar-wsgi's HTTP/1.1 protocol on an event
#: loop in a background thread, the stack of ``WSGIServer``'s workers) or ``wsgiref``
SERVER = os.environ.get("PULSAR_RPC_TEST_SERVER", "pulsar")


class Calculator(rpc.JSONRPC):
    """Arithmetic for the tests."""

    def rpc_add(self, request: rpc.RpcRequest, a: float, b: float) -> float:
        """Adds two numbers.

        Args:
            a: the first number.
            b: the second number.

        Returns:
            Their sum.
        """
        return a + b

    def rpc_subtract(self, request: rpc.RpcRequest, minuend: int, subtrahend: int) -> int:
        """The JSON-RPC specification's example."""
        return minuend - subtrahend

    def rpc_divide(self, request: rpc.RpcRequest, a: float, b: float) -> float:
        if b == 0:
            raise rpc.RpcError(-32001, "division by zero", {"a": a})
        return a / b

    def rpc_fail(self, request: rpc.RpcRequest) -> None:
        raise ValueError("something broke")

    async def rpc_sleep(self, request: rpc.RpcRequest, seconds: float = 0.0) -> float:
        await asyncio.sleep(seconds)
        return seconds

    def rpc_block(self, request: rpc.RpcRequest, seconds: float = 0.0) -> float:
        time.sleep(seconds)
        return seconds

    async def rpc_aloop(self, request: rpc.RpcRequest) -> int:
        return id(asyncio.get_running_loop())

    def rpc_sum(self, request: rpc.RpcRequest, *values: float) -> float:
        return sum(values)

    def rpc_options(self, request: rpc.RpcRequest, *, a: int = 1, **rest: Any) -> dict[str, Any]:
        return {"a": a, **rest}

    def rpc_nan(self, request: rpc.RpcRequest) -> float:
        return float("nan")

    def rpc_unserializable(self, request: rpc.RpcRequest) -> Any:
        return object()

    def rpc_environ(self, request: rpc.RpcRequest) -> str:
        return str(request.environ.get("HTTP_X_TOKEN"))

    async def rpc_record(self, request: rpc.RpcRequest, value: Any) -> None:
        RECORDED.append(value)


RECORDED: list[Any] = []


class Root(rpc.PulsarServerCommands):
    """The test server."""


def make_root(**options: Any) -> rpc.JSONRPC:
    """A PulsarServerCommands handler with a ``calc`` Calculator."""
    return Root(**options).add_handler("calc", Calculator())


def environ(
    body: bytes | str | Any = b"",
    *,
    method: str = "POST",
    content_type: str | None = "application/json",
    length: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A PEP 3333 environ for a request to the handler; ``body`` may be a JSON value."""
    if not isinstance(body, bytes | str):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    env: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "CONTENT_LENGTH": str(len(body)) if length is None else length,
    }
    if content_type is not None:
        env["CONTENT_TYPE"] = content_type
    env.update(extra)
    return env


class Response:
    """What a WSGI application answered."""

    def __init__(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.code = int(status.split()[0])
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


def call_wsgi(app: Callable[..., Any], env: dict[str, Any]) -> Response:
    """Call a WSGI application like a server does."""
    captured: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured[:] = [status, headers]
        return lambda data: None

    chunks = app(env, start_response)
    try:
        body = b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    return Response(captured[0], captured[1], body)


def post(app: Callable[..., Any], body: Any, **kwargs: Any) -> Response:
    """POST ``body`` (a JSON value, or raw bytes/str) to ``app``."""
    return call_wsgi(app, environ(body, **kwargs))


# --------------------------------------------------------------------------- real HTTP server


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


def serve_wsgiref(app: Callable[..., Any]) -> tuple[str, Callable[[], None]]:
    server = make_server(
        "127.0.0.1", 0, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    host, port = server.server_address[:2]

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    return f"http://{host}:{port}/", stop


def serve_pulsar(app: Callable[..., Any], **settings: Any) -> tuple[str, Callable[[], None]]:
    """pulsar-wsgi's protocol factory on ``loop.create_server`` in a background thread."""
    from pulsar.apps.wsgi import create_protocol_factory

    settings.setdefault("access_log", False)
    settings.setdefault("thread_workers", 8)
    factory = create_protocol_factory(app, **settings)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    servers: list[asyncio.Server] = []

    async def start() -> None:
        servers.append(await loop.create_server(factory, "127.0.0.1", 0))

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="rpc-test-server", daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("the test server did not start")
    port = servers[0].sockets[0].getsockname()[1]

    def stop() -> None:
        async def close() -> None:
            servers[0].close()
            await factory.state.shutdown(1.0)
            await servers[0].wait_closed()

        asyncio.run_coroutine_threadsafe(close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()

    return f"http://127.0.0.1:{port}/", stop


def serve(app: Callable[..., Any]) -> tuple[str, Callable[[], None]]:
    """Run ``app`` on a real HTTP server chosen by :data:`SERVER`: ``(url, stop)``."""
    if SERVER == "wsgiref":
        return serve_wsgiref(app)
    return serve_pulsar(app)
