"""The embedded SQLite backend: durable, no server, safe with several processes on one machine.

How it works
------------
One connection per backend object runs on a private single-thread executor (SQLite calls never
block the event loop). The database is in WAL mode (readers do not block the writer) with
``synchronous=NORMAL`` (a committed task survives a process crash; the last transactions may be
lost on power failure) and a 10 s busy timeout. Every state change runs in a ``BEGIN IMMEDIATE``
transaction, so two workers never claim the same task; changes made while a transaction is in
flight share the next one, each in a savepoint of its own (one that fails is undone alone), and
reads of single tasks made meanwhile share one query.

Notifications: a change made through this backend object wakes its own waiters at once. Other
processes are woken by a datagram: each backend object that waits binds a unix datagram socket
in a directory of its own for the database (``<tmp>/pulsar-tasks-<hash of its path>``), and
every committed change sends one byte to each socket there (a socket nobody reads any more, its
process gone, is removed by the first sender that finds it refused). Independently of that, a
waiter polls ``PRAGMA data_version`` (a counter SQLite bumps on every commit by another
connection; reading it costs no disk I/O) every 0.5 ms, backing off to 50 ms when nothing
changes, so a lost datagram (or a platform without unix sockets) only costs latency.

Progress and events (see :mod:`._events`): the record fields a database made by an older version
lacks are added as columns when it is opened. A backend recording events creates TEMP triggers
on its connection that write the ``events`` table (capped to about the last 10,000) in the
transaction of each change; readers follow it by sequence number, woken as waiters are.
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

from . import _sqlite_deps as _deps
from ._backend import Backend, Claim, decode_workers, guarded
from ._batch import Batcher
from ._errors import BackendError, DuplicateTask, JobOverlap
from ._events import EVENTS_KEPT, EventReader, TaskEvent
from ._schedule import MAX_PRIORITY
from ._state import FINAL, REQUEUEABLE, Task, TaskState
from ._wake import _Wake

__all__ = ["SQLiteBackend"]

logger = logging.getLogger("pulsar.tasks")

T = TypeVar("T")

_COLUMNS = tuple(Task.__dataclass_fields__)
#: the declared type of columns that have one (the others take what they are given)
_COLUMN_TYPES = {"id": "TEXT PRIMARY KEY", "priority": "INTEGER NOT NULL DEFAULT 0"}
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS tasks (
    {", ".join(f"{c} {_COLUMN_TYPES.get(c, '')}".rstrip() for c in _COLUMNS)},
    purge_at REAL
);
CREATE INDEX IF NOT EXISTS tasks_claim ON tasks (queue, eta) WHERE status IN ('QUEUED', 'RETRY');
CREATE INDEX IF NOT EXISTS tasks_expiring ON tasks (expires)
    WHERE status IN ('QUEUED', 'RETRY') AND expires IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_lease ON tasks (status, lease_expires);
CREATE INDEX IF NOT EXISTS tasks_queued ON tasks (time_queued);
CREATE INDEX IF NOT EXISTS tasks_overlap ON tasks (overlap_key);
CREATE INDEX IF NOT EXISTS tasks_purge ON tasks (purge_at);
CREATE TABLE IF NOT EXISTS jobs (name TEXT PRIMARY KEY, meta TEXT);
CREATE TABLE IF NOT EXISTS workers (id TEXT PRIMARY KEY, info TEXT NOT NULL, expires REAL NOT NULL);
DROP INDEX IF EXISTS tasks_ready;
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, time REAL, kind TEXT, task_id TEXT, name TEXT,
    queue TEXT, worker TEXT, attempts INTEGER, progress REAL, meta_json TEXT, error TEXT,
    reason TEXT
);
"""
#: task events (see _events.py): TEMP triggers of a connection whose backend records events,
#: so a connection that does not pays nothing; the kinds follow the rules of _events.py
_EVENT_COLUMNS = "time, kind, task_id, name, queue, worker, attempts, progress, meta_json, "
_EVENT_COLUMNS += "error, reason"
_EVENT_NOW = "(julianday('now') - 2440587.5) * 86400.0"
_EVENT_CAP = (
    f"DELETE FROM events WHERE seq <= (SELECT MAX(seq) FROM events) - {EVENTS_KEPT} "
    "AND (SELECT MAX(seq) FROM events) % 1000 = 0;"
)
_EVENT_TRIGGERS = f"""
CREATE TEMP TRIGGER IF NOT EXISTS pulsar_tasks_event_new AFTER INSERT ON main.tasks BEGIN
    INSERT INTO events ({_EVENT_COLUMNS}) VALUES ({_EVENT_NOW}, 'queued', NEW.id, NEW.name,
        NEW.queue, NEW.worker, NEW.attempts, NULL, NULL, NULL, NULL);
    {_EVENT_CAP}
END;
CREATE TEMP TRIGGER IF NOT EXISTS pulsar_tasks_event_change
AFTER UPDATE OF status, progress, meta_json ON main.tasks
WHEN NEW.status IS NOT OLD.status OR (NEW.status = 'STARTED'
    AND (NEW.progress IS NOT OLD.progress OR NEW.meta_json IS NOT OLD.meta_json))
BEGIN
    INSERT INTO events ({_EVENT_COLUMNS}) VALUES ({_EVENT_NOW},
        CASE
            WHEN NEW.status IS OLD.status THEN 'progress'
            WHEN NEW.status = 'STARTED' THEN 'started'
            WHEN NEW.status = 'SUCCESS' THEN 'succeeded'
            WHEN NEW.status = 'FAILURE' THEN 'failed'
            WHEN NEW.status = 'RETRY' THEN 'retried'
            WHEN NEW.status = 'REVOKED' THEN 'revoked'
            WHEN OLD.status = 'STARTED' AND NEW.attempts >= OLD.attempts THEN 'retried'
            ELSE 'queued'
        END,
        NEW.id, NEW.name, NEW.queue,
        CASE WHEN NEW.status = 'QUEUED' AND OLD.status = 'STARTED' THEN OLD.worker
            ELSE NEW.worker END,
        NEW.attempts,
        CASE WHEN NEW.status IS OLD.status THEN NEW.progress END,
        CASE WHEN NEW.status IS OLD.status THEN NEW.meta_json END,
        CASE WHEN NEW.status IN ('FAILURE', 'RETRY') THEN NEW.error END,
        CASE
            WHEN NEW.status = 'FAILURE' AND NEW.error LIKE 'lost%' THEN 'lost'
            WHEN NEW.status = 'FAILURE' AND NEW.error = 'timeout' THEN 'timeout'
            WHEN NEW.status = 'REVOKED' THEN NEW.error
            WHEN NEW.status = 'QUEUED' AND OLD.status = 'STARTED'
                AND NEW.attempts >= OLD.attempts THEN 'lost'
            WHEN NEW.status = 'QUEUED' AND OLD.status = 'STARTED' THEN 'released'
            WHEN NEW.status = 'QUEUED' AND OLD.status IN ('FAILURE', 'REVOKED') THEN 'requeued'
        END);
    {_EVENT_CAP}
END;
"""
#: what needs the columns added since the first schema (run after _add_columns): the pending
#: tasks of a priority above 0, by (queue, priority, eta) — priority-0 tasks are not in it, so
#: a queue that uses no priorities pays nothing; the per-job rate limiters (see _schedule)
_SCHEMA_LATER = """
CREATE INDEX IF NOT EXISTS tasks_prio ON tasks (queue, priority, eta)
    WHERE status IN ('QUEUED', 'RETRY') AND priority > 0;
CREATE TABLE IF NOT EXISTS rate_limits (key TEXT PRIMARY KEY, stamps TEXT NOT NULL);
"""
_PENDING_SQL = "('QUEUED', 'RETRY')"
_FINAL_NAMES = frozenset(str(s) for s in FINAL)
#: the claim path: each uses a partial index (tests/test_sqlite_plan.py checks there is no sort)
_CLAIM_SQL = (
    f"SELECT id, eta FROM tasks WHERE status IN {_PENDING_SQL} AND queue = ? AND eta <= ? "
    f"ORDER BY eta LIMIT ?"
)
_NEXT_SQL = f"SELECT MIN(eta) FROM tasks WHERE status IN {_PENDING_SQL} AND queue = ?"
#: the claim of priorities above 0 (tasks_prio): the highest priority below ? with pending
#: tasks, then its due tasks in eta order (one index probe each)
_TOP_PRIORITY_SQL = (
    f"SELECT MAX(priority) FROM tasks WHERE status IN {_PENDING_SQL} AND priority > 0 "
    f"AND queue = ? AND priority < ?"
)
_CLAIM_PRIORITY_SQL = (
    f"SELECT id, eta FROM tasks WHERE status IN {_PENDING_SQL} AND priority > 0 "
    f"AND queue = ? AND priority = ? AND eta <= ? ORDER BY eta LIMIT ?"
)
_EXPIRE_SQL = (
    "UPDATE tasks INDEXED BY tasks_expiring SET status = 'REVOKED', error = 'expired', "
    "time_finished = ?, purge_at = ? "
    f"WHERE status IN {_PENDING_SQL} AND expires IS NOT NULL AND expires < ? "
    "AND queue IN ({qmarks}) AND eta <= ? RETURNING id, dependents"
)
#: an operator's requeue of a FAILURE/REVOKED task: a fresh start (see Backend.requeue)
_REQUEUE_SQL = (
    "UPDATE tasks SET status = 'QUEUED', attempts = 0, result_json = NULL, error = NULL, "
    "traceback = NULL, worker = NULL, token = NULL, time_queued = ?, time_started = NULL, "
    "time_finished = NULL, eta = ?, expires = NULL, lease_expires = NULL, revoke = 0, "
    "purge_at = NULL, progress = NULL, meta_json = NULL WHERE id = ?"
)
_MIN_POLL = 0.0005
_MAX_POLL = 0.05


def _path_of(url: str) -> str:
    parts = urlsplit(url)
    if parts.netloc and parts.netloc != ":memory:":
        raise BackendError(f"{url!r}: use sqlite:///relative/path or sqlite:////absolute/path")
    if parts.netloc == ":memory:" or parts.path in ("/:memory:", ""):
        return ":memory:"
    return parts.path[1:] if parts.path.startswith("/") else parts.path


class SQLiteBackend(Backend):
    """Tasks in a SQLite database file (``sqlite:///tasks.db``; four slashes for an absolute
    path). See the module docstring for durability and notifications."""

    scheme = "sqlite"

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.path = _path_of(url)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._version = -1
        self._changed: set[asyncio.Event] = set()
        # writes made while a transaction is in flight share the next one (each in a savepoint
        # of its own), reads of single tasks share one query
        self._writer = Batcher(self._write_many)
        self._getter = Batcher(self._get_many)
        self._wake = _Wake(self.path) if _Wake.supported(self.path) else None
        self.failures = (sqlite3.Error,)
        self._watched: dict[str, list[asyncio.Future[dict[str, Any] | None]]] = {}
        self._watcher: asyncio.Future[None] | None = None
        #: True once the file turned out not to be writable (reads work, writes fail clearly)
        self.read_only = False

    # -- plumbing ------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                self._conn = self._open()
            except sqlite3.OperationalError as exc:
                if self.path == ":memory:" or not os.path.exists(self.path):
                    raise
                if "readonly" not in str(exc) and "unable to open" not in str(exc):
                    raise
                # not writable here: open it read-only, so that it can still be inspected
                self._conn = self._open_read_only()
                self.read_only = True
        return self._conn

    def _open_read_only(self) -> sqlite3.Connection:
        path = os.path.abspath(self.path)
        last: Exception | None = None
        # a WAL database needs its -shm file; without the right to create it, read the file
        # as immutable (no locking: a snapshot for inspection)
        for query in ("mode=ro", "mode=ro&immutable=1"):
            conn = sqlite3.connect(
                f"file:{path}?{query}",
                uri=True,
                timeout=10.0,
                isolation_level=None,
                check_same_thread=False,
            )
            try:
                conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            except sqlite3.OperationalError as exc:
                conn.close()
                last = exc
                continue
            conn.row_factory = sqlite3.Row
            return conn
        assert last is not None
        raise last

    def _open(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            directory = os.path.dirname(os.path.abspath(self.path))
            if not os.path.isdir(directory):
                os.makedirs(directory, exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=10.0, isolation_level=None, check_same_thread=False
        )
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout = 10000")
            if self.path != ":memory:":
                # switching a new database to WAL needs an exclusive lock that the busy
                # timeout does not wait for: two processes opening it at once retry
                for attempt in range(100):
                    try:
                        conn.execute("PRAGMA journal_mode = WAL")
                        break
                    except sqlite3.OperationalError as exc:
                        if "locked" not in str(exc) or attempt == 99:
                            raise
                        time.sleep(0.02)
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.executescript(_SCHEMA)
            _add_columns(conn)
            conn.executescript(_SCHEMA_LATER)
            if self.events:
                conn.executescript(_EVENT_TRIGGERS)
        except BaseException:
            conn.close()
            raise
        return conn

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix="pulsar-tasks-sqlite"
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, fn, args)

    def _call(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        with self._lock:
            return fn(self._connect(), *args)

    def _write(self, conn: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> T:
        if self.read_only:
            raise BackendError(
                f"{self.describe()}: the database file is read-only for this process "
                f"(opened for reading: tasks can be listed, not queued or changed)"
            )
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn, *args)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    async def _write_op(self, op: Callable[[sqlite3.Connection], T]) -> T:
        result = await self._writer(op)
        if isinstance(result, _Failed):
            raise result.exc
        return result  # type: ignore[no-any-return]

    async def _write_many(self, ops: Sequence[Callable[[sqlite3.Connection], Any]]) -> list[Any]:
        return await self._run(self._write, _apply_each, ops)

    async def _get_many(self, ids: Sequence[str]) -> list[dict[str, Any] | None]:
        return await self._run(_get_rows, ids, self.now())

    def _notify(self, broadcast: bool = True) -> None:
        for event in self._changed:
            event.set()
        if broadcast and self._wake is not None:
            self._wake.send()

    async def _wait_change(self, timeout: float, poll: list[float]) -> None:
        """Sleep until this object changed the database, another connection committed, or
        ``timeout`` passed. ``poll`` carries the current polling interval between calls."""
        event = asyncio.Event()
        self._changed.add(event)
        loop = asyncio.get_running_loop()
        if self._wake is not None:
            self._wake.listen(loop, self._notify_local)
        end = loop.time() + timeout
        try:
            while True:
                remaining = end - loop.time()
                if remaining <= 0:
                    return
                try:
                    await asyncio.wait_for(event.wait(), min(poll[0], remaining))
                    poll[0] = _MIN_POLL
                    return
                except TimeoutError:
                    pass
                version = await self._run(_data_version)
                if version != self._version:
                    changed = self._version != -1
                    self._version = version
                    if changed:
                        poll[0] = _MIN_POLL
                        return
                poll[0] = min(_MAX_POLL, poll[0] * 1.5)
        finally:
            self._changed.discard(event)

    def _notify_local(self) -> None:
        self._notify(broadcast=False)

    async def close(self) -> None:
        if self._watcher is not None:
            watcher, self._watcher = self._watcher, None
            watcher.cancel()
            with contextlib.suppress(BaseException):
                await watcher
        if self._wake is not None:
            self._wake.close()
        if self._executor is not None:
            executor, self._executor = self._executor, None
            conn, self._conn = self._conn, None
            if conn is not None:
                await asyncio.get_running_loop().run_in_executor(executor, conn.close)
            executor.shutdown(wait=False)

    # -- producers -----------------------------------------------------------------------------
    @guarded
    async def enqueue(self, task: Task, *, unique: bool = False, reply: bool = False) -> bool:
        row = task.to_row()
        now = self.now()

        def op(conn: sqlite3.Connection) -> bool:
            if task.overlap_key is not None:
                other = conn.execute(
                    "SELECT id FROM tasks WHERE overlap_key = ? AND status IN "
                    "('QUEUED', 'RETRY', 'STARTED') LIMIT 1",
                    (task.overlap_key,),
                ).fetchone()
                if other is not None:
                    raise JobOverlap(
                        f"job {task.name!r} already has task {other[0]} with the same "
                        f"arguments queued or running (overlap=False)"
                    )
            # a record past its result TTL is gone (as on Redis): its id may be used again
            conn.execute("DELETE FROM tasks WHERE id = ? AND purge_at <= ?", (task.id, now))
            verb = "INSERT OR IGNORE" if unique else "INSERT"
            try:
                cur = conn.execute(
                    f"{verb} INTO tasks ({', '.join(_COLUMNS)}) VALUES "
                    f"({', '.join('?' for _ in _COLUMNS)})",
                    [row[c] for c in _COLUMNS],
                )
            except sqlite3.IntegrityError:
                raise DuplicateTask(f"a task with id {task.id!r} exists already") from None
            return cur.rowcount > 0

        added = await self._write_op(op)
        self._notify()
        return added

    @guarded
    async def enqueue_flow(self, tasks: Sequence[Task], *, reply: bool = False) -> None:
        now = self.now()
        ttl = self.result_ttl

        def op(conn: sqlite3.Connection) -> None:
            _deps.store(conn, tasks, _COLUMNS, now, ttl)

        await self._write_op(op)
        self._notify()

    @guarded
    async def get(self, task_id: str) -> Task | None:
        row = await self._getter(task_id)
        return None if row is None else Task.from_row(row)

    @guarded
    async def list(
        self,
        status: TaskState | str | None = None,
        limit: int = 100,
        *,
        since: float | None = None,
    ) -> list[Task]:
        def op(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            sql = "SELECT * FROM tasks WHERE (purge_at IS NULL OR purge_at > ?)"
            params: list[Any] = [self.now()]
            if status is not None:
                sql += " AND status = ?"
                params.append(str(TaskState(status)))
            if since is not None:
                sql += " AND time_finished >= ?"
                params.append(float(since))
            sql += " ORDER BY time_queued DESC LIMIT ?"
            params.append(int(limit))
            return [dict(r) for r in conn.execute(sql, params)]

        out = []
        for row in await self._run(op):
            try:
                out.append(Task.from_row(row))
            except (ValueError, KeyError):
                continue
        return out

    @guarded
    async def revoke(self, task_id: str) -> TaskState | None:
        now = self.now()
        ttl = self.result_ttl

        def op(conn: sqlite3.Connection) -> TaskState | None:
            row = conn.execute(
                "SELECT status, name FROM tasks WHERE id = ? AND (purge_at IS NULL OR "
                "purge_at > ?)",
                (task_id, now),
            ).fetchone()
            if row is None:
                return None
            status = TaskState(row[0])
            if status in (TaskState.QUEUED, TaskState.RETRY, TaskState.DEFERRED):
                # the TTL the workers of this job use (published with the job), else ours
                kept = _published_ttl(conn, row[1])
                ended = conn.execute(
                    "UPDATE tasks SET status = 'REVOKED', error = 'revoked', time_finished = ?, "
                    "token = NULL, purge_at = ? WHERE id = ? RETURNING dependents",
                    (now, _purge_at(now, ttl if kept is None else kept), task_id),
                ).fetchone()
                if ended is not None and ended[0]:
                    _deps.resolve(conn, [task_id], now, ttl)
                return TaskState.REVOKED
            if status == TaskState.STARTED:
                conn.execute("UPDATE tasks SET revoke = 1 WHERE id = ?", (task_id,))
            return status

        result = await self._write_op(op)
        self._notify()
        return result

    # -- operators ------------------------------------------------------------------------------
    @guarded
    async def purge(self, queue: str) -> int:
        now = self.now()
        ttl = self.result_ttl

        def op(conn: sqlite3.Connection) -> int:
            names = [
                r[0]
                for r in conn.execute(
                    f"SELECT DISTINCT name FROM tasks WHERE status IN {_PENDING_SQL} AND queue = ?",
                    (queue,),
                )
            ]
            count = 0
            for name in names:  # each kept for the TTL its job's workers published
                kept = _published_ttl(conn, name)
                ended = conn.execute(
                    "UPDATE tasks SET status = 'REVOKED', error = 'purged', time_finished = ?, "
                    f"token = NULL, purge_at = ? WHERE status IN {_PENDING_SQL} AND queue = ? "
                    "AND name = ? RETURNING id, dependents",
                    (now, _purge_at(now, ttl if kept is None else kept), queue, name),
                ).fetchall()
                count += len(ended)
                _deps.resolve(conn, [r[0] for r in ended if r[1]], now, ttl)
            return count

        count = await self._write_op(op)
        if count:
            self._notify()
        return count

    @guarded
    async def requeue(self, task_id: str) -> TaskState | None:
        now = self.now()

        def op(conn: sqlite3.Connection) -> TaskState | None:
            row = conn.execute(
                "SELECT status, overlap_key, name FROM tasks WHERE id = ? AND "
                "(purge_at IS NULL OR purge_at > ?)",
                (task_id, now),
            ).fetchone()
            if row is None:
                return None
            status = TaskState(row[0])
            if status not in REQUEUEABLE:
                return status
            if row[1] is not None:
                other = conn.execute(
                    "SELECT id FROM tasks WHERE overlap_key = ? AND id != ? AND status IN "
                    "('QUEUED', 'RETRY', 'STARTED') LIMIT 1",
                    (row[1], task_id),
                ).fetchone()
                if other is not None:
                    raise JobOverlap(
                        f"job {row[2]!r} already has task {other[0]} with the same arguments "
                        f"queued or running (overlap=False)"
                    )
            conn.execute(_REQUEUE_SQL, (now, now, task_id))
            return status

        before = await self._write_op(op)
        if before in REQUEUEABLE:
            self._notify()
        return before

    @guarded
    async def heartbeat(self, worker: str, info: dict[str, Any], ttl: float) -> None:
        now = self.now()
        text = json.dumps(info)

        def op(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM workers WHERE expires < ?", (now,))
            conn.execute(
                "INSERT OR REPLACE INTO workers (id, info, expires) VALUES (?, ?, ?)",
                (worker, text, now + ttl),
            )

        await self._write_op(op)

    @guarded
    async def forget_worker(self, worker: str) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM workers WHERE id = ?", (worker,))

        await self._write_op(op)

    @guarded
    async def workers(self) -> builtins.list[dict[str, Any]]:
        now = self.now()

        def op(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT info FROM workers WHERE expires >= ? ORDER BY id", (now,)
            ).fetchall()
            return [r[0] for r in rows]

        return decode_workers(await self._run(op))

    @guarded
    async def wait(self, task_id: str, timeout: float | None) -> Task | None:
        # every waiter of this backend object shares one watcher: one change poll and one
        # query per change for all the tasks waited for (not one poll and read per waiter)
        task = await self.get(task_id)
        if task is None or task.done:
            return task
        fut: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        self._watched.setdefault(task_id, []).append(fut)
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.ensure_future(self._watch())
        try:
            row = await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise TimeoutError(f"task {task_id} not done after {timeout}s") from None
        finally:
            futs = self._watched.get(task_id)
            if futs is not None:
                with contextlib.suppress(ValueError):
                    futs.remove(fut)
                if not futs:
                    del self._watched[task_id]
        return None if row is None else Task.from_row(row)

    async def _watch(self) -> None:
        """Until nobody waits: after each change (or every second), resolve the waiters of the
        tasks that became final (or disappeared)."""
        poll = [_MIN_POLL]
        while self._watched:
            await self._wait_change(1.0, poll)
            ids = list(self._watched)
            if not ids:
                return
            try:
                rows = await self._run(_final_rows, ids, self.now())
            except sqlite3.Error as exc:  # waiters retry after the next change
                logger.warning("%s: cannot check waited tasks: %s", self.describe(), exc)
                await asyncio.sleep(0.5)
                continue
            for task_id, row in rows.items():
                for fut in self._watched.pop(task_id, ()):
                    if not fut.done():
                        fut.set_result(row)

    @guarded
    async def counts(self) -> dict[str, int]:
        def op(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute(
                "SELECT status, COUNT(*) FROM tasks WHERE (purge_at IS NULL OR purge_at > ?) "
                "GROUP BY status",
                (self.now(),),
            )
            return {r[0]: r[1] for r in rows}

        return await self._run(op)

    @guarded
    async def queue_counts(self) -> dict[str, dict[str, int]]:
        def op(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
            rows = conn.execute(
                "SELECT queue, status, COUNT(*) FROM tasks "
                "WHERE (purge_at IS NULL OR purge_at > ?) GROUP BY queue, status",
                (self.now(),),
            )
            out: dict[str, dict[str, int]] = {}
            for queue, status, n in rows:
                out.setdefault(queue, {})[status] = n
            return out

        return await self._run(op)

    @guarded
    async def pending(self, queues: Sequence[str]) -> int:
        qmarks = ", ".join("?" for _ in queues)

        def op(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                f"SELECT COUNT(*) FROM tasks WHERE status IN {_PENDING_SQL} "
                f"AND queue IN ({qmarks})",
                tuple(queues),
            ).fetchone()
            return int(row[0])

        return await self._run(op)

    # -- workers -------------------------------------------------------------------------------
    @guarded
    async def claim(self, queues: Sequence[str], worker: str, lease: float, limit: int) -> Claim:
        now = self.now()
        ttl = self.result_ttl
        qmarks = ", ".join("?" for _ in queues)

        def op(conn: sqlite3.Connection) -> Claim:
            # 1. tasks whose worker died: queued again, or failed once out of retries
            lost = conn.execute(
                "SELECT id, attempts, max_retries FROM tasks "
                "WHERE status = 'STARTED' AND lease_expires < ?",
                (now,),
            ).fetchall()
            _recover(conn, lost, now, ttl)
            # 2. pending tasks past their expiry time are revoked (found through the partial
            # index of expiring pending tasks: the backlog is not scanned)
            expired = conn.execute(
                _EXPIRE_SQL.format(qmarks=qmarks), (now, _purge_at(now, ttl), now, *queues, now)
            ).fetchall()
            if expired:
                _deps.resolve(conn, [r[0] for r in expired if r[1]], now, ttl)
            # 3. claim due tasks: per queue, the first ones of the partial index of pending
            # tasks by (queue, eta) — no sort, whatever the backlog — merged by due time;
            # those of a priority above 0 first (highest first: _claim_priorities)
            due: list[tuple[int, float, str]] = []
            for queue in queues:
                ahead = _claim_priorities(conn, queue, now, limit)
                taken = {task_id for _, _, task_id in ahead}
                due += ahead
                if len(ahead) < limit:
                    due += [
                        (0, r[1], r[0])
                        for r in conn.execute(_CLAIM_SQL, (queue, now, limit))
                        if r[0] not in taken
                    ]
            if len(queues) > 1 or len(due) > limit:
                due.sort()
            ids = [task_id for _, _, task_id in due[:limit]]
            rows = []
            for task_id in ids:
                conn.execute(
                    "UPDATE tasks SET status = 'STARTED', attempts = attempts + 1, worker = ?, "
                    "token = ? || ':' || (attempts + 1), time_started = ?, lease_expires = ?, "
                    "revoke = 0 WHERE id = ?",
                    (worker, _token_base(), now, now + lease, task_id),
                )
                row = conn.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
                rows.append(dict(row))
            etas = [conn.execute(_NEXT_SQL, (queue,)).fetchone()[0] for queue in queues]
            nxt = min((e for e in etas if e is not None), default=None)
            return Claim(rows, nxt)

        claim = await self._write_op(op)
        if claim.tasks:
            # no wake-up for other processes: nothing became due or final for them (a task
            # failed here as lost is seen by its waiters' polling)
            self._notify(broadcast=False)
        return claim

    @guarded
    async def release_worker(self, worker: str) -> int:
        now = self.now()
        ttl = self.result_ttl

        def op(conn: sqlite3.Connection) -> int:
            held = conn.execute(
                "SELECT id, attempts, max_retries FROM tasks "
                "WHERE status = 'STARTED' AND worker = ?",
                (worker,),
            ).fetchall()
            _recover(conn, held, now, ttl)
            return len(held)

        count = await self._write_op(op)
        if count:
            self._notify()
        return count

    @guarded
    async def renew(self, leases: dict[str, str], lease: float) -> dict[str, str]:
        now = self.now()

        def op(conn: sqlite3.Connection) -> dict[str, str]:
            out: dict[str, str] = {}
            for task_id, token in leases.items():
                row = conn.execute(
                    "SELECT token, status, revoke FROM tasks WHERE id = ?", (task_id,)
                ).fetchone()
                if row is None or row[0] != token or row[1] != "STARTED":
                    out[task_id] = "lost"
                    continue
                if row[2]:
                    out[task_id] = "revoked"
                conn.execute(
                    "UPDATE tasks SET lease_expires = ? WHERE id = ?", (now + lease, task_id)
                )
            return out

        return await self._write_op(op)

    @guarded
    async def complete(
        self,
        task_id: str,
        token: str,
        status: TaskState,
        *,
        result: str | None = None,
        error: str | None = None,
        traceback: str | None = None,
    ) -> bool:
        if status not in FINAL:
            raise ValueError(f"complete() needs a final state, not {status}")
        now = self.now()
        ttl = self.result_ttl

        def op(conn: sqlite3.Connection) -> bool:
            ended = conn.execute(
                "UPDATE tasks SET status = ?, result_json = ?, error = ?, traceback = ?, "
                "time_finished = ?, token = NULL, lease_expires = NULL, purge_at = ? "
                "WHERE id = ? AND token = ? AND status = 'STARTED' RETURNING dependents",
                (str(status), result, error, traceback, now, _purge_at(now, ttl), task_id, token),
            ).fetchone()
            if ended is None:
                return False
            if ended[0]:  # its dependents move on in this transaction
                _deps.resolve(conn, [task_id], now, ttl)
            return True

        done = await self._write_op(op)
        if done:
            self._notify()
        return done

    @guarded
    async def retry(
        self, task_id: str, token: str, eta: float, *, error: str, traceback: str | None
    ) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE tasks SET status = 'RETRY', error = ?, traceback = ?, eta = ?, "
                "token = NULL, lease_expires = NULL WHERE id = ? AND token = ? "
                "AND status = 'STARTED' AND IFNULL(revoke, 0) = 0",
                (error, traceback, eta, task_id, token),
            )
            return cur.rowcount > 0

        done = await self._write_op(op)
        self._notify()
        return done

    @guarded
    async def release(self, task_id: str, token: str) -> bool:
        now = self.now()

        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE tasks SET status = 'QUEUED', attempts = MAX(0, attempts - 1), "
                "token = NULL, worker = NULL, lease_expires = NULL, eta = ? "
                "WHERE id = ? AND token = ? AND status = 'STARTED' AND IFNULL(revoke, 0) = 0",
                (now, task_id, token),
            )
            return cur.rowcount > 0

        done = await self._write_op(op)
        self._notify()
        return done

    # -- scheduling (see _schedule) ----------------------------------------------------------
    @guarded
    async def postpone(self, task_id: str, token: str, eta: float) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE tasks SET status = 'QUEUED', attempts = MAX(0, attempts - 1), "
                "token = NULL, worker = NULL, lease_expires = NULL, eta = ? "
                "WHERE id = ? AND token = ? AND status = 'STARTED' AND IFNULL(revoke, 0) = 0",
                (eta, task_id, token),
            )
            return cur.rowcount > 0

        done = await self._write_op(op)
        self._notify()
        return done

    @guarded
    async def acquire_rate(self, key: str, limit: int, period: float) -> float:
        def op(conn: sqlite3.Connection) -> float:
            now = time.time()  # one machine: its clock
            row = conn.execute("SELECT stamps FROM rate_limits WHERE key = ?", (key,)).fetchone()
            stamps = _rate_stamps(row[0] if row else None)
            wait = _rate_wait(stamps, limit, period, now)
            if wait == 0.0:
                stamps = [*stamps[-(limit - 1) :], now] if limit > 1 else [now]
                conn.execute(
                    "INSERT OR REPLACE INTO rate_limits (key, stamps) VALUES (?, ?)",
                    (key, json.dumps(stamps)),
                )
            return wait

        return await self._write_op(op)

    @guarded
    async def wait_for_work(self, queues: Sequence[str], timeout: float) -> None:
        poll = getattr(self, "_work_poll", None)
        if poll is None:
            poll = self._work_poll = [_MIN_POLL]
        await self._wait_change(timeout, poll)

    # -- jobs and maintenance ------------------------------------------------------------------
    @guarded
    async def register_jobs(self, metas: dict[str, dict[str, Any]]) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT OR REPLACE INTO jobs (name, meta) VALUES (?, ?)",
                [(name, json.dumps(meta)) for name, meta in metas.items()],
            )

        await self._write_op(op)

    @guarded
    async def jobs(self) -> dict[str, dict[str, Any]]:
        def op(conn: sqlite3.Connection) -> dict[str, dict[str, Any]]:
            return {r[0]: json.loads(r[1]) for r in conn.execute("SELECT name, meta FROM jobs")}

        return await self._run(op)

    @guarded
    async def put_raw(self, row: dict[str, Any]) -> None:
        def op(conn: sqlite3.Connection) -> None:
            cols = [c for c in row if c in _COLUMNS]
            conn.execute(
                f"INSERT OR REPLACE INTO tasks ({', '.join(cols)}) VALUES "
                f"({', '.join('?' for _ in cols)})",
                [row[c] for c in cols],
            )

        await self._write_op(op)
        self._notify()

    @guarded
    async def flush(self) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM tasks")
            conn.execute("DELETE FROM jobs")
            conn.execute("DELETE FROM workers")
            conn.execute("DELETE FROM rate_limits")
            conn.execute("DELETE FROM events")

        await self._write_op(op)

    @guarded
    async def purge_expired(self) -> int:
        """Delete the records whose result TTL passed; returns how many."""
        now = self.now()

        def op(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM tasks WHERE purge_at <= ?", (now,)).rowcount

        return await self._write_op(op)

    # -- progress and events -------------------------------------------------------------------
    @guarded
    async def set_progress(
        self, updates: Sequence[tuple[str, str, float | None, str | None]]
    ) -> builtins.list[bool]:
        def op(conn: sqlite3.Connection) -> list[bool]:
            return [
                conn.execute(
                    "UPDATE tasks SET progress = COALESCE(?, progress), "
                    "meta_json = COALESCE(?, meta_json) "
                    "WHERE id = ? AND token = ? AND status = 'STARTED'",
                    (progress, meta, task_id, token),
                ).rowcount
                > 0
                for task_id, token, progress, meta in updates
            ]

        done = await self._write_op(op)
        if any(done):
            self._notify()
        return done

    def event_reader(self, after: str | None = None) -> EventReader:
        return _SQLiteEvents(self, after)


class _SQLiteEvents(EventReader):
    """Reads the ``events`` table after a sequence number, woken as the waiters of tasks are
    (a change of this object, a datagram, ``PRAGMA data_version``)."""

    def __init__(self, backend: SQLiteBackend, after: str | None) -> None:
        self.backend = backend
        self.cursor: int | None = None if after is None else int(after or 0)
        self._poll = _MIN_POLL
        self._version = -1

    async def _wait_change(self, timeout: float) -> None:
        """``SQLiteBackend._wait_change`` with a ``data_version`` of this reader's own (several
        readers and waiters of one backend object each notice a commit)."""
        backend = self.backend
        event = asyncio.Event()
        backend._changed.add(event)
        loop = asyncio.get_running_loop()
        if backend._wake is not None:
            backend._wake.listen(loop, backend._notify_local)
        end = loop.time() + timeout
        try:
            while (remaining := end - loop.time()) > 0:
                try:
                    await asyncio.wait_for(event.wait(), min(self._poll, remaining))
                    self._poll = _MIN_POLL
                    return
                except TimeoutError:
                    pass
                if await backend._run(_data_version) != self._version:
                    self._poll = _MIN_POLL  # (the version of the last read: nothing missed)
                    return
                self._poll = min(_MAX_POLL, self._poll * 1.5)
        finally:
            backend._changed.discard(event)

    async def start(self) -> str:
        """Fix "now" (the last event recorded) as the start, if not given; returns it."""
        if self.cursor is None:
            self.cursor = await self.backend._run(_last_event)
        return str(self.cursor)

    async def read(self, timeout: float) -> list[TaskEvent]:
        await self.start()
        assert self.cursor is not None
        self._version, rows = await self.backend._run(_event_rows, self.cursor)
        if not rows:
            await self._wait_change(timeout)
            self._version, rows = await self.backend._run(_event_rows, self.cursor)
        if rows:
            self.cursor = int(rows[-1]["id"])
        return [TaskEvent.from_row(row) for row in rows]


def _last_event(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])


def _event_rows(conn: sqlite3.Connection, after: int) -> tuple[int, list[dict[str, Any]]]:
    """``(data_version, the events after ``after``)``: the version read first, so that a
    commit made after the read changes it."""
    version = _data_version(conn)
    cur = conn.execute(
        f"SELECT seq AS id, {_EVENT_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT 500",
        (after,),
    )
    return version, [dict(row) for row in cur.fetchall()]


def _final_rows(
    conn: sqlite3.Connection, ids: Sequence[str], now: float
) -> dict[str, dict[str, Any] | None]:
    """Of ``ids``, those final (their row) or gone, expired included (None)."""
    state: dict[str, bool] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for task_id, status, purge_at in conn.execute(
            f"SELECT id, status, purge_at FROM tasks WHERE id IN ({', '.join('?' for _ in chunk)})",
            chunk,
        ):
            gone = purge_at is not None and purge_at <= now
            state[task_id] = gone or status in _FINAL_NAMES
    out: dict[str, dict[str, Any] | None] = {i: None for i in ids if i not in state}
    done = [i for i, final in state.items() if final]
    for task_id, row in zip(done, _get_rows(conn, done, now), strict=True):
        out[task_id] = row
    return out


def _get_rows(
    conn: sqlite3.Connection, ids: Sequence[str], now: float
) -> list[dict[str, Any] | None]:
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 500):  # below SQLite's limit of host parameters
        chunk = ids[start : start + 500]
        for row in conn.execute(
            f"SELECT * FROM tasks WHERE id IN ({', '.join('?' for _ in chunk)}) "
            f"AND (purge_at IS NULL OR purge_at > ?)",
            (*chunk, now),
        ):
            found[row["id"]] = dict(row)
    return [found.get(task_id) for task_id in ids]


class _Failed:
    """The exception of one write of a batch (the others commit)."""

    __slots__ = ("exc",)

    def __init__(self, exc: Exception) -> None:
        self.exc = exc


def _apply_each(
    conn: sqlite3.Connection, ops: Sequence[Callable[[sqlite3.Connection], Any]]
) -> list[Any]:
    """Run each write in a savepoint of its own: one that raises is undone alone."""
    if len(ops) == 1:  # the transaction is the savepoint
        try:
            return [ops[0](conn)]
        except Exception as exc:
            conn.execute("ROLLBACK")
            conn.execute("BEGIN IMMEDIATE")
            return [_Failed(exc)]
    out: list[Any] = []
    for op in ops:
        conn.execute("SAVEPOINT op")
        try:
            out.append(op(conn))
        except Exception as exc:
            conn.execute("ROLLBACK TO op")
            out.append(_Failed(exc))
        conn.execute("RELEASE op")
    return out


def _data_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA data_version").fetchone()[0])


def _published_ttl(conn: sqlite3.Connection, name: str) -> float | None:
    row = conn.execute("SELECT meta FROM jobs WHERE name = ?", (name,)).fetchone()
    if row is None:
        return None
    try:
        value = json.loads(row[0]).get("result_ttl")
    except (ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, int | float) else None


def _purge_at(now: float, ttl: float) -> float | None:
    return now + ttl if ttl > 0 else None


def _recover(conn: sqlite3.Connection, rows: Sequence[Any], now: float, ttl: float) -> None:
    """Tasks ``(id, attempts, max_retries)`` whose worker died: queued again at once, or
    FAILURE ``'lost'`` once they used up their retries (a poison task)."""
    for task_id, attempts, max_retries in rows:
        if (attempts or 0) > (max_retries or 0):
            ended = conn.execute(
                "UPDATE tasks SET status = 'FAILURE', time_finished = ?, token = NULL, "
                "lease_expires = NULL, purge_at = ?, error = ? WHERE id = ? RETURNING dependents",
                (now, _purge_at(now, ttl), _lost_error(attempts), task_id),
            ).fetchone()
            if ended is not None and ended[0]:
                _deps.resolve(conn, [task_id], now, ttl)
        else:
            conn.execute(
                "UPDATE tasks SET status = 'QUEUED', token = NULL, worker = NULL, "
                "lease_expires = NULL, eta = ? WHERE id = ?",
                (now, task_id),
            )


def _add_columns(conn: sqlite3.Connection) -> None:
    """Migrate a database made by an older version: the task columns it lacks (``priority``,
    ``progress``, ``meta_json``...) are added, once, under the write lock (another process may
    be doing the same)."""
    if not {c for c in _COLUMNS} - {r[1] for r in conn.execute("PRAGMA table_info(tasks)")}:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        have = {r[1] for r in conn.execute("PRAGMA table_info(tasks)")}
        for column in _COLUMNS:
            if column not in have:
                kind = _COLUMN_TYPES.get(column, "")
                conn.execute(f"ALTER TABLE tasks ADD COLUMN {column} {kind}".rstrip())
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _claim_priorities(
    conn: sqlite3.Connection, queue: str, now: float, limit: int
) -> list[tuple[int, float, str]]:
    """Up to ``limit`` due tasks of ``queue`` with a priority above 0, as ``(-priority, eta,
    id)``, highest priority first, earliest due first within one: one probe of ``tasks_prio``
    per priority in use (a queue without any costs one probe that finds nothing)."""
    out: list[tuple[int, float, str]] = []
    below = MAX_PRIORITY + 1
    while len(out) < limit:
        top = conn.execute(_TOP_PRIORITY_SQL, (queue, below)).fetchone()[0]
        if top is None:
            break
        rows = conn.execute(_CLAIM_PRIORITY_SQL, (queue, top, now, limit - len(out)))
        out += [(-top, r[1], r[0]) for r in rows]
        below = top
    return out


def _rate_stamps(text: str | None) -> list[float]:
    try:
        stamps = json.loads(text) if text else []
    except ValueError:
        return []
    return [float(x) for x in stamps] if isinstance(stamps, list) else []


def _rate_wait(stamps: Sequence[float], limit: int, period: float, now: float) -> float:
    """0.0 when a start is allowed now (fewer than ``limit`` of the admission times
    ``stamps`` fall in the last ``period`` seconds), else the seconds until one is."""
    if len(stamps) < limit:
        return 0.0
    free_at = stamps[len(stamps) - limit] + period
    return 0.0 if free_at <= now else max(free_at - now, 0.001)


def _lost_error(attempts: int) -> str:
    return f"lost: the worker running it died or stopped answering ({attempts} attempts)"


def _token_base() -> str:
    return os.urandom(8).hex()
