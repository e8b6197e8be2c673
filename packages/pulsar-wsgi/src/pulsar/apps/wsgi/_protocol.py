"""The asyncio Protocol of the WSGI server: a thin adapter around :class:`HttpConnection`.

How it works
------------
``data_received`` feeds the sans-IO connection and dispatches its events: a request head creates
a :class:`~._cycle.RequestCycle` queued behind the ones in progress (pipelined requests are
answered in order, one cycle running at a time), body bytes go to the cycle receiving them, a
protocol error queues an error response. :class:`FlowControl` pauses reading while too many
requests are queued or too many body bytes wait for the application, and makes writers wait
while the transport's buffer is above its high-water mark. One deadline per connection is enforced
(:class:`Timer`): the head of a request must arrive within ``header_timeout`` of its first byte,
a body may not stall for more than ``body_timeout``, an idle keep-alive connection closes after
``keep_alive`` seconds. The connections share the timers checking them
(:meth:`ServerState.schedule`: one timer handle per 1/64 s tick in use, so a connection costs a
set insertion, not a timer handle of its own).

The adapter keeps no HTTP state of its own: whether the transport is gone is the connection's
send state (``CLOSED``, :attr:`HttpConnection.lost`), whether a response has started too, and
whether the client closed its side or had its bytes refused the receive state (``CLOSED``,
``ERROR``); it
calls :meth:`HttpConnection.start_next_cycle` before each cycle. It sets no socket option:
``TCP_NODELAY`` is the socket layer's (pulsar's ``ServerConnection`` under ``WSGIServer``, the
loop's ``create_server`` otherwise, stock asyncio and uvloop alike, for the sockets it creates).

:class:`ServerState` is shared by the connections of one server (one worker): configuration
values read once, the thread pool, the access logger, the open connections and counters (one
request counter: the ``on_request`` hook; responses by status and their latency histogram:
:mod:`._metrics`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, cast

from ._accesslog import AccessLogger
from ._connection import HttpConnection, Limits, RecvState, SendState
from ._cycle import RequestCycle
from ._environ import EnvironBuilder, server_software
from ._errors import ClientDisconnected, RemoteProtocolError
from ._events import ConnectionClosed, Data, EndOfMessage, Request, RequestError
from ._flow import FlowControl
from ._input import BODY_HIGH_WATER, BODY_LOW_WATER, EMPTY_BODY, MAX_DRAIN
from ._metrics import ResponseStats
from ._pool import CallPool
from ._settings import HttpOptions

__all__ = [
    "MAX_DRAIN",
    "MAX_PIPELINE",
    "FlowControl",
    "HttpServerProtocol",
    "ProtocolFactory",
    "ServerState",
    "Timer",
    "create_protocol_factory",
]

logger = logging.getLogger("pulsar.wsgi")

#: closing after a response while the client still sends its body, the server shuts its side
#: and reads (and drops) what comes for at most this many seconds before it closes: closing
#: with unread bytes makes the kernel send a reset that can destroy the response in flight
LINGER = 2.0
#: reading pauses while this many requests of one connection wait to be answered
MAX_PIPELINE = 16
#: the resolution of the connections' deadlines (see :meth:`ServerState.schedule`)
TICKS_PER_SECOND = 64
#: graceful stop: how long a connection between requests (or not yet sent its first one) may
#: still deliver a request already on its way; it is answered with ``Connection: close``
STOP_LINGER = 1.0
# the send states the adapter tests (module names: an Enum class attribute costs ~60 ns)
_IDLE, _DONE, _LOST = SendState.IDLE, SendState.DONE, SendState.CLOSED
# the receive states it tests: the client closed its side (EOF), its bytes were refused
_EOF, _REFUSED = RecvState.CLOSED, RecvState.ERROR


def _config(cfg: Any, settings: dict[str, Any]) -> Any:
    from pulsar import Config

    if cfg is None:
        return Config(apps=("wsgi",), **settings)
    if settings:
        cfg = cfg.copy()
        cfg.update(settings)
    return cfg


class ServerState:
    """What the connections of one server share.

    Args:
        app: the WSGI callable.
        cfg: a :class:`pulsar.Config` with the ``wsgi`` settings (None: defaults).
        executor: an executor running the callable; by default a :class:`~._pool.CallPool`
            of ``thread_workers`` threads owned (and shut down) here, bound to the running
            pulsar actor when there is one (``pulsar.get_actor()`` works in the callable).
        on_request: called after each response, and then the one request counter: under
            ``WSGIServer`` the socket layer's ``WorkerServer.request_done`` (its ``requests``,
            toward ``max_requests``), this state counting nothing itself. None (the default):
            :attr:`requests` counts them (in :meth:`statistics`).
    """

    def __init__(
        self,
        app: Callable[..., Any],
        cfg: Any = None,
        *,
        executor: concurrent.futures.Executor | None = None,
        on_request: Callable[[], Any] | None = None,
    ) -> None:
        cfg = _config(cfg, {})
        self.app = app
        self.cfg = cfg
        options = cfg.view(HttpOptions)  # every default lives in its Setting
        self.limits = Limits(
            request_line=options.limit_request_line,
            request_fields=options.limit_request_fields,
            request_field_size=options.limit_request_field_size,
            max_body_size=options.max_body_size,
        )
        self.keep_alive = float(options.keep_alive)
        self.header_timeout = float(options.header_timeout)
        self.body_timeout = float(options.body_timeout)
        self.thread_workers = options.thread_workers
        self.threaded = self.thread_workers > 0
        self.environ = EnvironBuilder(cfg, server_software())
        self.access = AccessLogger(options.access_log, options.access_log_format)
        #: requests answered, when counted here (no ``on_request`` hook)
        self.requests = 0
        #: responses by status code and their latency histogram (updated on the loop)
        self.stats = ResponseStats()
        self.on_request = on_request
        self.connections: set[HttpServerProtocol] = set()
        self.stopping = False
        self.total_connections = 0
        self._executor = executor
        self._own_executor: concurrent.futures.ThreadPoolExecutor | None = None
        #: an executor given to the constructor (the callable's result comes back as a future)
        self.custom_executor = executor is not None
        #: the pool running the callable when no executor was given (created on first use)
        self.pool: CallPool | None = None
        self._submit: Callable[[Callable[[Any], Any], Any], Any] | None = None
        # the connections' deadlines, by tick (1/TICKS_PER_SECOND s): one timer per tick in use
        self._ticks: dict[int, set[HttpServerProtocol]] = {}
        self._ticks_loop: asyncio.AbstractEventLoop | None = None
        # the loop of the connections (asyncio.get_running_loop() makes a getpid() system call
        # each time; see running_loop)
        self._loop: asyncio.AbstractEventLoop | None = None

    def running_loop(self) -> asyncio.AbstractEventLoop:
        """The running event loop (call from a loop callback), cached: the connections of one
        server run on one loop at a time (a loop that stopped is replaced by the running one)."""
        loop = self._loop
        if loop is None or not loop.is_running():
            loop = self._loop = asyncio.get_running_loop()
        return loop

    def schedule(self, protocol: HttpServerProtocol, deadline: float) -> int:
        """Call ``protocol._on_timer()`` at ``deadline`` (loop time; up to one tick late) and
        return the tick to give :meth:`unschedule`. The connections share one timer handle per
        tick, so arming and cancelling a deadline is a set operation (a connection that sends
        one request then closes costs no timer handle of its own)."""
        tick = int(deadline * TICKS_PER_SECOND) + 1
        ticks = self._ticks
        members = ticks.get(tick)
        if members is None:
            loop = protocol.loop
            if self._ticks_loop is not loop:  # a new loop: the old one's timers are gone
                self._ticks_loop = loop
                ticks.clear()
            members = ticks[tick] = set()
            loop.call_at(tick / TICKS_PER_SECOND, self._on_tick, tick)
        members.add(protocol)
        return tick

    def unschedule(self, protocol: HttpServerProtocol, tick: int) -> None:
        """Cancel what :meth:`schedule` returned ``tick`` for."""
        members = self._ticks.get(tick)
        if members is not None:
            members.discard(protocol)

    def _on_tick(self, tick: int) -> None:
        members = self._ticks.pop(tick, None)
        if members:
            for protocol in members:
                protocol._on_timer()

    @property
    def executor(self) -> concurrent.futures.Executor:
        """The executor given to the constructor, else a thread pool for blocking work besides
        the callable (the running pulsar actor's executor, or one owned here; created on first
        use). The callable itself runs on :attr:`pool` unless an executor was given."""
        if self._executor is None:
            import pulsar

            actor = pulsar.get_actor()
            if actor is not None:
                self._executor = actor.executor
            else:
                self._own_executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=max(1, self.thread_workers), thread_name_prefix="pulsar-wsgi"
                )
                self._executor = self._own_executor
        return self._executor

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> None:
        """Run ``fn(arg)`` in the thread pool; ``fn`` reports its outcome itself (no future is
        waited for): the executor given to the constructor, else :attr:`pool` (inside a pulsar
        actor too, its threads bound to the actor).

        Raises:
            RuntimeError: the pool is shut down.
        """
        submit = self._submit
        if submit is None:
            import pulsar

            if self.custom_executor:  # given to the constructor
                submit = self.executor.submit
            else:
                # a CallPool also inside an actor (not the actor's executor: a
                # ThreadPoolExecutor costs a Future, a work item and a semaphore per request),
                # its threads bound to the actor as the executor's are
                actor = pulsar.get_actor()
                bind = getattr(actor, "bind_thread", None)
                self.pool = CallPool(self.thread_workers, initializer=bind)
                submit = self.pool.submit
            self._submit = submit
        submit(fn, arg)

    def statistics(self) -> dict[str, Any]:
        """Counters: open connections, connections served, requests served (when counted
        here: with an ``on_request`` hook, that is the counter), responses by status code
        (``statuses``: ``{200: n, ...}``) and their latency histogram (``latency``: ``le``
        bounds, cumulative ``buckets``, ``sum``, ``count``; see :mod:`._metrics`)."""
        stats: dict[str, Any] = {
            "connections": len(self.connections),
            "total_connections": self.total_connections,
            "mode": "threads" if self.threaded else "inline",
            **self.stats.snapshot(),
        }
        if self.on_request is None:
            stats["requests"] = self.requests
        return stats

    async def shutdown(self, timeout: float = 30.0) -> None:
        """Stop gracefully: idle connections close now, the others after their response (or
        after ``timeout`` seconds, aborted); then the owned thread pool shuts down."""
        self.stopping = True
        for connection in list(self.connections):
            connection.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.01)
        for connection in list(self.connections):
            connection.abort()
        self.close()

    def close(self) -> None:
        """Abort the connections left and shut the owned thread pool down (no wait)."""
        self.stopping = True
        for connection in list(self.connections):
            connection.abort()
        self.access.flush()
        if self._own_executor is not None:
            self._own_executor.shutdown(wait=False, cancel_futures=True)
            self._own_executor = None
            self._executor = None
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None
            self._submit = None


class Timer(enum.Enum):
    """The one deadline a connection runs at a time."""

    NONE = "none"
    HEAD = "head"  # the request head must be complete (header_timeout)
    BODY = "body"  # the body must make progress (body_timeout)
    IDLE = "idle"  # an idle keep-alive connection (keep_alive)
    LINGER = "linger"  # closing: what the client still sends is dropped (LINGER seconds)


class HttpServerProtocol(asyncio.Protocol):
    """The protocol of one HTTP/1.1 connection serving a WSGI application.

    Args:
        app: the WSGI callable (ignored when ``state`` is given).
        cfg: settings (see :class:`ServerState`).
        state: the shared :class:`ServerState` (a factory passes it to every connection).
    """

    # Defaults as class attributes: a connection stores only what it changes (one request per
    # connection is a common case: each attribute stored costs).
    loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
    transport: asyncio.Transport = None  # type: ignore[assignment]
    conn: HttpConnection = None  # type: ignore[assignment]
    flow: FlowControl = None  # type: ignore[assignment]
    peer: Any = None
    sockname: Any = None
    # the transport's own bound methods, for the app runner (which never holds the transport)
    write: Callable[[bytes], None] = None  # type: ignore[assignment]
    writelines: Callable[[list[bytes]], None] = None  # type: ignore[assignment]
    is_closing: Callable[[], bool] = None  # type: ignore[assignment]
    _receiving: RequestCycle | None = None
    _active: RequestCycle | None = None  # the cycle answering (head of the pipeline)
    _starting = False  # _run_pipeline is on the stack
    _lingering = False  # see _linger_close
    _drain_left = 0  # body bytes still to drop for a request answered before its body ended
    # the deadline in force (kind, loop time) and the tick of ServerState.schedule, when armed
    _timer_kind = Timer.NONE
    _deadline = 0.0
    _timer: int | None = None

    def __init__(
        self, app: Callable[..., Any] | None = None, cfg: Any = None, *, state: Any = None
    ) -> None:
        if state is None:
            if app is None:
                raise TypeError("HttpServerProtocol needs a WSGI callable or a ServerState")
            state = ServerState(app, cfg)
        self.state: ServerState = state
        self.environ_base: dict[str, Any] = {}
        self._pipeline: deque[RequestCycle] = deque()
        # read on every request: instance attributes (Python 3.11 specializes those)
        self.scheme = "http"

    # -- asyncio callbacks ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio.Transport: no isinstance check
        transport = cast(asyncio.Transport, transport)
        state = self.state
        self.loop = state.running_loop()
        self.transport = transport
        self.write = transport.write
        self.writelines = transport.writelines  # type: ignore[assignment]
        self.is_closing = transport.is_closing
        self.flow = FlowControl(transport)
        self.conn = HttpConnection(
            limits=state.limits, keep_alive=state.keep_alive > 0 and not state.stopping
        )
        self.peer = transport.get_extra_info("peername")
        self.sockname = transport.get_extra_info("sockname")
        if transport.get_extra_info("sslcontext") is not None:
            self.scheme = "https"
        self.environ_base = state.environ.connection_base(
            peer=self.peer, sockname=self.sockname, scheme=self.scheme
        )
        state.connections.add(self)
        state.total_connections += 1
        self._set_timer(Timer.HEAD, state.header_timeout)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # closing: dropped
        self.conn.receive_data(data)
        self._handle_events()

    def eof_received(self) -> bool | None:
        if self._lingering:
            self._close()
            return None
        self.conn.receive_data(b"")
        self._handle_events()
        if self._pipeline:
            return True  # half-closed: finish the responses, then close
        self._close()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn is not None:
            # both sides CLOSED: the connection's send state is the one "disconnected"; this
            # also frees its parser now rather than in a GC pass
            self.conn.connection_lost()
        self._stop_timer()
        if self.flow is not None:
            self.flow.connection_lost()
        receiving = self._receiving
        if receiving is not None and receiving.body is not None:
            receiving.body.fail(ClientDisconnected())
        for cycle in self._pipeline:
            if cycle.body is not None and not cycle.body.complete:
                cycle.body.fail(ClientDisconnected())
        self.state.connections.discard(self)

    @property
    def disconnected(self) -> bool:
        """The transport is gone: the connection's send side is ``CLOSED`` (one place)."""
        conn = self.conn
        return conn is not None and conn.send_state is _LOST

    async def sendfile(self, file: Any, offset: int, count: int) -> int:
        """``loop.sendfile`` of ``count`` bytes of ``file`` from ``offset`` on the transport
        (falling back to reads and writes); returns the bytes sent."""
        return await self.loop.sendfile(self.transport, file, offset, count, fallback=True)

    def pause_writing(self) -> None:
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        self.flow.resume_writing()

    # -- events -----------------------------------------------------------------------------------
    def _handle_events(self) -> None:
        events = self.conn.events
        pipeline = self._pipeline
        while events:
            event = events.popleft()
            kind = type(event)
            if kind is Request:
                cycle = RequestCycle(self, event)  # type: ignore[arg-type]
                self._receiving = cycle if cycle.body is not EMPTY_BODY else None
                pipeline.append(cycle)  # started below, once the bytes are parsed
            elif kind is EndOfMessage:
                receiving = self._receiving
                if receiving is not None:
                    self._receiving = None
                    if receiving.body is not None:
                        receiving.body.end()
            elif kind is Data:
                receiving = self._receiving
                if receiving is not None and receiving.body is not None:
                    receiving.body.feed(event.data)  # type: ignore[union-attr]
                    if receiving.body.discarding:
                        # drained for a finished request: bounded (a chunked body has no
                        # announced size; the head of a longer announced one said close)
                        self._drain_left -= len(event.data)  # type: ignore[union-attr]
                        if self._drain_left < 0:
                            self.conn.fail_receive()
                            events.clear()
                            self._receiving = None
                            if not pipeline:
                                self._linger_close()
                            return
            elif kind is RequestError:
                receiving = self._receiving
                error = RemoteProtocolError(event.reason, event.status)  # type: ignore[union-attr]
                if receiving is not None and receiving.body is not None:
                    receiving.body.fail(error)  # that request's cycle answers the error
                    self._receiving = None
                else:
                    pipeline.append(RequestCycle(self, None, (error.status, str(error))))
            elif kind is ConnectionClosed:
                if self._receiving is not None and self._receiving.body is not None:
                    self._receiving.body.fail(ClientDisconnected())
                self._receiving = None
        if pipeline:
            self._run_pipeline()
        elif self.conn.send_state is not _LOST and not self.transport.is_closing():
            if self.conn.recv_state is _EOF:
                self._close()
                return
            self._update_timer()
            self._update_reading()

    def _queue(self, cycle: RequestCycle) -> None:
        self._pipeline.append(cycle)
        self._run_pipeline()

    def _run_pipeline(self) -> None:
        """Start the cycle at the head of the pipeline unless one is answering; go on with the
        next while cycles finish synchronously (inline applications returning a list), then
        update the deadline and read pausing. A loop, not recursion: hundreds of pipelined
        requests may arrive in one read."""
        if self._starting:
            return  # the loop below, further up the stack, goes on
        self._starting = True
        transport = self.transport
        conn = self.conn
        try:
            pipeline = self._pipeline
            while self._active is None and pipeline:
                if conn.send_state is not _IDLE:
                    if conn.send_state is not _DONE:
                        return  # lost, or the connection must close (cycle_done closes it)
                    conn.start_next_cycle()
                if transport.is_closing():
                    return
                cycle = self._active = pipeline[0]
                cycle.start()  # may call cycle_done() before returning
        finally:
            self._starting = False
        if conn.send_state is _LOST or transport.is_closing():
            return
        if not pipeline:
            if self.conn.recv_state is _EOF:
                self._close()
                return
            if self._receiving is None and self.conn.recv_state is RecvState.IDLE:
                # between keep-alive requests, the usual case of _update_timer/_update_reading
                self._set_timer(
                    Timer.IDLE, self.state.keep_alive if self.conn.keep_alive else STOP_LINGER
                )
                if self.flow.read_paused:
                    self.flow.resume_reading()
                return
        self._update_timer()
        self._update_reading()

    def cycle_done(self, cycle: RequestCycle) -> None:
        """Called by a cycle when its response is complete (or given up)."""
        pipeline = self._pipeline
        if pipeline and pipeline[0] is cycle:
            pipeline.popleft()
        self._active = None
        state = self.state
        if cycle.request is not None:  # the one request counter: the hook, or ServerState's
            on_request = state.on_request
            if on_request is None:
                state.requests += 1
            else:
                on_request()
        body = cycle.body
        if body is not None and body is not EMPTY_BODY and not body.complete:
            body.discard()  # what is left of the body is read and dropped (up to MAX_DRAIN)
            self._drain_left = MAX_DRAIN
        send_state = self.conn.send_state
        if send_state is _LOST:
            return
        if send_state is not _DONE:
            # must close (a stopping server answers with ``Connection: close``; or, a bug, the
            # cycle ended without a complete response: closing is the only answer left)
            # the client may still be sending: a request partly received, or bytes refused
            # (a RequestError, a deadline, a drained body past its bound)
            if self.conn.receiving or self.conn.recv_state is _REFUSED:
                self._linger_close()
            else:
                self._close()
            return
        if not self._starting:  # else the loop of _run_pipeline goes on
            self._run_pipeline()

    def body_demand(self, cycle: RequestCycle) -> None:
        """The application waits for body bytes (or consumed a lot of them)."""
        cycle.send_continue()
        self._update_reading()

    # -- flow control and timers ------------------------------------------------------------------
    def _update_reading(self) -> None:
        if self.conn.send_state is _LOST:
            return
        receiving = self._receiving
        if receiving is None and len(self._pipeline) <= MAX_PIPELINE:  # the usual case
            if self.flow.read_paused:
                self.flow.resume_reading()
            return
        pause = len(self._pipeline) > MAX_PIPELINE
        if not pause and receiving is not None and receiving.body is not None:
            buffered = receiving.body.buffered
            running = bool(self._pipeline) and self._pipeline[0] is receiving
            if self.state.threaded or not running:
                limit = BODY_LOW_WATER if self.flow.read_paused else BODY_HIGH_WATER
                pause = buffered > limit and not receiving.body.waiting
        if pause:
            self.flow.pause_reading()
            if self._timer_kind is not Timer.IDLE:
                self._cancel_timer()  # a paused reader cannot blame the client
        else:
            self.flow.resume_reading()

    def _update_timer(self) -> None:
        if self.conn.send_state is _LOST:
            return
        recv = self.conn.recv_state
        if recv is RecvState.IDLE and not self._pipeline:  # between keep-alive requests
            self._set_timer(Timer.IDLE, self.state.keep_alive)  # (re)starts the idle period
            return
        state = self.state
        if recv is RecvState.HEAD:
            if self._timer_kind is not Timer.HEAD:
                self._set_timer(Timer.HEAD, state.header_timeout)
        elif recv is RecvState.BODY:
            self._set_timer(Timer.BODY, state.body_timeout)  # restarted by every body byte
        elif self._pipeline:
            if self._timer_kind is not Timer.NONE:
                self._cancel_timer()
        elif recv is RecvState.IDLE:
            self._set_timer(Timer.IDLE, state.keep_alive)  # (re)starts the idle period

    # The deadline in force is (_timer_kind, _deadline); one timer callback checks it and is
    # re-armed lazily: moving a deadline later (every request on a keep-alive connection does)
    # only stores a float, a timer handle is created when the callback finds it early.
    def _set_timer(self, kind: Timer, delay: float) -> None:
        if delay <= 0:
            self._timer_kind = Timer.NONE
            return
        deadline = self.loop.time() + delay
        self._timer_kind = kind
        self._deadline = deadline
        timer = self._timer
        if timer is None or timer > deadline * TICKS_PER_SECOND + 1:
            state = self.state
            if timer is not None:
                state.unschedule(self, timer)
            self._timer = state.schedule(self, deadline)

    def _cancel_timer(self) -> None:
        self._timer_kind = Timer.NONE  # the callback, if armed, finds nothing to do

    def _stop_timer(self) -> None:
        self._timer_kind = Timer.NONE
        if self._timer is not None:
            self.state.unschedule(self, self._timer)
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        kind = self._timer_kind
        if kind is Timer.NONE or self.conn.send_state is _LOST:
            return
        if self.loop.time() + 0.001 < self._deadline:  # the deadline moved: wait again
            self._timer = self.state.schedule(self, self._deadline)
            return
        self._timer_kind = Timer.NONE
        self._timeout(kind)

    def _timeout(self, kind: Timer) -> None:
        if self.conn.send_state is _LOST:
            return
        if kind is Timer.IDLE or kind is Timer.LINGER:
            if not self._pipeline:
                self._close()
            return
        never_started = self.conn.recv_state is RecvState.IDLE
        self.conn.fail_receive()  # no more requests: the response in progress closes
        self.flow.pause_reading()
        receiving = self._receiving
        if kind is Timer.BODY and receiving is not None and receiving.body is not None:
            self._receiving = None
            receiving.body.fail(RemoteProtocolError("Timed out reading the request body", 408))
            return
        if self._pipeline:
            return
        if never_started:  # a connection that never sent a byte: just close it
            self._close()
        else:
            logger.debug("%s: request not received in time", self.peer)
            self._queue(RequestCycle(self, None, (408, "Timed out reading the request")))

    # -- closing ----------------------------------------------------------------------------------
    def _linger_close(self) -> None:
        """Close after the response while the client is still sending (a body left unread
        beyond :data:`MAX_DRAIN`, a response before the body): shut our side (the response,
        then FIN), drop what still comes until the client closes or :data:`LINGER` seconds
        pass, then close. A plain close with unread bytes would reset the connection, and a
        reset can destroy the response before the client reads it."""
        transport = self.transport
        if self._lingering or transport.is_closing():
            return
        try:
            can_write_eof = transport.can_write_eof()
        except (AttributeError, NotImplementedError):
            can_write_eof = False
        if not can_write_eof:  # TLS: no half-close
            self._close()
            return
        self._lingering = True
        self.flow.resume_reading()
        transport.write_eof()
        self._set_timer(Timer.LINGER, LINGER)

    def _close(self) -> None:
        self._stop_timer()
        if not self.transport.is_closing():
            self.transport.close()

    def shutdown(self) -> None:
        """Graceful stop: every response from now on says ``Connection: close`` and closes the
        connection after it; a connection between requests (or that has not sent its first
        one yet) closes after :data:`STOP_LINGER` seconds without a request (closing at once
        would drop a request already on its way: the client sees no response)."""
        if self.conn is None or self.conn.send_state is _LOST:
            return
        self.conn.keep_alive = False
        if not self._pipeline and self._receiving is None:
            if self.conn.recv_state is RecvState.IDLE:
                keep_alive = self.state.keep_alive
                self._set_timer(Timer.IDLE, min(keep_alive, STOP_LINGER) or STOP_LINGER)
            elif self.conn.recv_state is RecvState.DONE:
                self._close()

    def server_stopping(self) -> None:
        """SocketServer's graceful-stop hook: see :meth:`shutdown`."""
        self.shutdown()

    def abort(self) -> None:
        """Close the connection now, dropping unsent data."""
        self._stop_timer()
        if self.transport is not None:
            self.transport.abort()


class ProtocolFactory:
    """A protocol factory serving one WSGI application: ``loop.create_server(factory, ...)``.

    ``factory.state`` is the shared :class:`ServerState` (statistics, graceful shutdown).
    """

    def __init__(self, app: Callable[..., Any], cfg: Any = None, **kwargs: Any) -> None:
        self.state = ServerState(app, cfg, **kwargs)

    def __call__(self) -> HttpServerProtocol:
        return HttpServerProtocol(state=self.state)


def create_protocol_factory(
    app: Callable[..., Any],
    cfg: Any = None,
    *,
    executor: concurrent.futures.Executor | None = None,
    on_request: Callable[[], Any] | None = None,
    **settings: Any,
) -> ProtocolFactory:
    """A protocol factory for ``loop.create_server`` (or ``SocketServer``) serving ``app``.

    Args:
        app: the WSGI callable.
        cfg: a :class:`pulsar.Config` with the wsgi settings; ``settings`` (``keep_alive=5``,
            ``thread_workers=0``...) are applied on top of it (or of the defaults).
        executor: see :class:`ServerState`.
        on_request: called after each response.

    Raises:
        pulsar.ConfigError: an unknown setting or a bad value.
    """
    return ProtocolFactory(app, _config(cfg, settings), executor=executor, on_request=on_request)
