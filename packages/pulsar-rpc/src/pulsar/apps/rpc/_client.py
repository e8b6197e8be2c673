"""The JSON-RPC client: :class:`JsonProxy` (async or sync) on httpx.

How it works: attribute access builds a method name (``proxy.calc.add`` -> ``"calc.add"``);
calling it posts one request object and returns the ``result``, or raises the
:class:`RpcError` subclass matching the error code. The request encoding and the response
checks are shared by both modes; only the transport differs (``httpx.AsyncClient`` or
``httpx.Client``). A :class:`Batch` collects calls and posts them as one array, matching the
responses by ``id``.

Attributes starting with ``_`` and the proxy's own methods (``call``, ``notify``, ``batch``,
``close``, ``aclose``) are not remote names; reach a remote method with such a name through
``proxy.call("batch", ...)``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from ._errors import RpcError, RpcTimeoutError, TransportError, _rebuild, error_class

__all__ = ["Batch", "BatchCall", "JsonProxy", "SyncJsonProxy"]

_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
_MISSING: Any = object()


def _params(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if args and kwargs:
        raise TypeError(f"{name}(): JSON-RPC params are by position or by name, not both at once")
    if kwargs:
        return kwargs
    if args:
        return list(args)
    return _MISSING


def _request(method: str, params: Any, rid: Any = _MISSING) -> dict[str, Any]:
    obj: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not _MISSING:
        obj["params"] = params
    if rid is not _MISSING:
        obj["id"] = rid
    return obj


def _error_from(obj: Any) -> RpcError:
    """The exception for a JSON-RPC error object (a TransportError when it is malformed)."""
    if not isinstance(obj, dict) or not isinstance(obj.get("code"), int):
        return TransportError("Transport error: malformed error object", {"error": obj})
    code = obj["code"]
    return _rebuild(error_class(code), code, str(obj.get("message", "")), obj.get("data"))


def _decode(response: httpx.Response, *, expect_body: bool) -> Any:
    """The JSON body of an HTTP response, checking its status; None for an empty 204."""
    status = response.status_code
    if status == 204:
        if expect_body:
            raise TransportError("Transport error: the server sent no response", {"status": 204})
        return None
    try:
        data = json.loads(response.content) if response.content else _MISSING
    except ValueError:
        data = _MISSING
    if status != 200:
        message = f"Transport error: HTTP {status}"
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            message = str(data["error"].get("message") or message)
        raise TransportError(message, {"status": status})
    if data is _MISSING:
        raise TransportError(
            "Transport error: the response is not JSON", {"body": response.text[:200]}
        )
    return data


def _single_result(data: Any, rid: Any) -> Any:
    if not isinstance(data, dict) or data.get("jsonrpc") != "2.0":
        raise TransportError("Transport error: not a JSON-RPC response", {"response": data})
    if "error" in data:
        raise _error_from(data["error"])
    if data.get("id") != rid:
        raise TransportError(
            f"Transport error: response id {data.get('id')!r} does not match {rid!r}"
        )
    if "result" not in data:
        raise TransportError("Transport error: response without result", {"response": data})
    return data["result"]


def _translate(exc: httpx.HTTPError, url: str) -> RpcError:
    if isinstance(exc, httpx.TimeoutException):
        return RpcTimeoutError(f"Timed out waiting for {url} ({type(exc).__name__})")
    return TransportError(f"Transport error: {type(exc).__name__}: {exc}", {"url": url})


class _Name:
    """``proxy.calc.add``: a dotted remote name, called through ``target``."""

    __slots__ = ("_name", "_target")

    def __init__(self, target: Callable[..., Any], name: str) -> None:
        self._target = target
        self._name = name

    def __getattr__(self, name: str) -> _Name:
        if name.startswith("_"):
            raise AttributeError(name)
        return _Name(self._target, f"{self._name}.{name}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._target(self._name, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<remote method {self._name}>"


class JsonProxy:
    """A JSON-RPC 2.0 client for the server at ``url``.

    ``await proxy.calc.add(1, 2)`` calls ``calc.add`` with params ``[1, 2]``;
    ``proxy.calc.add(a=1, b=2)`` sends them by name. With ``sync=True`` calls return the result
    directly (for scripts). Remote errors raise :class:`RpcError` (the subclass matching the
    code, with ``code``, ``message`` and ``data``); HTTP failures raise
    :class:`TransportError`, and no response within ``timeout`` :class:`RpcTimeoutError`.

    Args:
        url: the endpoint (``http://127.0.0.1:8060/``).
        sync: blocking calls on ``httpx.Client`` instead of ``httpx.AsyncClient``.
        timeout: seconds to wait for a response (None: for ever).
        headers: extra HTTP headers (authentication...).
        client: an httpx client to use instead of a new one (not closed by :meth:`close`).
        transport: an httpx transport for the new client (``httpx.WSGITransport(app)``).
    """

    def __init__(
        self,
        url: str,
        *,
        sync: bool = False,
        timeout: float | None = 30.0,
        headers: Mapping[str, str] | None = None,
        client: httpx.Client | httpx.AsyncClient | None = None,
        transport: Any = None,
    ) -> None:
        self._url = url
        self._sync = sync
        self._ids = itertools.count(1)
        self._own = client is None
        if client is None:
            options: dict[str, Any] = {
                "timeout": timeout,
                "headers": {**_HEADERS, **(headers or {})},
            }
            if transport is not None:
                options["transport"] = transport
            client = httpx.Client(**options) if sync else httpx.AsyncClient(**options)
        elif sync != isinstance(client, httpx.Client):
            raise TypeError("a sync proxy needs an httpx.Client, an async one an AsyncClient")
        self._client = client

    @property
    def url(self) -> str:
        """The endpoint."""
        return self._url

    @property
    def sync(self) -> bool:
        """True when calls block and return results."""
        return self._sync

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._url!r}{', sync=True' if self._sync else ''})"

    def __getattr__(self, name: str) -> _Name:
        if name.startswith("_"):
            raise AttributeError(name)
        return _Name(self.call, name)

    def _next_id(self) -> int:
        return next(self._ids)

    # -- calls ----------------------------------------------------------------------------------
    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``method``; returns the result (sync) or an awaitable of it (async)."""
        rid = self._next_id()
        body = _request(method, _params(method, args, kwargs), rid)
        if self._sync:
            return _single_result(self._post_sync(body, expect_body=True), rid)
        return self._call_async(body, rid)

    async def _call_async(self, body: Any, rid: Any) -> Any:
        return _single_result(await self._post_async(body, expect_body=True), rid)

    def notify(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Send a notification (no ``id``, no response); None, or an awaitable of None."""
        body = _request(method, _params(method, args, kwargs))
        if self._sync:
            self._post_sync(body, expect_body=False)
            return None
        return self._post_async(body, expect_body=False)

    def batch(self) -> Batch:
        """A :class:`Batch` of calls posted together (``async with proxy.batch() as b``)."""
        return Batch(self)

    # -- transport ------------------------------------------------------------------------------
    def _post_sync(self, body: Any, *, expect_body: bool) -> Any:
        assert isinstance(self._client, httpx.Client)
        try:
            response = self._client.post(self._url, content=json.dumps(body).encode())
        except httpx.HTTPError as exc:
            raise _translate(exc, self._url) from exc
        return _decode(response, expect_body=expect_body)

    async def _post_async(self, body: Any, *, expect_body: bool) -> Any:
        assert isinstance(self._client, httpx.AsyncClient)
        try:
            response = await self._client.post(self._url, content=json.dumps(body).encode())
        except httpx.HTTPError as exc:
            raise _translate(exc, self._url) from exc
        return _decode(response, expect_body=expect_body)

    # -- closing --------------------------------------------------------------------------------
    def close(self) -> None:
        """Close a sync proxy's HTTP client (async proxies: :meth:`aclose`)."""
        if self._own and isinstance(self._client, httpx.Client):
            self._client.close()

    async def aclose(self) -> None:
        """Close the HTTP client (either mode)."""
        if not self._own:
            return
        if isinstance(self._client, httpx.AsyncClient):
            await self._client.aclose()
        else:
            self._client.close()

    def __enter__(self) -> JsonProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> JsonProxy:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class SyncJsonProxy(JsonProxy):
    """A :class:`JsonProxy` with ``sync=True``: calls block and return the result."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        kwargs["sync"] = True
        super().__init__(url, **kwargs)


class BatchCall:
    """The outcome of one call of a :class:`Batch`, known once the batch is sent."""

    __slots__ = ("_error", "_result", "method")

    def __init__(self, method: str) -> None:
        self.method = method
        self._result: Any = _MISSING
        self._error: RpcError | None = None

    def done(self) -> bool:
        """True once the batch was sent and answered."""
        return self._result is not _MISSING or self._error is not None

    def result(self) -> Any:
        """The call's result; raises its :class:`RpcError`, or RuntimeError before sending."""
        if self._error is not None:
            raise self._error
        if self._result is _MISSING:
            raise RuntimeError(f"the batch holding {self.method} was not sent yet")
        return self._result

    def exception(self) -> RpcError | None:
        """The call's error, or None."""
        if not self.done():
            raise RuntimeError(f"the batch holding {self.method} was not sent yet")
        return self._error

    def _set(self, result: Any = _MISSING, error: RpcError | None = None) -> None:
        self._result, self._error = result, error

    def __repr__(self) -> str:
        state = "pending" if not self.done() else ("error" if self._error else "done")
        return f"<BatchCall {self.method} {state}>"


class Batch:
    """Calls collected and posted as one JSON-RPC batch.

    ``b.calc.add(1, 2)`` (or ``b.call("calc.add", 1, 2)``) returns a :class:`BatchCall`;
    ``b.notify(...)`` adds a notification. Leaving ``async with proxy.batch() as b`` (or
    ``with`` for a sync proxy) sends the batch, unless the block raised; :meth:`send` sends it
    explicitly. A batch is sent once.
    """

    def __init__(self, proxy: JsonProxy) -> None:
        self._proxy = proxy
        self._requests: list[dict[str, Any]] = []
        self._calls: dict[Any, BatchCall] = {}
        self._sent = False

    def __getattr__(self, name: str) -> _Name:
        if name.startswith("_"):
            raise AttributeError(name)
        return _Name(self.call, name)

    def __len__(self) -> int:
        return len(self._requests)

    def call(self, method: str, *args: Any, **kwargs: Any) -> BatchCall:
        """Add a call; its :class:`BatchCall` holds the outcome once the batch is sent."""
        self._check_open()
        rid = self._proxy._next_id()
        self._requests.append(_request(method, _params(method, args, kwargs), rid))
        call = self._calls[rid] = BatchCall(method)
        return call

    def notify(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Add a notification (no response)."""
        self._check_open()
        self._requests.append(_request(method, _params(method, args, kwargs)))

    def _check_open(self) -> None:
        if self._sent:
            raise RuntimeError("this batch was sent already")

    def send(self) -> Any:
        """Post the batch. Returns the calls' :class:`BatchCall` list (sync proxy) or an
        awaitable of it; transport failures raise :class:`TransportError`."""
        self._check_open()
        self._sent = True
        if self._proxy.sync:
            if self._requests:
                self._settle(self._proxy._post_sync(self._requests, expect_body=bool(self._calls)))
            return list(self._calls.values())
        return self._send_async()

    async def _send_async(self) -> list[BatchCall]:
        if self._requests:
            data = await self._proxy._post_async(self._requests, expect_body=bool(self._calls))
            self._settle(data)
        return list(self._calls.values())

    def _settle(self, data: Any) -> None:
        if not self._calls:
            return
        if isinstance(data, dict) and "error" in data:  # the batch as a whole was rejected
            error = _error_from(data["error"])
            for call in self._calls.values():
                call._set(error=error)
            return
        if not isinstance(data, list):
            raise TransportError(
                "Transport error: a batch needs an array response", {"response": data}
            )
        for item in data:
            if not isinstance(item, dict):
                continue
            found = self._calls.get(item.get("id"))
            if found is None:
                continue
            if "error" in item:
                found._set(error=_error_from(item["error"]))
            elif "result" in item:
                found._set(result=item["result"])
        for call in self._calls.values():
            if not call.done():
                call._set(error=TransportError(f"Transport error: no response for {call.method}"))

    def __enter__(self) -> Batch:
        if not self._proxy.sync:
            raise TypeError("use 'async with' with an async proxy")
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None and not self._sent:
            self.send()

    async def __aenter__(self) -> Batch:
        if self._proxy.sync:
            raise TypeError("use 'with' with a sync proxy")
        return self

    async def __aexit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None and not self._sent:
            await self.send()
