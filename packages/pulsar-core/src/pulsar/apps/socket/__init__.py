"""Socket servers: :class:`SocketServer` (TCP, unix sockets, TLS) and :class:`UdpServer`.

Both are :class:`pulsar.Application` subclasses built from a protocol factory; the arbiter binds
the ``bind`` addresses once and the workers share the listening sockets (or bind their own with
``reuse_port``).
"""

from __future__ import annotations

from ._listeners import BindError, Listener, bind_listeners, format_sockname, server_ssl_context
from ._server import SocketServer, UdpServer
from ._worker import ServerConnection, ServerState, UdpWorkerServer, WorkerServer

__all__ = [
    "BindError",
    "Listener",
    "ServerConnection",
    "ServerState",
    "SocketServer",
    "UdpServer",
    "UdpWorkerServer",
    "WorkerServer",
    "bind_listeners",
    "format_sockname",
    "server_ssl_context",
]
