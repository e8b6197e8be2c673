"""Priorities and rate limits (issue 17, "Scheduling"), on every backend (``backend_url``):
the claim order, priorities kept through retries, redeliveries and requeues, the shared rate
limiter, and real worker processes (run order with one slot; a rate limit shared by two)."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import tq_helpers as h
import tq_jobs

from pulsar.apps import tasks
from pulsar.apps.tasks import TaskState

BASE = ["--modules", "tq_jobs", "--heartbeat", "1", "--timeout", "10", "--graceful-timeout", "5"]


def new_task(priority: int = 0, eta: float | None = None, **fields) -> tasks.Task:
    now = time.time()
    return tasks.Task(
        id=uuid.uuid4().hex,
        name="add",
        payload='{"args": [1, 2], "kwargs": {}}',
        priority=priority,
        eta=now if eta is None else eta,
        **fields,
    )


async def _claim_ids(backend, limit: int = 1, lease: float = 30.0) -> list[str]:
    return [r["id"] for r in (await backend.claim(["default"], "w", lease, limit)).tasks]


# -- priorities: the claim order ---------------------------------------------------------------


async def test_claim_takes_the_highest_priority_first_fifo_within_one(client) -> None:
    b = client.backend
    now = time.time()
    prios = [0, 5, 9, 5, 0, 9, 1, 0, 5]
    queued = [new_task(p, eta=now - 10 + i * 0.01) for i, p in enumerate(prios)]
    for t in queued:
        await b.enqueue(t)
    assert await b.pending(["default"]) == len(prios)
    expected = [t.id for t in sorted(queued, key=lambda t: (-t.priority, t.eta))]
    got = await _claim_ids(b, 2)  # a batch: the two priority-9 tasks
    got += await _claim_ids(b, 1)
    got += await _claim_ids(b, 10)  # the rest in one claim, in order
    assert got == expected
    stored = await b.get(queued[2].id)
    assert stored.priority == 9 and stored.as_dict()["priority"] == 9
    assert (await b.get(queued[0].id)).priority == 0


async def test_a_delayed_high_priority_task_waits_for_its_eta(client) -> None:
    b = client.backend
    now = time.time()
    later = new_task(9, eta=now + 0.4)
    low = [new_task(0, eta=now - 1 + i * 0.01) for i in range(3)]
    for t in [later, *low]:
        await b.enqueue(t)
    claim = await b.claim(["default"], "w", 30.0, 1)
    assert [r["id"] for r in claim.tasks] == [low[0].id]  # the 9 is not due yet
    deadline = time.monotonic() + 5
    while time.time() < later.eta and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert await _claim_ids(b, 1) == [later.id]  # due now: ahead of the older priority 0
    assert await _claim_ids(b, 5) == [low[1].id, low[2].id]


async def test_next_due_time_counts_delayed_priority_tasks(client) -> None:
    b = client.backend
    eta = time.time() + 30
    await b.enqueue(new_task(7, eta=eta))
    claim = await b.claim(["default"], "w", 30.0, 5)
    assert claim.tasks == [] and claim.next_eta == pytest.approx(eta, abs=1e-3)


async def test_retry_release_redelivery_and_requeue_keep_the_priority(client) -> None:
    b = client.backend
    now = time.time()
    high = new_task(7, eta=now, max_retries=5)
    older = [new_task(0, eta=now - 5 + i) for i in range(3)]  # due before it
    for t in [high, *older]:
        await b.enqueue(t)
    row = (await b.claim(["default"], "w", 30.0, 1)).tasks[0]
    assert row["id"] == high.id and int(row["priority"]) == 7
    # a retry due now: still ahead of the older priority-0 tasks
    assert await b.retry(high.id, row["token"], time.time(), error="E", traceback=None)
    row = (await b.claim(["default"], "w", 30.0, 1)).tasks[0]
    assert row["id"] == high.id and int(row["attempts"]) == 2
    assert await b.release(high.id, row["token"])  # a graceful stop hands it back
    row = (await b.claim(["default"], "w", 0.05, 1)).tasks[0]
    assert row["id"] == high.id
    await asyncio.sleep(0.15)  # its lease expires: redelivered, ahead again
    if hasattr(b, "_recovered"):
        b._recovered = -1e9  # PostgreSQL recovers expired leases at most every second
    row = (await b.claim(["default"], "w", 30.0, 1)).tasks[0]
    assert row["id"] == high.id
    assert await b.complete(high.id, row["token"], TaskState.FAILURE, error="E")
    assert await b.requeue(high.id) == TaskState.FAILURE
    assert (await b.get(high.id)).priority == 7
    assert await _claim_ids(b, 1) == [high.id]
    assert await _claim_ids(b, 5) == [t.id for t in older]


async def test_revoke_and_purge_reach_priority_tasks(client) -> None:
    b = client.backend
    a, c, d = new_task(3), new_task(9), new_task(0)
    for t in (a, c, d):
        await b.enqueue(t)
    assert await b.revoke(a.id) == TaskState.REVOKED
    assert await b.pending(["default"]) == 2
    assert await b.purge("default") == 2
    assert await b.pending(["default"]) == 0
    assert await _claim_ids(b, 5) == []
    assert (await b.get(c.id)).status == TaskState.REVOKED


@pytest.fixture
async def redis_url():
    """A Redis key prefix of this test's own (db 13), deleted afterwards."""
    import os
    import socket

    if os.environ.get("CI", "").lower() != "true":
        try:
            socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
        except OSError:
            pytest.skip("no Redis server answers on 127.0.0.1:6379")
    base = os.environ.get("PULSAR_TASKS_TEST_REDIS", "redis://127.0.0.1:6379/13")
    url = f"{base}?prefix=pt-{uuid.uuid4().hex[:12]}"
    yield url
    backend = tasks.create_backend(url)
    try:
        await backend.flush()
    finally:
        await backend.close()


async def test_redis_keeps_priority_0_where_it_was(redis_url) -> None:
    """Priority-0 tasks: the ``q:<queue>`` sorted set, no priority field, no other key; a
    priority above 0: its own sorted set, listed in ``prios:<queue>`` until it empties."""
    b = tasks.create_backend(redis_url)
    try:
        low, high = new_task(0), new_task(5)
        await b.enqueue(low)
        r = b.client
        assert await r.zrange(b._key("q", "default"), 0, -1) == [low.id]
        assert await r.hget(b._key("t", low.id), "priority") is None
        assert not await r.exists(b._key("prios", "default"))
        await b.enqueue(high)
        assert await r.smembers(b._key("prios", "default")) == {"5"}
        assert await r.zrange(b._key("qp", "5", "default"), 0, -1) == [high.id]
        assert await r.zrange(b._key("q", "default"), 0, -1) == [low.id]
        assert await _claim_ids(b, 1) == [high.id]
        assert await _claim_ids(b, 1) == [low.id]
        assert not await r.exists(b._key("prios", "default"))  # emptied: forgotten
    finally:
        await b.close()


# -- priorities: the API ------------------------------------------------------------------------


async def test_priority_flows_through_every_way_to_queue(client, backend_url) -> None:
    t = await client.queue_task("add", [1, 2], priority=7)
    assert t.priority == 7 and (await client.get_task(t.id)).priority == 7
    assert (await client.queue_task("add", [1, 2])).priority == 0
    assert (await client.queue_task("urgent")).priority == 5  # the job's own
    assert (await client.queue_task("urgent", priority=0)).priority == 0
    assert (await tq_jobs.urgent.apply(priority=8)).priority == 8
    assert (await tq_jobs.urgent.delay("x")).priority == 5
    with tasks.connect_sync(backend_url) as sync:
        assert sync.queue_task("add", [1, 2], priority=3).priority == 3
    # a client without the code: the job's priority published by its workers
    await client.backend.register_jobs({"remote": {"name": "remote", "priority": 4}})
    other = tasks.connect(backend_url, set_default=False)
    try:
        assert (await other.queue_task("remote")).priority == 4
    finally:
        await other.close()


async def test_periodic_runs_get_their_jobs_priority(client) -> None:
    import datetime as dt

    @tasks.job(name="prio_tick", run_every=dt.timedelta(seconds=1), priority=6)
    def prio_tick() -> None: ...

    scheduler = tasks.Scheduler(client.backend, [prio_tick])
    scheduler.start()
    await scheduler.stop()  # driven by hand below
    due = scheduler.next_scheduled()["prio_tick"]
    created = await scheduler.run_due(due)
    assert len(created) == 1 and (await client.get_task(created[0])).priority == 6


@pytest.mark.parametrize(
    ("bad", "error"),
    [(True, TypeError), (1.5, TypeError), ("5", TypeError), (10, ValueError), (-1, ValueError)],
)
async def test_bad_priority_is_refused_at_queue_time(client, bad, error) -> None:
    with pytest.raises(error, match="priority"):
        await client.queue_task("add", [1, 2], priority=bad)
    assert await client.backend.counts() == {}


def test_bad_priority_or_rate_limit_is_refused_at_declaration() -> None:
    for bad, error in [(10, ValueError), (-1, ValueError), ("high", TypeError), (2.0, TypeError)]:
        with pytest.raises(error, match="job 'p_bad': priority"):
            tasks.job(name="p_bad", priority=bad)(lambda: None)
    for rate in ["abc", "0/s", "10/x", "-5/s", "/s", 0, -1, "1/s/s", float("inf")]:
        with pytest.raises(ValueError, match=r"job 'r_bad': .*rate_limit"):
            tasks.job(name="r_bad", rate_limit=rate)(lambda: None)
    with pytest.raises(TypeError, match="rate_limit"):
        tasks.job(name="r_bad", rate_limit=[10])(lambda: None)
    with pytest.raises(ValueError, match="priority"):

        class TooHigh(tasks.Job):
            priority = 12

            def run(self) -> None: ...


def test_rate_limit_syntax() -> None:
    from pulsar.apps.tasks._schedule import format_rate_limit, parse_rate_limit

    assert parse_rate_limit("100/s") == (100, 1.0)
    assert parse_rate_limit("10/m") == (10, 60.0)
    assert parse_rate_limit(" 600 / h ") == (600, 3600.0)
    assert parse_rate_limit(5) == (5, 1.0) and parse_rate_limit(2.0) == (2, 1.0)
    assert parse_rate_limit("20") == (20, 1.0)  # Celery's: no unit is per second
    assert parse_rate_limit(0.5) == (1, 2.0) and parse_rate_limit("1.5/m") == (1, 40.0)
    assert parse_rate_limit(None) is None
    assert format_rate_limit((10, 60.0)) == "10/m" and format_rate_limit((1, 2.0)) == "1/2s"
    assert tq_jobs.rated.meta()["rate_limit"] == "10/s" and tq_jobs.urgent.meta()["priority"] == 5


def test_priority_over_rpc_and_the_cli(tmp_path) -> None:
    from test_cli_rpc import Api, call

    url = f"sqlite:///{tmp_path}/t.db"
    api = Api(task_backend=url)
    queued = call(api, "queue_task", jobname="add", args=[1, 2], priority=6)["result"]
    assert queued["priority"] == 6
    assert call(api, "get_task", id=queued["id"])["result"]["priority"] == 6
    err = call(api, "queue_task", jobname="add", args=[1, 2], priority=11)["error"]
    assert err["code"] == -32602 and "priority must be from 0 to 9" in err["message"]
    out = h.cli("queue", "urgent", "--priority", "8", "--backend", url, "--modules", "tq_jobs")
    assert out.returncode == 0, out.stderr
    one = h.cli("status", out.stdout.strip(), "--backend", url)
    assert any(line.split() == ["priority", "8"] for line in one.stdout.splitlines()), one.stdout
    bad = h.cli("queue", "add", "--priority", "10", "--backend", url, "--modules", "tq_jobs")
    assert bad.returncode != 0 and "priority must be from 0 to 9" in bad.stderr
    jobs = h.cli("jobs", "--backend", url, "--modules", "tq_jobs")
    lines = {line.split()[0]: line for line in jobs.stdout.splitlines()}
    assert "priority=5" in lines["urgent"] and "rate_limit=10/s" in lines["rated"]
    assert "priority" not in lines["add"] and "rate_limit" not in lines["add"]


# -- rate limits: the backend's limiter ----------------------------------------------------------


async def test_rate_limiter_is_shared_by_two_backend_objects(backend_url) -> None:
    """N starts per window admitted, then the wait until the oldest leaves the window; the
    state is the store's: a second backend object (another machine) sees the same limit."""
    one, two = tasks.create_backend(backend_url), tasks.create_backend(backend_url)
    try:
        start = time.monotonic()
        assert await one.acquire_rate("job-a", 3, 0.6) == 0.0
        await asyncio.sleep(0.25)
        assert await two.acquire_rate("job-a", 3, 0.6) == 0.0
        assert await one.acquire_rate("job-a", 3, 0.6) == 0.0
        wait = await two.acquire_rate("job-a", 3, 0.6)  # the 4th within 0.6 s
        waited = time.monotonic() - start
        assert 0.0 < wait <= 0.6 and wait == pytest.approx(0.6 - waited, abs=0.1)
        assert 0.0 < await one.acquire_rate("job-a", 3, 0.6) <= wait + 0.01  # nothing counted
        assert await one.acquire_rate("job-b", 3, 0.6) == 0.0  # another job: its own limit
        await asyncio.sleep(wait + 0.02)
        assert await one.acquire_rate("job-a", 3, 0.6) == 0.0  # the first left the window
        again = await two.acquire_rate("job-a", 3, 0.6)  # the two others are still in it
        assert again == pytest.approx(0.25 - 0.02, abs=0.1)
    finally:
        await one.close()
        await two.close()


async def test_postpone_hands_a_task_back_uncounted_due_later(client) -> None:
    b = client.backend
    t = new_task(4, max_retries=0)
    await b.enqueue(t)
    row = (await b.claim(["default"], "w", 30.0, 1)).tasks[0]
    eta = time.time() + 0.3
    assert await b.postpone(t.id, row["token"], eta)
    assert not await b.postpone(t.id, row["token"], eta)  # the token is spent
    got = await b.get(t.id)
    assert got.status == TaskState.QUEUED and got.attempts == 0 and got.priority == 4
    assert got.eta == pytest.approx(eta) and got.token is None and got.lease_expires is None
    claim = await b.claim(["default"], "w", 30.0, 1)
    assert claim.tasks == [] and claim.next_eta == pytest.approx(eta, abs=1e-3)
    await asyncio.sleep(max(0.0, eta - time.time()) + 0.02)
    row = (await b.claim(["default"], "w", 30.0, 1)).tasks[0]
    assert row["id"] == t.id and int(row["attempts"]) == 1  # its first attempt still


async def test_a_rate_limited_job_waits_and_other_jobs_do_not(client, backend_url) -> None:
    """In one consumer: tasks over the limit wait (none fails, each runs once), while another
    job's task queued behind them runs at once."""
    backend = tasks.create_backend(backend_url)
    consumer = tasks.Consumer(
        backend, worker_id="w-rate", lease=5.0, concurrent_tasks=4, max_idle=0.1
    )
    consumer.start()
    try:
        limited = [await client.queue_task("arated", [str(i)]) for i in range(3)]
        await asyncio.sleep(0.1)
        free = await client.queue_task("aadd", [1, 2])
        done = await client.wait_for_task(free.id, timeout=5)
        assert done.status == TaskState.SUCCESS
        results = [await client.wait_for_task(t.id, timeout=10) for t in limited]
    finally:
        await consumer.stop(grace=1.0)
        await backend.close()
    assert all(r.status == TaskState.SUCCESS and r.attempts == 1 for r in results)
    starts = sorted(r.time_started for r in results)
    assert starts[2] - starts[0] >= 1.0 - 0.05  # 2 a second: the third a second later
    assert done.time_started < starts[2]  # not behind the limited ones
    assert consumer.counters["postponed"] >= 1 and consumer.counters["processed"] == 4


# -- real worker processes ---------------------------------------------------------------------


def _app(url: str, *args: str) -> h.Run:
    return h.Run("tq_app.py", *BASE, "--backend", url, *args)


async def test_a_worker_runs_tasks_in_priority_order(client, backend_url) -> None:
    """One worker process with one slot: what was queued before it started runs highest
    priority first, FIFO within a priority."""
    now = time.time()
    prios = [0, 3, 9, 3, 0, 9, 6]
    queued = []
    for i, p in enumerate(prios):
        queued.append(await client.queue_task("started_at", [f"{p}-{i}"], priority=p))
        # distinct due times: FIFO within a priority is observable
        assert queued[-1].eta >= now
    run = _app(backend_url, "--workers", "1", "--concurrent-tasks", "1")
    run.wait_ready()
    done = [await client.wait_for_task(t.id, timeout=20) for t in queued]
    assert all(d.status == TaskState.SUCCESS for d in done)
    order = [d.result[1] for d in sorted(done, key=lambda d: d.result[0])]
    expected = [f"{p}-{i}" for i, p in sorted(enumerate(prios), key=lambda x: (-x[1], x[0]))]
    assert order == expected


async def test_a_rate_limit_is_shared_by_two_worker_processes(client, backend_url) -> None:
    """``rate_limit="10/s"``, 30 tasks, two worker processes (each its own backend object):
    at most 10 starts in any window of 1 s, less a tolerance of 100 ms for the time between
    the limiter's admission (the store's clock) and the start the job records (the answer
    travelling back and the worker's loop, on a loaded machine); all succeed at
    their first attempt."""
    queued = [await client.queue_task("rated", [str(i)]) for i in range(30)]
    run = _app(backend_url, "--workers", "2", "--concurrent-tasks", "8")
    ready = run.wait_ready()
    assert len(ready["workers"]) == 2
    done = [await client.wait_for_task(t.id, timeout=30) for t in queued]
    assert all(d.status == TaskState.SUCCESS and d.attempts == 1 for d in done)
    starts = sorted(d.result[0] for d in done)
    windows = [starts[i + 10] - starts[i] for i in range(len(starts) - 10)]
    assert min(windows) >= 1.0 - 0.1, windows
    assert starts[-1] - starts[0] < 4.0  # and the limit is used: 30 in about 2 s


# -- storage: indexes and migrations --------------------------------------------------------------


def _sqlite_plan(conn, sql: str, params: tuple) -> str:
    rows = conn.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
    return " | ".join(str(r[-1]) for r in rows)


async def test_sqlite_priority_claims_use_their_partial_index(tmp_path) -> None:
    import sqlite3

    from pulsar.apps.tasks import _sqlite

    backend = tasks.create_backend(f"sqlite:///{tmp_path}/plan.db")
    try:
        await backend.counts()  # creates the schema
    finally:
        await backend.close()
    conn = sqlite3.connect(str(tmp_path / "plan.db"))
    now = time.time()
    rows = [(f"t{i}", "add", "default", "QUEUED", now - i, i % 10) for i in range(3000)]
    conn.executemany(
        "INSERT INTO tasks (id, name, queue, status, eta, priority) VALUES (?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.commit()
    conn.execute("ANALYZE")
    plans = {
        "top": _sqlite_plan(conn, _sqlite._TOP_PRIORITY_SQL, ("default", 10)),
        "claim": _sqlite_plan(conn, _sqlite._CLAIM_PRIORITY_SQL, ("default", 5, now, 10)),
        "claim0": _sqlite_plan(conn, _sqlite._CLAIM_SQL, ("default", now, 10)),
    }
    conn.close()
    for name, plan in plans.items():
        index = "tasks_claim" if name == "claim0" else "tasks_prio"
        assert index in plan and "TEMP B-TREE" not in plan, (name, plan)
        assert plan.split("|")[0].strip().startswith("SEARCH"), (name, plan)


async def test_sqlite_database_of_an_older_version_is_migrated(tmp_path) -> None:
    """A database made before priorities (no ``priority`` column) gets it at the first open
    (its tasks priority 0) and the rest of the schema; its tasks stay claimable."""
    import sqlite3

    path = tmp_path / "old.db"
    conn = sqlite3.connect(str(path))
    columns = [c for c in tasks.Task.__dataclass_fields__ if c != "priority"]
    conn.execute(
        f"CREATE TABLE tasks ({', '.join(c + (' TEXT PRIMARY KEY' if c == 'id' else '') for c in columns)}, purge_at REAL)"  # noqa: E501
    )
    conn.execute(
        "INSERT INTO tasks (id, name, queue, status, payload, eta, attempts, max_retries, revoke) "
        "VALUES ('old', 'add', 'default', 'QUEUED', '{\"args\": [1, 2]}', 0, 0, 0, 0)"
    )
    conn.commit()
    conn.close()
    backend = tasks.create_backend(f"sqlite:///{path}")
    try:
        assert (await backend.get("old")).priority == 0
        high = new_task(8, eta=1.0)
        await backend.enqueue(high)
        assert await _claim_ids(backend, 5) == [high.id, "old"]
        assert await backend.acquire_rate("j", 1, 1.0) == 0.0
    finally:
        await backend.close()
    conn = sqlite3.connect(str(path))
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert {"tasks_prio", "rate_limits"} <= names


async def test_postgres_claim_probes_the_priority_index(pg_url) -> None:
    b = tasks.create_backend(pg_url)
    try:
        now = await h.fill_pending(b, priorities=True)
        for sql in (
            f"EXPLAIN SELECT max(priority) FROM {b._s}.tasks WHERE status IN ('QUEUED', 'RETRY') "
            f"AND priority > 0 AND queue = 'default' AND priority < 10",
            f"EXPLAIN SELECT id FROM {b._s}.tasks WHERE status IN ('QUEUED', 'RETRY') "
            f"AND priority > 0 AND queue = 'default' AND priority = 9 AND eta <= {now!r} "
            f"ORDER BY eta LIMIT 10 FOR UPDATE SKIP LOCKED",
        ):
            text = "\n".join(r[0] for r in await b._fetch(sql))
            assert "tasks_prio" in text and "Sort" not in text, text
        claim = await b.claim(["default"], "w", 5.0, 10)
        # the ten earliest of priority 9 (g = 9, 19, ...)
        assert [r["id"] for r in claim.tasks] == [f"i{g}" for g in range(9, 100, 10)]
    finally:
        await b.close()


async def test_postgres_schema_of_version_3_is_migrated(pg_url, monkeypatch) -> None:
    """A version 3 schema (before priorities) gets the priority column (its tasks at 0), the
    index, the rate limiter and the new claim at the next start; its tasks stay."""
    from pulsar.apps.tasks import _postgres

    monkeypatch.setattr(_postgres, "SCHEMA_VERSION", 3)
    old = tasks.create_backend(pg_url)
    try:
        pending = new_task()
        await old.enqueue(pending)
        cols = await old._fetch(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = %s "
            "AND table_name = 'tasks' AND column_name = 'priority'",
            (old.schema,),
        )
        assert cols == [(0,)]
    finally:
        await old.close()
    monkeypatch.undo()
    new = tasks.create_backend(pg_url)
    try:
        assert (await new.get(pending.id)).priority == 0
        high = new_task(6, eta=time.time() + 0.001)
        await new.enqueue(high)
        await asyncio.sleep(0.01)
        assert await _claim_ids(new, 5) == [high.id, pending.id]
        assert await new.acquire_rate("j", 1, 1.0) == 0.0
        assert await new.acquire_rate("j", 1, 1.0) > 0.0
        rows = await new._fetch(f"SELECT value FROM {new._s}.meta WHERE key = 'schema_version'")
        assert rows == [(str(_postgres.SCHEMA_VERSION),)]
    finally:
        await new.close()
