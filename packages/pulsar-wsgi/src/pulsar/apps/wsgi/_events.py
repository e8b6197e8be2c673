"""Events of the sans-IO HTTP/1.1 connection (:class:`~pulsar.apps.wsgi.HttpConnection`).

Feeding bytes to a connection produces, for each request: one :class:`Request` (the head), zero
or more :class:`Data` (body bytes, chunked framing removed), one :class:`EndOfMessage`. A peer that
breaks the protocol produces one :class:`RequestError` (with the status code to answer with) and
nothing after it; the peer closing its side produces :class:`ConnectionClosed`.

The server sends events back with :meth:`HttpConnection.send` (the h11 shape): an
:class:`InformationalResponse` (``100 Continue``), one :class:`Response` (the head), any
:class:`Data`, one :class:`EndOfMessage`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "NEED_DATA",
    "ConnectionClosed",
    "Data",
    "EndOfMessage",
    "Event",
    "InformationalResponse",
    "Request",
    "RequestError",
    "Response",
    "Sentinel",
]


class Sentinel(enum.Enum):
    """Returned by ``next_event()`` when no complete event is available yet."""

    NEED_DATA = "NEED_DATA"


NEED_DATA = Sentinel.NEED_DATA


@dataclass(frozen=True, slots=True)
class Request:
    """The head of a request.

    Attributes:
        method: upper-case method (``"GET"``).
        target: the raw request target as sent (``b"/path?query"``).
        http_version: ``"1.0"`` or ``"1.1"``.
        headers: ``(name, value)`` byte pairs in the order received, names as sent.
        keep_alive: the client allows the connection to be reused after this request.
        expect_continue: the client sent ``Expect: 100-continue`` (HTTP/1.1) and waits for it.
        content_length: the declared body length, or None.
        chunked: the body comes with ``Transfer-Encoding: chunked``.
    """

    method: str
    target: bytes
    http_version: str
    headers: tuple[tuple[bytes, bytes], ...]
    keep_alive: bool = True
    expect_continue: bool = False
    content_length: int | None = None
    chunked: bool = False

    @property
    def has_body(self) -> bool:
        """Whether body bytes follow the head."""
        return self.chunked or bool(self.content_length)

    @classmethod
    def _make(
        cls,
        method: str,
        target: bytes,
        http_version: str,
        headers: tuple[tuple[bytes, bytes], ...],
        keep_alive: bool,
        expect_continue: bool,
        content_length: int | None,
        chunked: bool,
    ) -> Request:
        """The connection's constructor (positional, no checks). A frozen dataclass's
        ``__init__`` goes through ``object.__setattr__`` once per field, which is a tenth of the
        cost of a hello-world request; setting the slots through their descriptors is half that.
        """
        self = _new(cls)
        _SET_METHOD(self, method)
        _SET_TARGET(self, target)
        _SET_VERSION(self, http_version)
        _SET_HEADERS(self, headers)
        _SET_KEEP_ALIVE(self, keep_alive)
        _SET_EXPECT(self, expect_continue)
        _SET_LENGTH(self, content_length)
        _SET_CHUNKED(self, chunked)
        return self


_new = object.__new__
_SET_METHOD = Request.__dict__["method"].__set__
_SET_TARGET = Request.__dict__["target"].__set__
_SET_VERSION = Request.__dict__["http_version"].__set__
_SET_HEADERS = Request.__dict__["headers"].__set__
_SET_KEEP_ALIVE = Request.__dict__["keep_alive"].__set__
_SET_EXPECT = Request.__dict__["expect_continue"].__set__
_SET_LENGTH = Request.__dict__["content_length"].__set__
_SET_CHUNKED = Request.__dict__["chunked"].__set__


@dataclass(frozen=True, slots=True)
class Data:
    """A piece of the request body (never empty)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class EndOfMessage:
    """The request body is complete."""


@dataclass(frozen=True, slots=True)
class RequestError:
    """The client broke the protocol; answer ``status`` (when possible), then close."""

    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The client closed its side of the connection (EOF)."""


@dataclass(frozen=True, slots=True)
class Response:
    """The head of a response the server sends (:meth:`HttpConnection.send`).

    Attributes:
        status: the status code (200...599).
        headers: ``(name, value)`` str pairs; the connection adds ``Date``, ``Server`` and the
            framing headers.
        request: the request answered (None: an error response to an unparsable request).
        reason: the reason phrase (None: the standard one).
        length: the body size when known (a ``Content-Length`` is added when absent).
    """

    status: int
    headers: tuple[tuple[str, str], ...] | list[tuple[str, str]] = ()
    request: Request | None = None
    reason: str | None = None
    length: int | None = None


@dataclass(frozen=True, slots=True)
class InformationalResponse:
    """``100 Continue`` for the request being received (sent only when it is due)."""


Event = Request | Data | EndOfMessage | RequestError | ConnectionClosed
