"""The mailbox: how actors talk.

How it works
------------
Every actor holds one stream connection (a unix socket, or TCP on 127.0.0.1 where unix sockets are
missing) to the arbiter, which routes actor-to-actor messages (a star topology).

:class:`Connection` is the sans-IO protocol object: feed it bytes with
:meth:`Connection.receive_data`, read events with :meth:`Connection.next_event`, and turn
outgoing messages into bytes with :meth:`Connection.send`. It has no socket, no loop and no timer.

Wire format: every frame is a 4-byte big-endian length followed by that many bytes of payload.

1. Handshake (mutual HMAC-SHA256 challenge with the per-arbiter secret; no pickle involved):

   * server → ``MAGIC + nonce_s`` (8 + 32 bytes)
   * client → ``HMAC(secret, b"C" + nonce_s + nonce_c) + nonce_c`` (32 + 32 bytes)
   * server → ``HMAC(secret, b"S" + nonce_c + nonce_s)`` (32 bytes)

   Frames are limited to 128 bytes until the peer is authenticated, so nothing large is buffered
   and **not a single byte is unpickled before the HMAC check passes**.
2. Messages: the payload is a small binary envelope header — kind, id, flag and the lengths of
   ``sender``, ``target`` and ``command`` (``struct`` ``!BQBBBB``), those three ASCII strings —
   followed by the ``body``, a pickle (the arguments of a request, the result of a reply). The
   arbiter routes a message by reading the header and forwards the frame bytes unchanged: it never
   unpickles user objects, and a body that cannot be unpickled in the target still gets an error
   reply carrying the request id.

Speed: :meth:`Connection.feed` parses every complete frame of a read in one pass (the names of
an envelope header are decoded once per distinct header and cached, as are the encoded names of
what this process sends), and :class:`MailboxProtocol` coalesces the frames written while it
handles one read into a single ``write`` per destination connection. A lone frame's writes are
flushed before ``data_received`` returns (a round trip waits for nothing); a read of several
frames (a burst: pipelined traffic) keeps coalescing through the callbacks its handlers resolved
(the next requests of a pipeline) and is flushed by a callback queued behind them, or whenever 16
frames wait for one connection. :meth:`MailboxProtocol.close` writes what is pending first.

A frame over ``max_frame_size``, a bad handshake or bytes that do not decode raise
:class:`~pulsar.ProtocolError` / :class:`~pulsar.AuthenticationError`; the adapter closes that one
connection and logs it.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import hmac
import logging
import os
import pickle
import secrets
import struct
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from ._exceptions import AuthenticationError, ProtocolError

__all__ = [
    "MAGIC",
    "DEFAULT_MAX_FRAME_SIZE",
    "Role",
    "ConnState",
    "Envelope",
    "Frame",
    "decode_envelope",
    "encode_frame",
    "dumps",
    "loads",
    "Authenticated",
    "Connection",
    "MailboxProtocol",
    "new_secret",
    "MAX_UNIX_PATH",
    "make_socket_dir",
    "socket_base",
    "REQUEST",
    "REPLY",
    "HELLO",
]

logger = logging.getLogger("pulsar.mailbox")

MAGIC = b"PULSAR/1"
NONCE_SIZE = 32
DIGEST_SIZE = 32
HANDSHAKE_MAX_FRAME = 128
DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024
_HEADER = struct.Struct("!I")
_PICKLE_PROTOCOL = pickle.HIGHEST_PROTOCOL

# envelope kinds
REQUEST = 1
REPLY = 2
HELLO = 3


class Envelope(NamedTuple):
    """One mailbox message.

    ``kind`` is REQUEST, REPLY or HELLO; ``id`` correlates a reply with its request (per sender);
    ``flag`` is the ``ack`` wish of a request or the ``ok`` status of a reply; ``body`` is the
    pickled arguments (request) or result/exception (reply).
    """

    kind: int
    id: int
    sender: str
    target: str
    command: str
    flag: bool
    body: bytes


class Role(enum.Enum):
    SERVER = "server"
    CLIENT = "client"


class ConnState(enum.Enum):
    """Connection life cycle.

    Rules: a SERVER starts in CHALLENGED once :meth:`Connection.initiate` produced the challenge; a
    CLIENT starts in WAIT_CHALLENGE. Both end the handshake in OPEN; any protocol error moves to
    CLOSED, from which nothing leaves.
    """

    WAIT_CHALLENGE = "wait-challenge"  # client: waiting for the server's challenge
    WAIT_SERVER_PROOF = "wait-server-proof"  # client: sent its proof, waiting for the server's
    NEW = "new"  # server: challenge not sent yet
    CHALLENGED = "challenged"  # server: waiting for the client's proof
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Authenticated:
    """Event: the peer proved it knows the secret; messages may flow."""


class Frame(NamedTuple):
    """Event: one message frame; ``payload`` is the whole frame (length prefix included), kept to
    forward it unchanged."""

    envelope: Envelope
    payload: bytes


_ENV = struct.Struct("!BQBBBB")
_ENV_SIZE = _ENV.size
_KINDS = frozenset((1, 2, 3))


#: the length prefix and the envelope header in one struct (what :func:`encode_frame` packs)
_FRAME_HEAD = struct.Struct("!IBQBBBB")
#: the bytes of the names part of a header (``ls lt lc`` then the names) and their total length,
#: per (sender, target, command): a process talks to few peers with few commands, so
#: encoding and checking them once is enough (bounded: cleared when it grows past _NAMES_MAX)
_names_out: dict[tuple[str, str, str], tuple[int, int, int, bytes]] = {}
#: the decoded (sender, target, command) per names part (``ls lt lc`` + names) of a header
_names_in: dict[bytes, tuple[str, str, str]] = {}
_NAMES_MAX = 4096
_new_tuple = tuple.__new__


def _encode_names(sender: str, target: str, command: str) -> tuple[int, int, int, bytes]:
    s = sender.encode()
    t = target.encode()
    c = command.encode()
    if len(s) > 255 or len(t) > 255 or len(c) > 255:
        raise ProtocolError("actor ids and command names are limited to 255 bytes")
    if len(_names_out) >= _NAMES_MAX:
        _names_out.clear()
    names = s + t + c
    entry = _names_out[(sender, target, command)] = (len(s), len(t), len(c), names)
    return entry


def encode_frame(envelope: Envelope | tuple[Any, ...]) -> bytes:
    """One framed message: length prefix, binary envelope header, body."""
    kind, mid, sender, target, command, flag, body = envelope
    entry = _names_out.get((sender, target, command))
    if entry is None:
        entry = _encode_names(sender, target, command)
    ls, lt, lc, names = entry
    head = _FRAME_HEAD.pack(_ENV_SIZE + len(names) + len(body), kind, mid, flag, ls, lt, lc)
    return head + names + body


def decode_envelope(frame: bytes, offset: int = 4) -> Envelope:
    """Decode the envelope of a frame (``offset`` skips the length prefix)."""
    kind, mid, flag, ls, lt, lc = _ENV.unpack_from(frame, offset)
    if kind not in _KINDS:
        raise ValueError(f"unknown message kind {kind}")
    start = offset + _ENV_SIZE
    end = start + ls + lt + lc
    if end > len(frame):
        raise ValueError("envelope header longer than the frame")
    key = frame[start - 3 : end]
    names = _names_in.get(key)
    if names is None:
        text = frame[start:end].decode("ascii")
        if len(_names_in) >= _NAMES_MAX:
            _names_in.clear()
        names = _names_in[key] = (text[:ls], text[ls : ls + lt], text[ls + lt :])
    # tuple.__new__: the named tuple's own __new__ is a Python function (this is the hot path)
    return _new_tuple(  # type: ignore[no-any-return]
        Envelope, (kind, mid, names[0], names[1], names[2], flag == 1, frame[end:])
    )


def new_secret() -> bytes:
    """A fresh random per-arbiter secret."""
    return secrets.token_bytes(32)


#: the longest path a unix socket may have: ``sun_path`` less its NUL, 108 bytes on Linux and
#: 104 on macOS and the BSDs
MAX_UNIX_PATH = 107 if sys.platform.startswith("linux") else 103
#: room kept in that path for the names put in the socket directory: "arbiter.sock" and the
#: actors' "<aid>.link" (a 12-hex aid), with a margin for longer names
_NAME_ROOM = 1 + 32
#: where the socket directory goes when the temporary directory is too deep for a socket
_SHORT_BASES = ("/tmp", "/var/tmp")


def socket_base(prefix: str = "pulsar-") -> str | None:
    """The directory to create socket directories in: the temporary directory (``TMPDIR``),
    or, when a socket in it would be longer than :data:`MAX_UNIX_PATH` (a deep ``TMPDIR``, as
    under some CI runners and test sessions), the first writable of ``/tmp`` and ``/var/tmp``.
    None when none fits."""
    room = len(prefix) + 8 + _NAME_ROOM  # mkdtemp adds 8 random characters
    for base in (tempfile.gettempdir(), *_SHORT_BASES):
        if len(os.fsencode(base)) + 1 + room > MAX_UNIX_PATH:
            continue
        if os.path.isdir(base) and os.access(base, os.W_OK | os.X_OK):
            return base
    return None


def make_socket_dir(prefix: str = "pulsar-") -> str:
    """Create a private (0700) directory for the arbiter's unix socket and return its path (in
    :func:`socket_base`). Raises OSError when no directory is short enough for a unix socket
    (the arbiter then listens on TCP 127.0.0.1)."""
    base = socket_base(prefix)
    if base is None:
        raise OSError(
            f"the temporary directory {tempfile.gettempdir()!r} is too deep for a unix socket "
            f"(at most {MAX_UNIX_PATH} bytes) and neither /tmp nor /var/tmp is writable: set "
            f"TMPDIR to a shorter directory"
        )
    path = tempfile.mkdtemp(prefix=prefix, dir=base)
    os.chmod(path, 0o700)
    return path


def _frame(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload)) + payload


def _mac(secret: bytes, *parts: bytes) -> bytes:
    return hmac.new(secret, b"".join(parts), hashlib.sha256).digest()


class Connection:
    """Sans-IO mailbox connection: handshake, framing and envelope (de)serialization."""

    def __init__(
        self, role: Role, secret: bytes, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    ) -> None:
        if not secret:
            raise ValueError("a mailbox secret is required")
        self.role = role
        self.max_frame_size = max_frame_size
        self._secret = secret
        self._buffer = bytearray()
        self._nonce = secrets.token_bytes(NONCE_SIZE)
        self._peer_nonce = b""
        self._out: list[bytes] = []
        self.state = ConnState.NEW if role is Role.SERVER else ConnState.WAIT_CHALLENGE

    # -- handshake -------------------------------------------------------------------------------
    def initiate(self) -> bytes:
        """Server side: the challenge to write as soon as the connection is made."""
        if self.role is not Role.SERVER or self.state is not ConnState.NEW:
            raise ProtocolError("initiate() is for a new server connection")
        self.state = ConnState.CHALLENGED
        return _frame(MAGIC + self._nonce)

    def data_to_send(self) -> bytes:
        """Bytes the handshake produced in reply to received data (write them to the peer)."""
        out = b"".join(self._out)
        self._out.clear()
        return out

    @property
    def is_open(self) -> bool:
        return self.state is ConnState.OPEN

    def _fail(self, exc: Exception) -> Exception:
        self.state = ConnState.CLOSED
        self._buffer.clear()
        return exc

    def _handshake(self, payload: bytes) -> Authenticated | None:
        state = self.state
        if state is ConnState.WAIT_CHALLENGE:
            if len(payload) != len(MAGIC) + NONCE_SIZE or not payload.startswith(MAGIC):
                raise self._fail(AuthenticationError("not a pulsar mailbox (bad challenge)"))
            self._peer_nonce = payload[len(MAGIC) :]
            proof = _mac(self._secret, b"C", self._peer_nonce, self._nonce)
            self._out.append(_frame(proof + self._nonce))
            self.state = ConnState.WAIT_SERVER_PROOF
            return None
        if state is ConnState.CHALLENGED:
            if len(payload) != DIGEST_SIZE + NONCE_SIZE:
                raise self._fail(AuthenticationError("bad handshake reply"))
            proof, peer_nonce = payload[:DIGEST_SIZE], payload[DIGEST_SIZE:]
            expected = _mac(self._secret, b"C", self._nonce, peer_nonce)
            if not hmac.compare_digest(proof, expected):
                raise self._fail(AuthenticationError("authentication failed (wrong secret)"))
            self._peer_nonce = peer_nonce
            self._out.append(_frame(_mac(self._secret, b"S", peer_nonce, self._nonce)))
            self.state = ConnState.OPEN
            return Authenticated()
        if state is ConnState.WAIT_SERVER_PROOF:
            expected = _mac(self._secret, b"S", self._nonce, self._peer_nonce)
            if len(payload) != DIGEST_SIZE or not hmac.compare_digest(payload, expected):
                raise self._fail(AuthenticationError("server failed to authenticate"))
            self.state = ConnState.OPEN
            return Authenticated()
        raise self._fail(ProtocolError(f"unexpected handshake data in state {state.value}"))

    # -- receiving -------------------------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        """Feed bytes received from the peer."""
        if self.state is ConnState.CLOSED:
            return
        self._buffer += data

    def next_event(self) -> Authenticated | Frame | None:
        """The next event, or ``None`` when more data is needed.

        Raises :class:`ProtocolError` (oversized or undecodable frame) or
        :class:`AuthenticationError` (failed handshake); the connection is then CLOSED.
        """
        buffer = self._buffer
        if len(buffer) < 4 or self.state is ConnState.CLOSED:
            return None
        (size,) = _HEADER.unpack_from(buffer)
        limit = self.max_frame_size if self.state is ConnState.OPEN else HANDSHAKE_MAX_FRAME
        if size > limit:
            raise self._fail(ProtocolError(f"frame of {size} bytes exceeds the limit of {limit}"))
        end = 4 + size
        if len(buffer) < end:
            return None
        if self.state is not ConnState.OPEN:
            payload = bytes(buffer[4:end])
            del buffer[:end]
            return self._handshake(payload)
        frame = bytes(buffer[:end])
        del buffer[:end]
        try:
            return _new_tuple(Frame, (decode_envelope(frame), frame))  # type: ignore[no-any-return]
        except Exception as exc:
            raise self._fail(ProtocolError(f"undecodable frame: {exc!r}"))

    def feed(self, data: bytes) -> list[Frame]:
        """Open connections: add ``data`` and return every complete frame, parsed in one pass.

        Raises :class:`ProtocolError` for an oversized or undecodable frame (then CLOSED).
        """
        if self.state is not ConnState.OPEN:
            raise ProtocolError("feed() is for open connections")
        buffer = self._buffer
        if not buffer and len(data) >= 4:  # fast path: exactly one whole frame
            (size,) = _HEADER.unpack_from(data)
            if size + 4 == len(data) and size <= self.max_frame_size:
                try:
                    return [_new_tuple(Frame, (decode_envelope(data), data))]
                except Exception as exc:
                    raise self._fail(ProtocolError(f"undecodable frame: {exc!r}"))
        if buffer:
            buffer += data
            data = bytes(buffer)
            buffer.clear()
        n = len(data)
        off = 0
        limit = self.max_frame_size
        frames: list[Frame] = []
        append = frames.append
        unpack = _HEADER.unpack_from
        unpack_env = _ENV.unpack_from
        names_in = _names_in
        try:
            while n - off >= 4:
                (size,) = unpack(data, off)
                if size > limit:
                    raise self._fail(
                        ProtocolError(f"frame of {size} bytes exceeds the limit of {limit}")
                    )
                end = off + 4 + size
                if end > n:
                    break
                frame = data[off:end] if (off or end != n) else data
                # decode_envelope(frame), inlined for bursts (keep the two in step)
                kind, mid, flag, ls, lt, lc = unpack_env(frame, 4)
                names_end = 4 + _ENV_SIZE + ls + lt + lc
                names = names_in.get(frame[4 + _ENV_SIZE - 3 : names_end])
                if names is None or kind not in _KINDS or names_end > size + 4:
                    env = decode_envelope(frame)  # the general path: checks, caches, raises
                else:
                    env = _new_tuple(
                        Envelope,
                        (kind, mid, names[0], names[1], names[2], flag == 1, frame[names_end:]),
                    )
                append(_new_tuple(Frame, (env, frame)))
                off = end
        except ProtocolError:
            raise
        except Exception as exc:
            raise self._fail(ProtocolError(f"undecodable frame: {exc!r}"))
        if off < n:
            buffer += data[off:] if off else data
        return frames

    # -- sending ---------------------------------------------------------------------------------
    def send(self, envelope: Envelope | tuple[Any, ...]) -> bytes:
        """Serialize one envelope into bytes to write."""
        if self.state is not ConnState.OPEN:
            raise ProtocolError("connection is not open")
        return encode_frame(envelope)

    def forward(self, frame: bytes) -> bytes:
        """A received frame, to write unchanged to another connection (routing)."""
        if self.state is not ConnState.OPEN:
            raise ProtocolError("connection is not open")
        return frame


_OPEN = ConnState.OPEN
#: a coalesced batch is written once it holds this many frames, so the peer starts on them
#: while this side goes on with the burst (pipelining across the two processes)
_FLUSH_EVERY = 16


class _Batch:
    """The protocols of one thread (one event loop) with coalesced writes pending, or None when
    writes go out at once. Each protocol keeps its thread's instance (a plain attribute read on
    the hot path, not a thread-local lookup)."""

    __slots__ = ("writers",)

    def __init__(self) -> None:
        self.writers: list[MailboxProtocol] | None = None


class _ThreadBatch(threading.local):
    batch: _Batch | None = None


_thread_batch = _ThreadBatch()


def _current_batch() -> _Batch:
    batch = _thread_batch.batch
    if batch is None:
        batch = _thread_batch.batch = _Batch()
    return batch


def _reset_batch() -> None:
    # a child forked while the parent handled a read must not inherit its pending batch
    _thread_batch.batch = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_batch)


def _flush_batch(state: _Batch, batch: list[MailboxProtocol]) -> None:
    """The deferred end of a burst's batch (see :meth:`MailboxProtocol._dispatch`)."""
    if state.writers is batch:
        state.writers = None
    for proto in batch:
        proto._flush()


def dumps(obj: Any) -> bytes:
    """Pickle a message body."""
    return pickle.dumps(obj, _PICKLE_PROTOCOL)


loads = pickle.loads


class MailboxProtocol(asyncio.Protocol):
    """Thin asyncio adapter around :class:`Connection`.

    ``on_message(protocol, frame)`` is called for every message; ``on_open(protocol)`` once the
    peer authenticated; ``on_close(protocol, exc)`` when the connection ends. Protocol errors close
    the connection and are logged; they never propagate to the loop.
    """

    def __init__(
        self,
        connection: Connection,
        *,
        on_message: Callable[[MailboxProtocol, Frame], None],
        on_open: Callable[[MailboxProtocol], None] | None = None,
        on_close: Callable[[MailboxProtocol, BaseException | None], None] | None = None,
        handshake_timeout: float = 10.0,
    ) -> None:
        self.connection = connection
        self.transport: asyncio.Transport | None = None
        self.peer: Any = None
        self.aid: str | None = None  # set by the owner once the peer said who it is
        self._on_message = on_message
        self._on_open = on_open
        self._on_close = on_close
        self._handshake_timeout = handshake_timeout
        self._timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        self._batch = _current_batch()
        self.opened: asyncio.Future[None] = self._loop.create_future()
        self.closed = False
        self._wbuf: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peer = transport.get_extra_info("peername")
        if self.connection.role is Role.SERVER:
            self.transport.write(self.connection.initiate())  # type: ignore[union-attr]
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._handshake_timeout, self._handshake_expired)

    def _handshake_expired(self) -> None:
        if not self.connection.is_open:
            self.abort(AuthenticationError("handshake timed out"))

    def data_received(self, data: bytes) -> None:
        conn = self.connection
        if conn.state is ConnState.OPEN:
            try:
                frames = conn.feed(data)
            except ProtocolError as exc:
                self.abort(exc)
                return
            if frames:
                self._dispatch(frames)
            return
        self._handshake_data(data)

    def _dispatch(self, frames: list[Frame]) -> None:
        on_message = self._on_message
        state = self._batch
        outer = state.writers is None
        batch: list[MailboxProtocol] = []
        if outer:
            state.writers = batch
        try:
            for frame in frames:
                on_message(self, frame)
                if self.closed:
                    return
        finally:
            if outer:
                if len(frames) > 1:
                    # A burst (several frames in one read: pipelined traffic). What its
                    # handlers resolved runs in the loop's next callbacks (the futures' done
                    # callbacks, awaiting tasks), and their sends are typically one per frame:
                    # keep coalescing until those callbacks ran, then write once per
                    # connection. The flush is queued after them, so it costs no extra loop
                    # iteration; a single frame (a lone round trip) is flushed at once.
                    self._loop.call_soon(_flush_batch, state, batch)
                else:
                    state.writers = None
                    for proto in batch:
                        proto._flush()

    def _handshake_data(self, data: bytes) -> None:
        conn = self.connection
        conn.receive_data(data)
        while True:
            try:
                event = conn.next_event()
            except (ProtocolError, AuthenticationError) as exc:
                self.abort(exc)
                return
            out = conn.data_to_send()
            if out and self.transport is not None:
                self.transport.write(out)
            if event is None:
                if len(conn._buffer) < 4 or conn.is_open:
                    return
                continue  # more handshake frames may be buffered
            if type(event) is Frame:  # pragma: no cover - feed() takes over once open
                self._dispatch([event])
                continue
            # Authenticated
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if not self.opened.done():
                self.opened.set_result(None)
            if self._on_open is not None:
                self._on_open(self)
            if conn._buffer:  # messages right behind the handshake
                try:
                    frames = conn.feed(b"")
                except ProtocolError as exc:
                    self.abort(exc)
                    return
                if frames:
                    self._dispatch(frames)
            return

    def _write(self, data: bytes) -> None:
        if self.transport is None or self.closed:
            raise ConnectionError("mailbox connection is closed")
        batch = self._batch.writers
        if batch is None:
            self.transport.write(data)
        else:
            buf = self._wbuf
            if not buf:
                batch.append(self)
            buf.append(data)
            if len(buf) >= _FLUSH_EVERY:
                self._flush()  # the peer starts on these while this side goes on

    def _flush(self) -> None:
        buf = self._wbuf
        if buf:
            data = buf[0] if len(buf) == 1 else b"".join(buf)
            buf.clear()
            if self.transport is not None and not self.closed:
                self.transport.write(data)

    def write_envelope(self, envelope: Envelope | tuple[Any, ...]) -> None:
        """Serialize and write one envelope."""
        # Connection.send() and _write() inlined: this runs for every message
        if self.connection.state is not _OPEN:
            raise ProtocolError("connection is not open")
        if self.closed or self.transport is None:
            raise ConnectionError("mailbox connection is closed")
        # encode_frame(envelope), inlined (keep the two in step)
        kind, mid, sender, target, command, flag, body = envelope
        entry = _names_out.get((sender, target, command))
        if entry is None:
            entry = _encode_names(sender, target, command)
        ls, lt, lc, names = entry
        data = (
            _FRAME_HEAD.pack(_ENV_SIZE + len(names) + len(body), kind, mid, flag, ls, lt, lc)
            + names
            + body
        )
        batch = self._batch.writers
        if batch is None:
            self.transport.write(data)
        else:
            buf = self._wbuf
            if not buf:
                batch.append(self)
            buf.append(data)
            if len(buf) >= _FLUSH_EVERY:
                self._flush()  # the peer starts on these while this side goes on

    def forward(self, frame: bytes) -> None:
        """Write a received frame unchanged (routing)."""
        self._write(frame)

    def abort(self, exc: BaseException) -> None:
        """Close this connection because of ``exc`` (logged)."""
        logger.error("mailbox connection %s closed: %s", self.aid or self.peer or "?", exc)
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        """Close the connection once what was written (coalesced writes included) went out."""
        self._flush()
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.opened.done():
            self.opened.set_exception(
                exc or ConnectionError("mailbox connection closed during handshake")
            )
            self.opened.exception()  # mark retrieved
        if self._on_close is not None:
            self._on_close(self, exc)
