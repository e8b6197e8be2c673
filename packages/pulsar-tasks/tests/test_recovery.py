"""A dead worker's tasks come back at once (``Backend.release_worker``, called by the TaskQueue
when its monitor reaps a worker), on every backend; poison tasks end FAILURE ``lost``."""

from __future__ import annotations

import asyncio
import uuid

from pulsar.apps import tasks
from pulsar.apps.tasks import TaskState


def new_task(**fields) -> tasks.Task:
    return tasks.Task(
        id=uuid.uuid4().hex, name="add", payload='{"args": [1, 2], "kwargs": {}}', **fields
    )


async def test_release_worker_requeues_its_tasks_at_once(client) -> None:
    b = client.backend
    mine = [new_task(max_retries=2) for _ in range(3)]
    other = new_task(max_retries=2, queue="other")
    for t in [*mine, other]:
        await b.enqueue(t)
    claimed = (await b.claim(["default"], "dead", 300.0, 3)).tasks
    assert {r["id"] for r in claimed} == {t.id for t in mine}
    assert len((await b.claim(["other"], "alive", 300.0, 5)).tasks) == 1
    assert await b.release_worker("dead") == 3
    assert await b.release_worker("dead") == 0  # nothing held any more
    for t in mine:
        got = await b.get(t.id)
        assert got.status == TaskState.QUEUED and got.attempts == 1 and got.worker is None
    assert (await b.get(other.id)).status == TaskState.STARTED  # another worker's: untouched
    # claimable now, 300 s before the lease would have expired; the old token is refused
    again = (await b.claim(["default"], "w2", 300.0, 5)).tasks
    assert {r["id"] for r in again} == {t.id for t in mine}
    assert all(int(r["attempts"]) == 2 for r in again)
    old = {r["id"]: r["token"] for r in claimed}
    assert not await b.complete(mine[0].id, old[mine[0].id], TaskState.SUCCESS, result="1")


async def test_release_worker_fails_a_task_out_of_retries_as_lost(client) -> None:
    b = client.backend
    t = new_task(max_retries=0)
    await b.enqueue(t)
    (await b.claim(["default"], "dead", 300.0, 1)).tasks[0]
    waiter = asyncio.ensure_future(client.wait_for_task(t.id, timeout=10))
    await asyncio.sleep(0.05)
    assert await b.release_worker("dead") == 1
    done = await waiter
    assert done.status == TaskState.FAILURE and done.error.startswith("lost")
    assert done.attempts == 1


async def test_release_worker_wakes_an_idle_worker(client) -> None:
    b = client.backend
    t = new_task(max_retries=1)
    await b.enqueue(t)
    await b.claim(["default"], "dead", 300.0, 1)
    other = tasks.create_backend(b.url)
    try:
        await other.claim(["default"], "idle", 300.0, 1)  # nothing: it would now sleep
        await other.wait_for_work(["default"], 0.05)  # (takes the enqueue's wake-up)
        loop = asyncio.get_running_loop()
        start = loop.time()
        idle = asyncio.ensure_future(other.wait_and_claim(["default"], "idle", 300.0, 1, 5.0))
        await asyncio.sleep(0.1)
        await b.release_worker("dead")
        claim = await asyncio.wait_for(idle, 5)
        assert [r["id"] for r in claim.tasks] == [t.id]
        assert loop.time() - start < 2.0  # woken, not the 5 s idle timeout
    finally:
        await other.close()
