"""Results TTL, the same on every backend: after it, a record is gone for every reader (the
Redis reply cache included), and a revoke keeps the record for the workers' ``result_ttl``,
not the revoking client's."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from pulsar.apps import tasks


@contextlib.asynccontextmanager
async def worker(url: str, ttl: float) -> AsyncIterator[tasks.Consumer]:
    import tq_jobs  # noqa: F401

    backend = tasks.create_backend(url, result_ttl=ttl)
    # what a TaskQueue does at start: publish the jobs with its result TTL
    await backend.register_jobs(
        {n: {**j.meta(), "result_ttl": ttl} for n, j in tasks.registry().items()}
    )
    consumer = tasks.Consumer(backend, worker_id="w-ttl", queues=("default",), lease=5.0)
    consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop(grace=1.0)
        await backend.close()


async def test_after_the_ttl_wait_for_task_raises_task_not_found(client, backend_url) -> None:
    # the TTL leaves a second client ample time to read the reply on a loaded machine (it
    # expired before that read under four parallel test runs with 0.5 s); three rounds at
    # once (Redis returned the expired record in 2 of 3 runs), sharing the TTL's wait
    async def round_(k: int) -> None:
        t = await client.queue_task("add", [k, 2])
        assert (await client.wait_for_task(t.id, timeout=10)).result == k + 2  # the reply
        other = tasks.connect(backend_url, set_default=False)
        try:
            t2 = await client.queue_task("add", [k, 3])
            assert (await other.wait_for_task(t2.id, timeout=10)).result == k + 3
            await asyncio.sleep(2.5)
            for c, task_id in ((client, t.id), (other, t2.id), (client, t2.id)):
                with pytest.raises(tasks.TaskNotFound):
                    await c.wait_for_task(task_id, timeout=5)
                assert await c.get_task(task_id) is None
        finally:
            await other.close()

    async with worker(backend_url, ttl=2.0):
        await asyncio.gather(*(round_(k) for k in range(3)))


async def test_a_revoked_task_keeps_the_workers_ttl(client, backend_url) -> None:
    assert client.backend.result_ttl == 86400  # the client's default TTL: one day
    async with worker(backend_url, ttl=0.5):
        t = await client.queue_task("add", [1, 2], countdown=60)
        assert await client.revoke(t.id) == tasks.TaskState.REVOKED
        done = await client.wait_for_task(t.id, timeout=5)
        assert done.status == tasks.TaskState.REVOKED
        await asyncio.sleep(0.8)
        assert await client.get_task(t.id) is None
        with pytest.raises(tasks.TaskNotFound):
            await client.wait_for_task(t.id, timeout=5)
        assert await client.revoke(t.id) is None
