"""The conformance suite: every backend passes the same tests (parametrized by ``backend_url``).

These run in-process (a Consumer on the test loop, no actors); the real-process faults are in
test_faults.py.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest
import tq_helpers as h
import tq_jobs

from pulsar.apps import tasks
from pulsar.apps.tasks import TaskState


def consuming(
    url: str, *, lease: float = 5.0, concurrent: int = 10, queues=("default", "other")
) -> Any:
    return h.consuming(
        url, worker_id="w-test", queues=queues, lease=lease, concurrent_tasks=concurrent
    )


def new_task(name: str = "add", **fields) -> tasks.Task:
    import uuid

    return tasks.Task(
        id=uuid.uuid4().hex, name=name, payload='{"args": [1, 2], "kwargs": {}}', **fields
    )


# -- the backend interface -------------------------------------------------------------------


async def test_enqueue_get_list_counts(client) -> None:
    b = client.backend
    t = new_task()
    assert await b.enqueue(t)
    got = await b.get(t.id)
    assert got is not None and got.status == TaskState.QUEUED and got.args == [1, 2]
    assert [x.id for x in await b.list()] == [t.id]
    assert await b.list(status="SUCCESS") == []
    assert (await b.counts()) == {"QUEUED": 1}
    assert await b.get("nope") is None


async def test_queue_counts_by_queue_and_state(client) -> None:
    b = client.backend
    assert await client.queue_counts() == {}
    default = [new_task() for _ in range(3)]
    other = [new_task(queue="other") for _ in range(2)]
    for t in (*default, *other):
        assert await b.enqueue(t)
    # one of 'other' runs and succeeds, one of 'default' is revoked while it waits
    claim = await b.claim(["other"], "w1", 10.0, 1)
    row = tasks.Task.from_row(claim.tasks[0])
    assert await b.complete(row.id, row.token, TaskState.SUCCESS, result="3")
    assert await b.revoke(default[0].id) == TaskState.REVOKED
    by_queue = await client.queue_counts()
    assert by_queue == {
        "default": {"QUEUED": 2, "REVOKED": 1},
        "other": {"QUEUED": 1, "SUCCESS": 1},
    }
    # the same records as counts(): the per-queue figures add up to it
    totals: dict[str, int] = {}
    for states in by_queue.values():
        for state, n in states.items():
            totals[state] = totals.get(state, 0) + n
    assert totals == await client.counts() == {"QUEUED": 3, "REVOKED": 1, "SUCCESS": 1}


@pytest.mark.parametrize("backend_url", ["redis"], indirect=True)
async def test_queue_counts_walks_every_chunk(client, backend_url) -> None:
    """Redis counts in chunks of 5,000 ids, dropping from its index the records gone (expired
    results) as it goes: every chunk is read once, whatever was dropped before it."""
    backend = client.backend
    now = time.time()
    pipe = backend.client.pipeline(transaction=False)
    for i in range(12000):
        tid = f"old{i}"
        if i % 4:  # one in four ids names a record that expired
            queue = "q1" if i % 2 else "q2"
            pipe.hset(
                backend._key("t", tid),
                mapping={
                    "id": tid,
                    "name": "add",
                    "payload": "{}",
                    "queue": queue,
                    "status": "SUCCESS" if i % 3 else "FAILURE",
                    "time_queued": now,
                },
            )
        pipe.zadd(backend._key("all"), {tid: now - 1})
    await pipe.execute()
    expect: dict[str, dict[str, int]] = {}
    for i in range(12000):
        if i % 4:
            states = expect.setdefault("q1" if i % 2 else "q2", {})
            state = "SUCCESS" if i % 3 else "FAILURE"
            states[state] = states.get(state, 0) + 1
    assert await client.queue_counts() == expect
    assert await backend.client.zcard(backend._key("all")) == 9000
    assert await client.queue_counts() == expect  # again, on the cleaned index


async def test_unique_enqueue_is_idempotent(client) -> None:
    b = client.backend
    t = new_task()
    assert await b.enqueue(t, unique=True)
    assert not await b.enqueue(t, unique=True)
    assert len(await b.list()) == 1


async def test_claim_leases_and_token_keyed_completion(client) -> None:
    b = client.backend
    t = new_task()
    await b.enqueue(t)
    claim = await b.claim(["default"], "w1", 10.0, 5)
    assert len(claim.tasks) == 1
    row = tasks.Task.from_row(claim.tasks[0])
    assert row.status == TaskState.STARTED and row.attempts == 1 and row.worker == "w1"
    assert row.token and row.lease_expires and row.lease_expires > time.time() + 5
    # nothing left to claim
    assert (await b.claim(["default"], "w2", 10.0, 5)).tasks == []
    # a wrong token changes nothing; the right one completes once
    assert not await b.complete(t.id, "bogus", TaskState.SUCCESS, result="1")
    assert await b.complete(t.id, row.token, TaskState.SUCCESS, result="3")
    assert not await b.complete(t.id, row.token, TaskState.FAILURE, error="late")
    done = await b.get(t.id)
    assert done.status == TaskState.SUCCESS and done.result == 3 and done.token is None


async def test_expired_lease_is_redelivered_then_lost(client) -> None:
    b = client.backend
    t = new_task(max_retries=1)
    await b.enqueue(t)
    first = (await b.claim(["default"], "w1", 0.05, 1)).tasks[0]
    await asyncio.sleep(0.1)
    second = (await b.claim(["default"], "w2", 0.05, 1)).tasks[0]
    assert second["worker"] == "w2" and int(second["attempts"]) == 2
    assert second["token"] != first["token"]
    # the first worker's late result is refused: the result is recorded once
    assert not await b.complete(t.id, first["token"], TaskState.SUCCESS, result="1")
    assert (await b.renew({t.id: first["token"]}, 5.0)) == {t.id: "lost"}
    await asyncio.sleep(0.1)
    assert (await b.claim(["default"], "w3", 0.05, 1)).tasks == []  # out of retries
    lost = await b.get(t.id)
    assert lost.status == TaskState.FAILURE and lost.error.startswith("lost")


async def test_renew_keeps_the_lease(client) -> None:
    b = client.backend
    t = new_task(max_retries=0)
    await b.enqueue(t)
    row = (await b.claim(["default"], "w1", 0.2, 1)).tasks[0]
    for _ in range(4):
        await asyncio.sleep(0.1)
        assert await b.renew({t.id: row["token"]}, 0.2) == {}
    assert (await b.claim(["default"], "w2", 0.2, 1)).tasks == []
    assert await b.complete(t.id, row["token"], TaskState.SUCCESS, result="null")


async def test_retry_release_and_eta(client) -> None:
    b = client.backend
    t = new_task()
    await b.enqueue(t)
    row = (await b.claim(["default"], "w1", 5.0, 1)).tasks[0]
    eta = time.time() + 0.3
    assert await b.retry(t.id, row["token"], eta, error="E: x", traceback="tb")
    got = await b.get(t.id)
    assert got.status == TaskState.RETRY and got.error == "E: x"
    claim = await b.claim(["default"], "w1", 5.0, 1)
    assert claim.tasks == [] and claim.next_eta == pytest.approx(eta, abs=0.01)
    await asyncio.sleep(0.35)
    row = (await b.claim(["default"], "w1", 5.0, 1)).tasks[0]
    assert int(row["attempts"]) == 2
    assert await b.release(t.id, row["token"])
    got = await b.get(t.id)
    assert got.status == TaskState.QUEUED and got.attempts == 1


async def test_queues_are_separate(client) -> None:
    b = client.backend
    t = new_task(queue="other")
    await b.enqueue(t)
    assert (await b.claim(["default"], "w1", 5.0, 5)).tasks == []
    assert len((await b.claim(["other"], "w1", 5.0, 5)).tasks) == 1


async def test_revoke_pending_and_running(client) -> None:
    b = client.backend
    a, r = new_task(), new_task()
    await b.enqueue(a)
    assert await b.revoke(a.id) == TaskState.REVOKED
    assert (await b.get(a.id)).status == TaskState.REVOKED
    await b.enqueue(r)
    row = (await b.claim(["default"], "w1", 5.0, 5)).tasks[0]
    assert await b.revoke(r.id) == TaskState.STARTED
    assert await b.renew({r.id: row["token"]}, 5.0) == {r.id: "revoked"}
    assert await b.revoke("unknown") is None


async def test_a_task_revoked_while_it_runs_is_not_handed_back(client) -> None:
    """retry, release and postpone refuse a task revoked while it ran (its next claim would
    reset the revoke): it stays STARTED for the worker to record REVOKED."""
    b = client.backend
    for op in ("retry", "release", "postpone"):
        t = new_task()
        await b.enqueue(t)
        row = (await b.claim(["default"], "w1", 5.0, 5)).tasks[0]
        assert await b.revoke(t.id) == TaskState.STARTED
        token = row["token"]
        if op == "retry":
            done = await b.retry(t.id, token, time.time(), error="boom", traceback=None)
        elif op == "release":
            done = await b.release(t.id, token)
        else:
            done = await b.postpone(t.id, token, time.time() + 1)
        assert done is False, op
        assert (await b.get(t.id)).status == TaskState.STARTED, op
        assert await b.complete(t.id, token, TaskState.REVOKED, error="revoked")
        assert (await b.get(t.id)).status == TaskState.REVOKED, op


async def test_a_failing_run_revoked_before_it_failed_ends_revoked_not_retried(
    client, backend_url, tmp_path, monkeypatch
) -> None:
    """The revoke lands while the job runs, between two lease renewals; the job then fails
    with a retryable error: REVOKED, never run again (it was RETRY, then run 3 times)."""
    marks = str(tmp_path / "marks")
    monkeypatch.setattr(tq_jobs, "MARKS", marks)
    async with consuming(backend_url, lease=30.0) as consumer:  # renewals every 5 s
        t = await client.queue_task("slow_flaky", ["r"])
        for _ in range(200):
            if h.marks(marks):
                break
            await asyncio.sleep(0.01)
        assert await client.revoke(t.id) == TaskState.STARTED
        done = await client.wait_for_task(t.id, timeout=10)
        assert done.status == TaskState.REVOKED and done.error == "revoked"
        await asyncio.sleep(0.5)  # a retry would be due by now (retry_delay 0.05)
        assert consumer.counters["revoked"] == 1 and consumer.counters["retried"] == 0
    assert h.marks(marks) == ["slow_flaky:r"]  # ran once


async def test_expires_revokes_unstarted(client) -> None:
    b = client.backend
    t = new_task(expires=time.time() - 1)
    await b.enqueue(t)
    assert (await b.claim(["default"], "w1", 5.0, 5)).tasks == []
    got = await b.get(t.id)
    assert got.status == TaskState.REVOKED and got.error == "expired"


async def test_result_ttl(backend_url) -> None:
    b = tasks.create_backend(backend_url, result_ttl=1)
    try:
        t = new_task()
        await b.enqueue(t)
        row = (await b.claim(["default"], "w1", 5.0, 1)).tasks[0]
        await b.complete(t.id, row["token"], TaskState.SUCCESS, result="3")
        assert (await b.get(t.id)) is not None
        await asyncio.sleep(2.1)
        assert (await b.get(t.id)) is None
        assert await b.list() == []
    finally:
        await b.close()


async def test_jobs_registry_roundtrip(client) -> None:
    await client.backend.register_jobs({"x": {"name": "x", "queue": "q"}})
    assert (await client.backend.jobs())["x"]["queue"] == "q"


# -- producers and the consumer --------------------------------------------------------------


async def test_queue_and_wait_async_and_sync_jobs(client, backend_url) -> None:
    async with consuming(backend_url):
        t1 = await client.queue_task("add", [1, 2])
        t2 = await tq_jobs.aadd.delay(a=2, b=3)
        t3 = await client.queue_task("multiply", [4, 5])
        t4 = await client.queue_task("elsewhere")
        results = [await client.wait_for_task(t.id, timeout=5) for t in (t1, t2, t3, t4)]
    assert [r.result for r in results] == [3, 5, 20, "other"]
    assert all(r.status == TaskState.SUCCESS and r.attempts == 1 for r in results)
    r = results[0]
    assert r.worker == "w-test" and r.time_queued <= r.time_started <= r.time_finished
    assert r.args == [1, 2] and r.kwargs == {} and results[1].kwargs == {"a": 2, "b": 3}


@pytest.mark.parametrize("backend_url", ["redis"], indirect=True)
async def test_round_trips_never_wait_for_the_idle_poll(client, backend_url) -> None:
    """Regression: with many results stored, each worker used to count every record (HGETALL
    of all of them) in its claim loop every 2 s, so a task queued meanwhile waited up to ~1.6 s
    to be claimed. 200 sequential round trips must each take far less than the 1 s idle poll."""
    backend = client.backend
    now = time.time()
    for start in range(0, 10000, 2000):  # finished tasks of the past, as after a busy hour
        pipe = backend.client.pipeline(transaction=False)
        for i in range(start, start + 2000):
            tid = f"old{i}"
            pipe.hset(
                backend._key("t", tid),
                mapping={
                    "id": tid,
                    "name": "add",
                    "payload": "{}",
                    "queue": "default",
                    "status": "SUCCESS",
                    "time_queued": now,
                    "attempts": 1,
                },
            )
            pipe.zadd(backend._key("all"), {tid: now - 1})
        await pipe.execute()
    assert (await backend.counts())["SUCCESS"] == 10000
    durations = []
    async with consuming(backend_url, lease=0.6):  # lease/3: bookkeeping every 0.2 s
        for _ in range(200):
            t0 = time.perf_counter()
            task = await client.queue_task("add", [1, 2])
            assert (await client.wait_for_task(task.id, timeout=10)).result == 3
            durations.append(time.perf_counter() - t0)
    slow = [round(d, 3) for d in durations if d > 0.5]
    assert not slow, f"{len(slow)} of 200 round trips took more than 0.5 s: {slow}"


async def test_bad_input_rejected_at_queue_time(client) -> None:
    with pytest.raises(tasks.UnknownJob, match="nope"):
        await client.queue_task("nope", [1])
    with pytest.raises(tasks.TaskSerializationError, match="JSON"):
        await client.queue_task("add", [object(), 2])
    with pytest.raises(tasks.TaskSerializationError):
        await client.queue_task("add", [float("nan"), 2])
    assert await client.list_tasks() == []


async def test_job_known_only_from_the_backend(client, backend_url) -> None:
    await client.backend.register_jobs({"remote": {"name": "remote", "queue": "far"}})
    other = tasks.connect(backend_url, set_default=False)
    try:
        t = await other.queue_task("remote", [1])
        assert t.queue == "far"
    finally:
        await other.close()


async def test_failure_has_traceback(client, backend_url) -> None:
    async with consuming(backend_url):
        t = await client.queue_task("boom", ["bad thing"])
        r = await client.wait_for_task(t.id, timeout=5)
    assert r.status == TaskState.FAILURE and r.error == "ValueError: bad thing"
    assert "Traceback" in r.traceback and "tq_jobs.py" in r.traceback
    with pytest.raises(tasks.TaskFailed, match="bad thing"):
        r.result_or_raise()


async def test_retries_with_observed_backoff(client, backend_url, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(tq_jobs, "MARKS", str(tmp_path / "marks"))
    async with consuming(backend_url):
        t = await client.queue_task("flaky", ["x"])
        r = await client.wait_for_task(t.id, timeout=10)
    assert r.status == TaskState.SUCCESS and r.attempts == 3
    times = [float(line.split()[2]) for line in (tmp_path / "marks").read_text().splitlines()]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # retry_delay 0.2 doubled each time (no jitter): ~0.2 s then ~0.4 s
    assert 0.18 <= gaps[0] < 0.35 and 0.38 <= gaps[1] < 0.6, gaps


async def test_timeout_cancels_async_job(client, backend_url) -> None:
    async with consuming(backend_url):
        t = await client.queue_task("too_slow")
        r = await client.wait_for_task(t.id, timeout=5)
    assert r.status == TaskState.FAILURE and r.error == "timeout"
    assert r.time_finished - r.time_started < 2


async def test_revoke_cancels_running_async_task(client, backend_url) -> None:
    async with consuming(backend_url, lease=0.3) as consumer:
        t = await client.queue_task("sleeper", [30])
        for _ in range(100):
            if (await client.get_task(t.id)).status == TaskState.STARTED:
                break
            await asyncio.sleep(0.02)
        assert await client.revoke(t.id) == TaskState.STARTED
        r = await client.wait_for_task(t.id, timeout=3)
        assert r.status == TaskState.REVOKED
        assert consumer.counters["revoked"] == 1


async def test_stop_ends_when_a_backend_call_swallows_the_cancel(backend_url) -> None:
    """A heartbeat that turns the cancel landing in it into an error (as 3.11's wait_for can
    when the call completes at that moment): the stop still ends, its loops with it (it
    waited for ever on the heartbeat loop, seen once in CI)."""
    backend = tasks.create_backend(backend_url)
    beats = 0

    async def heartbeat(worker: str, info: Any, ttl: float) -> None:
        nonlocal beats
        beats += 1
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            raise ConnectionError("converted") from None

    backend.heartbeat = heartbeat  # type: ignore[method-assign]
    consumer = tasks.Consumer(backend, worker_id="w-swallow", queues=("default",), lease=0.3)
    consumer.start()
    try:
        while not beats:
            await asyncio.sleep(0.01)
        t0 = time.monotonic()
        await asyncio.wait_for(consumer.stop(grace=0.5), 10)
        assert time.monotonic() - t0 < 5
        assert beats == 1  # no beat after the stop
    finally:
        await backend.close()


async def test_wait_timeout_and_unknown(client) -> None:
    t = await client.queue_task("add", [1, 1])
    start = time.monotonic()
    with pytest.raises(tasks.TaskTimeout):
        await client.wait_for_task(t.id, timeout=0.2)
    assert time.monotonic() - start < 1.5
    with pytest.raises(tasks.TaskNotFound):
        await client.wait_for_task("nope", timeout=1)


async def test_countdown_eta_expires(client, backend_url) -> None:
    t = await client.queue_task("add", [1, 1], countdown=0.4)
    e = await client.queue_task("add", [2, 2], expires=0.05)
    await asyncio.sleep(0.1)
    async with consuming(backend_url):
        r = await client.wait_for_task(t.id, timeout=5)
        x = await client.wait_for_task(e.id, timeout=5)
    assert r.status == TaskState.SUCCESS and r.time_started >= t.time_queued + 0.38
    assert x.status == TaskState.REVOKED and x.error == "expired"


async def test_overlap_refused_while_pending(client, backend_url) -> None:
    t = await client.queue_task("exclusive", ["k", 0.2])
    with pytest.raises(tasks.JobOverlap):
        await client.queue_task("exclusive", ["k", 0.2])
    other = await client.queue_task("exclusive", ["other-key", 0.2])
    async with consuming(backend_url):
        await client.wait_for_task(t.id, timeout=5)
        await client.wait_for_task(other.id, timeout=5)
    again = await client.queue_task("exclusive", ["k", 0.2])  # finished: allowed again
    assert again.id != t.id


async def test_concurrent_writes_share_round_trips_and_fail_alone(client, backend_url) -> None:
    """Writes made at once go together (one Lua call, one SQLite transaction): a refused one
    (an overlap) fails alone, the others are stored, and reads made at once agree."""
    keys = [f"k{i % 10}" for i in range(60)]  # 10 keys, 6 tasks each: 1 accepted, 5 refused
    results = await asyncio.gather(
        *(client.queue_task("exclusive", [key, 0.1]) for key in keys), return_exceptions=True
    )
    stored = [r for r in results if isinstance(r, tasks.Task)]
    refused = [r for r in results if isinstance(r, tasks.JobOverlap)]
    assert len(stored) == 10 and len(refused) == 50, results
    assert sorted(t.args[0] for t in stored) == sorted(set(keys))
    got = await asyncio.gather(*(client.get_task(t.id) for t in stored), client.get_task("nope"))
    assert [g.id for g in got[:-1]] == [t.id for t in stored] and got[-1] is None
    assert all(g.status == TaskState.QUEUED for g in got[:-1])
    assert (await client.counts()) == {"QUEUED": 10}


async def test_unserializable_result_fails_clearly(client, backend_url) -> None:
    async with consuming(backend_url):
        t = await client.queue_task("unserializable_result")
        r = await client.wait_for_task(t.id, timeout=5)
    assert r.status == TaskState.FAILURE and "not JSON serializable" in r.error


async def test_corrupt_and_unknown_payloads_fail_alone(client, backend_url) -> None:
    b = client.backend
    now = time.time()
    base = {
        "status": "QUEUED",
        "queue": "default",
        "eta": now,
        "time_queued": now,
        "attempts": 0,
        "max_retries": 0,
    }
    await b.put_raw({**base, "id": "corrupt", "name": "add", "payload": "{not json"})
    await b.put_raw({**base, "id": "unknown", "name": "no_such_job", "payload": "{}"})
    await b.put_raw({**base, "id": "noname", "payload": "[]"})
    good = await client.queue_task("add", [2, 2])
    async with consuming(backend_url) as consumer:
        assert (await client.wait_for_task(good.id, timeout=5)).result == 4
        corrupt = await client.wait_for_task("corrupt", timeout=5)
        unknown = await client.wait_for_task("unknown", timeout=5)
        assert consumer._main is not None and not consumer._main.done()  # the worker lives
        assert (
            await client.wait_for_task((await client.queue_task("add", [1, 1])).id, timeout=5)
        ).result == 2
    assert corrupt.status == TaskState.FAILURE and "invalid task" in corrupt.error
    assert unknown.status == TaskState.FAILURE and "unknown job" in unknown.error


async def test_a_slot_takes_the_next_task_while_the_outcome_is_recorded(
    client, backend_url
) -> None:
    """Slow completions (0.3 s each): with 2 slots, the next 2 tasks start before the first 2
    outcomes are recorded; never more than 2 x concurrent_tasks held."""
    backend = tasks.create_backend(backend_url)
    complete = backend.complete

    async def slow_complete(*args: Any, **kwargs: Any) -> bool:
        await asyncio.sleep(0.3)
        return await complete(*args, **kwargs)

    backend.complete = slow_complete  # type: ignore[method-assign]
    consumer = tasks.Consumer(
        backend, worker_id="w-slots", queues=("default",), lease=5.0, concurrent_tasks=2
    )
    ids = [(await client.queue_task("add", [i, i])).id for i in range(6)]
    held = []
    consumer.start()
    try:
        t0 = time.monotonic()
        while consumer.counters["claimed"] < 4 and time.monotonic() - t0 < 5:
            held.append(len(consumer.running))
            await asyncio.sleep(0.005)
        assert consumer.counters["claimed"] >= 4
        assert consumer.counters["processed"] == 0  # no outcome recorded yet
        for i, task_id in enumerate(ids):
            assert (await client.wait_for_task(task_id, timeout=10)).result == 2 * i
        assert max(held) <= 4, held
    finally:
        await consumer.stop(grace=1.0)
        await backend.close()


async def test_concurrency_limit(client, backend_url) -> None:
    async with consuming(backend_url, concurrent=3) as consumer:
        ids = [(await client.queue_task("sleeper", [0.5, str(i)])).id for i in range(6)]
        seen = []
        held = []  # claimed and not over: the running ones and those whose end is recorded
        for _ in range(150):  # never more than 3 at once; 3 at some point
            seen.append(consumer.info()["running"])
            held.append(len(consumer.running))
            await asyncio.sleep(0.01)
        assert max(seen) == 3, seen
        assert max(held) <= 6, held
        for i in ids:
            assert (await client.wait_for_task(i, timeout=5)).status == TaskState.SUCCESS
        assert consumer.info()["succeeded"] == 6


async def test_graceful_stop_hands_back(client, backend_url) -> None:
    async with consuming(backend_url) as consumer:
        t = await client.queue_task("sleeper", [30])
        for _ in range(100):
            if consumer.running:
                break
            await asyncio.sleep(0.02)
        await consumer.stop(grace=0.1)
    got = await client.get_task(t.id)
    assert got.status == TaskState.QUEUED and got.attempts == 0 and got.token is None


async def test_two_schedulers_queue_each_run_once(client) -> None:
    s1 = tasks.Scheduler(client.backend, [tq_jobs.tick])
    s2 = tasks.Scheduler(tasks.create_backend(client.backend.url), [tq_jobs.tick])
    try:
        s1.start()
        s2.start()
        # drive both schedulers by hand: their background loops would queue the first run
        # themselves whenever this test is slower than the 1 s period (a loaded machine)
        await s1.stop()
        await s2.stop()
        due = s1.next_scheduled()["tick"]
        now = due + 2.5
        created = await s1.run_due(now) + await s2.run_due(now)
        assert len(created) == 3 and len(set(created)) == 3
        assert created == [tasks.periodic_task_id(tq_jobs.tick, due + i) for i in range(3)]
        assert len(await client.list_tasks()) == 3
    finally:
        await s1.stop()
        await s2.stop()
        await s2.backend.close()


async def test_sync_client(backend_url) -> None:
    with tasks.connect_sync(backend_url) as c:
        t = c.queue_task("add", [1, 2])
        assert c.get_task(t.id).status == TaskState.QUEUED
        assert [x.id for x in c.list_tasks(status="QUEUED")] == [t.id]
        assert "add" in c.job_list()
        assert c.revoke(t.id) == TaskState.REVOKED
        assert c.wait_for_task(t.id, timeout=1).status == TaskState.REVOKED


async def test_wait_and_claim_takes_work_queued_during_the_wait(client) -> None:
    """What an idle worker does: one call that waits for work and claims it (Redis: the claim
    runs right behind BLPOP, on the server's clock)."""
    b = client.backend
    t0 = time.monotonic()
    claim = await b.wait_and_claim(["default"], "w1", 5.0, 10, 0.2)
    assert claim.tasks == [] and claim.next_eta is None
    assert time.monotonic() - t0 >= 0.15  # it did wait
    later = new_task(eta=time.time() + 60)
    assert await b.enqueue(later)  # wakes the waiter, but is not due
    claim = await b.wait_and_claim(["default"], "w1", 5.0, 10, 5.0)
    assert claim.tasks == [] and claim.next_eta == pytest.approx(later.eta, abs=0.01)
    task = new_task()

    async def enqueue_soon() -> None:
        await asyncio.sleep(0.2)
        await b.enqueue(task)

    bg = asyncio.ensure_future(enqueue_soon())
    t0 = time.monotonic()
    claim = await b.wait_and_claim(["default"], "w1", 5.0, 10, 5.0)
    elapsed = time.monotonic() - t0
    await bg
    assert [row["id"] for row in claim.tasks] == [task.id]
    assert elapsed < 4.0, f"woke after {elapsed:.2f} s, not on the enqueue"
    row = claim.tasks[0]
    assert row["status"] == "STARTED" and row["worker"] == "w1"
    assert float(row["lease_expires"]) == pytest.approx(time.time() + 5.0, abs=1.0)


# -- Redis: replies to the client that queued a task -------------------------------------------


def _reply_channel(client) -> str:
    return client.backend._replies.channel


@pytest.mark.parametrize("backend_url", ["redis"], indirect=True)
async def test_own_tasks_are_answered_on_the_reply_channel(client, backend_url) -> None:
    """The final record of a task reaches the client that queued it on that client's channel:
    waiting needs no subscription and no read; other clients still wait through done:<id>."""
    other = tasks.connect(backend_url, set_default=False)
    try:
        async with consuming(backend_url):
            t = await client.queue_task("add", [1, 2])
            replies = client.backend._replies
            assert t.id in replies.expected
            # queued before the channel was subscribed: read back once after subscribing
            assert not replies.covers(t.id)
            assert (await client.wait_for_task(t.id, timeout=10)).result == 3
            assert replies.live and t.id not in replies.expected
            assert (await other.wait_for_task(t.id, timeout=5)).result == 3
            assert other.backend._replies is None  # it queued nothing: no channel
            # queued while subscribed: its reply cannot be missed, and one that arrives before
            # anyone waits is kept for the wait
            t2 = await client.queue_task("add", [2, 2])
            assert replies.covers(t2.id)
            for _ in range(200):
                if t2.id in replies.arrived:
                    break
                await asyncio.sleep(0.025)
            assert t2.id in replies.arrived
            assert (await client.wait_for_task(t2.id, timeout=5)).result == 4
            # the record is stored without the channel leaking into the task's fields
            assert (await client.get_task(t2.id)).status == TaskState.SUCCESS
    finally:
        await other.close()


@pytest.mark.parametrize("backend_url", ["redis"], indirect=True)
async def test_a_client_that_never_waits_receives_no_replies(client, backend_url) -> None:
    async with consuming(backend_url):
        ids = [(await client.queue_task("add", [i, i])).id for i in range(20)]
        for _ in range(400):
            if all(t.done for t in await asyncio.gather(*map(client.get_task, ids))):
                break
            await asyncio.sleep(0.025)
    replies = client.backend._replies
    assert replies.pubsub is None and not replies.arrived
    assert dict(await client.backend.client.pubsub_numsub(replies.channel))[replies.channel] == 0
    # a late wait still finds each result (read back after subscribing)
    assert (await client.wait_for_task(ids[-1], timeout=5)).result == 38


@pytest.mark.parametrize("backend_url", ["redis"], indirect=True)
async def test_a_lost_reply_costs_a_reread_not_a_hang(client, backend_url) -> None:
    async with consuming(backend_url):  # subscribed: the wait below expects a reply
        first = await client.queue_task("add", [0, 0])
        assert (await client.wait_for_task(first.id, timeout=10)).result == 0
    t = await client.queue_task("add", [1, 2])
    assert client.backend._replies.covers(t.id)
    b = client.backend
    # the reply goes to a channel nobody listens to: the waiter must find the result anyway
    await b.client.hset(b._key("t", t.id), "reply_to", b._key("reply", "nobody"))
    waiter = asyncio.ensure_future(client.wait_for_task(t.id, timeout=10))
    async with consuming(backend_url):
        t0 = time.monotonic()
        assert (await waiter).result == 3
        elapsed = time.monotonic() - t0
    assert t.id not in b._replies.arrived  # it came from the once-a-second re-read
    assert elapsed < 5.0, f"the lost reply cost {elapsed:.2f} s"


@pytest.mark.parametrize("backend_url", ["redis"], indirect=True)
async def test_reply_channel_survives_a_killed_connection(client, backend_url) -> None:
    async with consuming(backend_url):  # a first wait subscribes the channel
        t0 = await client.queue_task("add", [0, 0])
        assert (await client.wait_for_task(t0.id, timeout=10)).result == 0
    t = await client.queue_task("add", [1, 2])
    b = client.backend
    channel = _reply_channel(client)
    host, port = b._replies.pubsub.connection._writer.get_extra_info("sockname")[:2]
    admin = tasks.create_backend(backend_url)
    try:
        assert await admin.client.client_kill(f"{host}:{port}")
        async with consuming(backend_url):
            assert (await client.wait_for_task(t.id, timeout=10)).result == 3
            # redis-py reconnects the reader and subscribes again; later replies arrive there
            for _ in range(200):
                if dict(await admin.client.pubsub_numsub(channel)).get(channel) == 1:
                    break
                await asyncio.sleep(0.025)
            t2 = await client.queue_task("add", [5, 5])
            for _ in range(200):  # the reply comes on the reconnected channel (kept for the
                if t2.id in b._replies.arrived:  # wait, which then consumes it)
                    break
                await asyncio.sleep(0.025)
            assert t2.id in b._replies.arrived
            assert (await client.wait_for_task(t2.id, timeout=10)).result == 10
    finally:
        await admin.close()


# -- SQLite: wake-ups across processes ---------------------------------------------------------


async def test_sqlite_wakeups_reach_other_waiters_and_clean_up(tmp_path) -> None:
    """Each waiting SQLite backend binds a datagram socket for its database; a committed change
    wakes the others; a socket left by a dead process is removed by the next sender; the last
    one to close leaves no directory behind."""
    import os
    import socket

    from pulsar.apps.tasks._sqlite import _Wake

    path = str(tmp_path / "w.db")
    loop = asyncio.get_running_loop()
    woken = asyncio.Event()
    listener, sender = _Wake(path), _Wake(path)
    assert listener.dir == sender.dir
    try:
        listener.listen(loop, woken.set)
        assert listener.name is not None and os.path.exists(listener.name)
        dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        dead_name = os.path.join(listener.dir, "1-dead")
        dead.bind(dead_name)
        dead.close()  # bound and gone, as after a SIGKILL
        sender.send()
        await asyncio.wait_for(woken.wait(), 5)
        assert not os.path.exists(dead_name)  # refused, so removed
        woken.clear()
        listener.send()  # a backend does not wake itself through the socket
        await asyncio.sleep(0.05)
        assert not woken.is_set()
    finally:
        listener.close()
        sender.close()
    assert not os.path.exists(listener.dir)
    # a sweep removes what dead processes left and keeps the sockets of live ones
    alive = _Wake(path)
    alive.listen(loop, woken.set)
    try:
        gone = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        gone.bind(os.path.join(alive.dir, "2-gone"))
        gone.close()
        _Wake.sweep(alive.dir)
        assert os.listdir(alive.dir) == [os.path.basename(alive.name)]
    finally:
        alive.close()
    _Wake.sweep(alive.dir)  # nothing left: nothing to do
    assert not os.path.exists(alive.dir)


async def test_sqlite_wait_for_work_is_woken_by_another_backend(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/w.db"
    worker, producer = tasks.create_backend(url), tasks.create_backend(url)
    try:
        await producer.counts()  # the database exists
        waiting = asyncio.ensure_future(worker.wait_for_work(["default"], 30.0))
        await asyncio.sleep(0.3)  # the worker polls less often by now
        assert not waiting.done()
        assert worker._wake.sock is not None  # waiting: its socket is bound
        await producer.enqueue(new_task())
        assert worker._wake.name in producer._wake.peers  # and the commit was sent to it
        await asyncio.wait_for(waiting, 5)
    finally:
        await worker.close()
        await producer.close()
