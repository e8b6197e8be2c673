"""``RpcServer``: pulsar-wsgi's ``WSGIServer`` with the ``rpc`` settings on its command line.

Any WSGI server runs a :class:`~pulsar.apps.rpc.JSONRPC` handler, ``WSGIServer`` included; the
handler then uses the defaults of the ``rpc_*`` settings (or its constructor's keywords). With
``RpcServer`` the ``rpc_*`` settings join the server's configuration, so ``--rpc-timeout``,
``PULSAR_RPC_TIMEOUT`` or ``rpc_timeout = 5`` in the config file reach the handler in every
worker.
"""

from __future__ import annotations

from pulsar.apps.wsgi import WSGIServer

__all__ = ["RpcServer"]


class RpcServer(WSGIServer):
    """Serve a JSON-RPC handler over HTTP/1.1: ``RpcServer(callable=handler).start()``.

    Every setting of :class:`~pulsar.apps.wsgi.WSGIServer` applies, plus the ``rpc`` ones
    (``rpc_timeout``, ``rpc_max_batch``, ``rpc_max_body``, ``rpc_thread_workers``,
    ``rpc_error_details``).
    """

    name = "rpc"
    cfg_apps: tuple[str, ...] = (*WSGIServer.cfg_apps, "rpc")
    description = "Pulsar JSON-RPC 2.0 server"
