"""Over a real socket: every bad input of the issue gets a clear error and the server keeps
serving (the server is chosen by the ``serve`` fixture)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import rpc_helpers as h

from pulsar.apps import rpc

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def server(serve: Callable[[Any], str]) -> Iterator[tuple[str, httpx.Client]]:
    root = h.make_root(timeout=0.5, max_batch=20, max_body=4096)
    url = serve(root)
    with httpx.Client(timeout=10) as client:
        yield url, client
    root.close()


def keeps_serving(url: str, client: httpx.Client) -> None:
    body = {"jsonrpc": "2.0", "method": "calc.add", "params": [2, 3], "id": "ok"}
    resp = client.post(url, json=body)
    assert resp.status_code == 200
    assert resp.json() == {"jsonrpc": "2.0", "result": 5, "id": "ok"}


def big_batch() -> bytes:
    return json.dumps([{"jsonrpc": "2.0", "method": "ping", "id": i} for i in range(21)]).encode()


def call(method: str, params: Any = None, rid: Any = 1) -> bytes:
    obj: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": rid}
    if params is not None:
        obj["params"] = params
    return json.dumps(obj).encode()


# (label, body, expected HTTP status, expected error code(s) in order)
BAD_INPUTS: list[tuple[str, bytes, int, list[int]]] = [
    (
        "invalid JSON",
        b'{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]',
        200,
        [-32700],
    ),
    ("truncated JSON", b'{"jsonrpc": "2.0", ', 200, [-32700]),
    ("empty body", b"", 200, [-32700]),
    ("empty array", b"[]", 200, [-32600]),
    ("array of non-objects", b"[1, 2, 3]", 200, [-32600, -32600, -32600]),
    ("jsonrpc missing", b'{"method": "ping", "id": 1}', 200, [-32600]),
    ("jsonrpc not 2.0", b'{"jsonrpc": "1.0", "method": "ping", "id": 1}', 200, [-32600]),
    ("method not a string", b'{"jsonrpc": "2.0", "method": 1, "params": "bar"}', 200, [-32600]),
    ("unknown rpc. method", call("rpc.unknown"), 200, [-32601]),
    ("unknown method", call("calc.nothing"), 200, [-32601]),
    (
        "params not structured",
        b'{"jsonrpc": "2.0", "method": "ping", "params": 1, "id": 1}',
        200,
        [-32600],
    ),
    ("params of the wrong type", call("calc.subtract", ["a", 1]), 200, [-32602]),
    ("too many args", call("calc.add", [1, 2, 3]), 200, [-32602]),
    ("too few args", call("calc.add", [1]), 200, [-32602]),
    ("unknown named arg", call("calc.add", {"a": 1, "c": 2}), 200, [-32602]),
    ("huge batch over the limit", big_batch(), 200, [-32600]),
    ("a method that raises", call("calc.fail"), 200, [-32603]),
    ("an application error", call("calc.divide", [1, 0]), 200, [-32001]),
    ("a method that hangs", call("calc.sleep", [60]), 200, [-32000]),
    ("a blocking method that hangs", call("calc.block", [2]), 200, [-32000]),
    ("a result that is not JSON", call("calc.unserializable"), 200, [-32603]),
    ("non-UTF-8 bytes", b'{"jsonrpc": "2.0", "method": "\xff\xfe", "id": 1}', 200, [-32700]),
    ("latin-1 text", '{"jsonrpc": "2.0", "method": "é", "id": 1}'.encode("latin-1"), 200, [-32700]),
    ("body over the size limit", call("echo", ["x" * 5000]), 413, []),
]


@pytest.mark.parametrize(
    ("body", "status", "codes"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
def test_bad_input(
    server: tuple[str, httpx.Client], body: bytes, status: int, codes: list[int]
) -> None:
    url, client = server
    start = time.monotonic()
    resp = client.post(url, content=body, headers=JSON)
    assert time.monotonic() - start < 5
    assert resp.status_code == status, resp.text
    if codes:
        data = resp.json()
        items = data if isinstance(data, list) else [data]
        assert [item["error"]["code"] for item in items] == codes
        assert all(item["jsonrpc"] == "2.0" for item in items)
    keeps_serving(url, client)


def test_wrong_http_method(server: tuple[str, httpx.Client]) -> None:
    url, client = server
    for method in ("GET", "PUT", "DELETE"):
        resp = client.request(method, url)
        assert resp.status_code == 405 and resp.headers["allow"] == "POST"
    keeps_serving(url, client)


def test_wrong_content_type(server: tuple[str, httpx.Client]) -> None:
    url, client = server
    resp = client.post(url, content=call("ping"), headers={"Content-Type": "text/plain"})
    assert resp.status_code == 415
    resp = client.post(url, data={"a": "b"})
    assert resp.status_code == 415
    keeps_serving(url, client)


def test_notifications_over_http(server: tuple[str, httpx.Client]) -> None:
    url, client = server
    resp = client.post(url, json={"jsonrpc": "2.0", "method": "ping"})
    assert resp.status_code == 204 and resp.content == b""
    batch = [{"jsonrpc": "2.0", "method": "calc.record", "params": [i]} for i in range(3)]
    resp = client.post(url, json=batch)
    assert resp.status_code == 204 and resp.content == b""
    keeps_serving(url, client)


def test_client_disconnects_mid_call(server: tuple[str, httpx.Client]) -> None:
    url, client = server
    parts = urlsplit(url)
    body = call("calc.sleep", [0.2])
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
    time.sleep(0.3)
    keeps_serving(url, client)


def test_many_clients_at_once(server: tuple[str, httpx.Client]) -> None:
    import concurrent.futures

    url, _ = server

    def one(i: int) -> Any:
        with rpc.SyncJsonProxy(url) as proxy:
            return proxy.calc.add(i, 1)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert list(pool.map(one, range(40))) == [i + 1 for i in range(40)]


def test_mounted_on_a_router_path(serve: Callable[[Any], str]) -> None:
    from pulsar.apps.wsgi import Router

    handler = h.make_root()
    router = Router()
    router.add("/api/rpc", handler, methods=["POST"])
    url = serve(router) + "api/rpc"
    with rpc.SyncJsonProxy(url) as proxy:
        assert proxy.calc.add(1, 2) == 3
        with proxy.batch() as batch:
            pong = batch.ping()
        assert pong.result() == "pong"
    with httpx.Client() as client:
        assert client.post(url.replace("/api/rpc", "/nope"), json={}).status_code == 404
    handler.close()
