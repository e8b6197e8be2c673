"""One request/response cycle: runs the WSGI callable and writes its response.

How it works
------------
The protocol creates a :class:`RequestCycle` for each request head and runs the cycles one at a
time, in order (pipelined requests wait their turn). A cycle builds the environ, calls the
application and sends what it returns through the connection's framing:

* **inline** (``thread_workers 0``): the body is received completely first (``100 Continue`` is
  sent when the client waits for it), then the callable runs on the event loop and its iterable is
  consumed there; the cycle awaits the transport's write buffer between chunks.
* **thread pool**: the callable runs in a worker thread as soon as the head is in; ``wsgi.input``
  streams the body to it. A list/tuple result (the common case) and a ``wsgi.file_wrapper`` go
  back to the loop to be written (with ``sendfile`` for a file); any other iterable is consumed in
  the thread, each chunk handed to the loop, the thread waiting while the transport is paused, so a
  slow client bounds what is buffered.

Headers are sent with the first non-empty chunk (PEP 3333); whether they are out is the
connection's send state (not ``IDLE``), not a flag of the cycle's, and so is a lost transport
(``CLOSED``). Failures: an exception before the
headers are sent becomes a ``500`` (or the 4xx of a request-body error) with ``Connection: close``;
after the headers, the connection is closed (the client sees a truncated, never a valid-looking,
response). The iterable's ``close()`` is always called.
"""

from __future__ import annotations

import asyncio
import bisect
import concurrent.futures
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from http import HTTPStatus
from typing import Any, Protocol

from ._accesslog import MAX_PENDING, AccessLogger
from ._connection import HttpConnection, SendState
from ._environ import EnvironBuilder, FileWrapper
from ._errors import ClientDisconnected, HttpError, LocalProtocolError, RemoteProtocolError
from ._events import Request
from ._flow import FlowControl
from ._input import EMPTY_BODY, RequestBody
from ._metrics import LATENCY_BUCKETS, ResponseStats

__all__ = ["Adapter", "RequestCycle", "RunnerState"]

logger = logging.getLogger("pulsar.wsgi.error")

_NO_BODY_STATUS = (204, 304)
_BYTES = (bytes, bytearray, memoryview)
_SEQUENCES = (list, tuple)
#: a body from this size on is written after its head without joining them (uvloop writes the
#: pieces with one writev: ~0.6 us less than copying 64 KiB); smaller ones are joined
_JOIN_BELOW = 32 * 1024
#: status line -> (code, reason); bounded, cleared when full
_STATUS: dict[str, tuple[int, str]] = {}
# the connection's send states (module names: an Enum class attribute costs ~60 ns): IDLE means
# this cycle's response has not started, CLOSED that the transport is gone
_IDLE, _LOST = SendState.IDLE, SendState.CLOSED
# the clock of the Date header, also timing the responses (see _metrics); module names
_clock = time.time
_bisect = bisect.bisect_left
_BOUNDS = LATENCY_BUCKETS
_FIRST = LATENCY_BUCKETS[0]


class RunnerState(Protocol):
    """What a cycle reads of the server's shared state (:class:`~._protocol.ServerState`)."""

    app: Callable[..., Any]
    threaded: bool
    custom_executor: bool
    access: AccessLogger
    environ: EnvironBuilder
    stats: ResponseStats

    @property
    def executor(self) -> concurrent.futures.Executor: ...

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> None: ...


class Adapter(Protocol):
    """What a cycle needs of the connection's asyncio adapter
    (:class:`~._protocol.HttpServerProtocol`): declared here, so that this module does not
    import the adapter's (no import circle)."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...
    def write(self, data: bytes) -> None:
        """Write to the transport (the transport's own bound method)."""

    def writelines(self, data: list[bytes]) -> None:
        """Write several pieces (one ``writev`` under uvloop)."""

    def is_closing(self) -> bool:
        """The transport is closing or closed."""

    async def sendfile(self, file: Any, offset: int, count: int) -> int:
        """``loop.sendfile`` on the transport (with the fallback); returns the bytes sent."""

    @property
    def conn(self) -> HttpConnection: ...
    @property
    def flow(self) -> FlowControl: ...
    @property
    def state(self) -> RunnerState: ...
    @property
    def scheme(self) -> str: ...
    @property
    def environ_base(self) -> dict[str, Any]: ...

    def cycle_done(self, cycle: RequestCycle) -> None: ...

    def body_demand(self, cycle: RequestCycle) -> None: ...


def _normalized(headers: list[Any]) -> list[tuple[str, str]]:
    """``headers`` as a new list of ``(str, str)`` tuples (a pair may be any sequence, the
    strings str subclasses).

    Raises:
        TypeError: an item is not a pair of str.
    """
    out: list[tuple[str, str]] = []
    for header in headers:
        if (
            isinstance(header, (str, bytes, bytearray))
            or not isinstance(header, Sequence)
            or len(header) != 2
        ):
            raise TypeError(f"invalid header {header!r}: expected a (str, str) pair")
        name, value = header
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"invalid header {header!r}: expected a (str, str) pair")
        out.append((str(name), str(value)))
    return out


def _close(result: Any) -> None:
    if type(result) is list or type(result) is tuple:
        return  # no close(); looking for one would cost an AttributeError
    close = getattr(result, "close", None)
    if close is not None:
        try:
            close()
        except Exception:
            logger.exception("Error closing the WSGI response iterable")


class RequestCycle:
    """The cycle of one request (or of the error response to an unparsable one).

    Args:
        protocol: the connection's protocol.
        request: the request head; None for the error response of a bad request.
        error: ``(status, reason)`` of that error response.
    """

    __slots__ = (
        "body",
        "body_bytes",
        "conn",
        "environ",
        "error",
        "headers",
        "protocol",
        "request",
        "started",
        "status",
        "task",
    )

    def __init__(
        self,
        protocol: Adapter,
        request: Request | None,
        error: tuple[int, str] | None = None,
    ) -> None:
        self.protocol = protocol
        self.conn = protocol.conn
        self.request = request
        self.error = error
        self.body: RequestBody | None = None
        if request is not None:
            if not (request.chunked or request.content_length):
                self.body = EMPTY_BODY  # complete and stateless: shared
            else:
                threaded = protocol.state.threaded
                self.body = RequestBody(
                    blocking=threaded,
                    on_demand=self._on_demand if threaded else None,
                    alive=protocol.loop.is_running if threaded else None,
                )
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.body_bytes = 0
        self.environ: dict[str, Any] | None = None
        # the start of the response's duration (latency histogram, access log): the clock of
        # the Date header, read again when the head is sent (see _metrics)
        self.started = _clock()
        self.task: asyncio.Task[None] | None = None  # a response that continues in a task

    def __repr__(self) -> str:
        target = self.request.target if self.request else b"<error>"
        return f"<RequestCycle {target!r} status={self.status!r}>"

    # -- running ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Answer the request. The protocol's ``cycle_done`` runs exactly once at the end,
        whatever happens, possibly before this returns: an inline application returning a
        list/tuple is answered synchronously, with no task and no loop iteration; a streaming
        or file response continues in a task; a thread-pool application calls back into the
        loop when its thread is done."""
        if self.request is None:
            try:
                status, reason = self.error or (400, "Bad Request")
                self.send_error(status, reason)
            except Exception as exc:  # a bug of ours: never leave the connection half-answered
                self._internal_error(exc)
            finally:
                self.protocol.cycle_done(self)
            return
        protocol = self.protocol
        if protocol.state.threaded:
            self._start_threaded()
            return
        body = self.body
        assert body is not None
        if body is EMPTY_BODY or body.complete:
            self._run_inline()
        else:
            self.task = self.protocol.loop.create_task(self._wait_body())

    def _internal_error(self, exc: BaseException) -> None:
        logger.exception("Internal error answering %r", self, exc_info=exc)
        self._failed(exc, log=False)

    def _build_environ(self) -> dict[str, Any]:
        protocol = self.protocol
        assert self.request is not None
        environ = protocol.state.environ.build(self.request, self.body, base=protocol.environ_base)
        self.environ = environ
        return environ

    async def _wait_body(self) -> None:
        """Inline mode: receive the whole body (``100 Continue`` first when the client waits for
        it), then run the application."""
        body = self.body
        assert body is not None and self.request is not None
        try:
            if self.request.expect_continue:
                self.send_continue()
            await body.wait_complete()
        except HttpError as exc:
            self._failed(exc, log=False)
        except Exception as exc:
            self._internal_error(exc)
        else:
            self._run_inline()
            return
        self.protocol.cycle_done(self)

    def _run_inline(self) -> None:
        """Call the application on the loop; a list/tuple response is sent at once, anything
        else continues in :meth:`_stream` (a task, which then owns the iterable)."""
        pending = False
        protocol = self.protocol
        try:
            state = protocol.state
            assert self.request is not None
            environ = self.environ = state.environ.build(
                self.request, self.body, base=protocol.environ_base
            )
            result: Any = None
            try:
                result = state.app(environ, self.start_response)
                if type(result) is list or isinstance(result, _SEQUENCES):
                    self._send_list(result)
                else:
                    self.task = protocol.loop.create_task(self._stream(result))
                    pending = True
            except Exception as exc:
                self._failed(exc)
            finally:
                if not pending:
                    _close(result)
        except Exception as exc:
            self._internal_error(exc)
        finally:
            if not pending:
                protocol.cycle_done(self)

    async def _stream(self, result: Any) -> None:
        """Send a streaming or ``wsgi.file_wrapper`` response (event loop), then close it."""
        try:
            try:
                if isinstance(result, FileWrapper):
                    await self._send_file(result)
                else:
                    flow = self.protocol.flow
                    for chunk in result:
                        if chunk:
                            self.write_chunk(chunk)
                            if flow.write_paused:
                                await flow.drain()
                        if self.conn.send_state is _LOST:
                            raise ClientDisconnected()
                    self.finish()
            except Exception as exc:
                self._failed(exc)
            finally:
                _close(result)
        except Exception as exc:
            self._internal_error(exc)
        finally:
            self.protocol.cycle_done(self)

    def _start_threaded(self) -> None:
        """Run the application in the thread pool; :meth:`_threaded_result` follows on the loop."""
        state = self.protocol.state
        try:
            environ = self._build_environ()
            if not state.custom_executor:
                state.submit(self._thread_main, environ)
                return
            future = state.executor.submit(self._call_in_thread, environ)
        except Exception as exc:  # the pool is shut down...
            self._failed(exc)
            self.protocol.cycle_done(self)
            return
        future.add_done_callback(self._thread_finished)

    def _thread_main(self, environ: dict[str, Any]) -> None:
        """Worker thread (``ServerState.submit``): run the application, hand the outcome to the
        loop (one ``call_soon_threadsafe``; no future)."""
        outcome: tuple[str, Any]
        try:
            outcome = ("ok", self._call_in_thread(environ))
        except BaseException as exc:
            outcome = ("error", exc)
        try:
            self.protocol.loop.call_soon_threadsafe(self._threaded_result, outcome)
        except RuntimeError:  # the loop is closed: nobody is left to answer
            pass

    def _thread_finished(self, future: concurrent.futures.Future[tuple[str, Any]]) -> None:
        """Worker thread (or the loop, when cancelled) of a given executor: hand the outcome to
        the loop."""
        outcome: tuple[str, Any]
        if future.cancelled():
            outcome = ("cancelled", None)
        elif future.exception() is not None:
            outcome = ("error", future.exception())
        else:
            outcome = ("ok", future.result())
        try:
            self.protocol.loop.call_soon_threadsafe(self._threaded_result, outcome)
        except RuntimeError:  # the loop is closed: nobody is left to answer
            pass

    def _threaded_result(self, outcome: tuple[str, Any]) -> None:
        """Event loop: send what the application's thread produced."""
        pending = False
        try:
            how, value = outcome
            if how == "cancelled":  # the executor shut down
                self.conn.abort()
                return
            if how == "error":
                self._failed(value)
                return
            kind, result = value
            try:
                if kind == "list":
                    self._send_list(result)
                elif kind == "file":
                    self.task = self.protocol.loop.create_task(self._stream(result))
                    pending = True
                else:
                    self.finish()
            except Exception as exc:
                self._failed(exc)
            finally:
                if kind == "list":
                    _close(result)
        except Exception as exc:
            self._internal_error(exc)
        finally:
            if not pending:
                self.protocol.cycle_done(self)

    def _call_in_thread(self, environ: dict[str, Any]) -> tuple[str, Any]:
        """Worker thread: call the application, consume a streaming iterable."""
        result = self.protocol.state.app(environ, self.start_response)
        if isinstance(result, _SEQUENCES):
            return "list", result
        if isinstance(result, FileWrapper):
            return "file", result
        try:
            for chunk in result:
                if chunk:
                    self._thread_write(chunk)
        finally:
            _close(result)
        return "done", None

    # -- WSGI API ---------------------------------------------------------------------------------
    def start_response(
        self,
        status: str,
        headers: Sequence[tuple[str, str]],
        exc_info: Any = None,
    ) -> Callable[[bytes], None]:
        """PEP 3333 ``start_response``; returns the legacy ``write`` callable.

        Raises:
            the ``exc_info`` exception when given after the headers were sent;
            AssertionError when called a second time without ``exc_info``;
            TypeError/ValueError for a malformed status or headers.
        """
        if exc_info:
            try:
                if self.conn.send_state is not _IDLE:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response() called again without exc_info")
        if not isinstance(status, str):
            raise TypeError(f"status must be a str, not {type(status).__name__}")
        code = status[:3]
        if len(code) != 3 or not code.isdigit() or (len(status) > 3 and status[3] != " "):
            raise ValueError(f"invalid status {status!r}")
        pairs: list[tuple[str, str]]
        if type(headers) is list:
            pairs = headers
        elif type(headers) is tuple:  # the seed's hello world: no ABC check (~0.4 us)
            pairs = list(headers)
        else:
            # any sequence of pairs (the seed's hello world passes a tuple of tuples, as
            # gunicorn, uvicorn and waitress accept); a str or a mapping is refused
            if isinstance(headers, (str, bytes, bytearray)) or not isinstance(headers, Sequence):
                kind = type(headers).__name__
                raise TypeError(f"headers must be a sequence of pairs, not {kind}")
            pairs = list(headers)
        for header in pairs:
            if (
                type(header) is not tuple
                or len(header) != 2
                or type(header[0]) is not str
                or type(header[1]) is not str
            ):
                pairs = _normalized(pairs)  # not the usual case: checked one by one
                break
        self.status = status
        self.headers = pairs
        return self._write if not self.protocol.state.threaded else self._thread_write

    def _write(self, data: bytes) -> None:
        """Legacy ``write()`` inline: written at once (no back-pressure)."""
        if data:
            self.write_chunk(data)

    def _thread_write(self, data: bytes) -> None:
        """Worker thread: hand ``data`` to the loop; return once the transport can take more."""
        protocol = self.protocol
        loop = protocol.loop
        done: concurrent.futures.Future[None] = concurrent.futures.Future()

        def write() -> None:
            try:
                self.write_chunk(data)
            except BaseException as exc:
                done.set_exception(exc)
            else:
                protocol.flow.when_writable(done)

        try:
            loop.call_soon_threadsafe(write)
        except RuntimeError:  # the loop is closed
            raise ClientDisconnected("the server stopped") from None
        while True:
            try:
                done.result(timeout=1.0)
                return
            except concurrent.futures.TimeoutError:
                if not loop.is_running():
                    raise ClientDisconnected("the server stopped") from None

    # -- sending ----------------------------------------------------------------------------------
    def _on_demand(self) -> None:
        """Worker thread: the application waits for body bytes (see :class:`RequestBody`)."""
        try:
            self.protocol.loop.call_soon_threadsafe(self.protocol.body_demand, self)
        except RuntimeError:  # loop closed
            pass

    def send_continue(self) -> None:
        """Send ``100 Continue`` if the client waits for it (the connection decides)."""
        if self.request is not None and self.conn.send_state is not _LOST:
            data = self.conn.send_continue()
            if data:
                self.protocol.write(data)

    def _head(self, length: int | None = None) -> bytes:
        """The response head; ``length``: the body size when known (a ``Content-Length`` is
        added when the application gave none)."""
        status = self.status
        if status is None:
            raise LocalProtocolError("the application did not call start_response()")
        headers = self.headers
        request = self.request
        split = _STATUS.get(status)
        if split is None:
            split = (int(status[:3]), status[4:] if len(status) > 4 else "")
            if len(_STATUS) >= 256:
                _STATUS.clear()
            _STATUS[status] = split
        now = _clock()
        code = split[0]
        head = self.conn.send_response(
            request, code, headers, reason=split[1], length=length, now=now
        )
        # the response's status and duration (see _metrics; inline: the hot path)
        stats = self.protocol.state.stats
        stats.codes[code] += 1
        elapsed = now - self.started
        if elapsed <= _FIRST:  # the usual case: one comparison, no bisect
            if elapsed < 0.0:  # the clock stepped back
                elapsed = 0.0
            stats.buckets[0] += 1
        else:
            stats.buckets[_bisect(_BOUNDS, elapsed)] += 1
        stats.seconds += elapsed
        return head

    def write_chunk(self, chunk: bytes) -> None:
        """Send a body chunk (the head first, with it, when not sent yet). Event loop only."""
        protocol = self.protocol
        if self.conn.send_state is _LOST or protocol.is_closing():
            raise ClientDisconnected()
        if not isinstance(chunk, _BYTES):
            raise TypeError(f"response chunks must be bytes, not {type(chunk).__name__}")
        if self.conn.send_state is not _IDLE:
            data = self.conn.send_data(bytes(chunk))
        else:
            data = self._head() + self.conn.send_data(bytes(chunk))
        self.body_bytes += len(chunk)
        protocol.write(data)

    def _send_list(self, chunks: list[Any] | tuple[Any, ...]) -> None:
        """Send a list/tuple body in one write (with a computed Content-Length if none)."""
        protocol = self.protocol
        conn = self.conn
        send_state = conn.send_state
        if send_state is _LOST:
            raise ClientDisconnected()
        if len(chunks) == 1 and send_state is _IDLE:  # the usual hello world
            chunk = chunks[0]
            if type(chunk) is not bytes:
                if not isinstance(chunk, _BYTES):
                    raise TypeError(f"response chunks must be bytes, not {type(chunk).__name__}")
                chunk = bytes(chunk)
            size = len(chunk)
            head = self._head(size)
            data = conn.send_data(chunk)
            self.body_bytes += size
            if len(data) < _JOIN_BELOW:
                protocol.write(head + data + conn.send_end())
            else:
                protocol.writelines([head, data, conn.send_end()])
            if protocol.state.access.enabled:
                self._log()
            return
        size = 0
        for chunk in chunks:
            if not isinstance(chunk, _BYTES):
                raise TypeError(f"response chunks must be bytes, not {type(chunk).__name__}")
            size += len(chunk)
        out = [b""] if self.conn.send_state is not _IDLE else [self._head(size)]
        send_data = conn.send_data
        for chunk in chunks:
            if chunk:
                out.append(send_data(chunk if type(chunk) is bytes else bytes(chunk)))
        self.body_bytes += size
        out.append(conn.send_end())
        # one write of the joined bytes: cheaper than writelines() even for a 64 KiB body (uvloop)
        protocol.write(b"".join(out))
        self._log()

    async def _send_file(self, wrapper: FileWrapper) -> None:
        """Send a ``wsgi.file_wrapper`` body, with ``loop.sendfile`` when possible."""
        protocol = self.protocol
        remaining = wrapper.remaining()
        if (
            remaining is None
            or protocol.scheme == "https"
            or self.conn.send_state is not _IDLE
            or self.status is None
        ):
            await self._send_iterable(wrapper)
            return
        offset, count = remaining
        declared = next(
            (value for name, value in self.headers if name.lower() == "content-length"), None
        )
        if declared is not None and declared.strip().isdigit():
            count = min(count, int(declared))
        head = self._head(count)  # the file's size when the application declared none
        protocol.write(head)
        if self.conn.body_expected and count:
            try:
                sent = await protocol.sendfile(wrapper.filelike, offset, count)
            except (ConnectionError, RuntimeError) as exc:
                raise ClientDisconnected(str(exc)) from None
            self.conn.count_body(sent)
            self.body_bytes += sent
        self.finish()

    async def _send_iterable(self, iterable: Iterable[bytes]) -> None:
        flow = self.protocol.flow
        for chunk in iterable:
            if chunk:
                self.write_chunk(chunk)
                if flow.write_paused:
                    await flow.drain()
        self.finish()

    def finish(self) -> None:
        """End the response (sending the head if no body chunk did)."""
        if self.conn.send_state is _LOST:
            raise ClientDisconnected()
        out = b""
        if self.conn.send_state is _IDLE:
            head = self.request is not None and self.request.method == "HEAD"
            out = self._head(None if head else 0)
        out += self.conn.send_end()
        if out:
            self.protocol.write(out)
        self._log()

    def send_error(self, status: int, reason: str = "") -> None:
        """Send a complete plain-text error response, then the connection closes."""
        if self.conn.send_state is _LOST:
            return
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
        text = f"{status} {phrase}\n" if not reason or status >= 500 else f"{reason}\n"
        payload = text.encode("latin-1", "replace")
        self.status = f"{status} {phrase}"
        self.headers = [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(payload))),
            ("Connection", "close"),
        ]
        conn = self.conn
        request = self.request
        now = _clock()
        try:
            head = conn.send_response(request, status, self.headers, reason=phrase, now=now)
        except LocalProtocolError:  # a response is half sent: only closing is left
            conn.abort()
            return
        self.protocol.state.stats.record(status, now - self.started)
        self.body_bytes = len(payload)
        body = conn.send_data(payload)
        self.protocol.write(head + body + conn.send_end())
        self._log()

    def _failed(self, exc: BaseException, *, log: bool = True) -> None:
        """The application (or the request body) failed: 500/4xx if we still can, else close."""
        if self.conn.send_state is _LOST or isinstance(exc, ClientDisconnected):
            self.conn.abort()
            return
        if isinstance(exc, RemoteProtocolError):
            status = exc.status
            log = False
        else:
            status = 500
        if log:
            logger.error(
                "Error handling request %s",
                self.request.target.decode("latin-1") if self.request else "",
                exc_info=exc,
            )
        if self.conn.send_state is not _IDLE:
            self.conn.abort()
            return
        self.headers = []
        self.send_error(status, str(exc) if isinstance(exc, HttpError) else "")

    def _log(self) -> None:
        access = self.protocol.state.access
        if access.enabled and self.environ is not None:
            # AccessLogger.log inlined (the keep-alive hot path): one tuple appended
            lines = access.lines
            lines.append(
                (
                    self.environ,
                    self.status or "-",
                    self.headers,
                    self.body_bytes,
                    max(0.0, _clock() - self.started) if access.timed else 0.0,
                )
            )
            if len(lines) == 1 or len(lines) >= MAX_PENDING:
                access.due(self.protocol.loop)
