"""pulsar.apps.rpc — JSON-RPC 2.0 handlers (WSGI applications) and client proxies.

Server side: subclass :class:`JSONRPC` with ``rpc_<name>(self, request, ...)`` methods (plain or
``async def``), mount sub-handlers with :meth:`JSONRPC.add_handler`, serve the handler with any
WSGI server (``pulsar.apps.wsgi.WSGIServer(callable=handler)``). :class:`PulsarServerCommands`
adds ``ping``, ``echo``, ``server_info``, ``functions_list``, ``documentation`` and
``kill_actor``; ``rpc.discover`` returns an OpenRPC document.

Client side: ``await JsonProxy(url).calc.add(1, 2)``, ``SyncJsonProxy(url)`` for scripts,
``proxy.batch()`` for batches. Every error is an :class:`RpcError`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import _settings as _settings  # registers the ``rpc`` settings
from ._client import Batch, BatchCall, JsonProxy, SyncJsonProxy
from ._commands import PulsarServerCommands
from ._errors import (
    CallTimeout,
    InternalError,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    ParseError,
    RpcError,
    RpcTimeoutError,
    ServerError,
    TransportError,
)
from ._handler import JSONRPC, RpcRequest
from ._methods import RpcFunction, RpcMethod, rpc_method
from ._openrpc import OPENRPC_VERSION
from ._server import RpcServer

try:
    __version__ = version("pulsar-rpc")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    import pulsar

    __version__ = pulsar.__version__

__all__ = [
    "__version__",
    # server
    "JSONRPC",
    "OPENRPC_VERSION",
    "PulsarServerCommands",
    "RpcFunction",
    "RpcMethod",
    "RpcRequest",
    "RpcServer",
    "rpc_method",
    # client
    "Batch",
    "BatchCall",
    "JsonProxy",
    "SyncJsonProxy",
    # errors
    "CallTimeout",
    "InternalError",
    "InvalidParams",
    "InvalidRequest",
    "MethodNotFound",
    "ParseError",
    "RpcError",
    "RpcTimeoutError",
    "ServerError",
    "TransportError",
]
