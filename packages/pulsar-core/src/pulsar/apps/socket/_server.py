"""Socket server applications: :class:`SocketServer` (TCP and unix sockets) and :class:`UdpServer`.

How it works
------------
The application binds its ``bind`` addresses once, in the arbiter, in the ``monitor_start`` hook,
that is before any worker exists: a busy port or an address that is not on this machine makes the
arbiter's start-up fail with one line and exit code :attr:`~pulsar.ExitCode.BOOT_ERROR`, and no
worker is ever spawned. The bound :class:`~pulsar.apps.socket.Listener` objects are attributes of
the application, which travels to each worker (inherited with ``fork``, pickled together with
their descriptors with ``spawn``/``forkserver``; thread workers share them). In ``worker_start``
each worker creates its :class:`~pulsar.apps.socket.WorkerServer` (``worker.extra['server']``),
``worker_stopping`` closes it gracefully and ``worker_info`` adds its counters to ``info`` under
``server``. With ``workers=0`` everything happens in the arbiter (a bind failure stops it with
``BOOT_ERROR`` too). ``monitor_stopping`` closes the arbiter's sockets and removes unix socket
files.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from pulsar import Application, ConfigError, ExitCode
from pulsar.options import ServerOptions

from ._listeners import BindError, Listener, bind_listeners, close_listeners, server_ssl_context
from ._worker import UdpWorkerServer, WorkerServer

__all__ = ["SocketServer", "UdpServer"]

logger = logging.getLogger("pulsar.socket")


class _ServerApplication(Application):
    """What :class:`SocketServer` and :class:`UdpServer` share: binding and the worker hooks."""

    #: ``"tcp"`` or ``"udp"``
    kind = "tcp"
    #: the server settings (``bind``, TLS, ``keep_alive``, ``max_requests``, ``access_log``)
    cfg_apps: tuple[str, ...] = ("socket",)

    def __init__(self, callable: Any = None, **params: Any) -> None:
        super().__init__(callable, **params)
        #: the bound listeners (set in the arbiter by :meth:`bind`, inherited by the workers)
        self.listeners: list[Listener] = []
        self._owns_listeners = False

    @property
    def addresses(self) -> list[str]:
        """The addresses actually bound (port 0 resolved), e.g. ``['127.0.0.1:39217']``."""
        return [listener.address for listener in self.listeners]

    def protocol_factory(self, worker: Any) -> Callable[[], Any]:
        """The factory of the protocol serving each connection (endpoint for UDP) in ``worker``.

        The ``callable`` by default; subclasses that speak a protocol (HTTP) build their own.
        Raises :class:`~pulsar.ConfigError` when there is none.
        """
        if self.callable is None:
            raise ConfigError(f"{type(self).__name__} needs a callable: a protocol factory")
        return self.callable  # type: ignore[no-any-return]

    # -- binding (arbiter) -----------------------------------------------------------------------
    def bind(self) -> list[Listener]:
        """Bind every ``bind`` address (once); called in the arbiter before any worker starts.

        Raises :class:`~pulsar.apps.socket.BindError` (one line naming the address, or the TLS
        files) and then nothing stays bound.
        """
        if self.listeners:
            return self.listeners
        if self.kind == "tcp":
            server_ssl_context(self.cfg)  # a bad certificate fails here, not in every worker
        options = self.cfg.view(ServerOptions)
        self.listeners = bind_listeners(
            list(options.bind),
            kind=self.kind,
            backlog=options.backlog,
            reuse_port=options.reuse_port,
        )
        self._owns_listeners = True
        self.listening(self.addresses)
        return self.listeners

    def listening(self, addresses: list[str]) -> None:
        """Arbiter: the sockets are bound (called once). Logs them and the start-up banner
        (:meth:`banner`); override to announce them elsewhere (the echo example prints
        ``LISTENING <address>``)."""
        logger.info("%s: listening on %s", self.name, ", ".join(addresses))
        for line in self.banner():
            logger.info("%s", line)

    #: the URL scheme of the addresses in the banner (``https`` etc. with TLS: :meth:`urls`)
    url_scheme = "tcp"

    def urls(self) -> list[str]:
        """The bound addresses as URLs: ``http://127.0.0.1:8000``, ``https://...`` with TLS,
        ``unix:/path``."""
        scheme = self.url_scheme
        if self.cfg.get("cert_file"):
            scheme = {"http": "https", "tcp": "tls"}.get(scheme, scheme)
        return [
            address if address.startswith("unix:") else f"{scheme}://{address}"
            for address in self.addresses
        ]

    def banner(self) -> list[str]:
        """The start-up banner: version, URLs, workers x concurrency and threads, pid, and
        "Press Ctrl-C to quit" on a terminal."""
        from pulsar import __version__

        options = self.cfg.view(ServerOptions)
        workers, threads = options.workers, options.thread_workers
        if workers:
            pool = f"{workers} worker{'s' if workers != 1 else ''} x {options.concurrency}"
        else:
            pool = "in the arbiter"
        threading = f"{threads} thread{'s' if threads != 1 else ''} each" if threads else "inline"
        lines = [
            f"pulsar {__version__}: {self.name} running on {', '.join(self.urls())} "
            f"({pool}, {threading}; arbiter pid {os.getpid()})"
        ]
        if sys.stderr.isatty():
            lines.append("Press Ctrl-C to quit")
        return lines

    def close_listeners(self) -> None:
        """Close the sockets bound by :meth:`bind` and remove unix socket files (arbiter)."""
        if self._owns_listeners:
            close_listeners(self.listeners)
            self.listeners = []
            self._owns_listeners = False

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_owns_listeners"] = False  # a worker never closes the arbiter's sockets
        return state

    # -- hooks -----------------------------------------------------------------------------------
    def monitor_start(self, monitor: Any) -> None:
        """Bind the listening sockets in the arbiter, before the workers spawn."""
        self.bind()

    def monitor_stopping(self, monitor: Any) -> None:
        """Close the arbiter's sockets (the workers keep their own until they stop)."""
        self.close_listeners()

    async def worker_start(self, worker: Any) -> None:
        """Serve: create this worker's server (``worker.extra['server']``) and start it."""
        if worker.is_arbiter and not self.listeners:  # workers=0: bind here, in the arbiter
            try:
                self.bind()
            except (BindError, ConfigError) as exc:
                logger.error("%s: %s", self.name, exc)
                worker.stop(int(ExitCode.BOOT_ERROR))
                return
        server = self.create_worker_server(worker)
        worker.extra["server"] = server
        worker.extra.setdefault("servers", {})[self.name] = server
        await server.start()

    def create_worker_server(self, worker: Any) -> Any:  # pragma: no cover - abstract
        """The per-worker server object (override)."""
        raise NotImplementedError

    async def worker_stopping(self, worker: Any) -> None:
        """Graceful stop: stop accepting and finish the open connections (within
        ``graceful_timeout``)."""
        server = worker.extra.get("servers", {}).get(self.name)
        if server is not None:
            await server.close()
        if worker.is_arbiter:
            self.close_listeners()

    def worker_info(self, worker: Any, info: dict[str, Any]) -> None:
        """Add the server's counters to ``info`` under ``server`` (and ``servers[name]``)."""
        server = worker.extra.get("servers", {}).get(self.name)
        if server is not None:
            data = server.info()
            info["server"] = data
            info.setdefault("servers", {})[self.name] = data


class SocketServer(_ServerApplication):
    """A TCP (or unix socket) server from an :class:`asyncio.Protocol` factory.

    ``SocketServer(callable=EchoProtocol, bind='127.0.0.1:8060', workers=2).start()``

    Settings used: ``bind`` (several allowed; ``host:port``, ``:port``, ``[::1]:port``,
    ``unix:/path``; port 0 picks a free port, see :attr:`addresses`), ``backlog``, ``reuse_port``,
    ``keep_alive`` (close connections that received nothing for that many seconds; 0: never),
    ``cert_file``/``key_file``/``ca_certs`` (TLS), ``max_requests``/``max_requests_jitter`` (a
    request is a connection here), ``graceful_timeout`` and every worker setting.

    The protocol of each connection may define ``server_stopping()``: it is called when the worker
    begins a graceful stop (close the connection there once the current exchange is done).
    """

    kind = "tcp"
    #: each accepted connection counts as a request toward ``max_requests``; a server that counts
    #: requests itself sets this to False and calls ``worker.extra['server'].request_done()``
    connections_are_requests = True

    def create_worker_server(self, worker: Any) -> WorkerServer:
        """A :class:`~pulsar.apps.socket.WorkerServer` serving this application in ``worker``."""
        return WorkerServer(
            str(self.name),
            worker,
            self.listeners,
            self.protocol_factory(worker),
            self.cfg,
            ssl_context=server_ssl_context(self.cfg),
            count_connections=self.connections_are_requests,
        )


class UdpServer(_ServerApplication):
    """A UDP server from an :class:`asyncio.DatagramProtocol` factory.

    ``UdpServer(callable=EchoDatagram, bind='127.0.0.1:8061', workers=2).start()``

    Every worker reads the shared socket (each datagram reaches one worker), or with
    ``reuse_port`` binds its own ``SO_REUSEPORT`` socket. Same ``bind`` forms as
    :class:`SocketServer` except ``unix:``.
    """

    kind = "udp"
    url_scheme = "udp"

    def create_worker_server(self, worker: Any) -> UdpWorkerServer:
        """A :class:`~pulsar.apps.socket.UdpWorkerServer` serving this application in ``worker``."""
        return UdpWorkerServer(
            str(self.name), worker, self.listeners, self.protocol_factory(worker)
        )
