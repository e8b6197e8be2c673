"""The operator's calls on every backend (conformance, parametrized by ``backend_url``): purge
of a queue, requeue of failed tasks, worker heartbeats and the dead-letter ``since`` filter.
The command line over them is tested in test_cli_operators.py."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import Any

import pytest
import tq_helpers as h
import tq_jobs  # noqa: F401  (declares the jobs)

from pulsar.apps import tasks
from pulsar.apps.tasks import TaskState


def consuming(url: str, *, worker_id: str = "w-ops", **kwargs: Any) -> Any:
    return h.consuming(url, worker_id=worker_id, **kwargs)


async def started(client, task_id: str) -> None:
    for _ in range(250):
        if (await client.get_task(task_id)).status == TaskState.STARTED:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"task {task_id} never started")


# -- purge -----------------------------------------------------------------------------------


async def test_purge_revokes_pending_tasks_of_one_queue_and_leaves_running_ones(client) -> None:
    b = client.backend
    running = await client.queue_task("add", [0, 0])
    row = (await b.claim(["default"], "w1", 10.0, 1)).tasks[0]
    assert row["id"] == running.id
    queued = [await client.queue_task("add", [i, i]) for i in range(3)]
    later = await client.queue_task("add", [9, 9], countdown=3600)  # not due yet: pending too
    retry = await client.queue_task("add", [5, 5])
    claimed = (await b.claim(["default"], "w1", 10.0, 5)).tasks
    retry_row = next(r for r in claimed if r["id"] == retry.id)
    for r in claimed:  # only `retry` was meant to be claimed: hand the others back
        if r["id"] != retry.id:
            assert await b.release(r["id"], r["token"])
    assert await b.retry(retry.id, retry_row["token"], time.time() + 3600, error="E", traceback="")
    exclusive = await client.queue_task("exclusive", ["k"])
    elsewhere = await client.queue_task("elsewhere")  # queue "other"
    waiter = asyncio.ensure_future(client.wait_for_task(queued[0].id, timeout=10))
    await asyncio.sleep(0.2)  # the waiter is waiting

    assert await client.purge("default") == 6  # 3 queued + later + retry + exclusive

    done = await waiter  # woken with the purged record
    assert done.status == TaskState.REVOKED and done.error == "purged"
    for t in (*queued, later, retry, exclusive):
        got = await client.get_task(t.id)
        assert got.status == TaskState.REVOKED and got.error == "purged", t.id
        assert got.time_finished is not None
    assert (await client.get_task(elsewhere.id)).status == TaskState.QUEUED
    assert (await client.get_task(running.id)).status == TaskState.STARTED
    assert (await b.renew({running.id: row["token"]}, 10.0)) == {}  # its lease is intact
    assert await b.complete(running.id, row["token"], TaskState.SUCCESS, result="0")
    assert (await b.claim(["default"], "w1", 10.0, 10)).tasks == []
    assert await client.purge("default") == 0
    assert await client.purge("no-such-queue") == 0
    # the overlap key of the purged task is free again
    again = await client.queue_task("exclusive", ["k"])
    assert again.id != exclusive.id
    assert (await client.counts()).get("REVOKED") == 6


async def test_purge_of_many_tasks(client) -> None:
    """More than one Redis purge script's chunk (1,000)."""
    b = client.backend
    n = 2100
    for i in range(0, n, 300):
        await asyncio.gather(*(client.queue_task("add", [j, 0]) for j in range(i, min(n, i + 300))))
    assert await b.pending(["default"]) == n
    assert await client.purge("default") == n
    assert await b.pending(["default"]) == 0
    assert (await client.counts()) == {"REVOKED": n}


# -- requeue ---------------------------------------------------------------------------------


async def test_requeue_a_failed_task_runs_it_again(client, backend_url, tmp_path) -> None:
    flag = tmp_path / "fixed"
    async with consuming(backend_url):
        t = await client.queue_task("fails_until", [str(flag)])
        failed = await client.wait_for_task(t.id, timeout=10)
        assert failed.status == TaskState.FAILURE and "missing" in failed.error
        assert failed.attempts == 1 and failed.traceback
        flag.write_text("ok")  # the operator fixed the cause
        before = time.time()
        assert await client.requeue(t.id) is True
        # the client that queued it waits again: the new outcome, not the old reply
        done = await client.wait_for_task(t.id, timeout=10)
    assert done.status == TaskState.SUCCESS and done.result == "fixed"
    assert done.id == t.id and done.attempts == 1  # a fresh start: attempts were reset
    assert done.error is None and done.traceback is None
    assert done.time_queued >= before - 0.5 and done.time_started >= before - 0.5
    with pytest.raises(tasks.TaskError, match="only FAILURE and REVOKED"):
        await client.requeue(t.id)  # SUCCESS is refused
    assert (await client.get_task(t.id)).status == TaskState.SUCCESS


async def test_requeue_resets_the_record_and_refuses_what_is_not_failed(client) -> None:
    b = client.backend
    assert await client.requeue("no-such-id") is False
    pending = await client.queue_task("add", [1, 2])
    with pytest.raises(tasks.TaskError, match="QUEUED"):
        await client.requeue(pending.id)
    row = (await b.claim(["default"], "w1", 10.0, 1)).tasks[0]
    with pytest.raises(tasks.TaskError, match="STARTED"):
        await client.requeue(pending.id)
    assert await b.complete(
        pending.id, row["token"], TaskState.FAILURE, error="E: x", traceback="tb"
    )
    assert await b.requeue(pending.id) == TaskState.FAILURE
    got = await client.get_task(pending.id)
    assert got.status == TaskState.QUEUED and got.attempts == 0
    assert got.error is None and got.traceback is None and got.result is None
    assert got.worker is None and got.time_started is None and got.time_finished is None
    assert got.eta <= time.time() and got.expires is None
    # it is claimed (woken like an enqueue) and runs with its lease
    row = (await b.claim(["default"], "w2", 10.0, 1)).tasks[0]
    assert row["id"] == pending.id and int(row["attempts"]) == 1
    assert await b.complete(pending.id, row["token"], TaskState.SUCCESS, result="3")
    assert (await client.get_task(pending.id)).result == 3
    # a revoked task (and a purged one) can be requeued too
    revoked = await client.queue_task("add", [2, 2])
    assert await client.revoke(revoked.id) == TaskState.REVOKED
    assert await client.requeue(revoked.id) is True
    assert (await client.get_task(revoked.id)).status == TaskState.QUEUED


async def test_requeue_a_lost_task_and_an_expired_one(client) -> None:
    b = client.backend
    lost = await client.queue_task("add", [1, 1])  # max_retries 3: lost after 4 dead workers
    for _ in range(4):
        assert (await b.claim(["default"], "dead", 0.05, 1)).tasks
        await asyncio.sleep(0.08)
    await b.claim(["default"], "w", 0.05, 1)  # recovers it: out of retries, FAILURE lost
    got = await client.get_task(lost.id)
    assert got.status == TaskState.FAILURE and got.error.startswith("lost")
    assert await client.requeue(lost.id) is True
    row = (await b.claim(["default"], "w", 10.0, 1)).tasks[0]
    assert row["id"] == lost.id and int(row["attempts"]) == 1  # a full retry budget again
    assert await b.complete(lost.id, row["token"], TaskState.SUCCESS, result="2")
    expired = await client.queue_task("add", [3, 3], expires=0.01)
    await asyncio.sleep(0.05)
    await b.claim(["default"], "w", 10.0, 1)
    assert (await client.get_task(expired.id)).error == "expired"
    assert await client.requeue(expired.id) is True  # its expiry is cleared: it runs
    row = (await b.claim(["default"], "w", 10.0, 1)).tasks[0]
    assert row["id"] == expired.id


async def test_requeue_respects_overlap(client) -> None:
    b = client.backend
    first = await client.queue_task("exclusive", ["k"])
    row = (await b.claim(["default"], "w1", 10.0, 1)).tasks[0]
    assert await b.complete(first.id, row["token"], TaskState.FAILURE, error="E")
    twin = await client.queue_task("exclusive", ["k"])  # allowed: the first one is final
    with pytest.raises(tasks.JobOverlap):
        await client.requeue(first.id)
    assert (await client.get_task(first.id)).status == TaskState.FAILURE  # unchanged
    assert await client.revoke(twin.id) == TaskState.REVOKED
    assert await client.requeue(first.id) is True
    with pytest.raises(tasks.JobOverlap):  # its key is held again
        await client.queue_task("exclusive", ["k"])


# -- the dead-letter view --------------------------------------------------------------------


async def test_list_since_filters_on_the_finish_time(client) -> None:
    b = client.backend
    old, new, ok = [await client.queue_task("add", [i, i]) for i in range(3)]
    pending = await client.queue_task("add", [4, 4], countdown=3600)
    rows = {r["id"]: r for r in (await b.claim(["default"], "w", 10.0, 3)).tasks}
    assert await b.complete(old.id, rows[old.id]["token"], TaskState.FAILURE, error="old")
    await asyncio.sleep(0.1)
    mark = time.time()
    await asyncio.sleep(0.05)
    assert await b.complete(new.id, rows[new.id]["token"], TaskState.FAILURE, error="new")
    assert await b.complete(ok.id, rows[ok.id]["token"], TaskState.SUCCESS, result="6")
    assert [t.id for t in await client.list_tasks("FAILURE", since=mark)] == [new.id]
    assert {t.id for t in await client.list_tasks("FAILURE")} == {old.id, new.id}
    assert {t.id for t in await client.list_tasks(since=mark)} == {new.id, ok.id}
    assert pending.id not in {t.id for t in await client.list_tasks(since=0)}
    assert await client.list_tasks("FAILURE", since=time.time() + 60) == []
    import datetime as dt

    since = dt.datetime.fromtimestamp(mark, dt.UTC)
    assert [t.id for t in await client.list_tasks("FAILURE", since=since)] == [new.id]


# -- heartbeats ------------------------------------------------------------------------------


async def test_a_running_worker_shows_its_running_task_and_is_gone_after_it_stops(
    client, backend_url
) -> None:
    async with consuming(backend_url, lease=0.3, concurrent_tasks=7) as consumer:
        t = await client.queue_task("sleeper", [30])
        await started(client, t.id)
        deadline = time.monotonic() + 5
        while True:
            workers = await client.workers()
            if workers and workers[0]["running"]:
                break
            assert time.monotonic() < deadline, workers
            await asyncio.sleep(0.05)
        (w,) = workers
        assert w["worker"] == "w-ops" and w["pid"] == os.getpid()
        assert w["host"] == socket.gethostname()
        assert w["queues"] == ["default", "other"] and w["concurrency"] == 7
        (run,) = w["running"]
        assert run["id"] == t.id and run["name"] == "sleeper"
        record = await client.get_task(t.id)
        assert run["started"] == pytest.approx(record.time_started, abs=0.01)
        assert time.time() - 5 < run["started"] <= time.time()
        assert w["beat"] >= run["started"] - 0.5
        assert consumer.heartbeat_info()["running"][0]["id"] == t.id
        await client.revoke(t.id)
        await client.wait_for_task(t.id, timeout=5)
    assert await client.workers() == []  # a stopping worker removes its record


async def test_a_heartbeat_expires_when_a_worker_stops_beating(client) -> None:
    b = client.backend
    await b.heartbeat("dead", {"worker": "dead", "running": []}, 0.3)
    await b.heartbeat("alive", {"worker": "alive", "running": []}, 30)
    assert [w["worker"] for w in await client.workers()] == ["alive", "dead"]
    await asyncio.sleep(0.4)
    assert [w["worker"] for w in await client.workers()] == ["alive"]
    await b.heartbeat("alive", {"worker": "alive", "running": [{"id": "x"}]}, 30)  # refreshed
    assert (await client.workers())[0]["running"] == [{"id": "x"}]
    await b.forget_worker("alive")
    assert await client.workers() == []


async def test_sync_client_operators(backend_url) -> None:
    with tasks.connect_sync(backend_url) as c:
        t = c.queue_task("add", [1, 2])
        assert c.purge("default") == 1
        assert c.requeue(t.id) is True
        assert c.get_task(t.id).status == TaskState.QUEUED
        assert c.requeue("nope") is False
        assert c.workers() == []
        assert c.list_tasks("REVOKED", since=0) == []


async def test_the_producer_sees_the_new_run_after_another_client_requeued(
    client, backend_url, tmp_path
) -> None:
    """The client that queued a task and received its FAILURE waits again after an operator
    (another process) requeued it: it gets the new run's outcome, not the reply it had."""
    flag = tmp_path / "fixed"
    operator = tasks.connect(backend_url, set_default=False)
    try:
        async with consuming(backend_url):
            t = await client.queue_task("fails_until", [str(flag)])
            assert (await client.wait_for_task(t.id, timeout=10)).status == TaskState.FAILURE
            await asyncio.sleep(0.1)  # a late copy of the reply has arrived by now
            flag.write_text("ok")
            assert await operator.requeue(t.id) is True
            done = await client.wait_for_task(t.id, timeout=10)
        assert done.status == TaskState.SUCCESS and done.result == "fixed"
    finally:
        await operator.close()
