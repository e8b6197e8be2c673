"""The JSON-RPC 2.0 handler: a WSGI application dispatching to ``rpc_<name>`` methods.

How it works: :meth:`JSONRPC.__call__` (PEP 3333) checks the HTTP envelope (``POST`` only,
a JSON content type, the body size) and hands the body to :meth:`JSONRPC.dispatch`, which:

1. parses it with the sans-IO :func:`~._protocol.parse_payload` (strict UTF-8 and JSON, every
   request object checked against the specification);
2. resolves each method name through the sub-handlers (``calc.add`` is the method ``add`` of
   the handler mounted under ``calc``), answering -32601 for unknown names;
3. binds the params to the method's signature *before* anything runs (-32602);
4. runs the calls: ``async def`` methods together on an event loop (the pulsar actor's loop
   when there is one, see :mod:`._loops`), plain methods on the handler's thread pool, so the
   calls of a batch run concurrently; each call has ``rpc_timeout`` seconds;
5. encodes one response object per call that has an ``id`` (notifications get none), in the
   order of the requests.

RPC-level errors are sent with HTTP 200; a body made only of notifications gets HTTP 204.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar

import pulsar

from . import _openrpc
from ._errors import CallTimeout, InternalError, InvalidParams, MethodNotFound, RpcError
from ._loops import run_threadsafe
from ._methods import RpcFunction, RpcMethod, rpc_method
from ._protocol import (
    Call,
    Rejected,
    encode_error,
    encode_result_or_error,
    join_responses,
    parse_payload,
)
from ._settings import RpcErrorDetails, RpcMaxBatch, RpcMaxBody, RpcThreadWorkers, RpcTimeout

__all__ = ["JSONRPC", "RpcRequest"]

logger = logging.getLogger("pulsar.rpc")

_MISSING: Any = object()

#: constructor keyword -> setting class
_SETTINGS: dict[str, type[pulsar.Setting]] = {
    "timeout": RpcTimeout,
    "max_batch": RpcMaxBatch,
    "max_body": RpcMaxBody,
    "thread_workers": RpcThreadWorkers,
    "error_details": RpcErrorDetails,
}

_JSON_TYPES = frozenset(("application/json", "application/json-rpc", "application/jsonrequest"))
_JSON_HEADERS = [("Content-Type", "application/json")]
_DISCOVER = "rpc.discover"


class RpcRequest:
    """What an rpc method receives as ``request``.

    Attributes:
        environ: the WSGI environ of the HTTP request (headers, ``REMOTE_ADDR``...).
        actor: the pulsar actor serving the request, or None outside pulsar. In an ``async``
            method running on the actor's loop, ``pulsar.send`` works as well.
        handler: the handler owning the method; ``root``: the one serving the HTTP request.
        method: the full method name (``calc.add``); ``id``: the request id (None for a
            notification); ``params``: the params as received; ``notification``: no response.
    """

    __slots__ = ("actor", "environ", "handler", "id", "method", "notification", "params", "root")

    def __init__(
        self,
        environ: dict[str, Any],
        actor: Any,
        handler: JSONRPC,
        root: JSONRPC,
        call: Call,
    ) -> None:
        self.environ = environ
        self.actor = actor
        self.handler = handler
        self.root = root
        self.method = call.method
        self.id = call.id
        self.params = call.params
        self.notification = call.notification

    def __repr__(self) -> str:
        return f"<RpcRequest {self.method} id={self.id!r}>"


class _Job:
    """One call about to run: where its response goes and what to call."""

    __slots__ = ("args", "call", "index", "kwargs", "method", "request")

    def __init__(
        self, index: int, call: Call, method: RpcMethod, bound: Any, request: RpcRequest
    ) -> None:
        self.index = index
        self.call = call
        self.method = method
        self.request = request
        args = bound.args
        self.args = (request, *args) if method.request else args
        self.kwargs = bound.kwargs


def _collect(cls: type) -> dict[str, str]:
    """``{rpc name: attribute name}`` of a handler class, base classes first."""
    table: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        for attr, value in vars(klass).items():
            if attr.startswith("rpc_"):
                default = attr[4:]
                if value is None:  # ``rpc_kill_actor = None`` removes an inherited method
                    table = {n: a for n, a in table.items() if n != default}
                    continue
                if isinstance(value, type) or not callable(value):
                    continue
                name = default
                if isinstance(value, RpcFunction) and value.name:
                    name = value.name
            elif isinstance(value, RpcFunction):
                name = value.name or str(getattr(value.func, "__name__", attr))
            else:
                continue
            table[name] = attr
    return table


class JSONRPC:
    """A JSON-RPC 2.0 handler; an instance is a WSGI application.

    Subclass it and add methods ``rpc_<name>(self, request, ...)``, plain or ``async def``;
    they are exposed as ``<name>``. Mount other handlers under a prefix with
    :meth:`add_handler` (``calc.add``); add plain functions with :meth:`add_method` or
    :func:`rpc_method`. The reserved method ``rpc.discover`` returns the OpenRPC document.

    A method returns any JSON-serializable value, or raises :class:`RpcError` to answer with
    that error object; any other exception becomes -32603 (logged with its traceback).

    Keyword args override the ``rpc`` settings (see :mod:`._settings`), otherwise read from
    the configuration of the pulsar actor serving the request, else their defaults:

    Args:
        timeout: seconds per call (0: no limit); ``rpc_timeout``.
        max_batch: the most calls in one batch; ``rpc_max_batch``.
        max_body: the largest body in bytes (HTTP 413 beyond); ``rpc_max_body``.
        thread_workers: threads running plain methods; ``rpc_thread_workers``.
        error_details: put the exception in -32603 errors; ``rpc_error_details``.
        title: the API title in the OpenRPC document (default: the class name).
        version: the API version in the OpenRPC document (default: pulsar's version).
    """

    _rpc_class_methods: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._rpc_class_methods = _collect(cls)

    def __init__(
        self,
        *,
        timeout: float | None = None,
        max_batch: int | None = None,
        max_body: int | None = None,
        thread_workers: int | None = None,
        error_details: bool | None = None,
        title: str | None = None,
        version: str | None = None,
    ) -> None:
        given = {
            "timeout": timeout,
            "max_batch": max_batch,
            "max_body": max_body,
            "thread_workers": thread_workers,
            "error_details": error_details,
        }
        self._options: dict[str, Any] = {}
        for key, value in given.items():
            if value is not None:
                try:
                    self._options[key] = _SETTINGS[key].validate(value)
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"{key}: invalid value {value!r} ({exc})") from None
        self.title = title or type(self).__name__
        self.version = version or pulsar.__version__
        self._handlers: dict[str, JSONRPC] = {}
        self._added: list[tuple[str, Callable[..., Any], bool]] = []
        self._init_runtime()

    def _init_runtime(self) -> None:
        self._methods: dict[str, RpcMethod] = {}
        for name, attr in type(self)._rpc_class_methods.items():
            value = getattr(self, attr)
            if isinstance(value, RpcFunction):
                self._methods[name] = RpcMethod(name, value.func, request=value.request)
            else:
                self._methods[name] = RpcMethod(name, value, request=True)
        for name, func, request in self._added:
            self._methods[name] = RpcMethod(name, func, request=request)
        self._discover = RpcMethod(_DISCOVER, self._rpc_discover, request=True)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    # -- pickling: a handler travels to worker processes inside the application ---------------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for key in ("_methods", "_discover", "_executor", "_lock"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_runtime()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {len(self._methods)} methods>"

    # -- building -------------------------------------------------------------------------------
    def add_handler(self, prefix: str, handler: JSONRPC) -> JSONRPC:
        """Mount ``handler`` under ``prefix``: its method ``add`` becomes ``<prefix>.add``.

        Returns self (calls chain). Raises ValueError for an empty prefix, one with a dot, or
        ``rpc`` (reserved by the specification), and TypeError for a non-handler.
        """
        if not isinstance(handler, JSONRPC):
            raise TypeError(f"add_handler() needs a JSONRPC handler, not {handler!r}")
        if not prefix or "." in prefix or prefix == "rpc":
            raise ValueError(f"invalid handler prefix {prefix!r}")
        if handler is self:
            raise ValueError("a handler cannot be mounted on itself")
        self._handlers[prefix] = handler
        return self

    def add_method(
        self, func: Callable[..., Any], name: str | None = None, *, request: bool | None = None
    ) -> JSONRPC:
        """Expose ``func`` (sync or ``async``, or an :func:`rpc_method`) as ``name``.

        ``name`` defaults to the rpc_method's name or the function's ``__name__``; ``request``
        (pass the request first) to the rpc_method's choice or, for a plain function, whether
        its first parameter is called ``request``. Returns self.
        """
        if isinstance(func, RpcFunction):
            wrapped = func
        else:
            wrapped = rpc_method(request=request)(func)
        if request is not None:
            wrapped.request = request
        if name is None:
            name = wrapped.name or getattr(wrapped.func, "__name__", "")
        if not name or "." in name or name.startswith("rpc."):
            raise ValueError(f"invalid rpc method name {name!r}")
        self._added.append((name, wrapped.func, wrapped.request))
        self._methods[name] = RpcMethod(name, wrapped.func, request=wrapped.request)
        return self

    @property
    def handlers(self) -> dict[str, JSONRPC]:
        """The mounted sub-handlers, ``{prefix: handler}`` (a copy)."""
        return dict(self._handlers)

    def get_method(self, name: str) -> tuple[JSONRPC, RpcMethod] | None:
        """The handler owning method ``name`` (``calc.add``) and the method, or None.

        ``rpc.discover`` is answered by this handler itself.
        """
        if name == _DISCOVER:
            return self, self._discover
        handler: JSONRPC | None = self
        *path, short = name.split(".")
        for prefix in path:
            handler = handler._handlers.get(prefix) if handler is not None else None
        if handler is None:
            return None
        method = handler._methods.get(short)
        return None if method is None else (handler, method)

    def methods(self, prefix: str = "") -> Iterator[tuple[str, RpcMethod]]:
        """Every method as ``(full name, RpcMethod)``: this handler's first, then each
        sub-handler's, in the order they were added (``rpc.discover`` is not listed)."""
        for name, method in self._methods.items():
            yield f"{prefix}{name}", method
        for sub, handler in self._handlers.items():
            yield from handler.methods(f"{prefix}{sub}.")

    def method_names(self) -> list[str]:
        """The full names of every method (see :meth:`methods`)."""
        return [name for name, _ in self.methods()]

    # -- settings -------------------------------------------------------------------------------
    def setting(self, key: str, actor: Any = _MISSING) -> Any:
        """The value of limit ``key`` (``timeout``, ``max_batch``, ``max_body``,
        ``thread_workers``, ``error_details``): the constructor's, else the ``rpc_<key>``
        setting of the actor's configuration, else the setting's default."""
        if key in self._options:
            return self._options[key]
        cls = _SETTINGS[key]
        if actor is _MISSING:
            actor = pulsar.get_actor()
        cfg = getattr(actor, "cfg", None)
        if cfg is not None:
            value = cfg.get(cls.name, _MISSING)
            if value is not _MISSING:
                return value
        return cls.validate(cls.default)

    # -- introspection --------------------------------------------------------------------------
    def discover(self) -> dict[str, Any]:
        """The OpenRPC document of every method (what ``rpc.discover`` returns)."""
        return _openrpc.document(self.methods(), title=self.title, version=self.version, doc=self)

    def _rpc_discover(self, request: RpcRequest) -> dict[str, Any]:
        """Returns the OpenRPC schema of this service."""
        return self.discover()

    # -- WSGI -----------------------------------------------------------------------------------
    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """The WSGI application (PEP 3333)."""
        status, headers, body = self.handle(environ)
        start_response(status, headers)
        return [body] if body else []

    def handle(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        """Answer one HTTP request given its WSGI environ: ``(status, headers, body)``."""
        if environ.get("REQUEST_METHOD") != "POST":
            return _http_error(
                "405 Method Not Allowed", "only POST is allowed", [("Allow", "POST")]
            )
        if not _is_json(environ.get("CONTENT_TYPE") or ""):
            return _http_error(
                "415 Unsupported Media Type", "the content type must be application/json"
            )
        actor = pulsar.get_actor()
        limit = self.setting("max_body", actor)
        try:
            body = _read_body(environ, limit)
        except _BodyTooLarge:
            return _http_error(
                "413 Content Too Large", f"the body is larger than {limit} bytes", limit=limit
            )
        except ValueError as exc:
            return _http_error("400 Bad Request", str(exc))
        response = self.dispatch(body, environ, actor=actor)
        if response is None:
            return "204 No Content", [], b""
        return "200 OK", [*_JSON_HEADERS, ("Content-Length", str(len(response)))], response

    # -- dispatching ----------------------------------------------------------------------------
    def dispatch(
        self, body: bytes, environ: dict[str, Any] | None = None, *, actor: Any = _MISSING
    ) -> bytes | None:
        """Answer a JSON-RPC body: the response body, or None when nothing is to be sent.

        Never raises for bad input: every problem becomes an error object.
        """
        if actor is _MISSING:
            actor = pulsar.get_actor()
        payload = parse_payload(body, max_batch=self.setting("max_batch", actor))
        if payload.error is not None:
            return encode_error(None, payload.error)
        environ = environ if environ is not None else {}
        parts: list[bytes | None] = []
        jobs: list[_Job] = []
        for item in payload.items:
            if isinstance(item, Rejected):
                parts.append(encode_error(item.id, item.error))
                continue
            found = self.get_method(item.method)
            if found is None:
                if not item.notification:
                    error = MethodNotFound(f"Method not found: {item.method!r}")
                    parts.append(encode_error(item.id, error))
                continue
            handler, method = found
            try:
                bound = method.bind(item.params)
            except InvalidParams as exc:
                if not item.notification:
                    parts.append(encode_error(item.id, exc))
                continue
            request = RpcRequest(environ, actor, handler, self, item)
            jobs.append(_Job(len(parts), item, method, bound, request))
            parts.append(None)
        if jobs:
            self._run(jobs, parts, actor)
        return join_responses([p for p in parts if p is not None], batch=payload.batch)

    def _run(self, jobs: list[_Job], parts: list[bytes | None], actor: Any) -> None:
        """Run the jobs concurrently and put their responses in ``parts``."""
        timeout = float(self.setting("timeout", actor))
        details = bool(self.setting("error_details", actor))
        outcomes: dict[int, tuple[bool, Any]] = {}
        sync = [job for job in jobs if not job.method.is_async]
        asynchronous = [job for job in jobs if job.method.is_async]
        afuture: concurrent.futures.Future[Any] | None = None
        started = time.monotonic()
        if asynchronous:
            if len(asynchronous) == 1:
                coro: Any = self._invoke_async(asynchronous[0], timeout, details)
            else:
                coro = self._gather(asynchronous, timeout, details)
            afuture = run_threadsafe(coro, actor=actor)
        if len(sync) == 1 and not timeout:
            outcomes[sync[0].index] = self._invoke_sync(sync[0], details)
        elif sync:
            pool = self._pool(actor)
            futures = [(job, pool.submit(self._invoke_sync, job, details)) for job in sync]
            for job, future in futures:
                try:
                    if timeout:
                        wait = max(0.0, started + timeout - time.monotonic())
                        outcomes[job.index] = future.result(wait)
                    else:
                        outcomes[job.index] = future.result()
                except concurrent.futures.TimeoutError:
                    future.cancel()
                    outcomes[job.index] = (False, _timeout_error(job, timeout))
        if afuture is not None:
            try:
                # the calls time out by themselves; the margin covers a loop that stopped
                result = afuture.result(timeout + 5.0 if timeout else None)
            except concurrent.futures.TimeoutError:
                afuture.cancel()
                result = [(False, _timeout_error(job, timeout)) for job in asynchronous]
            except BaseException as exc:  # the loop went away (cancelled at shutdown)
                error = InternalError(f"Internal error: the event loop failed ({exc!r})")
                result = [(False, error) for _ in asynchronous]
            if len(asynchronous) == 1:
                result = [result]
            for job, outcome in zip(asynchronous, result, strict=True):
                outcomes[job.index] = outcome
        for job in jobs:
            ok, value = outcomes[job.index]
            if job.call.notification:
                continue
            if ok:
                parts[job.index] = encode_result_or_error(job.call.id, value)
            else:
                parts[job.index] = encode_error(job.call.id, value)

    def _pool(self, actor: Any) -> concurrent.futures.ThreadPoolExecutor:
        pool = self._executor
        if pool is None:
            with self._lock:
                if self._executor is None:
                    self._executor = concurrent.futures.ThreadPoolExecutor(
                        max_workers=int(self.setting("thread_workers", actor)),
                        thread_name_prefix="pulsar-rpc",
                    )
                pool = self._executor
        return pool

    def _invoke_sync(self, job: _Job, details: bool) -> tuple[bool, Any]:
        """Call a plain method in this thread; ``(True, result)`` or ``(False, RpcError)``."""
        try:
            value = job.method.func(*job.args, **job.kwargs)
            if inspect.isawaitable(value):  # a plain method returning an awaitable
                value = run_threadsafe(_awaited(value), actor=job.request.actor).result()
        except RpcError as exc:
            return False, exc
        except Exception as exc:
            return False, _internal_error(job, exc, details)
        return True, value

    async def _invoke_async(self, job: _Job, timeout: float, details: bool) -> tuple[bool, Any]:
        """Await an ``async`` method within ``timeout``."""
        try:
            async with asyncio.timeout(timeout or None) as scope:
                value = await job.method.func(*job.args, **job.kwargs)
        except RpcError as exc:
            return False, exc
        except TimeoutError as exc:
            if scope.expired():
                return False, _timeout_error(job, timeout)
            return False, _internal_error(job, exc, details)
        except Exception as exc:
            return False, _internal_error(job, exc, details)
        return True, value

    async def _gather(
        self, jobs: list[_Job], timeout: float, details: bool
    ) -> list[tuple[bool, Any]]:
        return list(
            await asyncio.gather(*(self._invoke_async(job, timeout, details) for job in jobs))
        )

    def close(self) -> None:
        """Release the thread pool of this handler and of its sub-handlers (the handler still
        works afterwards: a new pool starts on demand)."""
        with self._lock:
            pool, self._executor = self._executor, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        for handler in self._handlers.values():
            handler.close()


async def _awaited(value: Any) -> Any:
    return await value


def _timeout_error(job: _Job, timeout: float) -> CallTimeout:
    return CallTimeout(
        f"Call timed out: {job.call.method} did not finish within {timeout:g} seconds",
        {"timeout": timeout},
    )


def _internal_error(job: _Job, exc: BaseException, details: bool) -> InternalError:
    logger.error(
        "rpc method %s (id %r) raised %s",
        job.call.method,
        job.call.id,
        type(exc).__name__,
        exc_info=exc,
    )
    data = {"type": type(exc).__name__, "message": str(exc)} if details else None
    return InternalError("Internal error", data)


class _BodyTooLarge(Exception):
    pass


def _read_body(environ: dict[str, Any], limit: int) -> bytes:
    """The request body, at most ``limit`` bytes (_BodyTooLarge beyond; ValueError for a bad
    Content-Length)."""
    stream = environ.get("wsgi.input")
    length = (environ.get("CONTENT_LENGTH") or "").strip()
    if length:
        try:
            size = int(length)
        except ValueError:
            raise ValueError(f"invalid Content-Length {length!r}") from None
        if size < 0:
            raise ValueError(f"invalid Content-Length {length!r}")
        if size > limit:
            raise _BodyTooLarge
        if stream is None or size == 0:
            return b""
        chunks: list[bytes] = []
        remaining = size
        while remaining > 0:
            chunk = stream.read(remaining)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)
    if stream is None or not environ.get("wsgi.input_terminated"):
        return b""  # PEP 3333: without Content-Length, no body (unless the server says so)
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise _BodyTooLarge
    return bytes(data)


def _is_json(content_type: str) -> bool:
    mime, _, params = content_type.partition(";")
    mime = mime.strip().lower()
    if mime not in _JSON_TYPES and not (mime.startswith("application/") and mime.endswith("+json")):
        return False
    for param in params.split(";"):
        key, _, value = param.partition("=")
        charset = value.strip().strip('"').lower()
        if key.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
            return False
    return True


def _http_error(
    status: str, message: str, extra: list[tuple[str, str]] | None = None, **data: Any
) -> tuple[str, list[tuple[str, str]], bytes]:
    """An HTTP-level rejection with a JSON-RPC error body (-32600, id null) for clients that
    read it."""
    code = int(status.split()[0])
    body = encode_error(
        None, RpcError(-32600, f"HTTP {status}: {message}", {"status": code, **data})
    )
    headers = [*_JSON_HEADERS, ("Content-Length", str(len(body))), *(extra or [])]
    return status, headers, body
