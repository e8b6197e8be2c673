"""The backends' batcher: concurrent calls share round trips, a lone call goes at once."""

from __future__ import annotations

import asyncio

import pytest

from pulsar.apps.tasks._batch import Batcher


class Sender:
    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.fail = fail

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        await asyncio.sleep(0.01)
        if self.fail:
            raise ConnectionError("down")
        return [i * 10 for i in items]


async def test_lone_call_is_sent_directly() -> None:
    send = Sender()
    batch = Batcher(send)
    assert await batch(1) == 10
    assert await batch(2) == 20
    assert send.batches == [[1], [2]]
    assert not batch.sending and batch.task is None  # no background task for lone calls


async def test_calls_made_in_flight_go_together() -> None:
    send = Sender()
    batch = Batcher(send, limit=3)
    results = await asyncio.gather(*(batch(i) for i in range(8)))
    assert results == [i * 10 for i in range(8)]
    assert send.batches == [[0], [1, 2, 3], [4, 5, 6], [7]]
    assert not batch.sending and not batch.pending


async def test_errors_reach_every_caller_of_the_batch() -> None:
    send = Sender(fail=True)
    batch = Batcher(send)
    results = await asyncio.gather(*(batch(i) for i in range(4)), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert not batch.sending
    send.fail = False
    assert await batch(5) == 50  # usable again


async def test_a_cancelled_direct_caller_still_sends_the_others() -> None:
    send = Sender()
    batch = Batcher(send)
    first = asyncio.ensure_future(batch(1))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(batch(2))
    await asyncio.sleep(0)
    first.cancel()
    assert await second == 20
    with pytest.raises(asyncio.CancelledError):
        await first
    assert send.batches == [[1], [2]]
