"""The errors of pulsar-rpc: one base, :class:`RpcError`, carrying a JSON-RPC error object.

The server turns an :class:`RpcError` raised by a method into the response's ``error`` member
(``code``, ``message`` and, when not None, ``data``); the client raises the same classes for the
error objects it receives, so ``except rpc.MethodNotFound`` works on both sides.

Standard codes (JSON-RPC 2.0, section 5.1):

======  =================  =====================================================
code    class              meaning
======  =================  =====================================================
-32700  ParseError         the body is not valid JSON (or not UTF-8)
-32600  InvalidRequest     the JSON is not a valid request object
-32601  MethodNotFound     no such method
-32602  InvalidParams      the params do not fit the method's signature
-32603  InternalError      the method failed (an unexpected exception)
-32000  ServerError        the implementation-defined range -32000 ... -32099;
                           pulsar-rpc uses -32000 for a call that timed out
                           (:class:`CallTimeout`)
-32300  TransportError     client side only: the HTTP exchange failed (no response,
                           a non-200 status, a body that is not JSON-RPC)
======  =================  =====================================================

Applications raise ``RpcError(code, message, data)`` with their own codes (any integer outside
the reserved range -32768 ... -32000, or inside -32000 ... -32099 for "server errors").
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CallTimeout",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "InternalError",
    "InvalidParams",
    "InvalidRequest",
    "METHOD_NOT_FOUND",
    "MethodNotFound",
    "PARSE_ERROR",
    "ParseError",
    "RpcError",
    "RpcTimeoutError",
    "SERVER_ERROR",
    "ServerError",
    "TIMEOUT_ERROR",
    "TRANSPORT_ERROR",
    "TransportError",
    "error_class",
]

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_ERROR = -32000
TIMEOUT_ERROR = -32000
TRANSPORT_ERROR = -32300


class RpcError(Exception):
    """A JSON-RPC error: ``code`` (int), ``message`` (str) and optional ``data`` (any JSON).

    Raise it from an rpc method to answer with that error object; the client raises it (or the
    subclass matching the code) for every error it receives. It pickles, so it may cross the
    actor mailbox.

    Args:
        code: the error code; the subclasses fill it in (``MethodNotFound("...")``).
        message: one short sentence.
        data: extra information, any JSON-serializable value (None: no ``data`` member).
    """

    #: the code of instances built without one (subclasses set it)
    default_code: int = SERVER_ERROR
    #: the message of instances built without one
    default_message: str = "Server error"

    def __init__(self, code: int | None = None, message: str | None = None, data: Any = None):
        if isinstance(code, str) and message is None:  # RpcError("text"): a message only
            code, message = None, code
        self.code = int(self.default_code if code is None else code)
        self.message = str(self.default_message if message is None else message)
        self.data = data
        super().__init__(self.code, self.message, self.data)

    def __str__(self) -> str:
        text = f"[{self.code}] {self.message}"
        return text if self.data is None else f"{text} ({self.data!r})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}, {self.message!r}, {self.data!r})"

    def __reduce__(self) -> Any:
        return (_rebuild, (type(self), self.code, self.message, self.data))

    def to_dict(self) -> dict[str, Any]:
        """The JSON-RPC error object: ``{"code", "message"}`` plus ``"data"`` when not None."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def _rebuild(cls: type[RpcError], code: int, message: str, data: Any) -> RpcError:
    exc = cls.__new__(cls)
    RpcError.__init__(exc, code, message, data)
    return exc


class _Fixed(RpcError):
    """An error whose code is fixed by its class: ``MethodNotFound("no method 'x'")``."""

    def __init__(self, message: str | None = None, data: Any = None, *, code: int | None = None):
        super().__init__(self.default_code if code is None else code, message, data)


class ParseError(_Fixed):
    """-32700: invalid JSON was received (or bytes that are not UTF-8)."""

    default_code = PARSE_ERROR
    default_message = "Parse error"


class InvalidRequest(_Fixed):
    """-32600: the JSON sent is not a valid request object."""

    default_code = INVALID_REQUEST
    default_message = "Invalid Request"


class MethodNotFound(_Fixed):
    """-32601: the method does not exist or is not available."""

    default_code = METHOD_NOT_FOUND
    default_message = "Method not found"


class InvalidParams(_Fixed):
    """-32602: invalid method parameters (checked against the signature before the call)."""

    default_code = INVALID_PARAMS
    default_message = "Invalid params"


class InternalError(_Fixed):
    """-32603: internal JSON-RPC error (the method raised an unexpected exception)."""

    default_code = INTERNAL_ERROR
    default_message = "Internal error"


class ServerError(RpcError):
    """-32000 ... -32099: implementation-defined server errors."""

    default_code = SERVER_ERROR
    default_message = "Server error"


class CallTimeout(ServerError):
    """-32000: the call did not finish within the server's ``rpc_timeout``."""

    default_code = TIMEOUT_ERROR
    default_message = "Call timed out"

    def __init__(self, message: str | None = None, data: Any = None, *, code: int | None = None):
        super().__init__(self.default_code if code is None else code, message, data)


class TransportError(_Fixed):
    """Client side: the HTTP exchange failed (connection refused, a non-200 status, a body
    that is not JSON-RPC). ``data`` holds details such as ``{"status": 413}``."""

    default_code = TRANSPORT_ERROR
    default_message = "Transport error"


class RpcTimeoutError(TransportError):
    """Client side: no response within the proxy's ``timeout``."""

    default_message = "Timed out waiting for the response"


_BY_CODE: dict[int, type[RpcError]] = {
    PARSE_ERROR: ParseError,
    INVALID_REQUEST: InvalidRequest,
    METHOD_NOT_FOUND: MethodNotFound,
    INVALID_PARAMS: InvalidParams,
    INTERNAL_ERROR: InternalError,
}


def error_class(code: int) -> type[RpcError]:
    """The class the client raises for an error object with ``code``: one of the standard
    classes, :class:`ServerError` for -32000 ... -32099, else :class:`RpcError`."""
    cls = _BY_CODE.get(code)
    if cls is not None:
        return cls
    if -32099 <= code <= -32000:
        return ServerError
    return RpcError
