"""``WSGIServer``: the WSGI application of pulsar, and the ``pulsar-wsgi`` command.

How it works
------------
:class:`WSGIServer` is an application whose workers serve HTTP with a
:class:`~._protocol.ProtocolFactory` over the WSGI callable: it is a
``pulsar.apps.socket.SocketServer`` (shared listening sockets, TLS, connection counters) whose
protocol factory is that factory. :meth:`WSGIServer.listen` serves the same factory with
``loop.create_server`` in the current process (tests, embedding).

The factory is configured lazily, in the worker, from the final configuration (the config file,
environment and command line are read by ``start()`` after the constructor ran).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any

import pulsar
from pulsar.options import ServerOptions

from ._protocol import HttpServerProtocol, ProtocolFactory, ServerState

__all__ = [
    "SOCKET_SERVER",
    "WSGIServer",
    "WsgiProtocolFactory",
    "load_callable",
    "main",
    "ssl_context",
]

# pulsar-core's socket server (shared listening sockets, TLS, max_requests, counters)
from pulsar.apps.socket import SocketServer as _Base
from pulsar.apps.socket import WorkerServer, server_ssl_context

#: kept for compatibility: pulsar-core always provides SocketServer now
SOCKET_SERVER = True


class WsgiProtocolFactory(ProtocolFactory):
    """A picklable protocol factory whose :class:`ServerState` is built on first use, from the
    configuration given to :meth:`configure` (the final one, in the worker)."""

    def __init__(self, app: Callable[..., Any] | None) -> None:
        self.app = app
        self.cfg: Any = None
        self.on_request: Callable[[], Any] | None = None
        self._state: ServerState | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"app": self.app, "cfg": self.cfg, "on_request": None, "_state": None}

    def configure(self, cfg: Any, on_request: Callable[[], Any] | None = None) -> None:
        """Use ``cfg`` (a Config with the wsgi settings) for the connections to come."""
        self.cfg = cfg
        self.on_request = on_request
        self._state = None

    def for_worker(self) -> WsgiProtocolFactory:
        """A factory of the same callable and configuration with a :class:`ServerState` of its
        own: one per worker, so that a worker's counters are its own even where the workers
        are threads sharing the application object (``concurrency thread``)."""
        own = WsgiProtocolFactory(self.app)
        own.cfg = self.cfg
        return own

    @property
    def state(self) -> ServerState:  # type: ignore[override]
        if self._state is None:
            if self.app is None:
                raise pulsar.ConfigError("WSGIServer: no WSGI callable to serve")
            self._state = ServerState(self.app, self.cfg, on_request=self.on_request)
        return self._state

    @state.setter
    def state(self, value: ServerState) -> None:
        self._state = value

    def __call__(self) -> HttpServerProtocol:
        return HttpServerProtocol(state=self.state)


class WSGIServer(_Base):
    """Serve a WSGI callable over HTTP/1.1: ``WSGIServer(callable=app, **settings).start()``.

    Every core setting (``bind``, ``workers``, ``keep_alive``, TLS...) and the wsgi settings
    (``thread_workers``, limits, timeouts, ``forwarded_allow_ips``, ``root_path``, access log)
    apply, from code, the config file, ``PULSAR_*`` variables or the command line.
    """

    name = "wsgi"
    url_scheme = "http"
    cfg_apps: tuple[str, ...] = ("socket", "wsgi")
    description = "Pulsar WSGI HTTP/1.1 server"

    def __init__(self, callable: Any = None, **params: Any) -> None:
        spec = None
        if isinstance(callable, str):  # "module:app": imported by each worker after it starts
            spec, callable = callable, None
        self.wsgi_callable = callable
        super().__init__(WsgiProtocolFactory(callable), **params)
        if spec is not None:
            self.import_spec = pulsar.ImportSpec(spec, self.import_default)
        self._servers: list[asyncio.Server] = []

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state["_servers"] = []
        return state

    # -- command line -----------------------------------------------------------------------------
    def add_arguments(self, parser: Any) -> None:
        """``pulsar-wsgi module:callable``: the positional argument when no callable was given."""
        super().add_arguments(parser)
        if self.wsgi_callable is None and self.import_spec is None:
            parser.add_argument(
                "application", metavar="MODULE:CALLABLE", help="the WSGI callable to serve"
            )

    def apply_arguments(self, args: Any) -> None:
        super().apply_arguments(args)
        spec = getattr(args, "application", None)
        if spec:  # imported by Application.start() (the check), then again by every worker
            try:
                self.import_spec = pulsar.ImportSpec(spec, self.import_default)
            except ValueError as exc:
                raise pulsar.ConfigError(f"application: cannot load {spec!r} ({exc})") from None

    def set_callable(self, app: Callable[..., Any]) -> None:
        """Serve ``app``."""
        self.wsgi_callable = app
        self.callable = WsgiProtocolFactory(app)

    @property
    def app_object(self) -> Any:
        """The WSGI callable served."""
        return self.wsgi_callable

    def set_application(self, obj: Any) -> None:
        """Serve ``obj``, the WSGI callable :attr:`import_spec` names."""
        self.set_callable(obj)

    def unloaded_state(self) -> dict[str, Any]:
        return {"wsgi_callable": None, "callable": WsgiProtocolFactory(None)}

    # -- workers ----------------------------------------------------------------------------------
    #: requests (not connections) count toward ``max_requests`` (SocketServer)
    connections_are_requests = False

    @property
    def factory(self) -> WsgiProtocolFactory:
        """The protocol factory of this server (its ``state`` has the statistics)."""
        factory: WsgiProtocolFactory = self.callable
        return factory

    def protocol_factory(self, worker: Any = None) -> WsgiProtocolFactory:
        """The asyncio protocol factory serving the WSGI callable, configured with ``self.cfg``.

        Raises:
            pulsar.ConfigError: there is no WSGI callable.
        """
        if self.wsgi_callable is None:
            raise pulsar.ConfigError("WSGIServer: no WSGI callable to serve")
        factory = self.factory
        if factory.cfg is not self.cfg:
            factory.configure(self.cfg, factory.on_request)
        return factory

    def create_worker_server(self, worker: Any) -> Any:
        """SocketServer: the worker's server. HTTP keep-alive and its deadlines are the
        protocol's business, so the socket layer's idle timer is off; requests are counted
        toward ``max_requests`` by the protocol. The worker's connections get a protocol
        factory of their own (:meth:`WsgiProtocolFactory.for_worker`): its counters are this
        worker's."""
        factory = self.protocol_factory(worker).for_worker()
        server = WorkerServer(
            str(self.name),
            worker,
            self.listeners,
            factory,
            self.cfg,
            ssl_context=server_ssl_context(self.cfg),
            count_connections=False,
            keep_alive=0,
        )
        factory.configure(self.cfg, server.request_done)
        return server

    async def worker_start(self, worker: Any) -> None:
        """Serve in ``worker`` on SocketServer's shared sockets."""
        self.protocol_factory(worker)
        await super().worker_start(worker)

    async def worker_stopping(self, worker: Any) -> None:
        """Graceful stop: finish in-flight responses within ``graceful_timeout``, close idle
        keep-alive connections at once."""
        await super().worker_stopping(worker)
        timeout = float(self.cfg.view(ServerOptions).graceful_timeout)
        factory = self.worker_factory(worker)
        if factory is not None and factory._state is not None:
            await factory.state.shutdown(timeout)
        await self.close(timeout)

    def worker_factory(self, worker: Any) -> WsgiProtocolFactory | None:
        """The protocol factory of ``worker``'s connections (None before it serves)."""
        server = worker.extra.get("servers", {}).get(self.name)
        factory = getattr(server, "protocol_factory", None)
        return factory if isinstance(factory, WsgiProtocolFactory) else None

    def worker_info(self, worker: Any, info: dict[str, Any]) -> None:
        """Add the HTTP counters of ``worker``'s connections to its ``info`` under ``wsgi``
        (:meth:`ServerState.statistics`: connections, responses by status, latency)."""
        super().worker_info(worker, info)
        factory = self.worker_factory(worker)
        if factory is not None and factory._state is not None:
            info["wsgi"] = factory.state.statistics()

    async def listen(self) -> list[asyncio.Server]:
        """Listen on every ``bind`` address in this process with ``loop.create_server`` (tests,
        embedding in another asyncio program). ``SO_REUSEPORT`` is used when there are
        several workers."""
        loop = asyncio.get_running_loop()
        cfg = self.cfg
        factory = self.protocol_factory()
        context = ssl_context(cfg)
        options = cfg.view(ServerOptions)
        backlog = options.backlog
        reuse_port = options.reuse_port or options.workers > 1
        for value in options.bind:
            address = pulsar.parse_address(value)
            server: asyncio.Server
            if address.path is not None:
                server = await loop.create_unix_server(
                    factory, address.path, ssl=context, backlog=backlog
                )
            else:
                server = await loop.create_server(
                    factory,
                    address.host,
                    address.port or 0,
                    ssl=context,
                    backlog=backlog,
                    reuse_port=reuse_port or None,
                )
            self._servers.append(server)
        return self._servers

    @property
    def listening_addresses(self) -> list[Any]:
        """The socket names of :meth:`listen`."""
        return [sock.getsockname() for server in self._servers for sock in server.sockets]

    async def close(self, timeout: float = 30.0) -> None:
        """Stop the servers of :meth:`listen` and the connections (gracefully, within
        ``timeout``), then the thread pool this server owns."""
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()
        factory = self.factory
        if factory._state is not None:
            await factory.state.shutdown(timeout)
        for server in servers:
            await server.wait_closed()


def ssl_context(cfg: Any) -> ssl.SSLContext | None:
    """The server TLS context of the ``cert_file``/``key_file``/``ca_certs`` settings, or None."""
    cert = cfg.get("cert_file")
    if not cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, cfg.get("key_file") or None)
    ca = cfg.get("ca_certs")
    if ca:
        context.load_verify_locations(ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def load_callable(spec: str) -> Callable[..., Any]:
    """Import ``module:callable`` (``module`` alone means ``module:application``).

    The current directory is importable, like with gunicorn. Raises ImportError,
    AttributeError or ValueError.
    """
    obj = pulsar.ImportSpec(spec).load()
    if not callable(obj):
        raise ValueError(f"{spec} is not callable")
    return obj  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> Any:
    """The ``pulsar-wsgi MODULE:CALLABLE [options]`` command (and ``python -m``)."""
    return WSGIServer().start(argv)
