"""Sharing round trips: calls made while one is in flight (and, when busy, in one loop iteration)
go together."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

__all__ = ["Batcher"]


class Batcher:
    """Calls made while a batch is in flight go together in the next batch; once calls come
    together (a batch of several, or calls made while one was in flight: ``busy``), the first
    call of a new batch also waits one loop iteration (``sleep(0)``) for the other calls of that
    iteration to join it (ten tasks that end in one iteration: one completion round trip, not
    one for the first and one for the nine others). A lone call is sent directly (no future, no
    task), and a quiet one (nothing joined it) drops ``busy``: sequential calls wait for no
    iteration. ``send(items)`` returns one result per item."""

    def __init__(
        self, send: Callable[[list[Any]], Awaitable[Sequence[Any]]], limit: int = 500
    ) -> None:
        self.send = send
        self.limit = limit
        self.pending: list[tuple[asyncio.Future[Any], Any]] = []
        self.sending = False
        self.busy = False  # calls came together lately: a new batch waits one iteration
        self.task: asyncio.Future[None] | None = None

    async def __call__(self, item: Any) -> Any:
        if not self.sending:
            self.sending = True
            if self.busy:
                try:
                    await asyncio.sleep(0)  # the other calls of this iteration join
                except BaseException:
                    self._next()
                    raise
            if not self.pending:
                try:
                    return (await self.send([item]))[0]
                finally:
                    self._next()
            # others joined: the batch goes from a task of its own (a cancelled caller does
            # not cancel the others' send)
            first: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self.pending.insert(0, (first, item))
            self.task = asyncio.ensure_future(self._run())
            return await first
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending.append((fut, item))
        return await fut

    def _next(self) -> None:
        """The direct send is over: the calls made meanwhile go together, or nothing is sent
        (and nothing joined: not busy)."""
        self.busy = bool(self.pending)
        if self.pending:
            self.task = asyncio.ensure_future(self._run())
        else:
            self.sending = False

    async def _run(self) -> None:
        try:
            while self.pending:
                self.busy = True  # several, or made while one was in flight
                batch, self.pending = self.pending[: self.limit], self.pending[self.limit :]
                try:
                    results = await self.send([item for _, item in batch])
                except BaseException as exc:
                    for fut, _ in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (fut, _), result in zip(batch, results, strict=True):
                    if not fut.done():
                        fut.set_result(result)
        finally:
            self.sending = False
            for fut, _ in self.pending:  # cancelled meanwhile: nobody will send them
                if not fut.done():
                    fut.set_exception(RuntimeError("batch sender stopped"))
            self.pending = []
