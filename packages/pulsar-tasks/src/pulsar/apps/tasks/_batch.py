"""Sharing round trips: calls made while one is in flight go together in the next one."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

__all__ = ["Batcher"]


class Batcher:
    """Calls made while a batch is in flight go together in the next one (no added delay: a
    lone call is sent at once). ``send(items)`` returns one result per item."""

    def __init__(
        self, send: Callable[[list[Any]], Awaitable[Sequence[Any]]], limit: int = 500
    ) -> None:
        self.send = send
        self.limit = limit
        self.pending: list[tuple[asyncio.Future[Any], Any]] = []
        self.sending = False
        self.task: asyncio.Future[None] | None = None

    async def __call__(self, item: Any) -> Any:
        if not self.sending:
            # nothing in flight: send this one directly (no future, no task); calls made
            # meanwhile queue up and go together once it returns
            self.sending = True
            try:
                return (await self.send([item]))[0]
            finally:
                if self.pending:
                    self.task = asyncio.ensure_future(self._run())
                else:
                    self.sending = False
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending.append((fut, item))
        return await fut

    async def _run(self) -> None:
        try:
            while self.pending:
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
