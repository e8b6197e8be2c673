"""A sans-IO HTTP/1.1 server connection over httptools (llhttp).

How it works
------------
:class:`HttpConnection` has no socket, loop or timer. The server feeds it the bytes it receives
(:meth:`~HttpConnection.receive_data`) and reads events back (:meth:`~HttpConnection.next_event`,
see :mod:`._events`); it turns responses into bytes (:meth:`~HttpConnection.send_response`,
:meth:`~HttpConnection.send_data`, :meth:`~HttpConnection.send_end`). Parsing is llhttp's (strict
mode: no lenient flags); this module adds the limits (request line, header count and size, body
size), rejects what llhttp accepts but we must not (unknown transfer codings, HTTP versions other
than 1.0/1.1) and maps every parser error to a :class:`~._events.RequestError` with the status
code to answer with.

Requests may be pipelined: the receive side (the client's, :class:`RecvState`) runs ahead of
the send side (the server's, :class:`SendState`). Both sides and every move between their states
are ONE table, :data:`TRANSITIONS` (``(state, Trigger) -> state``); a move the table lacks raises
:class:`~._errors.RemoteProtocolError` on the receive side (inside the parser: the request gets
its 400) and :class:`~._errors.LocalProtocolError` on the send side (the server or the
application broke HTTP). The server answers requests in the order received; the connection
decides the framing of each response (``Content-Length``, chunked, or close-delimited for
HTTP/1.0) and whether the connection survives it.

Receive side::

    IDLE --BEGIN--> HEAD --HEAD--> BODY --END--> IDLE      (keep-alive: the next request)
                                        --LAST--> DONE     (no keep-alive, Upgrade)
    IDLE, HEAD, BODY --ERROR (bad bytes, a limit, a timeout)--> ERROR; --EOF / LOST--> CLOSED
    DONE, ERROR and CLOSED are terminal: later bytes are ignored.

Send side::

    IDLE --RESPONSE--> BODY --DATA--> BODY --END--> DONE --NEXT--> IDLE   (the next response)
                                           --LAST--> MUST_CLOSE           (close once sent)
    any --ABORT--> MUST_CLOSE (CLOSED stays);  any --LOST (the transport is gone)--> CLOSED

``DONE`` keeps "this cycle's response is complete" until the server starts the next cycle
(:meth:`HttpConnection.start_next_cycle`; a ``RESPONSE`` in ``DONE`` starts it implicitly), so
the app runner asks the connection, not a flag of its own, whether its headers are out.
``CLOSED`` on the send side is *the* "disconnected" of the connection
(:attr:`~HttpConnection.lost`).
"""

from __future__ import annotations

import enum
import functools
import re
import time
from collections import deque
from email.utils import formatdate
from http import HTTPStatus

import httptools

from ._errors import LocalProtocolError, RemoteProtocolError
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
    Sentinel,
)

__all__ = [
    "MAX_DRAIN",
    "TRANSITIONS",
    "HttpConnection",
    "Limits",
    "RecvState",
    "SendState",
    "Trigger",
    "http_date",
]

#: response header names and values we refuse to send (RFC 9110 token / no CR, LF, NUL)
_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BAD_VALUE_RE = re.compile(r"[\x00\r\n]")
#: the start of a request whose method is well formed (possibly incomplete), but unknown
_METHOD_RE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+( .*)?", re.DOTALL)
#: a body the application left unread is drained (read and dropped) so that the next request of
#: the connection is served, when at most this many of its bytes are still to come; a response
#: sent before a longer announced body ended says ``Connection: close``
MAX_DRAIN = 1024 * 1024
#: a Host value: uri-host [":" port] (RFC 9110 7.2, RFC 3986 3.2.2); empty is allowed
_HOST_RE = re.compile(
    rb"(\[[0-9A-Fa-f:.]+\]|\[v[0-9A-Fa-f]+\.[!$&'()*+,;=:\w.~-]+\]|[\w.~%!$&'()*+,;=-]*)(:[0-9]*)?"
)
_OWS = (b" ", b"\t")
#: Host values found valid (a server sees the same few; bounded: cleared when full)
_VALID_HOSTS: set[bytes] = set()
#: the request fields on_headers_complete looks at (lower case)
_NOTABLE = frozenset({b"host", b"content-length", b"content-type", b"transfer-encoding", b"expect"})
#: hop-by-hop headers the server frames itself (an application's values are dropped)
_FRAMING = frozenset({"transfer-encoding", "connection", "keep-alive"})
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
#: validated response header lines: (name, value) -> (lower-case name, b"Name: value\r\n");
#: applications send the same few headers over and over (bounded: cleared when full)
_HEADER_CACHE: dict[tuple[str, str], tuple[str, bytes]] = {}
_HEADER_CACHE_SIZE = 4096
#: status lines: (status, reason) -> b"HTTP/1.1 200 OK\r\n" (bounded the same way)
_STATUS_CACHE: dict[tuple[int, str | None], bytes] = {}
#: whole response heads: (status, reason, *headers, length, no body, version, close, server) ->
#: (bytes before the Date line, bytes after it or None when the application sent a Date,
#: Content-Length, chunked, close); bounded the same way
_HEAD_CACHE: dict[tuple[object, ...], tuple[bytes, bytes | None, int | None, bool, bool]] = {}


class Trigger(enum.StrEnum):
    """What moves a side from one state to another (the keys of :data:`TRANSITIONS`).

    A ``StrEnum``: its members hash as their str (C), where an ``Enum`` member's hash is Python.
    """

    BEGIN = "begin"  # receive: the first byte of a request
    HEAD = "head"  # receive: its head is complete and valid
    END = "end"  # receive: the request's body ended; send: the response ended (keep-alive)
    LAST = "last"  # the same, for the last message of the connection
    ERROR = "error"  # receive: bad bytes, a limit, or the server gave up (a timeout)
    EOF = "eof"  # receive: the client closed its side
    RESPONSE = "response"  # send: a response head
    DATA = "data"  # send: a piece of its body
    NEXT = "next"  # send: the server starts the next request's cycle
    ABORT = "abort"  # send: the response is given up; the connection must close
    LOST = "lost"  # both: the transport is gone


class RecvState(enum.Enum):
    """State of the receive side, the client's (transitions: :data:`TRANSITIONS`)."""

    _next: dict[Trigger, RecvState]  # compiled from TRANSITIONS (not a member)

    IDLE = "idle"
    HEAD = "head"
    BODY = "body"
    DONE = "done"
    ERROR = "error"
    CLOSED = "closed"


class SendState(enum.Enum):
    """State of the send side, the server's (transitions: :data:`TRANSITIONS`)."""

    _next: dict[Trigger, SendState]  # compiled from TRANSITIONS (not a member)

    IDLE = "idle"
    BODY = "body"
    DONE = "done"
    MUST_CLOSE = "must_close"
    CLOSED = "closed"


_R, _S, _T = RecvState, SendState, Trigger
#: every legal move of both sides: (state, trigger) -> next state (see the module docstring)
TRANSITIONS: dict[tuple[RecvState | SendState, Trigger], RecvState | SendState] = {
    # receive side
    (_R.IDLE, _T.BEGIN): _R.HEAD,
    (_R.IDLE, _T.LAST): _R.DONE,
    (_R.HEAD, _T.HEAD): _R.BODY,
    (_R.BODY, _T.END): _R.IDLE,
    (_R.BODY, _T.LAST): _R.DONE,
    **{(state, _T.ERROR): _R.ERROR for state in (_R.IDLE, _R.HEAD, _R.BODY)},
    **{(state, _T.EOF): _R.CLOSED for state in (_R.IDLE, _R.HEAD, _R.BODY)},
    **{(state, _T.LOST): _R.CLOSED for state in (_R.IDLE, _R.HEAD, _R.BODY)},
    # terminal: what comes later changes nothing
    **{
        (state, trigger): state
        for state in (_R.DONE, _R.ERROR, _R.CLOSED)
        for trigger in (_T.LAST, _T.ERROR, _T.EOF, _T.LOST)
    },
    # send side
    (_S.IDLE, _T.RESPONSE): _S.BODY,
    (_S.BODY, _T.DATA): _S.BODY,
    (_S.BODY, _T.END): _S.DONE,
    (_S.BODY, _T.LAST): _S.MUST_CLOSE,
    (_S.DONE, _T.NEXT): _S.IDLE,
    (_S.DONE, _T.RESPONSE): _S.BODY,  # the next cycle, started implicitly
    **{(state, _T.ABORT): _S.MUST_CLOSE for state in (_S.IDLE, _S.BODY, _S.DONE, _S.MUST_CLOSE)},
    (_S.CLOSED, _T.ABORT): _S.CLOSED,
    **{(state, _T.LOST): _S.CLOSED for state in SendState},
}
for _state in (*RecvState, *SendState):
    _state._next = {}
for (_state, _trigger), _target in TRANSITIONS.items():
    _state._next[_trigger] = _target  # type: ignore[index, assignment]
del _state, _trigger, _target

# module-level names for the hot path (a class attribute of an Enum costs ~60 ns to look up)
_R_IDLE, _R_HEAD, _R_BODY, _R_DONE = _R.IDLE, _R.HEAD, _R.BODY, _R.DONE
_S_IDLE, _S_DONE, _S_CLOSED = _S.IDLE, _S.DONE, _S.CLOSED
_BEGIN, _HEAD, _END, _LAST = _T.BEGIN, _T.HEAD, _T.END, _T.LAST
_DATA, _RESPONSE, _NEXT = _T.DATA, _T.RESPONSE, _T.NEXT
del _R, _S, _T

_END_EVENT = EndOfMessage()  # stateless: one for every request
#: a tuple, not a set: ``in`` compares identities, where a set would call Enum.__hash__ (Python)
_TERMINAL = (RecvState.DONE, RecvState.ERROR, RecvState.CLOSED)
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")}


class Limits:
    """Limits applied to each request (the ``limit_*`` and ``max_body_size`` settings).

    ``0`` disables a limit.
    """

    __slots__ = ("max_body_size", "request_field_size", "request_fields", "request_line")

    def __init__(
        self,
        *,
        request_line: int = 8190,
        request_fields: int = 100,
        request_field_size: int = 8190,
        max_body_size: int = 16 * 1024 * 1024,
    ) -> None:
        self.request_line = request_line
        self.request_fields = request_fields
        self.request_field_size = request_field_size
        self.max_body_size = max_body_size

    @property
    def max_head(self) -> int:
        """Bytes a request head may take before it is refused (bounds what the parser buffers)."""
        line = self.request_line or 65536
        fields = self.request_fields or 1000
        size = self.request_field_size or 65536
        return line + 64 + fields * (size + 4)


class _DateCache:
    """``Date`` header value (and its header line), formatted at most once a second."""

    __slots__ = ("line", "second", "value")

    def __init__(self) -> None:
        self.second = -1
        self.value = b""
        self.line = b""

    def get(self, now: float) -> bytes:
        second = int(now)
        if second != self.second:
            self._update(second)
        return self.value

    def get_line(self, now: float) -> bytes:
        """``Date: ...\r\n`` at ``now`` (seconds since the epoch)."""
        second = int(now)
        if second != self.second:
            self._update(second)
        return self.line

    def _update(self, now: int) -> None:
        self.second = now
        self.value = formatdate(now, usegmt=True).encode("ascii")
        self.line = b"Date: " + self.value + b"\r\n"


_DATE = _DateCache()


def http_date(now: float | None = None) -> bytes:
    """``now`` (default: the current time) as an HTTP ``Date`` value (cached per second)."""
    return _DATE.get(time.time() if now is None else now)


def _status_line(status: int, reason: str | None) -> bytes:
    """Validate and serialize a status line (cached by :meth:`HttpConnection.send_response`)."""
    if not 100 <= status <= 999 or 100 <= status < 200:
        raise LocalProtocolError(f"invalid final status code {status}")
    key = (status, reason)
    if reason is None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
    if _BAD_VALUE_RE.search(reason):
        raise LocalProtocolError("invalid reason phrase")
    try:
        line = f"HTTP/1.1 {status} {reason}\r\n".encode("latin-1")
    except UnicodeEncodeError:
        raise LocalProtocolError("invalid reason phrase") from None
    if len(_STATUS_CACHE) >= 512:
        _STATUS_CACHE.clear()
    _STATUS_CACHE[key] = line
    return line


def _header_line(name: str, value: str) -> tuple[str, bytes]:
    """Validate and serialize one response header (cached by ``send_response``).

    Raises:
        LocalProtocolError: not a token name, a value with CR/LF/NUL, or not latin-1.
    """
    if (
        not isinstance(name, str)
        or not isinstance(value, str)
        or not _TOKEN_RE.fullmatch(name)
        or _BAD_VALUE_RE.search(value)
    ):
        raise LocalProtocolError(f"invalid response header {name!r}")
    try:
        line = f"{name}: {value}\r\n".encode("latin-1")
    except UnicodeEncodeError:
        raise LocalProtocolError(f"response header {name!r} is not latin-1") from None
    result = (name.lower(), line)
    if len(_HEADER_CACHE) >= _HEADER_CACHE_SIZE:
        _HEADER_CACHE.clear()
    _HEADER_CACHE[(name, value)] = result
    return result


class _Reject(Exception):
    """Raised inside a parser callback to refuse the request with ``status``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@functools.lru_cache(maxsize=16)
def _server_line(server: str) -> bytes:
    return f"Server: {server}\r\n".encode("latin-1") if server else b""


class HttpConnection:
    """One server-side HTTP/1.1 connection: bytes in, events out; responses in, bytes out.

    Args:
        limits: request limits (defaults: see :class:`Limits`).
        keep_alive: False answers every request with ``Connection: close``.
        server: the ``Server`` header value added to responses that have none (empty: none).
    """

    #: the state table of both sides (the module's :data:`TRANSITIONS`)
    TRANSITIONS = TRANSITIONS

    def __init__(
        self, *, limits: Limits | None = None, keep_alive: bool = True, server: str = "pulsar"
    ) -> None:
        self.limits = limits = limits or Limits()
        # the limits of on_header as plain numbers (0, "no limit", as a bound never reached)
        self._max_field = limits.request_field_size - 2 if limits.request_field_size else 1 << 62
        self._max_fields = limits.request_fields or 1 << 62
        self._max_target = limits.request_line or 1 << 62
        self.keep_alive = keep_alive
        self._server = _server_line(server)
        self._parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        self._events: deque[Event] = deque()
        #: the events not read yet (what :meth:`next_event` pops; a server may pop them itself)
        self.events = self._events
        # Instance attributes, all set here (class-level defaults would make each instance's
        # attributes appear in a different order, which costs every attribute access later)
        self.recv_state = _R_IDLE
        self.send_state = _S_IDLE
        #: requests whose response has not ended (the head of the queue is being answered)
        self.unanswered = 0
        self._reject: _Reject | None = None
        self._start = b""  # the first bytes of the request (to tell 501 from 400)
        # the request being received
        self._url: list[bytes] = []
        self._url_size = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_size = 0
        self._body_size = 0
        self._trailers = 0
        self._keep_alive_request = True
        self._receiving: Request | None = None  # the request whose body is being received
        self._continued: Request | None = None  # the request sent 100 Continue
        # the response being sent
        self._no_body = False
        self._chunked = False
        self._remaining: int | None = None
        self._close_after = False

    # -- the state table -------------------------------------------------------------------------
    def _recv(self, trigger: Trigger) -> None:
        """Move the receive side by :data:`TRANSITIONS`.

        Raises:
            RemoteProtocolError: the table has no such move (the client's bytes broke HTTP).
        """
        try:
            self.recv_state = self.recv_state._next[trigger]
        except KeyError:
            raise RemoteProtocolError(
                f"{trigger.name} not allowed in receive state {self.recv_state.name}"
            ) from None

    def _send(self, trigger: Trigger) -> None:
        """Move the send side by :data:`TRANSITIONS`.

        Raises:
            LocalProtocolError: the table has no such move (the server broke HTTP).
        """
        try:
            self.send_state = self.send_state._next[trigger]
        except KeyError:
            raise LocalProtocolError(
                f"{trigger.name} not allowed in send state {self.send_state.name}"
            ) from None

    def connection_lost(self) -> None:
        """The transport is gone: both sides are ``CLOSED`` (:attr:`lost`). Drops the parser,
        whose callbacks reference this object (the pair is then freed at once, not by a garbage
        collection)."""
        self._recv(Trigger.LOST)
        self._send(Trigger.LOST)
        self._parser = None

    @property
    def lost(self) -> bool:
        """The transport is gone (the one "disconnected" of a connection; the hot path tests
        ``send_state is SendState.CLOSED`` itself)."""
        return self.send_state is _S_CLOSED

    def start_next_cycle(self) -> None:
        """The server starts answering the next request: the send side goes from ``DONE``
        back to ``IDLE`` (h11's ``start_next_cycle``).

        Raises:
            LocalProtocolError: the response of the current cycle is not complete, or the
                connection must close.
        """
        try:  # once per request: the table lookup inline
            self.send_state = self.send_state._next[_NEXT]
        except KeyError:
            self._send(_NEXT)  # raises LocalProtocolError

    # -- receiving --------------------------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        """Feed bytes received from the client; ``b""`` means the client closed its side (EOF).

        Never raises for bad input: errors become a :class:`RequestError` event.
        """
        state = self.recv_state
        if state in _TERMINAL:
            return
        if not data:
            self._recv(Trigger.EOF)
            self._events.append(ConnectionClosed())
            return
        if state is _R_IDLE:
            self._start = data  # a reference: its first 64 bytes tell 501 from 400
        elif state is _R_HEAD and not self._url and len(self._start) < 64:
            self._start = self._start[:64] + data[:64]
        try:
            self._parser.feed_data(data)  # type: ignore[union-attr]  # None once terminal
        except httptools.HttpParserUpgrade:
            # Upgrade / CONNECT: WSGI cannot switch protocols; the request is answered like
            # any other and the connection closes after it.
            try:
                self._recv(_LAST)
            except RemoteProtocolError as exc:  # not after a complete head: never raise
                self._error(400, str(exc))
        except httptools.HttpParserCallbackError:
            reject = self._reject or _Reject(400, "Bad Request")
            self._error(reject.status, reject.reason)
        except httptools.HttpParserInvalidMethodError as exc:
            # a well-formed but unknown method is "not implemented"; garbage is a bad request
            unknown = _METHOD_RE.fullmatch(self._start[:64].lstrip(b"\r\n")) is not None
            self._error(501 if unknown else 400, str(exc) or "Invalid method")
        except httptools.HttpParserError as exc:
            if self.recv_state is not _R_DONE:  # else: bytes after a final request
                self._error(400, str(exc) or "Bad Request")
        else:
            if self.recv_state is _R_HEAD:
                self._head_size += len(data)
                if self._head_size > self.limits.max_head:
                    self._error(431, "Request header fields too large")

    def next_event(self) -> Event | Sentinel:
        """The next event, or :data:`NEED_DATA` when more bytes are needed."""
        if self._events:
            return self._events.popleft()
        return NEED_DATA

    def _error(self, status: int, reason: str) -> None:
        self._recv(Trigger.ERROR)
        self._events.append(RequestError(status, reason))

    # -- httptools callbacks ----------------------------------------------------------------------
    def _fail(self, status: int, reason: str) -> None:
        self._reject = _Reject(status, reason)
        raise self._reject

    def on_message_begin(self) -> None:
        try:
            self.recv_state = self.recv_state._next[_BEGIN]
        except KeyError:
            self._recv(_BEGIN)  # raises RemoteProtocolError
        self._url = []
        self._url_size = 0
        self._headers = []
        self._head_size = 0
        self._body_size = 0
        self._trailers = 0

    def on_url(self, url: bytes) -> None:
        self._url.append(url)
        self._url_size += len(url)
        if self._url_size > self._max_target:
            self._fail(414, "Request target too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) + len(value) > self._max_field:
            self._fail(431, "Request header field too large")
        if self._receiving is not None:
            # a trailer field of a chunked body: read and dropped, never merged into the
            # headers (RFC 9110 6.5.1: Host, Content-Length, Transfer-Encoding... in a trailer
            # would be request smuggling); llhttp itself refuses a Content-Length there
            self._trailers += 1
            if self._trailers > self._max_fields:
                self._fail(431, "Too many trailer fields")
            return
        if value[-1:] in _OWS:  # RFC 9110 5.5: trailing SP/HTAB is not part of the value
            value = value.rstrip(b" \t")
        headers = self._headers
        headers.append((name, value))
        if len(headers) > self._max_fields:
            self._fail(431, "Too many header fields")

    def on_headers_complete(self) -> None:
        # RFC 9112 / 9110 decisions on the head (llhttp, in strict mode, has refused malformed
        # lines, header bytes, obs-fold, bad or duplicate Content-Length, chunked not last):
        # - HTTP/1.1 needs exactly one Host, with a valid value (9112 3.2) -> 400
        # - Transfer-Encoding: not in HTTP/1.0 (9112 6.1), chunked once and last (6.3) -> 400,
        #   another coding -> 501; never with Content-Length (6.3, smuggling) -> 400
        # - singleton fields repeated (Content-Type, Content-Length, Host) -> 400
        # - "*" only with OPTIONS (9112 3.2.4), an unmet Expect -> 417
        parser = self._parser
        assert parser is not None
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):
            self._fail(505, "HTTP version not supported")
        content_length: int | None = None
        chunked = False
        expect = False
        hosts = 0
        host = b""
        content_type = False
        codings: list[bytes] | None = None
        for name, value in self._headers:
            lname = name.lower()
            if lname not in _NOTABLE:  # most fields: one set lookup
                continue
            if lname == b"host":
                hosts += 1
                host = value
            elif lname == b"content-length":
                content_length = int(value)  # llhttp validated it (digits, no duplicate)
            elif lname == b"content-type":
                if content_type:
                    self._fail(400, "Content-Type repeated")
                content_type = True
            elif lname == b"transfer-encoding":
                if codings is None:
                    codings = []
                codings.extend(
                    c for c in value.lower().replace(b"\t", b" ").split(b",") if c.strip()
                )
            elif lname == b"expect":
                if value.strip().lower() != b"100-continue":
                    self._fail(417, "Expectation failed")
                expect = version == "1.1"
        if hosts != 1 and (hosts or version == "1.1"):
            self._fail(400, "Host missing" if not hosts else "Host repeated")
        if hosts and host not in _VALID_HOSTS:
            if not _HOST_RE.fullmatch(host):
                self._fail(400, "Invalid Host")
            if len(_VALID_HOSTS) >= 1024:
                _VALID_HOSTS.clear()
            _VALID_HOSTS.add(host)
        if codings is not None:
            if version == "1.0":
                self._fail(400, "Transfer-Encoding in an HTTP/1.0 request")
            codings = [c.strip() for c in codings]
            if not codings or codings[-1] != b"chunked" or codings.count(b"chunked") > 1:
                self._fail(400, "chunked must be the last transfer coding, once")
            if len(codings) > 1:
                self._fail(501, "Unsupported transfer coding")
            chunked = True
        if chunked and content_length is not None:  # llhttp refuses it too; never rely on it
            self._fail(400, "Both Content-Length and Transfer-Encoding")
        url = self._url
        target = url[0] if len(url) == 1 else b"".join(url)
        method = parser.get_method()
        if target == b"*" and method != b"OPTIONS":
            self._fail(400, "asterisk-form is for OPTIONS only")
        max_body = self.limits.max_body_size
        if max_body and content_length is not None and content_length > max_body:
            self._fail(413, "Request body too large")
        keep_alive = bool(parser.should_keep_alive())
        self._keep_alive_request = keep_alive
        try:
            self.recv_state = self.recv_state._next[_HEAD]
        except KeyError:
            self._recv(_HEAD)  # raises RemoteProtocolError
        self.unanswered += 1
        self._events.append(
            request := Request._make(
                _METHODS.get(method) or method.decode("ascii"),
                target,
                version,
                tuple(self._headers),
                keep_alive,
                expect and bool(content_length or chunked),
                content_length,
                chunked,
            )
        )
        self._receiving = request

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        max_body = self.limits.max_body_size
        if max_body and self._body_size > max_body:
            self._fail(413, "Request body too large")
        self._events.append(Data(body))

    def on_message_complete(self) -> None:
        trigger = _END if self._keep_alive_request else _LAST
        try:
            self.recv_state = self.recv_state._next[trigger]
        except KeyError:
            self._recv(trigger)  # raises RemoteProtocolError
        self._receiving = None
        self._events.append(_END_EVENT)

    # -- sending ----------------------------------------------------------------------------------
    def send(
        self,
        event: Response | InformationalResponse | Data | EndOfMessage,
        *,
        now: float = 0.0,
    ) -> bytes:
        """Serialize one event of the response: the bytes to send (h11's ``send``).

        ``now`` is the current time (``time.time()``) for the ``Date`` header of a
        :class:`Response`. The server's hot path calls :meth:`send_response`,
        :meth:`send_data`, :meth:`send_end` and :meth:`send_continue` directly (no event
        object per response); this is the same, as events.

        Raises:
            LocalProtocolError: the event is not allowed in the send state (see the module
                docstring), or is invalid (a bad header...).
        """
        kind = type(event)
        if kind is Data:
            return self.send_data(event.data)  # type: ignore[union-attr]
        if kind is EndOfMessage:
            return self.send_end()
        if kind is Response:
            assert isinstance(event, Response)
            return self.send_response(
                event.request,
                event.status,
                list(event.headers),
                reason=event.reason,
                length=event.length,
                now=now,
            )
        if kind is InformationalResponse:
            return self.send_continue()
        raise LocalProtocolError(f"cannot send {event!r}")

    def send_continue(self) -> bytes:
        """The ``100 Continue`` interim response when the request being received waits for it
        (``Expect: 100-continue``, its body not complete, no response started, not sent yet);
        else ``b""``. The server calls it when the application first wants the body."""
        request = self._receiving
        if (
            request is None
            or not request.expect_continue
            or self._continued is request
            or (self.send_state is not _S_IDLE and self.send_state is not _S_DONE)
        ):
            return b""
        self._continued = request
        return _CONTINUE

    def send_response(
        self,
        request: Request | None,
        status: int,
        headers: list[tuple[str, str]],
        *,
        reason: str | None = None,
        length: int | None = None,
        now: float,
    ) -> bytes:
        """Serialize the head of the response to ``request`` (None: an error response to a request
        that could not be parsed); returns the bytes to send.

        ``length`` is the size of the body when the server knows it: a ``Content-Length`` with
        it is added unless the headers have one (or the status is 204/304). ``now`` is the
        current time (``time.time()``) for the ``Date`` header: the connection reads no clock.

        Adds ``Date``, ``Server``, the framing headers (``Transfer-Encoding: chunked`` on HTTP/1.1
        when there is no ``Content-Length``) and ``Connection``; drops the application's own
        ``Transfer-Encoding``/``Connection``/``Keep-Alive`` (a ``Connection: close`` of the
        application is honoured).

        Raises:
            LocalProtocolError: a response is already in progress, the connection must close,
                or a header/status is invalid.
        """
        next_state = self.send_state._next.get(_RESPONSE)
        if next_state is None:
            self._send(_RESPONSE)  # raises LocalProtocolError
        close = (
            request is None
            or not request.keep_alive
            or not self.keep_alive
            or (self.recv_state in _TERMINAL and self.unanswered <= 1)
        )
        if request is self._receiving and request is not None:
            # answered before its body ended: a client waiting for 100 Continue may or may not
            # send the body (RFC 9110 10.1.1), a long rest is not worth draining: close after
            declared = request.content_length
            if (request.expect_continue and self._continued is not request) or (
                declared is not None and declared - self._body_size > MAX_DRAIN
            ):
                close = True
        no_body = (request is not None and request.method == "HEAD") or status in (204, 304)
        version = request.http_version if request is not None else None
        # the head of a response like a previous one is the same bytes around the Date line
        key: tuple[object, ...] | None
        try:
            key = (status, reason, *headers, length, no_body, version, close, self._server)
            head = _HEAD_CACHE.get(key)
        except TypeError:  # an unhashable header: validated (and refused) below
            key = head = None
        if head is not None:
            before, after, cached_length, self._chunked, self._close_after = head
            self._no_body = no_body
            self._remaining = cached_length if not no_body else None
            self.send_state = next_state  # type: ignore[assignment]
            if after is None:  # the application sent its own Date
                return before
            return before + _DATE.get_line(now) + after
        status_line = _STATUS_CACHE.get((status, reason))
        if status_line is None:
            status_line = _status_line(status, reason)
        content_length: int | None = None
        has_date = has_server = False
        out = [status_line]
        append = out.append
        cache = _HEADER_CACHE
        for header in headers:
            try:
                cached = cache.get(header)  # type: ignore[call-overload]
            except TypeError:  # not a tuple: validated (and refused) below
                cached = None
            if cached is None:
                cached = _header_line(*header)
            lname, line = cached
            if lname in _FRAMING:
                value = header[1]
                if lname == "connection" and "close" in value.lower():
                    close = True
                continue
            if lname == "content-length":
                value = header[1]
                try:
                    content_length = int(value)
                except ValueError:
                    content_length = -1
                if content_length < 0 or not value.strip().isdigit():
                    raise LocalProtocolError(f"invalid Content-Length {value!r}")
                if status == 204:
                    continue
            elif lname == "date":
                has_date = True
            elif lname == "server":
                has_server = True
            append(line)
        if content_length is None and length is not None and status != 204 and status != 304:
            content_length = length
            append(b"Content-Length: %d\r\n" % length)
        date_at = -1
        if not has_date:
            date_at = len(out)
            append(_DATE.get_line(now))
        if not has_server and self._server:
            append(self._server)
        chunked = False
        if not no_body and content_length is None:
            if version == "1.1":
                chunked = True
                append(b"Transfer-Encoding: chunked\r\n")
            else:
                close = True  # HTTP/1.0 without a length: the end of the body is the close
        if close:
            append(b"Connection: close\r\n")
        elif version == "1.0":
            append(b"Connection: keep-alive\r\n")
        append(b"\r\n")
        if key is not None:
            if len(_HEAD_CACHE) >= 1024:
                _HEAD_CACHE.clear()
            if date_at < 0:
                _HEAD_CACHE[key] = (b"".join(out), None, content_length, chunked, close)
            else:
                _HEAD_CACHE[key] = (
                    b"".join(out[:date_at]),
                    b"".join(out[date_at + 1 :]),
                    content_length,
                    chunked,
                    close,
                )
        self._no_body = no_body
        self._chunked = chunked
        self._remaining = content_length if not no_body else None
        self._close_after = close
        self.send_state = next_state  # type: ignore[assignment]
        return b"".join(out)

    @property
    def body_expected(self) -> bool:
        """Whether the response being sent may carry body bytes (False for HEAD, 204, 304)."""
        return not self._no_body

    def send_data(self, data: bytes) -> bytes:
        """Frame a piece of the response body; returns the bytes to send (``b""`` for HEAD...).

        Raises:
            LocalProtocolError: no response in progress, or more bytes than ``Content-Length``.
        """
        if _DATA not in self.send_state._next:
            raise LocalProtocolError("send_data() without a response in progress")
        if self._no_body or not data:
            return b""
        if self._chunked:
            return b"%x\r\n%b\r\n" % (len(data), data)
        remaining = self._remaining
        if remaining is not None:
            if len(data) > remaining:
                self._close_after = True
                raise LocalProtocolError("response body longer than its Content-Length")
            self._remaining = remaining - len(data)
        return data

    def count_body(self, size: int) -> None:
        """Account for ``size`` body bytes sent by other means (``sendfile``), without framing.

        Raises:
            LocalProtocolError: the response is chunked, or more than its ``Content-Length``.
        """
        if _DATA not in self.send_state._next or self._chunked:
            raise LocalProtocolError("count_body() needs a response with a Content-Length")
        if self._remaining is not None:
            if size > self._remaining:
                self._close_after = True
                raise LocalProtocolError("response body longer than its Content-Length")
            self._remaining -= size

    def fail_receive(self) -> None:
        """The server gives up receiving (a timeout): nothing more is parsed, and the response
        being sent (or the next one) closes the connection."""
        self._recv(Trigger.ERROR)
        self._close_after = True

    def send_end(self) -> bytes:
        """End the response; returns the last bytes to send. Afterwards :attr:`must_close`
        tells whether the connection has to be closed.

        Raises:
            LocalProtocolError: no response in progress, or fewer bytes than ``Content-Length``
                (the connection must then be closed: the client sees a truncated response).
        """
        trigger = _LAST if self._close_after else _END
        try:
            next_state = self.send_state._next[trigger]
        except KeyError:
            raise LocalProtocolError("send_end() without a response in progress") from None
        if self.unanswered > 0:
            self.unanswered -= 1
        if self._remaining:
            self._send(Trigger.ABORT)
            raise LocalProtocolError("response body shorter than its Content-Length")
        self.send_state = next_state
        return b"0\r\n\r\n" if self._chunked else b""

    def abort(self) -> None:
        """Give up the response in progress: the connection must close."""
        self._send(Trigger.ABORT)

    @property
    def must_close(self) -> bool:
        """The connection must be closed once the bytes returned so far are sent (or is gone)."""
        state = self.send_state
        return state is SendState.MUST_CLOSE or state is _S_CLOSED

    @property
    def headers_sent(self) -> bool:
        """The response of the current cycle has started (the send side is not ``IDLE``)."""
        return self.send_state is not _S_IDLE

    @property
    def receiving(self) -> bool:
        """A request is partially received (its head or its body)."""
        return self.recv_state is _R_HEAD or self.recv_state is _R_BODY
