"""Flow control of one connection: read pausing and write back-pressure.

How it works
------------
The asyncio adapter (:class:`~._protocol.HttpServerProtocol`) owns one :class:`FlowControl` per
transport. Reading is paused (``pause_reading``) while too many pipelined requests or body bytes
wait, and resumed when they are consumed; the transport's ``pause_writing`` /
``resume_writing`` callbacks set :attr:`FlowControl.write_paused`, and writers wait for it to
clear: a coroutine with :meth:`FlowControl.drain`, a worker thread with a
:class:`concurrent.futures.Future` given to :meth:`FlowControl.when_writable`. A lost
connection wakes every waiter with :class:`~._errors.ClientDisconnected`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures

from ._errors import ClientDisconnected

__all__ = ["FlowControl"]


class FlowControl:
    """Read pausing and write back-pressure of one transport.

    It keeps no "disconnected" flag (that is the connection's send state, ``CLOSED``): it only
    leaves a closing transport alone and fails the writers waiting on it.
    """

    __slots__ = ("_transport", "_waiters", "read_paused", "write_paused")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self.read_paused = False
        self.write_paused = False
        self._waiters: list[asyncio.Future[None] | concurrent.futures.Future[None]] = []

    def pause_reading(self) -> None:
        if not self.read_paused and not self._transport.is_closing():
            self.read_paused = True
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused and not self._transport.is_closing():
            self.read_paused = False
            self._transport.resume_reading()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake(None)

    def connection_lost(self) -> None:
        self.write_paused = False
        if self._waiters:
            self._wake(ClientDisconnected())

    def _wake(self, exc: BaseException | None) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if waiter.done():
                continue
            if exc is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(exc)

    async def drain(self) -> None:
        """Wait until the transport can take more (raises ClientDisconnected if it is gone)."""
        if self._transport.is_closing():
            raise ClientDisconnected()
        if not self.write_paused:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    def when_writable(self, future: concurrent.futures.Future[None]) -> None:
        """Complete ``future`` (from another thread's point of view) once writable."""
        if self._transport.is_closing():
            future.set_exception(ClientDisconnected())
        elif not self.write_paused:
            future.set_result(None)
        else:
            self._waiters.append(future)
