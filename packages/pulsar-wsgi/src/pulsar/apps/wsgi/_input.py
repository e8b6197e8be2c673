"""``wsgi.input``: the streaming request body.

How it works
------------
The event loop feeds the body bytes of one request as the parser produces them
(:meth:`RequestBody.feed`, :meth:`~RequestBody.end`, :meth:`~RequestBody.fail`); the application
reads them with the file API of PEP 3333 (``read``, ``readline``, ``readlines``, iteration). The
parser hands over body bytes only, so a read never goes past the end of the body.

When the application runs in a worker thread, a read that finds no buffered byte blocks that
thread on a :class:`threading.Condition` until the loop feeds more, ends or fails the body (a
disconnect, a body timeout or a limit wakes it with an exception). The first such wait asks the
loop (thread-safely) to send ``100 Continue`` when the client expects it, and reads that drain the
buffer below the low-water mark ask the loop to resume reading the socket, which the protocol
pauses when the buffer grows past the high-water mark. When the application runs inline on the
loop the body is complete before it is called, so reads never wait.

Fed bytes are kept as the parser's chunks (no copy) until a read needs them: a read of the whole
body that arrived in one chunk returns that very ``bytes`` object, several chunks are joined once;
partial reads and ``readline`` move the chunks into one ``bytearray`` first.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

from ._connection import MAX_DRAIN
from ._errors import ClientDisconnected, HttpError

__all__ = ["BODY_HIGH_WATER", "BODY_LOW_WATER", "EMPTY_BODY", "MAX_DRAIN", "RequestBody"]

#: the protocol stops reading the socket while this many body bytes wait for the application
BODY_HIGH_WATER = 256 * 1024
#: ... and reads again once the application has consumed the buffer below this
BODY_LOW_WATER = 64 * 1024


class _NoLock:
    """The parts of :class:`threading.Condition` a non-blocking body uses, doing nothing."""

    __slots__ = ()

    def __enter__(self) -> bool:
        return True

    def __exit__(self, *exc: object) -> None:
        return None

    def notify_all(self) -> None:
        pass

    def acquire(self) -> bool:
        return True

    def release(self) -> None:
        pass

    def wait(self, timeout: float | None = None) -> bool:  # pragma: no cover - never waits
        return True


_NO_LOCK = _NoLock()


class RequestBody:
    """The body of one request; the object is ``environ["wsgi.input"]``.

    Args:
        blocking: reads may wait for bytes (the reader is a worker thread); when False a read
            past what has been received raises :class:`HttpError` (it would block the loop).
        on_demand: called (from the reading thread) the first time a read has to wait, and
            whenever a read drains the buffer below :data:`BODY_LOW_WATER`; the protocol sends
            ``100 Continue`` and resumes reading the socket. Must be thread-safe.
        alive: checked every second by a waiting reader; False (the server's loop stopped)
            makes the read raise :class:`ClientDisconnected` instead of waiting forever.
    """

    __slots__ = (
        "_alive",
        "_blocking",
        "_buf",
        "_chunks",
        "_complete",
        "_cond",
        "_demanded",
        "_discard",
        "_error",
        "_on_demand",
        "_size",
        "_waiter",
        "_waiting",
        "received",
    )

    def __init__(
        self,
        *,
        blocking: bool = True,
        on_demand: Callable[[], None] | None = None,
        alive: Callable[[], bool] | None = None,
    ) -> None:
        self._blocking = blocking
        self._alive = alive
        # the bytes not read yet: _buf's, then those of _chunks (fed, not copied yet)
        self._buf = bytearray()
        self._chunks: list[bytes] = []
        self._size = 0  # len(_buf) + the lengths of _chunks
        self._complete = False
        self._error: BaseException | None = None
        # a body read on the loop only (inline mode) needs no lock
        self._cond: threading.Condition | _NoLock = (
            threading.Condition(threading.Lock()) if blocking else _NO_LOCK
        )
        self._on_demand = on_demand
        self._demanded = False
        self._waiting = False
        self._discard = False
        self._waiter: asyncio.Future[None] | None = None
        #: body bytes received so far
        self.received = 0

    # -- loop side --------------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Add body bytes (event loop)."""
        self.received += len(data)
        if self._discard or not data:
            return
        if type(data) is not bytes:
            data = bytes(data)  # kept as is: never a view of a buffer that may change
        cond = self._cond
        if cond is _NO_LOCK:  # read on the loop: no lock, nobody to wake (the usual inline case)
            self._chunks.append(data)
            self._size += len(data)
            return
        with cond:
            self._chunks.append(data)
            self._size += len(data)
            cond.notify_all()

    def end(self) -> None:
        """The body is complete (event loop)."""
        cond = self._cond
        if cond is _NO_LOCK:
            self._complete = True
        else:
            with cond:
                self._complete = True
                cond.notify_all()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def fail(self, exc: BaseException) -> None:
        """The body will never complete: readers waiting for more raise ``exc``."""
        with self._cond:
            if not self._complete and self._error is None:
                self._error = exc
            self._cond.notify_all()
        waiter = self._waiter
        if waiter is not None and not waiter.done() and self._error is not None:
            waiter.set_exception(self._error)

    async def wait_complete(self) -> None:
        """Wait (on the event loop) until the whole body is received; raises its failure."""
        if self._complete:
            return
        if self._error is not None:
            raise self._error
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def discard(self) -> None:
        """The application is done: drop buffered and future bytes (they are drained)."""
        self._discard = True
        with self._cond:
            self._buf.clear()
            self._chunks.clear()
            self._size = 0

    @property
    def discarding(self) -> bool:
        """The application is done with the body: what still arrives is dropped."""
        return self._discard

    @property
    def complete(self) -> bool:
        """All the body has been received."""
        return self._complete

    @property
    def failed(self) -> BaseException | None:
        """The error that ended the body early, if any."""
        return self._error

    @property
    def buffered(self) -> int:
        """Bytes received and not read yet."""
        return self._size

    @property
    def demanded(self) -> bool:
        """A reader asked for bytes that had not arrived yet (``100 Continue`` is due)."""
        return self._demanded

    # -- reader side ------------------------------------------------------------------------------
    def _wait(self) -> None:
        """Block until more bytes arrive, the body ends or fails (lock held).

        Every wait tells the loop (``on_demand``): the first sends ``100 Continue``, and a
        waiting reader makes the loop read the socket even above the high-water mark (a
        ``read()`` of the whole body needs all of it).
        """
        if self._error is not None:
            raise self._error
        if not self._blocking:
            raise HttpError("wsgi.input: the body is not complete and reads may not block here")
        self._demanded = True
        self._waiting = True
        try:
            if self._on_demand is not None:
                size = self._size
                self._cond.release()
                try:
                    self._on_demand()
                finally:
                    self._cond.acquire()
                if self._size != size or self._complete or self._error is not None:
                    return  # something happened while the lock was released
            while not self._cond.wait(1.0):
                if self._alive is not None and not self._alive():
                    self._error = self._error or disconnected()
                    break
        finally:
            self._waiting = False
        if self._error is not None and not self._size:
            raise self._error

    @property
    def waiting(self) -> bool:
        """A reader is blocked waiting for more bytes."""
        return self._waiting

    def _flatten(self) -> bytearray:
        """Move the fed chunks into ``_buf`` (lock held); returns it: all the bytes not read."""
        buf = self._buf
        chunks = self._chunks
        if chunks:
            for chunk in chunks:
                buf += chunk
            chunks.clear()
        return buf

    def _take(self, size: int) -> bytes:
        before = self._size
        if size >= before:  # all of it: no copy when it is one chunk, else one
            chunks = self._chunks
            buf = self._buf
            if not buf and len(chunks) == 1:
                data = chunks.pop()
            else:
                data = b"".join([buf, *chunks]) if buf else b"".join(chunks)
                buf.clear()
                chunks.clear()
            self._size = 0
        else:
            buf = self._flatten()
            with memoryview(buf) as view:
                data = bytes(view[:size])  # one copy (a bytearray slice would make two)
            del buf[:size]
            self._size = before - size
        if (
            before >= BODY_LOW_WATER > self._size
            and self._on_demand is not None
            and not self._complete
        ):
            self._cond.release()
            try:
                self._on_demand()
            finally:
                self._cond.acquire()
        return data

    def read(self, size: int | None = -1) -> bytes:
        """Read ``size`` bytes (all the rest when negative or None), fewer only at the end of the
        body; ``b""`` at the end. Blocks (thread pool) until they arrive.

        Raises:
            RemoteProtocolError: the body failed (408 once ``body_timeout`` passes without
                progress, 413 beyond ``max_body_size``, 400 for a malformed chunk).
            ClientDisconnected: the client went away before the end of the body.
        """
        if self._complete and self._cond is _NO_LOCK:  # inline: no lock, never waits
            if size is None or size < 0 or size >= self._size:
                return self._take(self._size)
            return self._take(size) if size else b""
        with self._cond:
            if size is None or size < 0:
                while not self._complete:
                    self._wait()
                return self._take(self._size)
            if size == 0:
                return b""
            # file semantics (what Django and Flask rely on: one read(CONTENT_LENGTH)): wait for
            # ``size`` bytes or the end of the body, however many segments it comes in
            while self._size < size and not self._complete:
                self._wait()
            return self._take(size)

    def read1(self, size: int = -1) -> bytes:
        """Read what is buffered (waiting only when nothing is), up to ``size`` bytes."""
        with self._cond:
            while not self._size and not self._complete:
                self._wait()
            return self._take(self._size if size is None or size < 0 else size)

    def readline(self, size: int | None = -1) -> bytes:
        """Read one line (up to and including ``\\n``), at most ``size`` bytes when given."""
        with self._cond:
            start = 0
            while True:
                buf = self._flatten()
                index = buf.find(b"\n", start)
                if index >= 0:
                    end = index + 1
                    if size is not None and 0 <= size < end:
                        end = size
                    return self._take(end)
                if size is not None and 0 <= size <= len(buf):
                    return self._take(size)
                if self._complete:
                    return self._take(len(buf))
                start = len(buf)
                self._wait()

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        """Read lines until the end (or until ``hint`` bytes have been read, when positive)."""
        lines: list[bytes] = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def close(self) -> None:
        """No-op (the server owns the body)."""

    def readable(self) -> bool:
        return True

    def __repr__(self) -> str:
        state = "complete" if self._complete else "failed" if self._error else "streaming"
        return f"<wsgi.input {state} received={self.received} buffered={self._size}>"


def disconnected() -> ClientDisconnected:
    """The error readers get when the client goes away mid-body."""
    return ClientDisconnected("client disconnected before the request body was complete")


#: ``wsgi.input`` of the requests without a body: complete and stateless, so one is shared
EMPTY_BODY = RequestBody(blocking=False)
EMPTY_BODY.end()
