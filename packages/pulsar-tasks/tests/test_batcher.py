"""The backends' batcher: calls made while one is in flight share a round trip, and once busy the
calls of one loop iteration too; a lone quiet call goes directly."""

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


async def test_calls_of_one_iteration_go_together_once_busy() -> None:
    send = Sender()
    batch = Batcher(send, limit=3)
    results = await asyncio.gather(*(batch(i) for i in range(8)))
    assert results == [i * 10 for i in range(8)]
    # not busy yet: the first goes alone, the others joined while it was in flight
    assert send.batches == [[0], [1, 2, 3], [4, 5, 6], [7]]
    assert batch.busy
    send.batches.clear()
    assert await asyncio.gather(*(batch(i) for i in range(5))) == [0, 10, 20, 30, 40]
    assert send.batches == [[0, 1, 2], [3, 4]]  # busy: the first waited for its iteration
    assert not batch.sending and not batch.pending


async def test_a_quiet_call_ends_busy_sequential_calls_wait_for_nothing() -> None:
    send = Sender()
    batch = Batcher(send)
    await asyncio.gather(*(batch(i) for i in range(3)))
    assert batch.busy
    assert await batch(7) == 70  # waited one iteration (busy); nothing joined it
    assert not batch.busy
    for i in range(3):  # each sent at once: no sleep(0) before it
        fut = asyncio.ensure_future(batch(i))
        await asyncio.sleep(0)  # the call runs up to its send
        assert send.batches[-1] == [i]
        assert await fut == i * 10
    assert not batch.busy


async def test_calls_made_in_flight_go_together() -> None:
    send = Sender()
    batch = Batcher(send)
    first = asyncio.ensure_future(batch(0))
    while not send.batches:  # the first one is in flight
        await asyncio.sleep(0)
    later = [asyncio.ensure_future(batch(i)) for i in (1, 2, 3)]
    assert await first == 0
    assert await asyncio.gather(*later) == [10, 20, 30]
    assert send.batches == [[0], [1, 2, 3]]
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


async def test_a_cancelled_caller_of_a_batch_does_not_cancel_the_others() -> None:
    send = Sender()
    batch = Batcher(send)
    batch.busy = True  # calls came together lately: the first waits for the others
    calls = [asyncio.ensure_future(batch(i)) for i in range(3)]
    while not send.batches:
        await asyncio.sleep(0)
    calls[0].cancel()  # the one that sends
    assert await asyncio.gather(*calls[1:]) == [10, 20]
    with pytest.raises(asyncio.CancelledError):
        await calls[0]
    assert send.batches == [[0, 1, 2]]  # sent once, the others answered
    assert not batch.sending and not batch.pending
