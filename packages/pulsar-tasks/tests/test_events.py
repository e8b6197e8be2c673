"""Progress, task context and the events stream (issue 17), on every backend: ``tasks.update()``
from async, threaded and child-process jobs, ``client.follow()``, every kind of event from a
real worker process (a SIGKILLed one included), two subscribers, the ``pulsar-tasks events``
tail, and the schema migrations."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import tq_helpers as h
import tq_jobs  # noqa: F401 - the jobs the in-process consumer runs

from pulsar.apps import tasks
from pulsar.apps.tasks import TaskState
from pulsar.apps.tasks._progress import MAX_META_SIZE, check_update

EVENT_FIELDS = {
    "kind", "task_id", "name", "queue", "time", "worker", "attempts", "id", "progress", "meta",
    "error", "reason",
}  # fmt: skip
FINAL_KINDS = ("succeeded", "failed", "revoked")


@contextlib.asynccontextmanager
async def consuming(url: str) -> AsyncIterator[tasks.Consumer]:
    backend = tasks.create_backend(url, events=True)
    consumer = tasks.Consumer(backend, worker_id="w-events", lease=5.0, concurrent_tasks=5)
    consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop(grace=1.0)
        await backend.close()


# -- update() checks its arguments ------------------------------------------------------------
def test_update_checks_its_arguments_and_needs_a_run() -> None:
    assert check_update(0.4, {"a": [1]}) == (0.4, '{"a":[1]}')
    assert check_update(1) == (1.0, None) and check_update(meta="x") == (None, '"x"')
    for bad in (1.5, -0.1, float("nan"), True, "0.5"):
        with pytest.raises(ValueError, match="progress must be a number from 0 to 1"):
            check_update(bad)
    with pytest.raises(TypeError, match="meta must be JSON serializable"):
        check_update(meta={"x": object()})
    with pytest.raises(TypeError, match=f"more than the {MAX_META_SIZE}"):
        check_update(meta="x" * MAX_META_SIZE)
    with pytest.raises(TypeError, match="needs progress="):
        check_update()
    with pytest.raises(tasks.TaskError, match="inside a job"):
        tasks.update(progress=0.5)
    with pytest.raises(ValueError, match="unknown event kind"):
        tasks.connect("sqlite://:memory:", set_default=False).events(kinds=["nope"])


# -- progress, follow() and the task context ---------------------------------------------------
async def test_follow_sees_progress_from_async_thread_and_child_jobs(backend_url) -> None:
    client = tasks.connect(backend_url, events=True, set_default=False)
    plain = tasks.connect(backend_url, set_default=False)  # no events: follow() polls
    try:
        async with consuming(backend_url):
            jobs = ("progress_async", "progress_thread", "progress_child")
            queued = [await client.queue_task(name, [3, 0.25]) for name in jobs]

            async def follow(c: tasks.TaskClient, task_id: str) -> list[tasks.Task]:
                return [t async for t in c.follow(task_id)]

            seen = await asyncio.wait_for(
                asyncio.gather(
                    *(follow(client, t.id) for t in queued), follow(plain, queued[2].id)
                ),
                30,
            )
            bad = await client.queue_task("bad_updates")
            assert (await client.wait_for_task(bad.id, timeout=10)).result == [
                "ValueError", "TypeError", "TypeError", "TypeError",
            ]  # fmt: skip
        for task, records in zip([*queued, queued[2]], seen, strict=True):
            last = records[-1]
            assert last.status == TaskState.SUCCESS, (task.name, last.error)
            assert last.progress == 1.0 and last.meta == {"step": 3}
            assert all(not r.done for r in records[:-1])
            between = [r for r in records if r.status == TaskState.STARTED and r.progress]
            assert any(0 < r.progress < 1 for r in between), (task.name, records)
            # each record differs from the one before (status, progress or meta)
            keys = [(r.status, r.progress, r.meta_json) for r in records]
            assert all(a != b for a, b in itertools.pairwise(keys))
            assert last.result == {
                "id": task.id, "attempts": 1, "queue": "default", "workflow": None,
            }  # fmt: skip
            shown = last.as_dict()
            assert shown["progress"] == 1.0 and shown["meta"] == {"step": 3}
        # a task already done: one record, then the end
        assert [t.status for t in [x async for x in client.follow(queued[0].id)]] == ["SUCCESS"]
        with pytest.raises(tasks.TaskNotFound):
            [x async for x in client.follow("no-such-task")]
    finally:
        await client.close()
        await plain.close()


async def test_progress_is_keyed_by_the_lease_and_never_after_the_end(backend_url) -> None:
    b = tasks.create_backend(backend_url, events=True)
    try:
        task = tasks.Task(id=uuid.uuid4().hex, name="add", max_retries=1)
        await b.enqueue(task)
        first = (await b.claim(["default"], "w1", 30.0, 1)).tasks[0]
        assert await b.set_progress([(task.id, first["token"], 0.25, '{"s": 1}')]) == [True]
        assert await b.release_worker("w1") == 1  # w1 presumed dead: the next claim is w2's
        second = (await b.claim(["default"], "w2", 30.0, 1)).tasks[0]
        assert second["id"] == task.id and second["token"] != first["token"]
        # the stale attempt cannot overwrite; the current one can (one field at a time)
        assert await b.set_progress(
            [(task.id, first["token"], 0.9, None), (task.id, second["token"], 0.5, None)]
        ) == [False, True]
        got = await b.get(task.id)
        assert (got.progress, got.meta) == (0.5, {"s": 1})
        assert await b.complete(task.id, second["token"], TaskState.SUCCESS, result="3")
        assert await b.set_progress([(task.id, second["token"], 0.75, '"late"')]) == [False]
        got = await b.get(task.id)
        assert (got.status, got.progress, got.meta) == (TaskState.SUCCESS, 0.5, {"s": 1})
    finally:
        await b.close()


async def test_release_expiry_purge_and_requeue_events(backend_url) -> None:
    """The operator's and the maintenance paths produce their events too, the same on every
    backend (backend calls, no worker)."""
    b = tasks.create_backend(backend_url, events=True)
    try:
        reader = b.event_reader()
        await reader.start()
        handed, stale, purged = (uuid.uuid4().hex for _ in range(3))
        await b.enqueue(tasks.Task(id=handed, name="add"))
        row = (await b.claim(["default"], "w1", 30.0, 1)).tasks[0]
        assert await b.release(handed, row["token"])  # a graceful stop hands it back
        await b.enqueue(tasks.Task(id=stale, name="add", expires=time.time() - 1))
        await b.claim(["default"], "w1", 30.0, 5)  # takes handed again, revokes stale
        await b.enqueue(tasks.Task(id=purged, name="add", queue="gone"))
        assert await b.purge("gone") == 1
        assert await b.requeue(purged) == TaskState.REVOKED
        events: list[tasks.TaskEvent] = []
        deadline = time.monotonic() + 10
        while len(events) < 9 and time.monotonic() < deadline:
            events += await reader.read(0.5)
        got = [(e.task_id, e.kind, e.reason) for e in events]
        expected = [
            (handed, "queued", None), (handed, "started", None), (handed, "queued", "released"),
            (stale, "queued", None), (handed, "started", None), (stale, "revoked", "expired"),
            (purged, "queued", None), (purged, "revoked", "purged"),
            (purged, "queued", "requeued"),
        ]  # fmt: skip
        # one claim: its expiry and its start may come in either order
        assert got == expected or sorted(map(str, got)) == sorted(map(str, expected)), got
        released = events[2]
        assert released.worker == "w1" and released.attempts == 0
    finally:
        await b.close()


# -- events from a real worker -----------------------------------------------------------------
async def _collect(
    client: tasks.TaskClient, after: str, finals: set[str], timeout: float = 30
) -> list[tasks.TaskEvent]:
    """Events after ``after`` until each task of ``finals`` had a final event."""
    out: list[tasks.TaskEvent] = []

    async def read() -> None:
        ended: set[str] = set()
        async for event in client.events(after=after):
            out.append(event)
            if event.kind in FINAL_KINDS and event.task_id in finals:
                ended.add(event.task_id)
                if ended == finals:
                    return

    try:
        await asyncio.wait_for(read(), timeout)
    except TimeoutError:
        raise AssertionError(f"missing final events; got {[(e.kind, e.task_id) for e in out]}")
    return out


def _kinds(events: list[tasks.TaskEvent], task_id: str) -> list[str]:
    return [e.kind for e in events if e.task_id == task_id]


def test_every_kind_of_event_from_a_real_worker_seen_by_two_subscribers(backend_url) -> None:
    run = h.Run(
        "tq_app.py", "--modules", "tq_jobs", "--heartbeat", "1", "--timeout", "10",
        "--graceful-timeout", "2", "--backend", backend_url, "--task-events", "--workers", "1",
        "--task-lease", "2", "--concurrent-tasks", "5", "--no-schedule-periodic",
    )  # fmt: skip
    ready = run.wait_ready()
    with (
        tasks.connect_sync(backend_url, events=True) as c,
        tasks.connect_sync(backend_url) as other,
    ):
        start = c.last_event_id()
        ok = c.queue_task("progress_async", [2, 0.1]).id
        # SyncClient.follow() of jobs publishing progress in the worker's loop, its threads
        # (the actor's executor) and a child process
        followed = {
            task_id: [] for task_id in (
                ok, c.queue_task("progress_thread", [2, 0.1]).id,
                c.queue_task("progress_child", [2, 0.1]).id,
            )
        }  # fmt: skip
        followers = [
            threading.Thread(target=lambda i=i: followed[i].extend(c.follow(i))) for i in followed
        ]
        for follower in followers:
            follower.start()
        boom = c.queue_task("sync_boom", ["x"]).id  # KeyError: retried once, then failed
        later = c.queue_task("add", [1, 2], countdown=60).id
        lost = c.queue_task("sleeper", [30, "lost"]).id  # retries left: queued again
        lost_once = c.queue_task("sleeper_once", [30]).id  # none: FAILURE 'lost'
        finals = {ok, boom, later, lost, lost_once}
        # two subscribers, live while it all happens
        subscribers = [
            asyncio.run_coroutine_threadsafe(_collect(x.client, start, finals), x._loop)
            for x in (c, other)
        ]
        assert c.revoke(later) == TaskState.REVOKED
        for task_id in (ok, boom):  # done before the worker is killed
            c.wait_for_task(task_id, timeout=15)
        for follower in followers:
            follower.join(15)
        for records in followed.values():
            last = records[-1]
            assert last.status == TaskState.SUCCESS and last.progress == 1.0, last.error
            assert last.meta == {"step": 2} and last.result["attempts"] == 1
            assert not any(t.done for t in records[:-1]) and len(records) >= 2
        h.wait_for(lambda: c.get_task(lost).status == "STARTED", timeout=10)
        h.wait_for(lambda: c.get_task(lost_once).status == "STARTED", timeout=10)
        victim = c.get_task(lost).worker
        os.kill(ready["workers"][0], signal.SIGKILL)
        assert c.wait_for_task(lost_once, timeout=15).error.startswith("lost")
        # the replacement worker runs it again; a revoke stops it
        h.wait_for(lambda: c.get_task(lost).attempts == 2, timeout=15)
        c.revoke(lost)
        c.wait_for_task(lost, timeout=15)
        seen = [sub.result(30) for sub in subscribers]
    run.proc.send_signal(signal.SIGTERM)
    run.finish()
    events = [e for e in seen[0] if e.task_id in finals]  # (the scheduler queues tick too)
    # both subscribers saw the same events, in the same order (per task at least)
    for task_id in finals:
        assert [(e.id, e.kind) for e in seen[1] if e.task_id == task_id] == [
            (e.id, e.kind) for e in events if e.task_id == task_id
        ]
    kinds_ok = _kinds(events, ok)
    assert kinds_ok[:2] == ["queued", "started"] and kinds_ok[-1] == "succeeded"
    progress = [e for e in events if e.task_id == ok and e.kind == "progress"]
    assert progress and progress[-1].progress == 1.0 and progress[-1].meta == {"step": 2}
    assert [e.progress for e in progress] == sorted(e.progress for e in progress)
    assert _kinds(events, boom) == ["queued", "started", "retried", "started", "failed"]
    retried = next(e for e in events if e.task_id == boom and e.kind == "retried")
    failed = next(e for e in events if e.task_id == boom and e.kind == "failed")
    assert retried.error.startswith("KeyError") and retried.attempts == 1
    assert failed.error.startswith("KeyError") and failed.attempts == 2 and not failed.reason
    assert _kinds(events, later) == ["queued", "revoked"]
    assert next(e for e in events if e.task_id == later and e.kind == "revoked").reason == "revoked"
    assert _kinds(events, lost) == ["queued", "started", "retried", "started", "revoked"]
    gone = next(e for e in events if e.task_id == lost and e.kind == "retried")
    assert (gone.reason, gone.worker, gone.attempts, gone.error) == ("lost", victim, 1, None)
    assert _kinds(events, lost_once) == ["queued", "started", "failed"]
    dead = next(e for e in events if e.task_id == lost_once and e.kind == "failed")
    assert dead.reason == "lost" and dead.error.startswith("lost")
    # the same shape on every backend
    for event in events:
        shown = event.as_dict()
        assert set(shown) == EVENT_FIELDS
        assert isinstance(event.time, float) and abs(event.time - time.time()) < 120
        assert isinstance(event.attempts, int) and event.id and event.queue == "default"
        assert event.name in ("progress_async", "sync_boom", "add", "sleeper", "sleeper_once")
        assert (event.worker is None) == (event.kind in ("queued", "revoked") and not
                                          event.attempts)  # fmt: skip
        json.dumps(shown)
    started = [e for e in events if e.kind == "started"]
    assert all(e.worker and e.attempts >= 1 for e in started)


# -- the CLI tail -------------------------------------------------------------------------------
def _lines(stream) -> queue.Queue:
    found: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in stream:
            found.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return found


def test_cli_events_tail_prints_a_task_queued_while_it_runs_exits_on_sigterm(
    backend_url,
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pulsar.apps.tasks", "events", "--backend", backend_url, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": h.HERE},
    )
    try:
        err, out = _lines(proc.stderr), _lines(proc.stdout)
        assert "listening for task events" in err.get(timeout=20)
        with tasks.connect_sync(backend_url, events=True) as c:
            task = c.queue_task("add", [1, 2], countdown=60)
            c.revoke(task.id)
        printed = [json.loads(out.get(timeout=10)) for _ in range(2)]
        assert [(e["kind"], e["task_id"], e["name"]) for e in printed] == [
            ("queued", task.id, "add"), ("revoked", task.id, "add"),
        ]  # fmt: skip
        assert set(printed[0]) == EVENT_FIELDS
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_format_event_is_one_readable_line() -> None:
    from pulsar.apps.tasks._cli import format_event

    event = tasks.TaskEvent(
        kind="progress", task_id="t1", name="resize", queue="images", time=0.5, worker="w7",
        attempts=1, id="9", progress=0.4, meta={"page": 2},
    )  # fmt: skip
    line = format_event(event)
    assert line.startswith("00:00:00.500  progress")
    assert "resize[t1]  queue=images  worker=w7  attempt=1  progress=40%" in line
    assert 'meta={"page": 2}' in line and "\n" not in line
    failed = tasks.TaskEvent(
        kind="failed", task_id="t2", name="x", queue="q", time=0.0, worker=None, attempts=3,
        error="lost: the worker died", reason="lost",
    )  # fmt: skip
    assert "reason=lost  error=lost: the worker died" in format_event(failed)


def test_status_shows_the_progress_of_running_tasks() -> None:
    from pulsar.apps.tasks._cli import format_table

    running = tasks.Task(id="a", name="j", status=TaskState.STARTED, progress=0.4)
    done = tasks.Task(id="b", name="j", status=TaskState.SUCCESS, progress=1.0)
    table = format_table([running, done])
    assert "STARTED 40%" in table and "SUCCESS" in table and "100%" not in table


# -- migrations ---------------------------------------------------------------------------------
async def test_a_sqlite_database_without_the_progress_columns_is_migrated(tmp_path) -> None:
    path = tmp_path / "old.db"
    old_columns = [c for c in tasks.Task.__dataclass_fields__ if c not in ("progress", "meta_json")]
    with sqlite3.connect(path) as conn:
        conn.execute(f"CREATE TABLE tasks ({', '.join(old_columns)}, purge_at REAL)")
        conn.execute(
            "INSERT INTO tasks (id, name, queue, status, payload, attempts, max_retries, eta, "
            "time_queued, revoke) VALUES ('old', 'add', 'default', 'QUEUED', "
            '\'{"args": [1, 2], "kwargs": {}}\', 0, 0, 0, 1, 0)'
        )
    b = tasks.create_backend(f"sqlite:///{path}?events=1")
    try:
        assert (await b.get("old")).progress is None
        row = (await b.claim(["default"], "w", 30.0, 1)).tasks[0]
        assert await b.set_progress([("old", row["token"], 0.5, None)]) == [True]
        assert (await b.get("old")).progress == 0.5
        events = await b.event_reader("0").read(1.0)
        assert [e.kind for e in events] == ["started", "progress"]
    finally:
        await b.close()


async def test_a_postgres_schema_of_version_3_is_migrated_to_events() -> None:
    from pulsar.apps.tasks import _postgres

    h.require_postgres()
    url = f"{h.POSTGRES_URL}?schema=pt_{uuid.uuid4().hex[:12]}"
    version = _postgres.SCHEMA_VERSION
    old_steps = dict(_postgres._MIGRATIONS)
    try:
        _postgres.SCHEMA_VERSION = 3
        old = tasks.create_backend(url)
        try:
            await old.enqueue(tasks.Task(id="old", name="add"))
            # the columns a version 3 schema did not have
            await old._fetch(
                f"ALTER TABLE {old._s}.tasks DROP COLUMN progress, DROP COLUMN meta_json"
            )
        finally:
            await old.close()
        _postgres.SCHEMA_VERSION = version
        new = tasks.create_backend(url, events=True)
        try:
            reader = new.event_reader()
            await reader.start()
            assert (await new.get("old")).progress is None
            row = (await new.claim(["default"], "w", 30.0, 1)).tasks[0]
            assert await new.set_progress([("old", row["token"], 0.5, '{"a": 1}')]) == [True]
            assert (await new.get("old")).meta == {"a": 1}
            assert [e.kind for e in await reader.read(2.0)] == ["started", "progress"]
            rows = await new._fetch(f"SELECT value FROM {new._s}.meta WHERE key = 'schema_version'")
            assert rows == [(str(version),)]
        finally:
            await new.drop_schema()
            await new.close()
    finally:
        _postgres.SCHEMA_VERSION = version
        _postgres._MIGRATIONS.clear()
        _postgres._MIGRATIONS.update(old_steps)


def test_status_and_the_rpc_show_the_progress_of_a_running_task(tmp_path) -> None:
    import io

    from pulsar.apps import rpc

    url = f"sqlite:///{tmp_path}/t.db"

    async def running() -> None:
        b = tasks.create_backend(url)
        try:
            await b.enqueue(tasks.Task(id="running1", name="add"))
            row = (await b.claim(["default"], "w", 30.0, 1)).tasks[0]
            assert await b.set_progress([("running1", row["token"], 0.5, '{"page": 3}')]) == [True]
        finally:
            await b.close()

    asyncio.run(running())
    table = h.cli("status", "--backend", url)
    assert table.returncode == 0 and "STARTED 50%" in table.stdout, table.stderr
    one = h.cli("status", "running1", "--backend", url)
    assert "progress" in one.stdout and '{"page": 3}' in one.stdout

    class Api(tasks.TaskQueueRpc, rpc.JSONRPC):
        pass

    body = json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "get_task", "params": {"id": "running1"}}
    ).encode()
    environ = {
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    got = json.loads(b"".join(Api(task_backend=url)(environ, lambda *a: None)))["result"]
    assert got["progress"] == 0.5 and got["meta"] == {"page": 3}
