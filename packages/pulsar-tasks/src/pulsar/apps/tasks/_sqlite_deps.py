"""``depends_on`` on SQLite: storing tasks that wait for others and resolving them.

How it works
------------
Both functions run inside the backend's ``BEGIN IMMEDIATE`` transaction (one writer at a time
for the whole database), so storing a dependent and ending its dependency never interleave:
:func:`store` adds the new task to each pending dependency's ``dependents`` (or counts a
SUCCESS one as met, or revokes the task at once for a failed one), and every write that ends a
task calls :func:`resolve` for the ended tasks that have dependents, in the same transaction.
A task's end is recorded once (token-keyed), so each dependency lowers ``waiting`` once: the
task reaching 0 is released once. See :mod:`._workflow` for the rules.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from ._errors import DuplicateTask
from ._state import Task, TaskState
from ._workflow import RECORD_INJECT, failed_reason, inject_payload

__all__ = ["resolve", "store"]

_FAILED = ("FAILURE", "REVOKED")


def _purge_at(now: float, ttl: float) -> float | None:
    return now + ttl if ttl > 0 else None


def store(
    conn: sqlite3.Connection, tasks: Sequence[Task], columns: Sequence[str], now: float, ttl: float
) -> None:
    """Insert ``tasks`` (see ``Backend.enqueue_flow``); raises before writing anything when an
    id is taken or a dependency is unknown (the caller's savepoint undoes the rest)."""
    batch = {t.id for t in tasks}
    seen: set[str] = set()
    for task in tasks:
        row = conn.execute(
            "SELECT 1 FROM tasks WHERE id = ? AND (purge_at IS NULL OR purge_at > ?)",
            (task.id, now),
        ).fetchone()
        if row is not None or task.id in seen:
            raise DuplicateTask(f"a task with id {task.id!r} exists already")
        for dep in task.depends_on:
            if dep in seen:
                continue
            if dep in batch:
                raise ValueError(f"depends_on: task {dep!r} must come before {task.id!r}")
            found = conn.execute(
                "SELECT 1 FROM tasks WHERE id = ? AND (purge_at IS NULL OR purge_at > ?)",
                (dep, now),
            ).fetchone()
            if found is None:
                raise ValueError(
                    f"depends_on: no task {dep!r} (unknown, or its record expired): queue "
                    f"the dependency first and pass its id"
                )
        seen.add(task.id)
    sql = f"INSERT INTO tasks ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
    for task in tasks:
        conn.execute("DELETE FROM tasks WHERE id = ?", (task.id,))  # an expired record
        deps = task.depends_on
        if not deps:
            conn.execute(sql, [task.to_row()[c] for c in columns])
            continue
        waiting = 0
        failed: tuple[str, Any, str, Any] | None = None
        for dep in deps:
            status, name, error, dependents = conn.execute(
                "SELECT status, name, error, dependents FROM tasks WHERE id = ?", (dep,)
            ).fetchone()
            if status == "SUCCESS":
                continue
            if status in _FAILED:
                failed = failed or (dep, name, status, error)
                continue
            waiting += 1
            listed = json.loads(dependents) if dependents else []
            listed.append(task.id)
            conn.execute("UPDATE tasks SET dependents = ? WHERE id = ?", (json.dumps(listed), dep))
        task.status, task.waiting = TaskState.DEFERRED, waiting
        conn.execute(sql, [task.to_row()[c] for c in columns])
        if failed is not None:
            _fail(conn, task.id, task.inject, failed_reason(*failed), now, ttl)
            resolve(conn, [task.id], now, ttl)
        elif waiting == 0 and _release(conn, task.id, now, ttl):  # a record: it ended
            resolve(conn, [task.id], now, ttl)


def resolve(conn: sqlite3.Connection, ids: Sequence[str], now: float, ttl: float) -> None:
    """The tasks ``ids`` just ended: release or revoke their DEFERRED dependents, and so on
    down the cascade."""
    stack = list(ids)
    while stack:
        task_id = stack.pop()
        row = conn.execute(
            "SELECT status, name, error, dependents FROM tasks WHERE id = ?", (task_id,)
        ).fetchone()
        if row is None or not row[3]:
            continue
        status, name, error, dependents = row
        for dep_id in json.loads(dependents):
            found = conn.execute(
                "SELECT status, waiting, inject FROM tasks WHERE id = ?", (dep_id,)
            ).fetchone()
            if found is None or found[0] != "DEFERRED":
                continue
            if status == "SUCCESS":
                left = (found[1] or 1) - 1
                if left > 0:
                    conn.execute("UPDATE tasks SET waiting = ? WHERE id = ?", (left, dep_id))
                elif _release(conn, dep_id, now, ttl):
                    stack.append(dep_id)
            elif status in _FAILED:
                _fail(conn, dep_id, found[2], failed_reason(task_id, name, status, error), now, ttl)
                stack.append(dep_id)


def _results(conn: sqlite3.Connection, task_id: str) -> list[str]:
    (depends,) = conn.execute("SELECT depends FROM tasks WHERE id = ?", (task_id,)).fetchone()
    out = []
    for dep in json.loads(depends or "[]"):
        row = conn.execute("SELECT result_json FROM tasks WHERE id = ?", (dep,)).fetchone()
        out.append(row[0] if row is not None and row[0] is not None else "null")
    return out


def _release(conn: sqlite3.Connection, task_id: str, now: float, ttl: float) -> bool:
    """The DEFERRED task's dependencies all succeeded: QUEUED with its injection, or (a
    workflow's record) SUCCESS with the collected result. True when it ended (a record)."""
    payload, inject, eta = conn.execute(
        "SELECT payload, inject, eta FROM tasks WHERE id = ?", (task_id,)
    ).fetchone()
    value = None
    if inject in ("arg", "result"):
        value = (_results(conn, task_id) or ["null"])[0]
    elif inject in ("list", "results"):
        value = "[" + ", ".join(_results(conn, task_id)) + "]"
    if inject in RECORD_INJECT:
        conn.execute(
            "UPDATE tasks SET status = 'SUCCESS', result_json = ?, waiting = 0, "
            "time_finished = ?, purge_at = ? WHERE id = ?",
            (value, now, _purge_at(now, ttl), task_id),
        )
        return True
    if value is not None:
        payload = inject_payload(payload, value)
    conn.execute(
        "UPDATE tasks SET status = 'QUEUED', payload = ?, waiting = 0, eta = ? WHERE id = ?",
        (payload, max(eta or 0.0, now), task_id),
    )
    return False


def _fail(
    conn: sqlite3.Connection, task_id: str, inject: str | None, reason: str, now: float, ttl: float
) -> None:
    status = "FAILURE" if inject in RECORD_INJECT else "REVOKED"
    conn.execute(
        "UPDATE tasks SET status = ?, error = ?, waiting = 0, time_finished = ?, purge_at = ? "
        "WHERE id = ?",
        (status, reason, now, _purge_at(now, ttl), task_id),
    )
