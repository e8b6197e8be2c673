"""SQLite claims do not slow down with the backlog: every query of the claim path uses an
index, none sorts (``USE TEMP B-TREE``) or scans the table."""

from __future__ import annotations

import sqlite3
import time

from pulsar.apps import tasks
from pulsar.apps.tasks import _sqlite


def _plan(conn: sqlite3.Connection, sql: str, params: tuple) -> str:
    rows = conn.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
    return " | ".join(str(r[-1]) for r in rows)


async def test_claim_path_uses_indexes_and_never_sorts(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/plan.db"
    backend = tasks.create_backend(url)
    try:
        await backend.counts()  # creates the schema
    finally:
        await backend.close()
    conn = sqlite3.connect(str(tmp_path / "plan.db"))
    now = time.time()
    # a backlog, so the planner has statistics worth the name
    rows = [(f"t{i}", "add", "default", "QUEUED", now - i, None) for i in range(2000)]
    conn.executemany(
        "INSERT INTO tasks (id, name, queue, status, eta, expires) VALUES (?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.commit()
    conn.execute("ANALYZE")
    plans = {
        "claim": _plan(conn, _sqlite._CLAIM_SQL, ("default", now, 10)),
        "next": _plan(conn, _sqlite._NEXT_SQL, ("default",)),
        "expire": _plan(conn, _sqlite._EXPIRE_SQL.format(qmarks="?"), (now, now, now, "q", now)),
        "lost": _plan(
            conn,
            "SELECT id, attempts, max_retries FROM tasks WHERE status = 'STARTED' "
            "AND lease_expires < ?",
            (now,),
        ),
    }
    conn.close()
    expected = {
        "claim": "tasks_claim",
        "next": "tasks_claim",
        "expire": "tasks_expiring",
        "lost": "tasks_lease",
    }
    for name, plan in plans.items():
        assert expected[name] in plan, (name, plan)
        assert "TEMP B-TREE" not in plan, (name, plan)
        assert "USING" in plan and "INDEX" in plan, (name, plan)  # an index, not a scan
        assert plan.split("|")[0].strip().startswith("SEARCH"), (name, plan)
