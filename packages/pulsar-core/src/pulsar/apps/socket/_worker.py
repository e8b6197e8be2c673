"""The serving side of a socket server inside one worker.

How it works
------------
A :class:`WorkerServer` runs in every worker (or in the arbiter with ``workers=0``). It serves the
application's listeners with ``loop.create_server`` and wraps each protocol the user's factory
returns in a :class:`ServerConnection`, a thin adapter that

* turns on ``TCP_NODELAY`` on every accepted TCP socket (asyncio does it only for sockets it
  recognises as TCP; without it a request/response exchange stalls on delayed ACKs); uvloop's
  transports are left alone: uvloop turns it on for every TCP transport it creates, and asking
  again costs three system calls per connection (``getsockname`` twice, ``setsockopt``);
* keeps the worker's connection counters (open, accepted, closed for idleness, aborted);
* closes a connection that received nothing for ``keep_alive`` seconds (one timer per
  connection, re-armed lazily: ``data_received`` only records the time). Only received bytes
  count: a request/response protocol whose answers may take longer than that keeps its own
  deadlines and passes ``keep_alive=0`` to :class:`WorkerServer` (the WSGI server does);
* forwards everything else to the user's protocol; where it keeps no books (``eof_received``,
  flow control, and ``data_received`` when ``keep_alive`` is 0) the user's bound methods are used
  directly, so the adapter costs nothing per chunk of data.

``max_requests``: each accepted connection counts as a request (an HTTP server counts requests
instead, calling :meth:`WorkerServer.request_done`). After ``max_requests`` (plus a random
``0..max_requests_jitter``) the worker stops accepting (other workers and its replacement serve
the shared queue; with ``reuse_port`` it keeps accepting, since closing its own socket would drop
the connections queued on it), asks its monitor to ``recycle`` it, and the monitor stops it
gracefully once the new worker runs.

Graceful stop (:meth:`WorkerServer.close`): stop accepting (the connections accepted already
keep their transport: asyncio makes it one loop iteration after the accept, and a server closed
in between would drop it, so the listening sockets stop being read first and the server closes
an iteration later), wait for the TLS handshakes in progress, call ``server_stopping()`` on every
user protocol that defines it (a protocol closes an idle keep-alive connection there, answering
a request already on its way first), wait for the open connections to finish within
``graceful_timeout`` (minus a small margin, so this finishes before the arbiter's SIGKILL), then
abort what is left. A roll (HUP, TTOU, ``max_requests``) loses no request this way.

Server states (one enum, moving forward only, except RECYCLING → SERVING when the monitor cannot
be reached): INITIAL → SERVING → [RECYCLING →] STOPPING → CLOSED.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import socket
import ssl
import weakref
from collections.abc import Callable
from typing import Any

from pulsar.options import ServerOptions

from ._listeners import Listener

__all__ = [
    "ServerConnection",
    "ServerState",
    "UdpWorkerServer",
    "WorkerServer",
]

logger = logging.getLogger("pulsar.socket")

_IP_FAMILIES = (socket.AF_INET, socket.AF_INET6)
#: transport type -> whether ServerConnection sets TCP_NODELAY on its socket (see _wants_nodelay)
_NODELAY_BY_TYPE: dict[type, bool] = {}


def _wants_nodelay(transport_type: type) -> bool:
    """False for uvloop's stream transports: ``TCPTransport`` has ``TCP_NODELAY`` on already
    (``TCPTransport.new`` calls libuv's ``uv_tcp_nodelay``), a ``UnixTransport`` has no TCP."""
    wants = _NODELAY_BY_TYPE.get(transport_type)
    if wants is None:
        wants = not (
            transport_type.__module__ == "uvloop.loop"
            and transport_type.__name__ in ("TCPTransport", "UnixTransport")
        )
        _NODELAY_BY_TYPE[transport_type] = wants
    return wants


class ServerState(enum.Enum):
    """INITIAL → SERVING → [RECYCLING →] STOPPING → CLOSED (see the module docs)."""

    INITIAL = "initial"
    SERVING = "serving"
    RECYCLING = "recycling"
    STOPPING = "stopping"
    CLOSED = "closed"


def _grace(graceful_timeout: float) -> float:
    """How long open connections may run on at a graceful stop: ``graceful_timeout`` less a
    margin (up to 1 s) so the worker is done before the arbiter's SIGKILL."""
    return max(0.0, graceful_timeout - min(1.0, graceful_timeout * 0.2))


class ServerConnection(asyncio.Protocol):
    """The protocol asyncio sees for each accepted connection; wraps the user's protocol.

    ``protocol`` is the user's :class:`asyncio.Protocol`; ``transport`` the connection's
    transport; ``last_activity`` the loop time data last arrived (with ``keep_alive``).
    """

    def __init__(self, server: WorkerServer, protocol: Any) -> None:
        self.server = server
        self.protocol = protocol
        self.transport: asyncio.BaseTransport | None = None
        self.last_activity = 0.0
        self._timer: asyncio.TimerHandle | None = None
        # forwarded as bound methods (no extra call frame) where no bookkeeping is needed
        self.eof_received = getattr(protocol, "eof_received", _none)  # type: ignore[method-assign]
        self.pause_writing = getattr(protocol, "pause_writing", _none)  # type: ignore[method-assign]
        self.resume_writing = getattr(protocol, "resume_writing", _none)  # type: ignore[method-assign]
        if not server.keep_alive:
            self.data_received = protocol.data_received  # type: ignore[method-assign]

    def __repr__(self) -> str:
        return f"ServerConnection({self.protocol!r})"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        if _wants_nodelay(type(transport)):
            sock = transport.get_extra_info("socket")
            if sock is not None and sock.family in _IP_FAMILIES:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        server = self.server
        if server.keep_alive:
            self.last_activity = server.loop.time()
            self._timer = server.loop.call_at(
                self.last_activity + server.keep_alive, self._check_idle
            )
        server._connection_made(self)
        self.protocol.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.last_activity = self.server.loop.time()
        self.protocol.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.server._connection_lost(self)
        self.protocol.connection_lost(exc)

    def _check_idle(self) -> None:
        server = self.server
        transport = self.transport
        if transport is None or transport.is_closing():
            self._timer = None
            return
        deadline = self.last_activity + server.keep_alive
        if server.loop.time() < deadline:
            self._timer = server.loop.call_at(deadline, self._check_idle)
            return
        server.idle_closed += 1
        logger.debug("%s: closing a connection idle for %gs", server.name, server.keep_alive)
        transport.close()
        # a peer that reads nothing would keep it open forever: abort if still there later
        self._timer = server.loop.call_later(server.keep_alive, self.abort)

    def server_stopping(self) -> None:
        """The worker begins a graceful stop: tell the user's protocol, when it wants to know."""
        hook = getattr(self.protocol, "server_stopping", None)
        if hook is not None:
            try:
                hook()
            except Exception:
                logger.exception("%s: server_stopping() of %r failed", self.server.name, hook)

    def abort(self) -> None:
        """Close the connection at once (buffered data is lost)."""
        self._timer = None
        if self.transport is not None:
            self.transport.abort()  # type: ignore[attr-defined]


def _none(*args: Any) -> None:
    return None


def _close_server(loop: asyncio.AbstractEventLoop, srv: asyncio.AbstractServer) -> None:
    """Close ``srv`` without losing a connection it accepted already.

    asyncio's selector loops accept a connection in one callback and make its transport in a
    task that runs on the next loop iteration; a ``Server.close()`` in between makes that
    transport fail (``Server._attach`` asserts the server is open) and the client sees its
    connection closed without a response. So: stop reading the listening sockets now (no
    more accepts), close the server one iteration later, after the transports of the
    connections accepted so far. uvloop makes the transport in the accepting callback.
    """
    sockets = getattr(srv, "sockets", None) or ()
    remove_reader = getattr(loop, "_remove_reader", None)  # selector loops only
    if remove_reader is None or not sockets:
        srv.close()
        return
    for sock in sockets:
        loop.remove_reader(sock.fileno())
    loop.call_soon(srv.close)


class WorkerServer:
    """The TCP/unix server of one worker: ``worker.extra['server']``.

    Args:
        name: the application name (for logs).
        worker: the actor serving (a worker, or the arbiter with ``workers=0``).
        listeners: the application's :class:`~pulsar.apps.socket.Listener` objects.
        protocol_factory: returns a new :class:`asyncio.Protocol` per connection.
        cfg: the application's configuration (``backlog``, ``keep_alive``, ``max_requests``,
            ``max_requests_jitter``, ``graceful_timeout``).
        ssl_context: serve TLS with it (None: plain TCP).
        count_connections: each connection counts as a request toward ``max_requests``
            (False: the protocol calls :meth:`request_done` per request).
        keep_alive: the idle timeout in seconds, overriding the ``keep_alive`` setting; 0 turns
            the socket layer's idle timer off (an HTTP server, whose requests may take longer
            than the idle timeout while the client sends nothing, keeps its own deadlines).
    """

    def __init__(
        self,
        name: str,
        worker: Any,
        listeners: list[Listener],
        protocol_factory: Callable[[], Any],
        cfg: Any,
        *,
        ssl_context: ssl.SSLContext | None = None,
        count_connections: bool = True,
        keep_alive: float | None = None,
    ) -> None:
        self.name = name
        self.worker = worker
        self.loop: asyncio.AbstractEventLoop = worker.loop or asyncio.get_running_loop()
        self.listeners = listeners
        self.protocol_factory = protocol_factory
        self.ssl_context = ssl_context
        self.count_connections = count_connections
        options = cfg.view(ServerOptions)
        self.backlog = options.backlog
        self.keep_alive = float(options.keep_alive if keep_alive is None else keep_alive)
        self.graceful_timeout = float(options.graceful_timeout)
        max_requests = options.max_requests
        if max_requests and getattr(worker, "monitor_aid", None) is None:
            logger.warning("%s: max_requests ignored: no monitor to recycle this worker", name)
            max_requests = 0
        if max_requests:
            max_requests += random.randint(0, options.max_requests_jitter)
        #: the requests after which this worker is recycled (0: never)
        self.max_requests = max_requests
        self.state = ServerState.INITIAL
        #: the open connections
        self.connections: set[ServerConnection] = set()
        self.accepted = 0
        self.requests = 0
        self.idle_closed = 0
        self.aborted = 0
        self._servers: list[asyncio.AbstractServer] = []
        #: TLS connections accepted whose handshake is not done (gone with a failed one)
        self._handshaking: weakref.WeakSet[ServerConnection] = weakref.WeakSet()
        self._drained: asyncio.Future[None] | None = None
        self._recycle_task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"WorkerServer({self.name!r}, {self.state.value}, {len(self.connections)} open)"

    @property
    def accepting(self) -> bool:
        """True while new connections are accepted."""
        return bool(self._servers)

    @property
    def addresses(self) -> list[str]:
        """The addresses served."""
        return [listener.address for listener in self.listeners]

    # -- life cycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start serving every listener. Raises :class:`~pulsar.apps.socket.BindError` (or an
        ``OSError``) when a socket cannot be served."""
        if self.state is not ServerState.INITIAL:
            return
        await self.start_accepting()
        self.state = ServerState.SERVING

    async def start_accepting(self) -> None:
        """Accept connections on every listener (idempotent)."""
        if self._servers:
            return
        servers: list[asyncio.AbstractServer] = []
        try:
            for listener in self.listeners:
                servers.append(await self._serve(listener))
        except BaseException:
            for srv in servers:
                srv.close()
            raise
        self._servers = servers

    async def _serve(self, listener: Listener) -> asyncio.AbstractServer:
        sock = listener.worker_socket(self.backlog)
        try:
            if listener.is_unix:
                return await self.loop.create_unix_server(
                    self._new_connection, sock=sock, ssl=self.ssl_context, backlog=self.backlog
                )
            return await self.loop.create_server(
                self._new_connection, sock=sock, ssl=self.ssl_context, backlog=self.backlog
            )
        except BaseException:
            sock.close()
            raise

    def stop_accepting(self) -> None:
        """Stop accepting new connections; the open ones go on, and so do the ones accepted
        already whose transport is still being made (see :func:`_close_server`)."""
        servers, self._servers = self._servers, []
        for srv in servers:
            _close_server(self.loop, srv)

    async def close(self, timeout: float | None = None) -> None:
        """Graceful stop: stop accepting, let the open connections finish for up to ``timeout``
        seconds (default: ``graceful_timeout`` less a margin), then abort the rest."""
        if self.state in (ServerState.STOPPING, ServerState.CLOSED):
            return
        self.state = ServerState.STOPPING
        self.stop_accepting()
        if self._recycle_task is not None:
            self._recycle_task.cancel()
        wait = _grace(self.graceful_timeout) if timeout is None else timeout
        deadline = self.loop.time() + wait
        try:
            # connections accepted already get their transport (and connection_made) in the
            # next loop iterations; TLS ones after their handshake
            for _ in range(3):
                await asyncio.sleep(0)
            while self._handshaking and self.loop.time() < deadline:
                await asyncio.sleep(0.01)
            for conn in list(self.connections):
                conn.server_stopping()
            if self.connections:
                self._drained = self.loop.create_future()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(
                        asyncio.shield(self._drained), max(0.0, deadline - self.loop.time())
                    )
        finally:
            left = list(self.connections)
            if left:
                logger.warning(
                    "%s: %d connection(s) still open at the end of the graceful stop: closing",
                    self.name,
                    len(left),
                )
                self.aborted += len(left)
                for conn in left:
                    conn.abort()
            self.state = ServerState.CLOSED

    # -- connections -----------------------------------------------------------------------------
    def _new_connection(self) -> ServerConnection:
        conn = ServerConnection(self, self.protocol_factory())
        if self.ssl_context is not None:  # accepted, until its TLS handshake is done
            self._handshaking.add(conn)
        return conn

    def _connection_made(self, conn: ServerConnection) -> None:
        if self.ssl_context is not None:
            self._handshaking.discard(conn)
        self.connections.add(conn)
        self.accepted += 1
        if self.count_connections:
            self.request_done()

    def _connection_lost(self, conn: ServerConnection) -> None:
        self.connections.discard(conn)
        if not self.connections and self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def request_done(self) -> None:
        """Count one handled request toward ``max_requests``.

        A raw socket server counts each accepted connection (this is called for you); a server
        that speaks a request/response protocol (HTTP) sets
        :attr:`SocketServer.connections_are_requests` to False and calls this per request.
        """
        self.requests += 1
        if (
            self.max_requests
            and self.requests >= self.max_requests
            and self.state is ServerState.SERVING
        ):
            self._recycle()

    def _recycle(self) -> None:
        self.state = ServerState.RECYCLING
        logger.info(
            "%s: %d requests (max_requests %d): asking the monitor for a replacement",
            self.name,
            self.requests,
            self.max_requests,
        )
        if not any(listener.reuse_port for listener in self.listeners):
            # the shared queue keeps being served by the other workers and the replacement
            self.stop_accepting()
        self._recycle_task = asyncio.ensure_future(self._ask_recycle())

    async def _ask_recycle(self) -> None:
        try:
            accepted = await self.worker.send("monitor", "recycle")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.error("%s: cannot ask the monitor to recycle this worker: %s", self.name, exc)
            if self.state is ServerState.RECYCLING:  # serve on; try again after max_requests
                self.requests = 0
                self.state = ServerState.SERVING
                await self.start_accepting()
            return
        if not accepted:
            logger.info("%s: the monitor is already replacing this worker", self.name)

    # -- info ------------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """Counters and state for the worker's ``info``."""
        return {
            "state": self.state.value,
            "addresses": self.addresses,
            "accepting": self.accepting,
            "tls": self.ssl_context is not None,
            "connections": len(self.connections),
            "accepted": self.accepted,
            "requests": self.requests,
            "max_requests": self.max_requests,
            "idle_closed": self.idle_closed,
            "aborted": self.aborted,
            "keep_alive": self.keep_alive,
        }


class _DatagramEndpoint(asyncio.DatagramProtocol):
    """Wraps the user's datagram protocol to count datagrams."""

    def __init__(self, server: UdpWorkerServer, protocol: Any) -> None:
        self.server = server
        self.protocol = protocol
        self.error_received = getattr(protocol, "error_received", _none)  # type: ignore[method-assign, arg-type]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.protocol.connection_made(transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        server = self.server
        server.datagrams += 1
        server.bytes_received += len(data)
        self.protocol.datagram_received(data, addr)

    def connection_lost(self, exc: Exception | None) -> None:
        self.protocol.connection_lost(exc)


class UdpWorkerServer:
    """The UDP server of one worker: one datagram endpoint per listener (each with a protocol
    from ``protocol_factory``). ``worker.extra['server']``."""

    def __init__(
        self, name: str, worker: Any, listeners: list[Listener], protocol_factory: Callable[[], Any]
    ) -> None:
        self.name = name
        self.worker = worker
        self.loop: asyncio.AbstractEventLoop = worker.loop or asyncio.get_running_loop()
        self.listeners = listeners
        self.protocol_factory = protocol_factory
        self.state = ServerState.INITIAL
        self.transports: list[asyncio.DatagramTransport] = []
        self.datagrams = 0
        self.bytes_received = 0

    @property
    def addresses(self) -> list[str]:
        """The addresses served."""
        return [listener.address for listener in self.listeners]

    async def start(self) -> None:
        """Open a datagram endpoint on every listener."""
        if self.state is not ServerState.INITIAL:
            return
        try:
            for listener in self.listeners:
                sock = listener.worker_socket(0)
                try:
                    transport, _ = await self.loop.create_datagram_endpoint(
                        lambda: _DatagramEndpoint(self, self.protocol_factory()), sock=sock
                    )
                except BaseException:
                    sock.close()
                    raise
                self.transports.append(transport)
        except BaseException:
            await self.close()
            raise
        self.state = ServerState.SERVING

    async def close(self, timeout: float | None = None) -> None:
        """Close every endpoint (datagrams have no connection to wait for)."""
        self.state = ServerState.STOPPING
        transports, self.transports = self.transports, []
        for transport in transports:
            transport.close()
        self.state = ServerState.CLOSED

    def info(self) -> dict[str, Any]:
        """Counters and state for the worker's ``info``."""
        return {
            "state": self.state.value,
            "addresses": self.addresses,
            "endpoints": len(self.transports),
            "datagrams": self.datagrams,
            "bytes_received": self.bytes_received,
        }
