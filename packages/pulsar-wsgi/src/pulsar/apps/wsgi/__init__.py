"""pulsar.apps.wsgi — a WSGI HTTP/1.1 server on pulsar actors (see the package README).

Layers, bottom up: a sans-IO HTTP/1.1 connection over httptools (:class:`HttpConnection` and its
events), the asyncio protocol and per-request cycle (:class:`HttpServerProtocol`,
:func:`create_protocol_factory`), the application (:class:`WSGIServer`), and small helpers
(:class:`Router`, :class:`StaticFiles`, :class:`GZipMiddleware`).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import _settings  # noqa: F401 - registers the wsgi settings
from ._accesslog import AccessLogger
from ._connection import (
    TRANSITIONS,
    HttpConnection,
    Limits,
    RecvState,
    SendState,
    Trigger,
    http_date,
)
from ._environ import EnvironBuilder, ErrorStream, FileWrapper
from ._errors import ClientDisconnected, HttpError, LocalProtocolError, RemoteProtocolError
from ._events import (
    NEED_DATA,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    InformationalResponse,
    Request,
    RequestError,
    Response,
)
from ._flow import FlowControl
from ._input import MAX_DRAIN, RequestBody
from ._protocol import (
    MAX_PIPELINE,
    HttpServerProtocol,
    ProtocolFactory,
    ServerState,
    Timer,
    create_protocol_factory,
)
from ._router import Router
from ._server import WsgiProtocolFactory, WSGIServer, load_callable, main
from ._static import GZipMiddleware, StaticFiles

try:
    __version__ = version("pulsar-wsgi")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    import pulsar

    __version__ = pulsar.__version__

__all__ = [
    "__version__",
    # server
    "WSGIServer",
    "WsgiProtocolFactory",
    "create_protocol_factory",
    "HttpServerProtocol",
    "ProtocolFactory",
    "ServerState",
    "FlowControl",
    "Timer",
    "MAX_DRAIN",
    "MAX_PIPELINE",
    "load_callable",
    "main",
    # sans-IO HTTP/1.1
    "HttpConnection",
    "Limits",
    "RecvState",
    "SendState",
    "TRANSITIONS",
    "Trigger",
    "http_date",
    "NEED_DATA",
    "Event",
    "Request",
    "Response",
    "InformationalResponse",
    "Data",
    "EndOfMessage",
    "RequestError",
    "ConnectionClosed",
    # WSGI
    "RequestBody",
    "EnvironBuilder",
    "ErrorStream",
    "FileWrapper",
    "AccessLogger",
    # helpers
    "Router",
    "StaticFiles",
    "GZipMiddleware",
    # errors
    "HttpError",
    "RemoteProtocolError",
    "LocalProtocolError",
    "ClientDisconnected",
]
