"""What only the PostgreSQL backend has: URL and connection errors, the versioned schema,
SKIP LOCKED claims on their index, the per-client reply channel, and a database restarted
mid-run (a cluster of the test's own, started with initdb/pg_ctl on a free port).

The conformance suite (test_backends.py, test_recovery.py, test_faults.py) runs on PostgreSQL
too, through the ``backend_url`` fixture."""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator

import psutil
import pytest
import tq_helpers as h
import tq_jobs  # noqa: F401  (the jobs are known to the producers here)
from tq_helpers import require_postgres

from pulsar.apps import tasks
from pulsar.apps.tasks import TaskState

pytestmark = pytest.mark.postgres

BASE = ["--modules", "tq_jobs", "--heartbeat", "1", "--timeout", "10", "--graceful-timeout", "5"]


def new_task(**fields) -> tasks.Task:
    return tasks.Task(
        id=uuid.uuid4().hex, name="add", payload='{"args": [1, 2], "kwargs": {}}', **fields
    )


# -- bad URLs and refused connections ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"postgresql://postgres@127.0.0.1:{_free_port()}/test", "cannot connect to PostgreSQL"),
        ("postgres://postgres@127.0.0.1:5432/no_such_database_pt", "no_such_database_pt"),
        ("postgresql://postgres@127.0.0.1:notaport/test", "cannot connect to PostgreSQL"),
        ("postgresql://postgres@127.0.0.1:5432/test?bogus_option=1", "bogus_option"),
    ],
    ids=["refused", "unknown-database", "bad-port", "bad-option"],
)
async def test_wrong_url_or_refused_connection_is_one_line_backend_error(url, expected) -> None:
    if "5432" in url:
        require_postgres()
    backend = tasks.create_backend(url)
    start = time.monotonic()
    try:
        with pytest.raises(tasks.BackendError) as info:
            await backend.counts()
        message = str(info.value)
        assert expected in message and "\n" not in message, message
        assert time.monotonic() - start < 10  # fails fast: no retries before a first connection
        # and again (nothing cached half-open)
        with pytest.raises(tasks.BackendError):
            await backend.enqueue(new_task())
    finally:
        await backend.close()


def test_sync_client_with_a_refused_connection_raises_backend_error() -> None:

    url = f"postgresql://postgres@127.0.0.1:{_free_port()}/test"
    with (
        tasks.connect_sync(url) as c,
        pytest.raises(tasks.BackendError, match="cannot connect to PostgreSQL"),
    ):
        c.queue_task("add", [1, 2])


@pytest.mark.parametrize("schema", ["a;drop", "1abc", "x" * 60, ""])
def test_bad_schema_name_is_refused(schema) -> None:
    with pytest.raises(tasks.BackendError, match="schema"):
        tasks.create_backend(f"postgresql://postgres@127.0.0.1/test?schema={schema}")


def test_both_schemes_and_the_password_is_not_shown() -> None:
    from pulsar.apps.tasks._postgres import PostgresBackend

    for scheme in ("postgresql", "postgres"):
        b = tasks.create_backend(f"{scheme}://u:secret@127.0.0.1:1/test?schema=s1")
        assert isinstance(b, PostgresBackend) and b.schema == "s1"
        assert "schema" not in b.conninfo and "connect_timeout=5" in b.conninfo
    b = tasks.create_backend("postgresql://u@h/db?pool_size=3&sslmode=disable&connect_timeout=2")
    assert b.pool_size == 3 and "pool_size" not in b.conninfo
    assert "sslmode=disable" in b.conninfo and "connect_timeout=2" in b.conninfo
    assert "connect_timeout=5" not in b.conninfo  # the URL's own wins
    assert tasks.create_backend("postgresql://u@h/db").pool_size == 8
    for bad in ("0", "x", "-1"):
        with pytest.raises(tasks.BackendError, match="pool_size"):
            tasks.create_backend(f"postgresql://u@h/db?pool_size={bad}")


async def test_password_is_redacted_in_errors() -> None:
    b = tasks.create_backend(f"postgresql://u:secret@127.0.0.1:{_free_port()}/test")
    try:
        with pytest.raises(tasks.BackendError) as info:
            await b.counts()
        assert "secret" not in str(info.value) and "***" in str(info.value)
    finally:
        await b.close()


# -- the schema ----------------------------------------------------------------------------------


async def test_schema_is_versioned_created_once_and_a_newer_one_refused(pg_url) -> None:
    from pulsar.apps.tasks._postgres import SCHEMA_VERSION

    # four processes' worth of backends starting at once on a fresh schema: one creates it
    backends = [tasks.create_backend(pg_url) for _ in range(4)]
    try:
        assert await asyncio.gather(*(b.counts() for b in backends)) == [{}] * 4
        b = backends[0]
        rows = await b._fetch(f"SELECT value FROM {b._s}.meta WHERE key = 'schema_version'")
        assert rows == [(str(SCHEMA_VERSION),)]
        await b._fetch(f"UPDATE {b._s}.meta SET value = '99' WHERE key = 'schema_version'")
    finally:
        for b in backends:
            await b.close()
    newer = tasks.create_backend(pg_url)
    try:
        with pytest.raises(tasks.BackendError) as info:
            await newer.enqueue(new_task())
        message = str(info.value)
        assert "version 99" in message and "newer" in message and "upgrade" in message
        assert "\n" not in message
    finally:
        await newer.close()


async def test_an_older_schema_is_migrated_at_start(pg_url, monkeypatch) -> None:
    """A schema at the previous version is brought to this one by the next backend to start
    (the steps of _MIGRATIONS after it, in one transaction); its tasks stay."""
    from pulsar.apps.tasks import _postgres

    old = tasks.create_backend(pg_url)
    try:
        t = new_task()
        await old.enqueue(t)
    finally:
        await old.close()
    version = _postgres.SCHEMA_VERSION

    def step(s: str, work: str, done: str) -> str:
        return f"ALTER TABLE {s}.tasks ADD COLUMN migrated_note text DEFAULT 'yes'"

    monkeypatch.setattr(_postgres, "SCHEMA_VERSION", version + 1)
    monkeypatch.setitem(_postgres._MIGRATIONS, version + 1, step)
    new = tasks.create_backend(pg_url)
    try:
        assert (await new.get(t.id)).status == TaskState.QUEUED
        rows = await new._fetch(
            f"SELECT (SELECT value FROM {new._s}.meta WHERE key = 'schema_version'), "
            f"migrated_note FROM {new._s}.tasks WHERE id = %s",
            (t.id,),
        )
        assert rows == [(str(version + 1), "yes")]
    finally:
        await new.close()
    monkeypatch.setattr(_postgres, "SCHEMA_VERSION", version)  # this code is older now
    older = tasks.create_backend(pg_url)
    try:
        with pytest.raises(tasks.BackendError, match=f"version {version + 1}, newer"):
            await older.counts()
    finally:
        await older.close()


async def test_a_version_1_schema_gets_the_operators_tables_and_functions(
    pg_url, monkeypatch
) -> None:
    """A schema made by the first release (version 1) is migrated to version 2 at start: its
    failed tasks can be requeued, a queue purged, workers publish heartbeats."""
    from pulsar.apps.tasks import _postgres

    monkeypatch.setattr(_postgres, "SCHEMA_VERSION", 1)
    old = tasks.create_backend(pg_url)
    try:
        failed, pending = new_task(), new_task()
        await old.enqueue(failed)
        row = (await old.claim(["default"], "w", 10.0, 1)).tasks[0]
        assert await old.complete(failed.id, row["token"], TaskState.FAILURE, error="E")
        await old.enqueue(pending)
        tables = await old._fetch(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s "
            "AND table_name = 'workers'",
            (old.schema,),
        )
        assert tables == [(0,)]
    finally:
        await old.close()
    monkeypatch.undo()
    new = tasks.create_backend(pg_url)
    try:
        assert await new.requeue(failed.id) == TaskState.FAILURE
        assert (await new.get(failed.id)).status == TaskState.QUEUED
        assert await new.purge("default") == 2
        await new.heartbeat("w", {"worker": "w", "running": []}, 30)
        assert [w["worker"] for w in await new.workers()] == ["w"]
        rows = await new._fetch(f"SELECT value FROM {new._s}.meta WHERE key = 'schema_version'")
        assert rows == [(str(_postgres.SCHEMA_VERSION),)]
    finally:
        await new.close()


async def test_claim_order_is_served_by_the_partial_index(pg_url) -> None:
    b = tasks.create_backend(pg_url)
    try:
        now = await h.fill_pending(b)
        plan = await b._fetch(
            f"EXPLAIN SELECT id FROM {b._s}.tasks WHERE status IN ('QUEUED', 'RETRY') "
            f"AND queue = 'default' AND eta <= %s ORDER BY eta LIMIT 10 FOR UPDATE SKIP LOCKED",
            (now,),
        )
        text = "\n".join(r[0] for r in plan)
        assert "tasks_ready" in text and "Sort" not in text, text
        claim = await b.claim(["default"], "w", 5.0, 10)
        assert {r["id"] for r in claim.tasks} == {f"i{g}" for g in range(1, 11)}  # the earliest
    finally:
        await b.close()


async def test_concurrent_claimers_never_share_a_task(pg_url) -> None:
    producer = tasks.create_backend(pg_url)
    workers = [tasks.create_backend(pg_url) for _ in range(4)]
    try:
        queued = [new_task() for _ in range(300)]
        ids = {t.id for t in queued}
        await asyncio.gather(*(producer.enqueue(t) for t in queued))
        got: list[str] = []

        async def drain(b: tasks.Backend, name: str) -> None:
            while True:
                claim = await b.claim(["default"], name, 30.0, 7)
                if not claim.tasks:
                    return
                got.extend(r["id"] for r in claim.tasks)

        await asyncio.gather(*(drain(b, f"w{i}") for i, b in enumerate(workers)))
        assert len(got) == len(ids) and set(got) == ids
    finally:
        for b in (producer, *workers):
            await b.close()


# -- replies ---------------------------------------------------------------------------------------


async def test_own_tasks_are_answered_on_the_reply_channel_without_a_read(pg_url) -> None:
    from test_backends import consuming

    client = tasks.connect(pg_url, set_default=False)
    other = tasks.connect(pg_url, set_default=False)
    b = client.backend
    reads: list[int] = []
    get_many = b._get_many

    async def counted(ids):
        reads.append(len(ids))
        return await get_many(ids)

    b._get_many = counted
    b._getter.send = counted
    try:
        async with consuming(pg_url):
            first = await client.queue_task("add", [1, 2])
            # queued before the reply channel was listened to: read once after the LISTEN
            assert (await client.wait_for_task(first.id, timeout=10)).result == 3
            assert b.reply_channel in b._listener.listened
            reads.clear()
            t = await client.queue_task("add", [2, 2])
            for _ in range(400):  # the reply arrives although nobody waits yet
                if t.id in b._arrived:
                    break
                await asyncio.sleep(0.025)
            assert t.id in b._arrived
            assert (await client.wait_for_task(t.id, timeout=5)).result == 4
            t2 = await client.queue_task("add", [3, 3])
            assert (await client.wait_for_task(t2.id, timeout=5)).result == 6
            assert reads == []  # no read, no polling: the record came with the reply
            # another client waits on the done channel, then reads
            assert (await other.wait_for_task(t2.id, timeout=5)).result == 6
            # a record over NOTIFY's payload limit: the reply names the task, the waiter reads
            big = "x" * 20000
            t3 = await client.queue_task("sleeper", [0, big])
            assert (await client.wait_for_task(t3.id, timeout=5)).result == big
            assert reads == [1]
    finally:
        await client.close()
        await other.close()


async def test_a_waiter_is_woken_by_notify_not_by_its_periodic_reread(pg_url, monkeypatch) -> None:
    from pulsar.apps.tasks import _postgres

    monkeypatch.setattr(_postgres, "_REREAD", 60.0)  # only a notification can end the wait
    b = tasks.create_backend(pg_url)
    worker = tasks.create_backend(pg_url)
    try:
        t = new_task()
        await b.enqueue(t)
        row = (await worker.claim(["default"], "w", 30.0, 1)).tasks[0]
        waiter = asyncio.ensure_future(b.wait(t.id, 120))
        for _ in range(400):  # until it listens on the done channel
            if b._listener is not None and b.done_channel in b._listener.listened:
                break
            await asyncio.sleep(0.025)
        await asyncio.sleep(0.1)  # and has read the task once
        assert not waiter.done()
        assert await worker.complete(t.id, row["token"], TaskState.SUCCESS, result="3")
        done = await asyncio.wait_for(waiter, 20)  # not the 60 s re-read
        assert done.result == 3
    finally:
        await b.close()
        await worker.close()


# -- a database restarted mid-run ---------------------------------------------------------------


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


class Cluster:
    """A PostgreSQL cluster of the test's own (initdb in a temporary directory, a free port),
    run as the ``postgres`` user when the test runs as root (initdb refuses root)."""

    def __init__(self) -> None:
        initdb, self.pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        if initdb is None or self.pg_ctl is None:
            self._unavailable("initdb/pg_ctl are not installed")
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            try:
                import pwd

                user = pwd.getpwnam("postgres")
            except KeyError:
                self._unavailable("running as root and there is no postgres user for initdb")
            self.prefix = ["runuser", "-u", "postgres", "--"]
        self.dir = tempfile.mkdtemp(prefix="pulsar-tasks-pg-")
        if self.prefix:
            os.chown(self.dir, user.pw_uid, user.pw_gid)
        self.data = os.path.join(self.dir, "data")
        self.port = _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._run(initdb, "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync")

    @staticmethod
    def _unavailable(reason: str) -> None:
        if os.environ.get("CI", "").lower() == "true":
            raise AssertionError(reason)
        pytest.skip(reason)

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*self.prefix, *args], check=True, capture_output=True, timeout=120, cwd=self.dir
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(self.pg_ctl, "-D", self.data, "-o", options, "-l", self.log, "-w", "start")

    @property
    def log(self) -> str:
        return os.path.join(self.dir, "log")

    def pid(self) -> int | None:
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def crash(self) -> None:
        """Stop at once, as a crash would (no shutdown checkpoint; recovery at the start)."""
        self._run(self.pg_ctl, "-D", self.data, "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None and psutil.pid_exists(pid):
            try:
                self._run(self.pg_ctl, "-D", self.data, "-m", "immediate", "-w", "stop")
            except subprocess.SubprocessError:
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    try:
        c.start()
        yield c
    finally:
        c.stop()


def _stop(run: h.Run) -> None:
    run.proc.send_signal(signal.SIGTERM)
    code, _, err = run.finish()
    assert code == 0, err[-3000:]


def test_database_restarted_mid_run_nothing_accepted_is_lost(cluster: Cluster, tmp_path) -> None:
    """Workers running tasks and a producer queueing them while the database crashes and comes
    back: every task accepted before, during and after the outage is done; the arbiter and its
    workers never stopped."""
    url = f"{cluster.url}?schema=restart"
    run = h.Run(
        "tq_app.py", *BASE, "--backend", url, "--workers", "2", "--task-lease", "2",
        env={"TQ_MARKS": str(tmp_path / "marks")},
    )  # fmt: skip
    try:
        ready = run.wait_ready()
        with tasks.connect_sync(url) as c:
            first = [c.queue_task("add", [i, 1]).id for i in range(5)]
            assert [c.wait_for_task(i, timeout=10).result for i in first] == [1, 2, 3, 4, 5]
            # in flight when the database goes
            running = [c.queue_task("sleeper", [0.5, f"r{i}"]).id for i in range(6)]
            h.wait_for(lambda: len(c.list_tasks(status="STARTED")) >= 1, timeout=10)
            cluster.crash()
            during: list[str] = []
            errors: list[BaseException] = []

            def produce() -> None:  # the connected producer queues through the outage
                try:
                    during.extend(c.queue_task("add", [i, 10]).id for i in range(5))
                except BaseException as exc:
                    errors.append(exc)

            producer = threading.Thread(target=produce)
            producer.start()
            time.sleep(1.0)  # the outage
            cluster.start()
            producer.join(30)
            assert not errors and len(during) == 5, errors
            after = [c.queue_task("add", [i, 100]).id for i in range(5)]
            results = {i: c.wait_for_task(i, timeout=30) for i in first + running + during + after}
        assert all(r.status == TaskState.SUCCESS for r in results.values()), [
            (r.id, r.status, r.error) for r in results.values()
        ]
        assert [results[i].result for i in during] == [10, 11, 12, 13, 14]
        assert [results[i].result for i in after] == [100, 101, 102, 103, 104]
        assert sorted(results[i].result for i in running) == [f"r{i}" for i in range(6)]
        assert run.proc.poll() is None
        assert all(psutil.pid_exists(pid) for pid in ready["workers"])  # reconnected, not respawned
        _stop(run)
    finally:
        if run.proc.poll() is None:
            run.kill()


async def test_a_waiter_and_an_idle_worker_survive_a_restart(cluster: Cluster) -> None:
    """The listening connection reconnects: a client waiting for its task across the restart
    gets the result, and an idle worker's wait ends with the task claimed."""
    url = f"{cluster.url}?schema=listen"
    client = tasks.connect(url, set_default=False)
    worker = tasks.create_backend(url)
    try:
        warm = await client.queue_task("add", [0, 0])
        row = (await worker.claim(["default"], "w", 30.0, 1)).tasks[0]
        assert row["id"] == warm.id
        waiter = asyncio.ensure_future(client.wait_for_task(warm.id, timeout=60))
        idle = asyncio.ensure_future(worker.wait_and_claim(["default"], "w2", 30.0, 1, 60.0))
        await asyncio.sleep(0.3)
        assert not idle.done() and not waiter.done()
        await asyncio.to_thread(cluster.crash)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(cluster.start)
        t = await client.queue_task("add", [2, 3])  # the producer reconnects
        claim = await asyncio.wait_for(idle, 30)
        if not claim.tasks:  # woken by the reconnection before the enqueue
            claim = await worker.wait_and_claim(["default"], "w2", 30.0, 1, 10.0)
        assert [r["id"] for r in claim.tasks] == [t.id]
        assert await worker.complete(warm.id, row["token"], TaskState.SUCCESS, result="0")
        done = await asyncio.wait_for(waiter, 10)
        assert done.status == TaskState.SUCCESS and done.result == 0
    finally:
        await client.close()
        await worker.close()


async def test_a_forked_child_uses_connections_of_its_own_and_spares_the_parents(pg_url) -> None:
    """A backend object inherited through fork (a TaskQueue's arbiter forks its workers) opens
    connections of its own in the child; closing it there leaves the parent's connections
    alone (closing a connection sends the server a Terminate on the shared socket)."""
    b = tasks.create_backend(pg_url)
    try:
        await b.enqueue(new_task())

        parents = [*b._pool._pool, *b._fast._pool]  # the pools' idle connections
        before = {c.pgconn.backend_pid for c in parents}
        assert before
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: its own loop, the inherited object
            code = 1
            try:
                os.close(read)

                async def child() -> int:
                    counts = await b.counts()
                    mine = int((await b._fetch("SELECT pg_backend_pid()"))[0][0])
                    await b.close()
                    return mine if counts == {"QUEUED": 1} else -1

                os.write(write, str(asyncio.run(child())).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write)
        with os.fdopen(read) as f:
            child_pid = int(f.read() or "-1")
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert child_pid != -1 and child_pid not in before  # a connection of its own
        for conn in parents:  # the parent's connections still serve
            assert await (await conn.execute("SELECT 1")).fetchone() == (1,)
        assert await b.counts() == {"QUEUED": 1}
    finally:
        await b.close()


async def test_database_down_a_producer_gets_backend_error_within_its_retry_time(
    cluster: Cluster,
) -> None:
    import psycopg
    import psycopg_pool

    url = f"{cluster.url}?schema=down"
    c = tasks.connect(url, set_default=False)
    try:
        c.backend.retry_timeout = 1.0
        assert (await c.queue_task("add", [1, 1])).id  # connected once: it retries from now on
        await asyncio.to_thread(cluster.crash)
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(tasks.BackendError) as info:
            await c.queue_task("add", [1, 2])
        elapsed = loop.time() - start
        assert 0.9 <= elapsed < 8, elapsed  # retried for its retry time, then gave up
        message = str(info.value)
        assert "unreachable for 1s" in message and "\n" not in message, message
        assert isinstance(info.value.__cause__, psycopg.OperationalError | psycopg_pool.PoolTimeout)
    finally:
        await c.close()


def test_taskqueue_started_while_the_database_is_down_waits_for_it(cluster: Cluster) -> None:
    url = f"{cluster.url}?schema=late"
    cluster.crash()
    run = h.Run("tq_app.py", *("--modules", "tq_jobs", "--workers", "1", "--backend", url))
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # it must not exit meanwhile
            assert run.proc.poll() is None, run.finish()[2][-2000:]
            time.sleep(0.2)
        cluster.start()
        run.wait_ready(timeout=60)
        with tasks.connect_sync(url) as c:
            assert c.wait_for_task(c.queue_task("add", [1, 1]).id, timeout=30).result == 2
        _stop(run)
    finally:
        if run.proc.poll() is None:
            run.kill()
