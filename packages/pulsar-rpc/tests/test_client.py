"""JsonProxy: sync mode on httpx.WSGITransport, async mode over a real socket."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import rpc_helpers as h

from pulsar.apps import rpc

URL = "http://testserver/"


@pytest.fixture
def proxy(root: rpc.JSONRPC) -> Iterator[rpc.JsonProxy]:
    with rpc.SyncJsonProxy(URL, transport=httpx.WSGITransport(app=root)) as p:
        yield p


@pytest.fixture
def url(root: rpc.JSONRPC, serve: Callable[[Any], str]) -> str:
    return serve(root)


# --------------------------------------------------------------------------- sync


def test_sync_calls(proxy: rpc.JsonProxy) -> None:
    assert proxy.sync and "sync=True" in repr(proxy)
    assert proxy.ping() == "pong"
    assert proxy.calc.add(1, 2) == 3
    assert proxy.calc.subtract(minuend=10, subtrahend=3) == 7
    assert proxy.calc.sleep(0.01) == 0.01
    assert proxy.call("calc.add", 2, 2) == 4
    assert proxy.echo({"nested": [1, None, "x"]}) == {"nested": [1, None, "x"]}


def test_sync_flag_on_json_proxy(root: rpc.JSONRPC) -> None:
    p = rpc.JsonProxy(URL, sync=True, transport=httpx.WSGITransport(app=root))
    assert p.calc.add(5, 5) == 10
    p.close()


def test_remote_errors(proxy: rpc.JsonProxy) -> None:
    with pytest.raises(rpc.MethodNotFound) as info:
        proxy.calc.nope()
    assert info.value.code == -32601
    with pytest.raises(rpc.InvalidParams):
        proxy.calc.add(1)
    with pytest.raises(rpc.RpcError) as err:
        proxy.calc.divide(1, 0)
    assert type(err.value) is rpc.ServerError  # -32001: in the -32000 ... -32099 range
    assert (err.value.code, err.value.message, err.value.data) == (
        -32001,
        "division by zero",
        {"a": 1},
    )
    with pytest.raises(rpc.InternalError):
        proxy.calc.fail()
    assert proxy.ping() == "pong"


def test_mixed_params_are_refused(proxy: rpc.JsonProxy) -> None:
    with pytest.raises(TypeError, match="not both"):
        proxy.calc.add(1, b=2)


def test_private_attributes_are_not_remote(proxy: rpc.JsonProxy) -> None:
    with pytest.raises(AttributeError):
        proxy._secret  # noqa: B018
    with pytest.raises(AttributeError):
        proxy.calc._secret  # noqa: B018


def test_sync_notify(proxy: rpc.JsonProxy) -> None:
    h.RECORDED.clear()
    assert proxy.notify("calc.record", "n") is None
    assert h.RECORDED == ["n"]


def test_sync_batch(proxy: rpc.JsonProxy) -> None:
    h.RECORDED.clear()
    with proxy.batch() as b:
        add = b.calc.add(1, 2)
        sub = b.calc.subtract(minuend=5, subtrahend=1)
        bad = b.calc.nope()
        b.notify("calc.record", 1)
        assert not add.done()
        with pytest.raises(RuntimeError):
            add.result()
    assert len(b) == 4
    assert add.result() == 3 and sub.result() == 4
    assert isinstance(bad.exception(), rpc.MethodNotFound)
    with pytest.raises(rpc.MethodNotFound):
        bad.result()
    assert h.RECORDED == [1]
    with pytest.raises(RuntimeError):
        b.call("ping")


def test_sync_batch_only_notifications(proxy: rpc.JsonProxy) -> None:
    h.RECORDED.clear()
    with proxy.batch() as b:
        b.notify("calc.record", 1)
        b.notify("calc.record", 2)
    assert sorted(h.RECORDED) == [1, 2]


def test_sync_batch_rejected_as_a_whole(root: rpc.JSONRPC) -> None:
    small = h.make_root(max_batch=2)
    proxy = rpc.SyncJsonProxy(URL, transport=httpx.WSGITransport(app=small))
    b = proxy.batch()
    calls = [b.ping() for _ in range(3)]
    assert [c.done() for c in b.send()] == [True] * 3
    assert all(isinstance(c.exception(), rpc.InvalidRequest) for c in calls)
    assert proxy.batch().send() == []  # empty: nothing sent


def test_http_errors_become_transport_errors(root: rpc.JSONRPC) -> None:
    small = h.make_root(max_body=50)
    proxy = rpc.SyncJsonProxy(URL, transport=httpx.WSGITransport(app=small))
    with pytest.raises(rpc.TransportError) as info:
        proxy.echo("x" * 100)
    assert info.value.data == {"status": 413}
    assert info.value.code == -32300

    def not_json(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]

    proxy = rpc.SyncJsonProxy(URL, transport=httpx.WSGITransport(app=not_json))
    with pytest.raises(rpc.TransportError, match="not JSON"):
        proxy.ping()


def test_connection_refused() -> None:
    from pulsar.apps.test import unused_tcp_port

    proxy = rpc.SyncJsonProxy(f"http://127.0.0.1:{unused_tcp_port()}/")
    with pytest.raises(rpc.TransportError) as info:
        proxy.ping()
    assert not isinstance(info.value, rpc.RpcTimeoutError)
    proxy.close()


def test_client_timeout(url: str) -> None:
    proxy = rpc.SyncJsonProxy(url, timeout=0.2)
    with pytest.raises(rpc.RpcTimeoutError):
        proxy.calc.sleep(1.0)
    assert proxy.ping() == "pong"
    proxy.close()


def test_client_type_mismatch() -> None:
    with pytest.raises(TypeError):
        rpc.JsonProxy(URL, client=httpx.Client())
    with pytest.raises(TypeError):
        rpc.JsonProxy(URL, sync=True, client=httpx.AsyncClient())


def test_batch_context_mismatch(proxy: rpc.JsonProxy) -> None:
    with pytest.raises(TypeError), proxy.batch().__class__(rpc.JsonProxy(URL)):
        pass


# --------------------------------------------------------------------------- async


async def test_async_calls(url: str) -> None:
    async with rpc.JsonProxy(url) as proxy:
        assert not proxy.sync and proxy.url == url
        assert await proxy.ping() == "pong"
        assert await proxy.calc.add(1, 2) == 3
        assert await proxy.calc.add(a=1.5, b=2) == 3.5
        results = await asyncio.gather(*(proxy.calc.sleep(0.05) for _ in range(10)))
        assert results == [0.05] * 10
        with pytest.raises(rpc.InvalidParams):
            await proxy.calc.add(1, 2, 3)
        assert await proxy.notify("calc.record", "async") is None


async def test_async_batch(url: str) -> None:
    proxy = rpc.JsonProxy(url)
    async with proxy.batch() as b:
        calls = [b.calc.add(i, i) for i in range(20)]
        slow = b.calc.sleep(0.1)
        bad = b.calc.add("x", 1)
    assert [c.result() for c in calls] == [2 * i for i in range(20)]
    assert slow.result() == 0.1
    assert isinstance(bad.exception(), rpc.InvalidParams)
    b2 = proxy.batch()
    b2.ping()
    (only,) = await b2.send()
    assert only.result() == "pong"
    await proxy.aclose()


async def test_async_timeout(url: str) -> None:
    async with rpc.JsonProxy(url, timeout=0.2) as proxy:
        with pytest.raises(rpc.RpcTimeoutError):
            await proxy.calc.sleep(1.0)
        assert await proxy.ping() == "pong"


async def test_batch_block_that_raises_sends_nothing(url: str) -> None:
    h.RECORDED.clear()
    async with rpc.JsonProxy(url) as proxy:
        with pytest.raises(ZeroDivisionError):
            async with proxy.batch() as b:
                b.notify("calc.record", 1)
                1 / 0  # noqa: B018
        assert await proxy.ping() == "pong"
    assert h.RECORDED == []
