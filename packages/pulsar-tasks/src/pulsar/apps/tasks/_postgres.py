"""The PostgreSQL backend (psycopg 3's async API and psycopg_pool): for teams that run
PostgreSQL and no Redis.

How it works
------------
URL: ``postgresql://user:password@host:port/db`` (or ``postgres://``); everything lives in one
schema, ``pulsar_tasks`` or ``?schema=name``; ``?pool_size=N`` bounds each of the two
connection pools (default 8); other query parameters go to libpq.

* ``<schema>.tasks``: one row per task (the :class:`Task` fields, plus ``purge_at``, when the
  finished record expires, and ``reply_to``, the channel of the client that queued it);
  ``<schema>.jobs``: job descriptions; ``<schema>.meta``: the schema version;
  ``<schema>.events``: task events (schema version 5; 7: in causal order), written by the trigger
  ``task_events`` in the sessions of a backend recording them, ``NOTIFY <schema>:events`` (see
  _events.py).
* Claims run ``SELECT ... ORDER BY eta LIMIT n FOR UPDATE SKIP LOCKED`` per queue on the partial
  index ``tasks_ready (queue, eta) WHERE status IN ('QUEUED', 'RETRY')``, which serves exactly
  that order: two workers never wait for each other nor take the same task. The index keeps the
  entries of finished tasks until VACUUM, so a claim reads nothing before what is due: the next
  due time is looked up after now, and expired leases are recovered apart, at most every second
  (schema version 3). Multi-step changes
  (claim with lease recovery, revoke, release of a dead worker's tasks) are PL/pgSQL functions
  of the schema, so each is one round trip and one transaction; the others are one statement.
* An ``overlap=False`` key is a partial unique index (``overlap_key`` of pending and running
  tasks): two producers racing with the same arguments cannot both store a task.
* Wake-ups and replies are ``NOTIFY``: an enqueue notifies ``<schema>:work`` (payload: the
  queue); a task that ends notifies ``<schema>:done`` (payload: its id) and, when its producer
  asked for a reply, that producer's channel ``<schema>:r:<client>`` with ``"<id> <record as
  JSON>"`` (just the id when the record is over the 8000-byte payload limit). Each backend
  object has one listening connection (outside the pool), which LISTENs only on what it waits
  for: a worker on the work channel, a producer on its reply channel from its first wait (a
  task queued before that is read once after the LISTEN), other waiters on the done channel.
  Nothing polls on the hot path; waiters re-read their task once a second, and at once after
  the listening connection reconnected (notifications sent meanwhile are lost).
* The schema is created at the first use, or migrated, under an advisory lock; a schema newer
  than this code is refused with :class:`BackendError`.
* Durability: what a producer is told is stored (enqueue, revoke) is committed durably
  (``synchronous_commit`` as the server has it, ``on`` by default). What workers change
  (claims, lease renewals, completions, retries) goes through a second pool whose sessions
  commit asynchronously (``synchronous_commit=off``: no WAL flush wait, about one fsync less
  per change): a crash of the *database server* can undo its last fraction of a second of
  them, which only makes those tasks run again (at-least-once). A clean restart undoes
  nothing; a task accepted is never lost.
* Faults: the first connection fails fast (wrong URL, refused, unknown database:
  :class:`BackendError` in one line). Once connected, a statement that fails on a broken
  connection is retried (backing off, for up to ``retry_timeout`` seconds) on a fresh one, so
  producers and workers carry on across a database restart; an enqueue retried after its commit
  was lost with the connection is recognised (same id, same record) and not refused as a
  duplicate.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import logging
import os
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ._backend import Backend, Claim, decode_workers
from ._batch import Batcher
from ._errors import BackendError, DuplicateTask, JobOverlap
from ._events import EVENTS_KEPT, EventReader, TaskEvent
from ._state import FINAL, REQUEUEABLE, Task, TaskState

__all__ = ["SCHEMA_VERSION", "PostgresBackend"]

T = TypeVar("T")
logger = logging.getLogger("pulsar.tasks")

#: the version of the tables and functions this code creates (``<schema>.meta``)
SCHEMA_VERSION = 7
#: seconds between two recoveries of expired leases by one backend object (at most)
_RECOVER_EVERY = 1.0
#: seconds between a waiter's re-reads of its task (a notification lost to a reconnection)
_REREAD = 1.0
#: replies kept for tasks this client queued and nobody waits for yet (older ones: read back)
_REPLY_CACHE = 4096
#: tasks queued here whose reply is awaited on the reply channel
_EXPECTED = 65536
_CONNECT_DEFAULTS = (
    ("connect_timeout", "5"),
    ("keepalives", "1"),
    ("keepalives_idle", "30"),
    ("keepalives_interval", "10"),
    ("keepalives_count", "3"),
)
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,47}$")

_COLUMNS = (
    "id",
    "name",
    "queue",
    "status",
    "payload",
    "result_json",
    "error",
    "traceback",
    "attempts",
    "max_retries",
    "worker",
    "token",
    "time_queued",
    "time_started",
    "time_finished",
    "eta",
    "expires",
    "lease_expires",
    "revoke",
    "overlap_key",
    "priority",
    "progress",
    "meta_json",
    "workflow",
    "depends",
    "dependents",
    "waiting",
    "inject",
    "purge_at",
    "reply_to",
)
#: columns added by a later version than 1 (not in the version 1 DDL): the version adding each
_LATER_COLUMNS = {"priority": 4}
_TYPES = {
    "id": "text PRIMARY KEY",
    "name": "text",
    "queue": "text NOT NULL DEFAULT 'default'",
    "status": "text NOT NULL DEFAULT 'QUEUED'",
    "payload": "text",
    "attempts": "integer NOT NULL DEFAULT 0",
    "max_retries": "integer NOT NULL DEFAULT 0",
    "revoke": "integer NOT NULL DEFAULT 0",
    "eta": "double precision NOT NULL DEFAULT 0",
    "priority": "integer NOT NULL DEFAULT 0",
    "waiting": "integer",
}
_FLOATS = (
    "time_queued",
    "time_started",
    "time_finished",
    "expires",
    "lease_expires",
    "purge_at",
    "progress",
)
_TASK_COLUMNS = _COLUMNS[:-2]  # what Task.to_row() gives


def _schema_v1(s: str, work: str, done: str) -> str:
    """The DDL of version 1 (``s``: the quoted schema; channels as SQL literals)."""
    cols = ",\n    ".join(
        f"{c} {_TYPES.get(c, 'double precision' if c in _FLOATS else 'text')}"
        for c in _COLUMNS
        if c not in _LATER_COLUMNS
    )
    purge = "CASE WHEN p_ttl > 0 THEN p_now + p_ttl END"
    return f"""
CREATE TABLE {s}.tasks (
    {cols}
);
-- the claim order: per queue, the earliest due first, among pending tasks only
CREATE INDEX tasks_ready ON {s}.tasks (queue, eta) WHERE status IN ('QUEUED', 'RETRY');
CREATE INDEX tasks_lease ON {s}.tasks (lease_expires) WHERE status = 'STARTED';
CREATE INDEX tasks_queued ON {s}.tasks (time_queued);
CREATE INDEX tasks_purge ON {s}.tasks (purge_at) WHERE purge_at IS NOT NULL;
-- overlap=False: one pending or running task per key
CREATE UNIQUE INDEX tasks_overlap ON {s}.tasks (overlap_key)
    WHERE overlap_key IS NOT NULL AND status IN ('QUEUED', 'RETRY', 'STARTED');
CREATE TABLE {s}.jobs (name text PRIMARY KEY, meta text NOT NULL);

-- a task ended: its waiters and the client that queued it are told
CREATE FUNCTION {s}.final(p_id text, p_reply text, p_rec json) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    msg text;
BEGIN
    PERFORM pg_notify({done}, p_id);
    IF p_reply IS NOT NULL THEN
        msg := p_id || ' ' || p_rec::text;
        IF octet_length(msg) >= 7900 THEN
            msg := p_id;  -- over the payload limit: the client reads the record
        END IF;
        PERFORM pg_notify(p_reply, msg);
    END IF;
END $$;

-- STARTED tasks whose worker died: queued again, or FAILURE 'lost' once out of retries
CREATE FUNCTION {s}.recover(p_ids text[], p_now double precision, p_ttl double precision)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    rec record;
    n integer := 0;
BEGIN
    IF p_ids IS NULL OR cardinality(p_ids) = 0 THEN
        RETURN 0;
    END IF;
    FOR rec IN
        UPDATE {s}.tasks SET status = 'FAILURE', time_finished = p_now, token = NULL,
            lease_expires = NULL, purge_at = {purge},
            error = 'lost: the worker running it died or stopped answering ('
                || attempts || ' attempts)'
        WHERE id = ANY(p_ids) AND status = 'STARTED' AND attempts > max_retries
        RETURNING *
    LOOP
        PERFORM {s}.final(rec.id, rec.reply_to, row_to_json(rec));
        n := n + 1;
    END LOOP;
    FOR rec IN
        WITH up AS (
            UPDATE {s}.tasks SET status = 'QUEUED', token = NULL, worker = NULL,
                lease_expires = NULL, eta = p_now
            WHERE id = ANY(p_ids) AND status = 'STARTED'
            RETURNING queue
        )
        SELECT queue, count(*) AS c FROM up GROUP BY queue
    LOOP
        PERFORM pg_notify({work}, rec.queue);
        n := n + rec.c;
    END LOOP;
    RETURN n;
END $$;

-- take up to p_limit due tasks of p_queues (after recovering expired leases); pending tasks
-- past their expiry are revoked instead; returns {{"tasks": [...], "next": earliest eta}}
CREATE FUNCTION {s}.claim(
    p_queues text[], p_worker text, p_lease double precision, p_limit integer,
    p_now double precision, p_token text, p_ttl double precision
) RETURNS json LANGUAGE plpgsql AS $$
DECLARE
    q text;
    ids text[];
    rec record;
    out json[] := '{{}}';
    nxt double precision;
    e double precision;
BEGIN
    PERFORM {s}.recover(ARRAY(
        SELECT id FROM {s}.tasks WHERE status = 'STARTED' AND lease_expires < p_now
        ORDER BY lease_expires LIMIT 1000 FOR UPDATE SKIP LOCKED), p_now, p_ttl);
    FOREACH q IN ARRAY p_queues LOOP
        IF cardinality(out) < p_limit THEN
            ids := ARRAY(
                SELECT id FROM {s}.tasks
                WHERE status IN ('QUEUED', 'RETRY') AND queue = q AND eta <= p_now
                ORDER BY eta LIMIT p_limit - cardinality(out) FOR UPDATE SKIP LOCKED);
            IF cardinality(ids) > 0 THEN
                FOR rec IN
                    UPDATE {s}.tasks SET status = 'REVOKED', error = 'expired',
                        time_finished = p_now, token = NULL, purge_at = {purge}
                    WHERE id = ANY(ids) AND expires < p_now
                    RETURNING *
                LOOP
                    PERFORM {s}.final(rec.id, rec.reply_to, row_to_json(rec));
                END LOOP;
                FOR rec IN
                    UPDATE {s}.tasks SET status = 'STARTED', attempts = attempts + 1,
                        worker = p_worker, token = p_token || ':' || (attempts + 1),
                        time_started = p_now, lease_expires = p_now + p_lease, revoke = 0
                    WHERE id = ANY(ids) AND status IN ('QUEUED', 'RETRY')
                    RETURNING *
                LOOP
                    out := out || row_to_json(rec);
                END LOOP;
            END IF;
        END IF;
        SELECT eta INTO e FROM {s}.tasks WHERE status IN ('QUEUED', 'RETRY') AND queue = q
            ORDER BY eta LIMIT 1;
        IF e IS NOT NULL AND (nxt IS NULL OR e < nxt) THEN
            nxt := e;
        END IF;
    END LOOP;
    RETURN json_build_object('tasks', array_to_json(out), 'next', nxt);
END $$;

CREATE FUNCTION {s}.release_worker(
    p_worker text, p_now double precision, p_ttl double precision
) RETURNS integer LANGUAGE sql AS $$
    SELECT {s}.recover(ARRAY(
        SELECT id FROM {s}.tasks WHERE status = 'STARTED' AND worker = p_worker
        FOR UPDATE SKIP LOCKED), p_now, p_ttl)
$$;

CREATE FUNCTION {s}.revoke(p_id text, p_now double precision, p_ttl double precision)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    rec record;
    kept double precision;
BEGIN
    SELECT status, name INTO rec FROM {s}.tasks
        WHERE id = p_id AND (purge_at IS NULL OR purge_at > p_now) FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF rec.status IN ('QUEUED', 'RETRY') THEN
        -- kept for the TTL the job's workers published (else the caller's)
        SELECT (meta::json ->> 'result_ttl')::double precision INTO kept
            FROM {s}.jobs WHERE name = rec.name;
        IF kept IS NOT NULL THEN
            p_ttl := kept;
        END IF;
        UPDATE {s}.tasks SET status = 'REVOKED', error = 'revoked', time_finished = p_now,
            token = NULL, lease_expires = NULL, purge_at = {purge}
        WHERE id = p_id RETURNING * INTO rec;
        PERFORM {s}.final(rec.id, rec.reply_to, row_to_json(rec));
        RETURN 'REVOKED';
    END IF;
    IF rec.status = 'STARTED' THEN
        UPDATE {s}.tasks SET revoke = 1 WHERE id = p_id;
    END IF;
    RETURN rec.status;
END $$;
"""


def _schema_v2(s: str, work: str, done: str) -> str:
    """Version 2: the operators' commands (worker heartbeats, purge of a queue, requeue)."""
    purge = "CASE WHEN kept > 0 THEN p_now + kept END"
    return f"""
CREATE TABLE {s}.workers (
    id text PRIMARY KEY,
    info text NOT NULL,
    expires double precision NOT NULL
);

-- every QUEUED/RETRY task of p_queue becomes REVOKED 'purged', kept for the TTL its job's
-- workers published (else p_ttl); running tasks are left alone
CREATE FUNCTION {s}.purge_queue(p_queue text, p_now double precision, p_ttl double precision)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    rec record;
    n integer := 0;
BEGIN
    FOR rec IN
        WITH ttl AS (
            SELECT t.id, COALESCE((
                SELECT (j.meta::json ->> 'result_ttl')::double precision
                FROM {s}.jobs j WHERE j.name = t.name), p_ttl) AS kept
            FROM {s}.tasks t WHERE t.status IN ('QUEUED', 'RETRY') AND t.queue = p_queue
        )
        UPDATE {s}.tasks t SET status = 'REVOKED', error = 'purged', time_finished = p_now,
            token = NULL, lease_expires = NULL, purge_at = {purge}
        FROM ttl WHERE t.id = ttl.id AND t.status IN ('QUEUED', 'RETRY')
        RETURNING t.*
    LOOP
        PERFORM {s}.final(rec.id, rec.reply_to, row_to_json(rec));
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;

-- a FAILURE/REVOKED task queued again as new (attempts 0, outcome cleared); returns the state
-- it was in (unchanged unless FAILURE or REVOKED), NULL when there is no such task
CREATE FUNCTION {s}.requeue(p_id text, p_now double precision)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    rec record;
BEGIN
    SELECT status, queue INTO rec FROM {s}.tasks
        WHERE id = p_id AND (purge_at IS NULL OR purge_at > p_now) FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF rec.status NOT IN ('FAILURE', 'REVOKED') THEN
        RETURN rec.status;
    END IF;
    UPDATE {s}.tasks SET status = 'QUEUED', attempts = 0, result_json = NULL, error = NULL,
        traceback = NULL, worker = NULL, token = NULL, time_queued = p_now,
        time_started = NULL, time_finished = NULL, eta = p_now, expires = NULL,
        lease_expires = NULL, revoke = 0, purge_at = NULL, reply_to = NULL
    WHERE id = p_id;
    PERFORM pg_notify({work}, rec.queue);
    RETURN rec.status;
END $$;
"""


def _schema_v3(s: str, work: str, done: str) -> str:
    """Version 3: a claim that reads only what is due. Until VACUUM, the index entries of
    every task that has left QUEUED or STARTED stay in ``tasks_ready`` and ``tasks_lease``; a
    claim that recovered expired leases and looked up the next due time in the whole index
    read them all (0.2-0.3 ms a claim after 10,000 tasks, measured). The next due time is now
    looked up after ``p_now`` only (the earlier ones were just claimed, or are being claimed
    by another worker), and expired leases are recovered by ``recover_expired``, which the
    backend calls at most every second instead of in every claim."""
    purge = "CASE WHEN p_ttl > 0 THEN p_now + p_ttl END"
    return f"""
CREATE FUNCTION {s}.recover_expired(p_now double precision, p_ttl double precision)
RETURNS integer LANGUAGE sql AS $$
    SELECT {s}.recover(ARRAY(
        SELECT id FROM {s}.tasks WHERE status = 'STARTED' AND lease_expires < p_now
        ORDER BY lease_expires LIMIT 1000 FOR UPDATE SKIP LOCKED), p_now, p_ttl)
$$;

CREATE OR REPLACE FUNCTION {s}.claim(
    p_queues text[], p_worker text, p_lease double precision, p_limit integer,
    p_now double precision, p_token text, p_ttl double precision
) RETURNS json LANGUAGE plpgsql AS $$
DECLARE
    q text;
    ids text[];
    rec record;
    out json[] := '{{}}';
    nxt double precision;
    e double precision;
BEGIN
    FOREACH q IN ARRAY p_queues LOOP
        IF cardinality(out) < p_limit THEN
            ids := ARRAY(
                SELECT id FROM {s}.tasks
                WHERE status IN ('QUEUED', 'RETRY') AND queue = q AND eta <= p_now
                ORDER BY eta LIMIT p_limit - cardinality(out) FOR UPDATE SKIP LOCKED);
            IF cardinality(ids) > 0 THEN
                FOR rec IN
                    UPDATE {s}.tasks SET status = 'REVOKED', error = 'expired',
                        time_finished = p_now, token = NULL, purge_at = {purge}
                    WHERE id = ANY(ids) AND expires < p_now
                    RETURNING *
                LOOP
                    PERFORM {s}.final(rec.id, rec.reply_to, row_to_json(rec));
                END LOOP;
                FOR rec IN
                    UPDATE {s}.tasks SET status = 'STARTED', attempts = attempts + 1,
                        worker = p_worker, token = p_token || ':' || (attempts + 1),
                        time_started = p_now, lease_expires = p_now + p_lease, revoke = 0
                    WHERE id = ANY(ids) AND status IN ('QUEUED', 'RETRY')
                    RETURNING *
                LOOP
                    out := out || row_to_json(rec);
                END LOOP;
            END IF;
        END IF;
        SELECT eta INTO e FROM {s}.tasks WHERE status IN ('QUEUED', 'RETRY') AND queue = q
            AND eta > p_now ORDER BY eta LIMIT 1;
        IF e IS NOT NULL AND (nxt IS NULL OR e < nxt) THEN
            nxt := e;
        END IF;
    END LOOP;
    RETURN json_build_object('tasks', array_to_json(out), 'next', nxt);
END $$;
"""


def _schema_v4(s: str, work: str, done: str) -> str:
    """Version 4: priorities and rate limits (see :mod:`._schedule`). ``priority`` (0 for
    every existing task); the pending tasks of a priority above 0 in a partial index of their
    own, ``tasks_prio (queue, priority, eta)``, so that priority-0 tasks cost what they did;
    the claim takes, per queue, the due tasks of each priority in use from the highest (one
    probe of that index each, found by a skip scan), then the rest from ``tasks_ready`` as
    before; ``rate_limits``: per key, the times of the last N admissions, changed by
    ``rate_acquire`` under the row's lock with the database's clock."""
    purge = "CASE WHEN p_ttl > 0 THEN p_now + p_ttl END"
    return f"""
ALTER TABLE {s}.tasks ADD COLUMN IF NOT EXISTS priority integer NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS tasks_prio ON {s}.tasks (queue, priority, eta)
    WHERE status IN ('QUEUED', 'RETRY') AND priority > 0;
CREATE TABLE IF NOT EXISTS {s}.rate_limits (
    key text PRIMARY KEY,
    stamps double precision[] NOT NULL
);

-- 0 when a start of p_key is admitted (counted), else the seconds until one may be: at most
-- p_limit admissions in any p_period seconds
CREATE OR REPLACE FUNCTION {s}.rate_acquire(
    p_key text, p_limit integer, p_period double precision
) RETURNS double precision LANGUAGE plpgsql AS $$
DECLARE
    now_ double precision := extract(epoch from clock_timestamp());
    st double precision[];
    n integer;
    free_at double precision;
BEGIN
    INSERT INTO {s}.rate_limits (key, stamps) VALUES (p_key, '{{}}')
        ON CONFLICT (key) DO NOTHING;
    SELECT stamps INTO st FROM {s}.rate_limits WHERE key = p_key FOR UPDATE;
    n := coalesce(cardinality(st), 0);
    IF n >= p_limit THEN
        free_at := st[n - p_limit + 1] + p_period;
        IF free_at > now_ THEN
            RETURN greatest(free_at - now_, 0.001);
        END IF;
    END IF;
    st := st || now_;
    n := n + 1;
    IF n > p_limit THEN
        st := st[n - p_limit + 1 : n];
    END IF;
    UPDATE {s}.rate_limits SET stamps = st WHERE key = p_key;
    RETURN 0;
END $$;

CREATE OR REPLACE FUNCTION {s}.claim(
    p_queues text[], p_worker text, p_lease double precision, p_limit integer,
    p_now double precision, p_token text, p_ttl double precision
) RETURNS json LANGUAGE plpgsql AS $$
DECLARE
    q text;
    ids text[];
    more text[];
    pr integer;
    rec record;
    out json[] := '{{}}';
    nxt double precision;
    e double precision;
BEGIN
    FOREACH q IN ARRAY p_queues LOOP
        IF cardinality(out) < p_limit THEN
            ids := '{{}}';
            -- priorities above 0, highest first (a queue without any: one empty probe)
            pr := 10;
            LOOP
                SELECT max(priority) INTO pr FROM {s}.tasks
                    WHERE status IN ('QUEUED', 'RETRY') AND priority > 0 AND queue = q
                    AND priority < pr;
                EXIT WHEN pr IS NULL
                    OR cardinality(out) + cardinality(ids) >= p_limit;
                ids := ids || ARRAY(
                    SELECT id FROM {s}.tasks
                    WHERE status IN ('QUEUED', 'RETRY') AND priority > 0 AND queue = q
                    AND priority = pr AND eta <= p_now
                    ORDER BY eta LIMIT p_limit - cardinality(out) - cardinality(ids)
                    FOR UPDATE SKIP LOCKED);
            END LOOP;
            IF cardinality(out) + cardinality(ids) < p_limit THEN
                more := ARRAY(
                    SELECT id FROM {s}.tasks
                    WHERE status IN ('QUEUED', 'RETRY') AND queue = q AND eta <= p_now
                    AND NOT (id = ANY(ids))
                    ORDER BY eta LIMIT p_limit - cardinality(out) - cardinality(ids)
                    FOR UPDATE SKIP LOCKED);
                ids := ids || more;
            END IF;
            IF cardinality(ids) > 0 THEN
                FOR rec IN
                    UPDATE {s}.tasks SET status = 'REVOKED', error = 'expired',
                        time_finished = p_now, token = NULL, purge_at = {purge}
                    WHERE id = ANY(ids) AND expires < p_now
                    RETURNING *
                LOOP
                    PERFORM {s}.final(rec.id, rec.reply_to, row_to_json(rec));
                END LOOP;
                FOR rec IN
                    WITH up AS (
                        UPDATE {s}.tasks SET status = 'STARTED', attempts = attempts + 1,
                            worker = p_worker, token = p_token || ':' || (attempts + 1),
                            time_started = p_now, lease_expires = p_now + p_lease, revoke = 0
                        WHERE id = ANY(ids) AND status IN ('QUEUED', 'RETRY')
                        RETURNING *
                    )
                    SELECT * FROM up ORDER BY priority DESC, eta
                LOOP
                    out := out || row_to_json(rec);
                END LOOP;
            END IF;
        END IF;
        SELECT eta INTO e FROM {s}.tasks WHERE status IN ('QUEUED', 'RETRY') AND queue = q
            AND eta > p_now ORDER BY eta LIMIT 1;
        IF e IS NOT NULL AND (nxt IS NULL OR e < nxt) THEN
            nxt := e;
        END IF;
    END LOOP;
    RETURN json_build_object('tasks', array_to_json(out), 'next', nxt);
END $$;
"""


def _schema_flows(s: str, work: str, done: str) -> str:
    """Version 6: ``depends_on`` and workflows (see ``_workflow``). Five nullable columns;
    ``final`` (called by every statement that ends a task) resolves the dependents of a task
    that has some, in the same transaction: each dependent's row is locked (``FOR UPDATE``)
    before its ``waiting`` is counted down, so two members ending at once release their
    callback once (the second waits for the first's commit and sees its count). A revoke
    also ends DEFERRED tasks; ``enqueue_flow`` stores a workflow in one call."""
    purge = "CASE WHEN p_ttl > 0 THEN p_now + p_ttl END"
    return f"""
ALTER TABLE {s}.tasks ADD COLUMN IF NOT EXISTS workflow text,
    ADD COLUMN IF NOT EXISTS depends text, ADD COLUMN IF NOT EXISTS dependents text,
    ADD COLUMN IF NOT EXISTS waiting integer, ADD COLUMN IF NOT EXISTS inject text;

-- the error of a task revoked because p_id ended p_status (the first failure is kept along
-- a cascade)
CREATE FUNCTION {s}.dep_reason(p_id text, p_name text, p_status text, p_error text)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN left(p_error, 11) = 'dependency ' THEN p_error
        ELSE 'dependency ' || COALESCE(NULLIF(p_name, ''), '?') || '[' || p_id || '] '
            || p_status || CASE WHEN COALESCE(p_error, '') <> '' THEN ': ' || p_error ELSE ''
            END END
$$;

-- p_payload with the JSON text p_value as its first positional argument
CREATE FUNCTION {s}.dep_inject(p_payload text, p_value text)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN left(p_payload, 10) <> '{{"args": [' THEN jsonb_set(p_payload::jsonb, '{{args}}',
            jsonb_build_array(p_value::jsonb) || COALESCE(p_payload::jsonb -> 'args', '[]'))::text
        WHEN substr(p_payload, 11, 1) = ']' THEN '{{"args": [' || p_value || substr(p_payload, 11)
        ELSE '{{"args": [' || p_value || ', ' || substr(p_payload, 11) END
$$;

-- a task ended: its waiters and the client that queued it are told (``final`` without the
-- dependents, which dep_resolve handles itself)
CREATE FUNCTION {s}.final_notify(p_id text, p_reply text, p_rec json) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    msg text;
BEGIN
    PERFORM pg_notify({done}, p_id);
    IF p_reply IS NOT NULL THEN
        msg := p_id || ' ' || p_rec::text;
        IF octet_length(msg) >= 7900 THEN
            msg := p_id;  -- over the payload limit: the client reads the record
        END IF;
        PERFORM pg_notify(p_reply, msg);
    END IF;
END $$;

-- a DEFERRED task whose dependency failed: REVOKED (a workflow's record: FAILURE); true when
-- it ended (its own dependents are then the caller's to resolve)
CREATE FUNCTION {s}.dep_fail(
    p_id text, p_why text, p_now double precision, p_ttl double precision
) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_rec record;
BEGIN
    UPDATE {s}.tasks SET status = CASE WHEN inject IN ('result', 'results') THEN 'FAILURE'
            ELSE 'REVOKED' END,
        error = p_why, waiting = 0, time_finished = p_now, purge_at = {purge}
    WHERE id = p_id AND status = 'DEFERRED' RETURNING * INTO v_rec;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM {s}.final_notify(v_rec.id, v_rec.reply_to, row_to_json(v_rec));
    RETURN true;
END $$;

-- a DEFERRED task whose dependencies all succeeded: QUEUED with the results it asked for, or
-- (a workflow's record) SUCCESS with them; true when it ended (a record)
CREATE FUNCTION {s}.dep_release(p_id text, p_now double precision, p_ttl double precision)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_task record;
    v_parts text[];
    v_value text;
BEGIN
    SELECT inject, depends, queue INTO v_task FROM {s}.tasks
        WHERE id = p_id AND status = 'DEFERRED';
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF v_task.inject IS NOT NULL THEN
        SELECT array_agg(COALESCE(x.result_json, 'null') ORDER BY e.ord) INTO v_parts
            FROM json_array_elements_text(COALESCE(v_task.depends, '[]')::json)
                WITH ORDINALITY AS e(dep, ord)
            LEFT JOIN {s}.tasks x ON x.id = e.dep;
        IF v_task.inject IN ('arg', 'result') THEN
            v_value := COALESCE(v_parts[1], 'null');
        ELSE
            v_value := '[' || COALESCE(array_to_string(v_parts, ', '), '') || ']';
        END IF;
    END IF;
    IF v_task.inject IN ('result', 'results') THEN
        UPDATE {s}.tasks SET status = 'SUCCESS', result_json = v_value, waiting = 0,
            time_finished = p_now, purge_at = {purge}
        WHERE id = p_id RETURNING * INTO v_task;
        PERFORM {s}.final_notify(v_task.id, v_task.reply_to, row_to_json(v_task));
        RETURN true;
    END IF;
    UPDATE {s}.tasks SET status = 'QUEUED', waiting = 0, eta = GREATEST(eta, p_now),
        payload = CASE WHEN v_value IS NULL THEN payload
            ELSE {s}.dep_inject(payload, v_value) END
    WHERE id = p_id;
    PERFORM pg_notify({work}, v_task.queue);
    RETURN false;
END $$;

-- the task p_id ended: count down its DEFERRED dependents (each row locked first: exactly
-- one of two concurrent last completions sees 0) and release them, or revoke them; those
-- that end in turn go on a work list (no recursion: a cascade of any length fits the stack)
CREATE FUNCTION {s}.dep_resolve(p_id text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_todo text[] := ARRAY[p_id];
    v_id text;
    v_task record;
    v_dep text;
    v_status text;
    v_left integer;
    v_now double precision;
    v_ttl double precision;
BEGIN
    WHILE cardinality(v_todo) > 0 LOOP
        v_id := v_todo[cardinality(v_todo)];
        v_todo := v_todo[1:cardinality(v_todo) - 1];
        SELECT status, name, error, dependents, time_finished, purge_at INTO v_task
            FROM {s}.tasks WHERE id = v_id;
        IF NOT FOUND OR v_task.dependents IS NULL THEN
            CONTINUE;
        END IF;
        v_now := COALESCE(v_task.time_finished, extract(epoch FROM clock_timestamp()));
        v_ttl := COALESCE(v_task.purge_at - v_task.time_finished, 0);
        FOR v_dep IN SELECT json_array_elements_text(v_task.dependents::json) LOOP
            SELECT status INTO v_status FROM {s}.tasks WHERE id = v_dep FOR UPDATE;
            IF NOT FOUND OR v_status <> 'DEFERRED' THEN
                CONTINUE;
            END IF;
            IF v_task.status = 'SUCCESS' THEN
                UPDATE {s}.tasks SET waiting = COALESCE(waiting, 1) - 1 WHERE id = v_dep
                    RETURNING waiting INTO v_left;
                IF v_left <= 0 AND {s}.dep_release(v_dep, v_now, v_ttl) THEN
                    v_todo := v_todo || v_dep;
                END IF;
            ELSIF v_task.status IN ('FAILURE', 'REVOKED') THEN
                IF {s}.dep_fail(v_dep, {s}.dep_reason(v_id, v_task.name, v_task.status,
                        v_task.error), v_now, v_ttl) THEN
                    v_todo := v_todo || v_dep;
                END IF;
            END IF;
        END LOOP;
    END LOOP;
END $$;

-- every statement that ends a task calls this: its waiters are told, its dependents resolved
CREATE OR REPLACE FUNCTION {s}.final(p_id text, p_reply text, p_rec json) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM {s}.final_notify(p_id, p_reply, p_rec);
    IF p_rec IS NOT NULL AND p_rec ->> 'dependents' IS NOT NULL THEN
        PERFORM {s}.dep_resolve(p_id);
    END IF;
END $$;

CREATE OR REPLACE FUNCTION {s}.revoke(p_id text, p_now double precision, p_ttl double precision)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    rec record;
    kept double precision;
BEGIN
    SELECT status, name INTO rec FROM {s}.tasks
        WHERE id = p_id AND (purge_at IS NULL OR purge_at > p_now) FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF rec.status IN ('QUEUED', 'RETRY', 'DEFERRED') THEN
        -- kept for the TTL the job's workers published (else the caller's)
        SELECT (meta::json ->> 'result_ttl')::double precision INTO kept
            FROM {s}.jobs WHERE name = rec.name;
        IF kept IS NOT NULL THEN
            p_ttl := kept;
        END IF;
        UPDATE {s}.tasks SET status = 'REVOKED', error = 'revoked', time_finished = p_now,
            token = NULL, lease_expires = NULL, purge_at = {purge}
        WHERE id = p_id RETURNING * INTO rec;
        PERFORM {s}.final(rec.id, rec.reply_to, row_to_json(rec));
        RETURN 'REVOKED';
    END IF;
    IF rec.status = 'STARTED' THEN
        UPDATE {s}.tasks SET revoke = 1 WHERE id = p_id;
    END IF;
    RETURN rec.status;
END $$;

-- store tasks that may depend on others, all or nothing (see Backend.enqueue_flow): returns
-- {{ok}}, {{duplicate,<id>}} or {{unknown,<dependency id>}} (then nothing is stored)
CREATE FUNCTION {s}.enqueue_flow(p_items json, p_now double precision, p_ttl double precision)
RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    v_item json;
    v_dep text;
    v_rec record;
    v_waiting integer;
    v_failed text;
    v_ids text[] := '{{}}';
BEGIN
    FOR v_item IN SELECT * FROM json_array_elements(p_items) LOOP
        IF (v_item ->> 'id') = ANY(v_ids) OR EXISTS (SELECT 1 FROM {s}.tasks
                WHERE id = v_item ->> 'id' AND (purge_at IS NULL OR purge_at > p_now)) THEN
            RETURN ARRAY['duplicate', v_item ->> 'id'];
        END IF;
        FOR v_dep IN SELECT json_array_elements_text(COALESCE(v_item ->> 'depends', '[]')::json)
        LOOP
            IF NOT v_dep = ANY(v_ids) AND NOT EXISTS (SELECT 1 FROM {s}.tasks
                    WHERE id = v_dep AND (purge_at IS NULL OR purge_at > p_now)) THEN
                RETURN ARRAY['unknown', v_dep];
            END IF;
        END LOOP;
        v_ids := v_ids || (v_item ->> 'id');
    END LOOP;
    FOR v_item IN SELECT * FROM json_array_elements(p_items) LOOP
        DELETE FROM {s}.tasks WHERE id = v_item ->> 'id';  -- an expired record
        v_waiting := 0;
        v_failed := NULL;
        FOR v_dep IN SELECT json_array_elements_text(COALESCE(v_item ->> 'depends', '[]')::json)
        LOOP
            SELECT status, name, error INTO v_rec FROM {s}.tasks WHERE id = v_dep FOR UPDATE;
            IF v_rec.status IN ('FAILURE', 'REVOKED') THEN
                v_failed := COALESCE(v_failed,
                    {s}.dep_reason(v_dep, v_rec.name, v_rec.status, v_rec.error));
            ELSIF v_rec.status <> 'SUCCESS' THEN
                v_waiting := v_waiting + 1;
                UPDATE {s}.tasks SET dependents = (COALESCE(dependents::jsonb, '[]'::jsonb)
                    || to_jsonb(v_item ->> 'id'))::text WHERE id = v_dep;
            END IF;
        END LOOP;
        INSERT INTO {s}.tasks SELECT * FROM json_populate_record(NULL::{s}.tasks, v_item);
        IF v_item ->> 'depends' IS NULL THEN
            PERFORM pg_notify({work}, v_item ->> 'queue');
        ELSE
            UPDATE {s}.tasks SET status = 'DEFERRED', waiting = v_waiting
                WHERE id = v_item ->> 'id';
            IF v_failed IS NOT NULL THEN
                IF {s}.dep_fail(v_item ->> 'id', v_failed, p_now, p_ttl) THEN
                    PERFORM {s}.dep_resolve(v_item ->> 'id');
                END IF;
            ELSIF v_waiting = 0 AND {s}.dep_release(v_item ->> 'id', p_now, p_ttl) THEN
                PERFORM {s}.dep_resolve(v_item ->> 'id');
            END IF;
        END IF;
    END LOOP;
    RETURN ARRAY['ok'];
END $$;
"""


_EVENT_COLUMNS = (
    "time, kind, task_id, name, queue, worker, attempts, progress, meta_json, error, reason"
)


def _schema_events(s: str, work: str, done: str) -> str:
    """Progress and events (issue 17): the ``progress`` and ``meta_json`` columns, the capped
    ``events`` table and the trigger writing it (see _events.py). The trigger runs only in the
    sessions of a backend recording events (``pulsar_tasks.events`` set to ``on``); in others
    its ``WHEN`` reads that setting and nothing more happens."""
    return f"""
ALTER TABLE {s}.tasks ADD COLUMN IF NOT EXISTS progress double precision,
    ADD COLUMN IF NOT EXISTS meta_json text;
CREATE TABLE {s}.events (
    seq bigserial PRIMARY KEY,
    time double precision NOT NULL,
    kind text NOT NULL,
    task_id text NOT NULL,
    name text,
    queue text,
    worker text,
    attempts integer,
    progress double precision,
    meta_json text,
    error text,
    reason text
);

CREATE FUNCTION {s}.task_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    k text;
    why text;
    err text;
    prog double precision;
    meta text;
    n bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        k := 'queued';
    ELSIF NEW.status IS NOT DISTINCT FROM OLD.status THEN
        IF NEW.status <> 'STARTED' OR (NEW.progress IS NOT DISTINCT FROM OLD.progress
                AND NEW.meta_json IS NOT DISTINCT FROM OLD.meta_json) THEN
            RETURN NULL;
        END IF;
        k := 'progress';
        prog := NEW.progress;
        meta := NEW.meta_json;
    ELSIF NEW.status = 'STARTED' THEN
        k := 'started';
    ELSIF NEW.status = 'SUCCESS' THEN
        k := 'succeeded';
    ELSIF NEW.status = 'FAILURE' THEN
        k := 'failed';
        err := NEW.error;
        IF NEW.error LIKE 'lost%' THEN
            why := 'lost';
        ELSIF NEW.error = 'timeout' THEN
            why := 'timeout';
        END IF;
    ELSIF NEW.status = 'RETRY' THEN
        k := 'retried';
        err := NEW.error;
    ELSIF NEW.status = 'REVOKED' THEN
        k := 'revoked';
        why := NEW.error;
    ELSIF OLD.status = 'STARTED' AND NEW.attempts >= OLD.attempts THEN
        k := 'retried';
        why := 'lost';
    ELSIF OLD.status = 'STARTED' THEN
        k := 'queued';
        why := 'released';
    ELSE
        k := 'queued';
        IF OLD.status IN ('FAILURE', 'REVOKED') THEN
            why := 'requeued';
        END IF;
    END IF;
    INSERT INTO {s}.events ({_EVENT_COLUMNS})
    VALUES (extract(epoch FROM clock_timestamp()), k, NEW.id, NEW.name, NEW.queue,
        CASE WHEN why IN ('lost', 'released') AND k <> 'failed' THEN OLD.worker
            ELSE NEW.worker END,
        NEW.attempts,
        prog, meta, err, why)
    RETURNING seq INTO n;
    IF n % 1000 = 0 THEN
        DELETE FROM {s}.events WHERE seq <= n - {EVENTS_KEPT};
    END IF;
    PERFORM pg_notify(TG_TABLE_SCHEMA || ':events', '');
    RETURN NULL;
END $$;

CREATE TRIGGER task_events AFTER INSERT OR UPDATE OF status, progress, meta_json
ON {s}.tasks FOR EACH ROW WHEN (current_setting('pulsar_tasks.events', true) = 'on')
EXECUTE FUNCTION {s}.task_event();
"""


def _schema_v7(s: str, work: str, done: str) -> str:
    """Version 7: task events in causal order. The events trigger of version 5 runs BEFORE each
    row change instead of AFTER it: AFTER row triggers fire as each statement ends, innermost
    first, so the changes a task's end makes in the same statement (its dependents released, a
    workflow's record completed, see version 6) were recorded before the end that caused them.
    The same function, returning the row (a BEFORE trigger returning NULL would skip it)."""
    ddl = _schema_events(s, work, done)
    function = ddl[ddl.index(f"CREATE FUNCTION {s}.task_event()") :]
    return (
        function.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
        .replace("RETURN NULL;", "RETURN NEW;")
        .replace(
            "CREATE TRIGGER task_events AFTER",
            f"DROP TRIGGER IF EXISTS task_events ON {s}.tasks;\nCREATE TRIGGER task_events BEFORE",
        )
    )


#: version -> the DDL taking the schema from the previous version to it
_MIGRATIONS: dict[int, Callable[[str, str, str], str]] = {
    1: _schema_v1,
    2: _schema_v2,
    3: _schema_v3,
    4: _schema_v4,
    5: _schema_events,
    6: _schema_flows,
    7: _schema_v7,
}


def _one_line(exc: BaseException) -> str:
    text = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    return text or type(exc).__name__


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _split_url(url: str) -> tuple[str, str, int | None]:
    """``(libpq conninfo URL, schema, pool_size)``; raises BackendError for a bad schema name
    or pool size."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = "pulsar_tasks"
    pool_size: int | None = None
    rest = []
    for key, value in query:
        if key == "schema":
            schema = value
        elif key == "pool_size":
            try:
                pool_size = int(value)
            except ValueError:
                pool_size = 0
            if pool_size < 1:
                raise BackendError(
                    f"{_redact(url)!r}: pool_size must be a positive integer, not {value!r}"
                )
        elif key != "events":  # pulsar-tasks' own (Backend.events), not libpq's
            rest.append((key, value))
    if not _SCHEMA_NAME.match(schema):
        raise BackendError(
            f"{_redact(url)!r}: schema {schema!r} must be a plain SQL name (letters, digits, _; "
            f"at most 48 characters)"
        )
    # defaults a URL may override: fail a connection attempt after 5 s, and notice a server
    # that vanished without closing the connection (a machine gone) within about a minute
    given = {key for key, _ in rest}
    for key, value in _CONNECT_DEFAULTS:
        if key not in given:
            rest.append((key, value))
    return urlunsplit(parts._replace(query=urlencode(rest))), schema, pool_size


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _final(record: str, now: float) -> Task | bool:
    """The task of a reply if it is a readable final record; True when the record's TTL has
    passed (the task is gone), False when it is unreadable."""
    try:
        row = json.loads(record)
        task = Task.from_row(row)
        purge_at = row.get("purge_at")
        if purge_at is not None and float(purge_at) <= now:
            return True
    except (ValueError, KeyError, TypeError, AttributeError):
        return False
    return task if task.done else False


def _purge_at(now: float, ttl: float) -> float | None:
    return now + ttl if ttl > 0 else None


class _Listener:
    """The LISTEN connection of one backend object (see the module docstring).

    ``generation`` is bumped at every (re)connection: notifications sent while it was down
    are lost, so waiters re-read their tasks when it changes. ``ensure(channel)`` returns
    once the channel is listened to (the LISTEN done), so that a read made afterwards cannot
    miss a notification.
    """

    def __init__(self, backend: PostgresBackend) -> None:
        self.backend = backend
        self.wanted: set[str] = set()
        self.listened: set[str] = set()
        self.generation = 0
        self.live = False
        self.changed = asyncio.Event()
        self.ready: dict[str, list[asyncio.Future[None]]] = {}
        self.task: asyncio.Task[None] | None = None
        self.closed = False

    async def ensure(self, channel: str, timeout: float) -> bool:
        """Listen to ``channel``: True once listened to, False if that took over ``timeout``
        seconds (the database is down: it goes on trying)."""
        if self.live and channel in self.listened:
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.ready.setdefault(channel, []).append(fut)
        self.wanted.add(channel)
        self.changed.set()
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._serve())
        done, _ = await asyncio.wait((fut,), timeout=max(0.0, timeout))
        if not done:
            with contextlib.suppress(ValueError, KeyError):
                self.ready[channel].remove(fut)
            fut.cancel()
            return False
        return True

    async def _serve(self) -> None:
        import psycopg

        delay = 0.02
        while not self.closed:
            conn = None
            try:
                conn = await psycopg.AsyncConnection.connect(self.backend.conninfo, autocommit=True)
                self.listened = set()
                while not self.closed:
                    self.changed.clear()
                    for channel in sorted(self.wanted - self.listened):
                        await conn.execute(f"LISTEN {_quote(channel)}")
                        self.listened.add(channel)
                    if not self.live:
                        self.live = True
                        self.generation += 1
                        self.backend._reconnected()
                    delay = 0.02
                    for channel in list(self.ready):
                        if channel in self.listened:
                            for fut in self.ready.pop(channel):
                                if not fut.done():
                                    fut.set_result(None)
                    pump = asyncio.ensure_future(self._pump(conn))
                    change = asyncio.ensure_future(self.changed.wait())
                    try:
                        await asyncio.wait((pump, change), return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        change.cancel()
                        if not pump.done():
                            pump.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await pump
                    if pump.done() and not pump.cancelled() and pump.exception() is not None:
                        raise pump.exception()  # type: ignore[misc]
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.live:
                    logger.warning("task notifications lost their connection: %s", _one_line(exc))
                self.live = False
                self.backend._reconnected()  # waiters re-read while it is down
                await asyncio.sleep(delay)
                delay = min(1.0, delay * 2)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
        self.live = False

    async def _pump(self, conn: Any) -> None:
        dispatch = self.backend._dispatch
        async for note in conn.notifies():
            dispatch(note.channel, note.payload)

    async def close(self) -> None:
        self.closed = True
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
            self.task = None
        for futs in self.ready.values():
            for fut in futs:
                if not fut.done():
                    fut.cancel()
        self.ready.clear()


class PostgresBackend(Backend):
    """Tasks in PostgreSQL (``postgresql://user@host:port/db?schema=name``; needs
    ``pip install pulsar-tasks[postgres]``). See the module docstring."""

    scheme = "postgresql"

    def __init__(self, url: str, *, pool_size: int = 8, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.conninfo, self.schema, size = _split_url(url)
        #: connections each of the two pools may open (``?pool_size=N``, default 8)
        self.pool_size = size or pool_size
        s = _quote(self.schema)
        self._s = s
        self.work_channel = f"{self.schema}:work"
        self.done_channel = f"{self.schema}:done"
        self.events_channel = f"{self.schema}:events"
        self._event_waiters: set[asyncio.Event] = set()
        self.reply_channel = f"{self.schema}:r:{uuid.uuid4().hex[:12]}"
        self._pool: Any = None  # durable commits: what producers accept
        self._fast: Any = None  # asynchronous commits: what workers change (see the docstring)
        self._opening: asyncio.Future[None] | None = None
        self._pid = os.getpid()
        self._listener: _Listener | None = None
        # worker wake-ups: per queue, how many notifications arrived; waiters by queue
        self._seen: dict[str, int] = {}
        self._work_waiters: set[tuple[frozenset[str], asyncio.Future[None]]] = set()
        self._claim_mark: tuple[int, dict[str, int]] | None = None
        self._recovered = -1e9  # time.monotonic() of the last recover_expired call
        # the claim of a version 1 or 2 schema recovers expired leases itself
        self._recover_apart = SCHEMA_VERSION >= 3
        # replies: task id -> listener generation when it was queued (0: not live then)
        self._expected: OrderedDict[str, int] = OrderedDict()
        self._arrived: OrderedDict[str, str] = OrderedDict()
        self._waiters: dict[str, list[asyncio.Future[str | None]]] = {}
        self._completer = Batcher(self._complete_many)
        self._enqueuer = Batcher(self._enqueue_many)
        self._getter = Batcher(self._get_many)
        # the columns of the schema version this code makes (a test may pretend to be older)
        columns = [c for c in _COLUMNS if _LATER_COLUMNS.get(c, 1) <= SCHEMA_VERSION]
        self._task_columns = [c for c in _TASK_COLUMNS if c in columns]
        self._sql_enqueue = (
            f"INSERT INTO {s}.tasks ({', '.join(columns)}) VALUES "
            f"({', '.join('%s' for _ in columns)}) "
            f"ON CONFLICT (id) DO UPDATE SET "
            + ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != "id")
            + f" WHERE {s}.tasks.purge_at IS NOT NULL AND {s}.tasks.purge_at <= %s "
            f"RETURNING id, pg_notify({_literal(self.work_channel)}, queue)"
        )
        # the same for many tasks: one array per column
        i = self._sql_enqueue.index(" VALUES ")
        j = self._sql_enqueue.index(" ON CONFLICT ")
        arrays = ", ".join(f"%s::{_cast(c)}[]" for c in columns)
        self._sql_enqueue_many = (
            self._sql_enqueue[:i] + f" SELECT * FROM unnest({arrays})" + self._sql_enqueue[j:]
        )

    # -- plumbing ------------------------------------------------------------------------------
    async def _open(self) -> None:
        """Connect once (failing fast with BackendError), create or migrate the schema, open
        the two pools."""
        try:
            import psycopg
            from psycopg_pool import AsyncConnectionPool
        except ImportError as exc:
            raise BackendError(
                f"the PostgreSQL backend needs psycopg 3 and psycopg_pool: "
                f"pip install pulsar-tasks[postgres] ({exc})"
            ) from None
        try:
            conn = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise BackendError(
                f"cannot connect to PostgreSQL at {_redact(self.url)}: {_one_line(exc)}"
            ) from exc
        try:
            await self._migrate(conn)
        finally:
            await conn.close()
        pools = []
        # a backend recording events sets pulsar_tasks.events on its sessions: the trigger of
        # schema version 5 writes them (see _schema_events)
        ev = " -c pulsar_tasks.events=on" if self.events else ""
        pooled: tuple[tuple[str, dict[str, str]], ...] = (
            ("", {"options": ev.strip()} if ev else {}),
            ("-worker", {"options": "-c synchronous_commit=off" + ev}),
        )
        for name, options in pooled:
            pool = AsyncConnectionPool(
                self.conninfo,
                kwargs={"autocommit": True, **options},
                min_size=1,
                max_size=self.pool_size,
                open=False,
                name=f"pulsar-tasks-{self.schema}{name}",
                timeout=10.0,
                reconnect_timeout=3600.0,
            )
            await pool.open(wait=False)
            pools.append(pool)
        self._pool, self._fast = pools

    async def _migrate(self, conn: Any) -> None:
        s = self._s
        async with conn.transaction():
            # one process at a time creates or migrates a schema
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"pulsar-tasks:{self.schema}",)
            )
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {s}.meta (key text PRIMARY KEY, value text NOT NULL)"
            )
            cur = await conn.execute(f"SELECT value FROM {s}.meta WHERE key = 'schema_version'")
            row = await cur.fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise BackendError(
                    f"the PostgreSQL schema {self.schema!r} at {_redact(self.url)} is at version "
                    f"{version}, newer than this pulsar-tasks understands ({SCHEMA_VERSION}): "
                    f"upgrade pulsar-tasks"
                )
            work, done = _literal(self.work_channel), _literal(self.done_channel)
            for step in range(version + 1, SCHEMA_VERSION + 1):
                await conn.execute(_MIGRATIONS[step](s, work, done))
            if version < SCHEMA_VERSION:
                await conn.execute(
                    f"INSERT INTO {s}.meta (key, value) VALUES ('schema_version', %s) "
                    f"ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    (str(SCHEMA_VERSION),),
                )

    async def _ready(self, fast: bool) -> Any:
        if self._pid != os.getpid():  # forked: the parent's connections are not ours (psycopg
            # does not finish a connection in a process that did not open it)
            self._pid = os.getpid()
            self._pool = self._fast = self._opening = self._listener = None
        if self._pool is None:
            if self._opening is None or (self._opening.done() and self._opening.exception()):
                self._opening = asyncio.ensure_future(self._open())
            await asyncio.shield(self._opening)
        return self._fast if fast else self._pool

    async def _run(self, fn: Callable[[Any], Awaitable[T]], fast: bool = False) -> T:
        """``fn(connection)`` on a pooled connection; retried on a fresh connection when the
        connection fails (a database restart), for up to ``retry_timeout`` seconds; any other
        database error is a BackendError at once. ``fast``: on a worker connection (see
        "Durability" in the module docstring)."""
        import psycopg
        from psycopg_pool import PoolTimeout

        pool = await self._ready(fast)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry_timeout
        delay = 0.02
        while True:
            try:
                async with pool.connection(timeout=max(0.1, min(5.0, deadline - loop.time()))) as c:
                    return await fn(c)
            except (psycopg.OperationalError, PoolTimeout) as exc:
                if isinstance(exc, psycopg.errors.QueryCanceled):
                    raise BackendError(f"{self.describe()}: {_one_line(exc)}") from exc
                if loop.time() + delay > deadline:
                    raise BackendError(
                        f"{self.describe()} unreachable for {self.retry_timeout:g}s: "
                        f"{_one_line(exc)}"
                    ) from exc
                await asyncio.sleep(delay)
                delay = min(1.0, delay * 2)
            except psycopg.Error as exc:
                raise BackendError(f"{self.describe()}: {_one_line(exc)}") from exc

    async def _fetch(
        self, sql: str, params: Sequence[Any] | dict[str, Any] = (), *, fast: bool = False
    ) -> list[Any]:
        async def op(conn: Any) -> list[Any]:
            cur = await conn.execute(sql, params)
            return await cur.fetchall() if cur.description else []

        return await self._run(op, fast)

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        from psycopg.rows import dict_row

        async def op(conn: Any) -> list[dict[str, Any]]:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(sql, params)
            return await cur.fetchall()  # type: ignore[no-any-return]

        return await self._run(op)

    def _listen(self) -> _Listener:
        if self._listener is None:
            self._listener = _Listener(self)
        return self._listener

    def _dispatch(self, channel: str, payload: str) -> None:
        if channel == self.work_channel:
            self._seen[payload] = self._seen.get(payload, 0) + 1
            for queues, work in list(self._work_waiters):
                if payload in queues and not work.done():
                    work.set_result(None)
        elif channel == self.reply_channel:
            task_id, _, record = payload.partition(" ")
            expected = self._expected.pop(task_id, None) is not None
            waiters = self._waiters.get(task_id)
            if waiters:
                for fut in waiters:
                    if not fut.done():
                        fut.set_result(record or None)
            elif expected:  # kept for its first wait; a wait already served (it read the
                # record first) must not get this reply later, e.g. after a requeue
                self._arrived[task_id] = record
                if len(self._arrived) > _REPLY_CACHE:
                    self._arrived.popitem(last=False)
        elif channel == self.done_channel:
            for fut in self._waiters.get(payload, ()):
                if not fut.done():
                    fut.set_result(None)
        elif channel == self.events_channel:
            for event in self._event_waiters:
                event.set()

    def _reconnected(self) -> None:
        """The listening connection came back (or went): every waiter re-reads."""
        for event in self._event_waiters:
            event.set()
        for futs in self._waiters.values():
            for fut in futs:
                if not fut.done():
                    fut.set_result(None)
        for _, work in list(self._work_waiters):
            if not work.done():
                work.set_result(None)

    async def close(self) -> None:
        if self._pid != os.getpid():  # a forked child's copy: the parent's connections
            self._pool = self._fast = self._opening = self._listener = None
            return
        if self._listener is not None:
            listener, self._listener = self._listener, None
            await listener.close()
        if self._opening is not None and not self._opening.done():
            self._opening.cancel()
            with contextlib.suppress(BaseException):
                await self._opening
        self._opening = None
        pools = [p for p in (self._pool, self._fast) if p is not None]
        self._pool = self._fast = None
        for pool in pools:
            await pool.close(timeout=5.0)

    # -- producers -----------------------------------------------------------------------------
    async def enqueue(self, task: Task, *, unique: bool = False, reply: bool = False) -> bool:
        reply_to = self.reply_channel if reply else None
        if reply:
            listener = self._listener
            live = listener is not None and listener.live and reply_to in listener.listened
            self._expected[task.id] = listener.generation if live and listener else 0
            if len(self._expected) > _EXPECTED:
                self._expected.popitem(last=False)
        result: Any = None
        try:
            result = await self._enqueuer((task, unique, reply_to))
        finally:
            if result != 1:  # not stored: no reply will come
                self._expected.pop(task.id, None)
        if isinstance(result, Exception):
            raise result
        if result == -1:
            raise DuplicateTask(f"a task with id {task.id!r} exists already")
        return bool(result)

    async def _enqueue_many(self, items: Sequence[tuple[Task, bool, str | None]]) -> list[Any]:
        """Store tasks made at once in one statement (one durable commit); per task 1
        (stored), 0 (unique and exists), -1 (exists) or the JobOverlap to raise. A batch in
        which an overlap key is taken (or one id twice) is stored task by task."""
        import psycopg

        now = self.now()
        attempts = 0

        async def op(conn: Any) -> list[Any]:
            nonlocal attempts
            attempts += 1
            again = attempts > 1  # the connection broke: the first attempt may have committed
            if len(items) == 1:
                return [await self._enqueue_one(conn, items[0], now, again)]
            rows = [task.to_row() for task, _, _ in items]
            params: list[Any] = [[row.get(c) for row in rows] for c in self._task_columns]
            params += [[None] * len(items), [reply for _, _, reply in items], now]
            try:
                cur = await conn.execute(self._sql_enqueue_many, params)
                stored = {row[0] for row in await cur.fetchall()}
            except (psycopg.errors.UniqueViolation, psycopg.errors.CardinalityViolation):
                return [await self._enqueue_one(conn, item, now, again) for item in items]
            missing = [task.id for task, _, _ in items if task.id not in stored]
            found: dict[str, tuple[Any, ...]] = {}
            if missing:
                cur = await conn.execute(
                    f"SELECT id, time_queued, payload FROM {self._s}.tasks WHERE id = ANY(%s)",
                    (missing,),
                )
                found = {row[0]: tuple(row[1:]) for row in await cur.fetchall()}
            return [
                1 if task.id in stored else _conflict(task, unique, again, found.get(task.id))
                for task, unique, _ in items
            ]

        return await self._run(op)

    async def _enqueue_one(
        self, conn: Any, item: tuple[Task, bool, str | None], now: float, again: bool
    ) -> Any:
        import psycopg

        task, unique, reply_to = item
        row = task.to_row()
        params = [row.get(c) for c in self._task_columns]
        params += [None, reply_to, now]  # purge_at, reply_to, the expiry test of an old record
        try:
            cur = await conn.execute(self._sql_enqueue, params)
            if cur.rowcount > 0:
                return 1
        except psycopg.errors.UniqueViolation as exc:
            if exc.diag.constraint_name != "tasks_overlap":
                raise
            cur = await conn.execute(
                f"SELECT id FROM {self._s}.tasks WHERE overlap_key = %s "
                f"AND status IN ('QUEUED', 'RETRY', 'STARTED')",
                (task.overlap_key,),
            )
            holder = await cur.fetchone()
            if again and holder and holder[0] == task.id:
                return 1  # our own first attempt committed before the connection broke
            return JobOverlap(
                f"job {task.name!r} already has task {holder[0] if holder else '?'} with "
                f"the same arguments queued or running (overlap=False)"
            )
        cur = await conn.execute(
            f"SELECT time_queued, payload FROM {self._s}.tasks WHERE id = %s", (task.id,)
        )
        found = await cur.fetchone()
        return _conflict(task, unique, again, None if found is None else tuple(found))

    async def enqueue_flow(self, tasks: Sequence[Task], *, reply: bool = False) -> None:
        reply_to = self.reply_channel if reply else None
        last = tasks[-1].id  # the record: the one task replied to (see Backend)
        if reply:
            listener = self._listener
            live = listener is not None and listener.live and reply_to in listener.listened
            self._expected[last] = listener.generation if live and listener else 0
            if len(self._expected) > _EXPECTED:
                self._expected.popitem(last=False)
        items = [
            {**t.to_row(), "purge_at": None, "reply_to": reply_to if t.id == last else None}
            for t in tasks
        ]
        for item in items:
            if item["depends"]:
                item["status"] = "DEFERRED"
        result: list[str] = []
        attempts = 0
        now = self.now()

        async def op(conn: Any) -> list[str]:
            nonlocal attempts
            attempts += 1
            cur = await conn.execute(
                f"SELECT {self._s}.enqueue_flow(%s::json, %s, %s)",
                (json.dumps(items), now, self.result_ttl),
            )
            out = list((await cur.fetchone())[0])
            if out[0] == "duplicate" and attempts > 1 and out[1] == tasks[0].id:
                # the connection broke after a first attempt committed: our own record
                cur = await conn.execute(
                    f"SELECT time_queued, payload FROM {self._s}.tasks WHERE id = %s",
                    (tasks[0].id,),
                )
                found = await cur.fetchone()
                if found is not None and tuple(found) == (tasks[0].time_queued, tasks[0].payload):
                    return ["ok"]
            return out

        try:
            result = await self._run(op)
        finally:
            if result[:1] != ["ok"]:
                self._expected.pop(last, None)
        if result[0] == "duplicate":
            raise DuplicateTask(f"a task with id {result[1]!r} exists already")
        if result[0] == "unknown":
            raise ValueError(
                f"depends_on: no task {result[1]!r} (unknown, or its record expired): queue "
                f"the dependency first and pass its id"
            )

    async def get(self, task_id: str) -> Task | None:
        row = await self._getter(task_id)
        return None if row is None else Task.from_row(row)

    async def _get_many(self, ids: Sequence[str]) -> list[dict[str, Any] | None]:
        rows = await self._rows(
            f"SELECT * FROM {self._s}.tasks WHERE id = ANY(%s) "
            f"AND (purge_at IS NULL OR purge_at > %s)",
            (list(ids), self.now()),
        )
        found = {row["id"]: row for row in rows}
        return [found.get(task_id) for task_id in ids]

    async def list(
        self,
        status: TaskState | str | None = None,
        limit: int = 100,
        *,
        since: float | None = None,
    ) -> list[Task]:
        sql = f"SELECT * FROM {self._s}.tasks WHERE (purge_at IS NULL OR purge_at > %s)"
        params: list[Any] = [self.now()]
        if status is not None:
            sql += " AND status = %s"
            params.append(str(TaskState(status)))
        if since is not None:
            sql += " AND time_finished >= %s"
            params.append(float(since))
        sql += " ORDER BY time_queued DESC LIMIT %s"
        params.append(int(limit))
        out = []
        for row in await self._rows(sql, params):
            try:
                out.append(Task.from_row(row))
            except (ValueError, KeyError):
                continue
        return out

    async def revoke(self, task_id: str) -> TaskState | None:
        rows = await self._fetch(
            f"SELECT {self._s}.revoke(%s, %s, %s)", (task_id, self.now(), self.result_ttl)
        )
        status = rows[0][0] if rows else None
        return None if status is None else TaskState(status)

    # -- operators ------------------------------------------------------------------------------
    async def purge(self, queue: str) -> int:
        rows = await self._fetch(
            f"SELECT {self._s}.purge_queue(%s, %s, %s)", (queue, self.now(), self.result_ttl)
        )
        return int(rows[0][0] or 0)

    async def requeue(self, task_id: str) -> TaskState | None:
        import psycopg

        async def op(conn: Any) -> str | None:
            try:
                cur = await conn.execute(f"SELECT {self._s}.requeue(%s, %s)", (task_id, self.now()))
            except psycopg.errors.UniqueViolation as exc:
                if exc.diag.constraint_name != "tasks_overlap":
                    raise
                cur = await conn.execute(
                    f"SELECT o.id, o.name FROM {self._s}.tasks t JOIN {self._s}.tasks o "
                    f"ON o.overlap_key = t.overlap_key AND o.id <> t.id "
                    f"AND o.status IN ('QUEUED', 'RETRY', 'STARTED') WHERE t.id = %s",
                    (task_id,),
                )
                holder = await cur.fetchone()
                raise JobOverlap(
                    f"job {holder[1] if holder else '?'!r} already has task "
                    f"{holder[0] if holder else '?'} with the same arguments queued or running "
                    f"(overlap=False)"
                ) from None
            row = await cur.fetchone()
            return None if row is None else row[0]

        status = await self._run(op)
        if status is None:
            return None
        state = TaskState(status)
        if state in REQUEUEABLE:
            self._arrived.pop(task_id, None)  # its old final record is not the answer
            await self._fetch(  # the progress of the old run is not the new one's
                f"UPDATE {self._s}.tasks SET progress = NULL, meta_json = NULL "
                f"WHERE id = %s AND status = 'QUEUED' AND (progress IS NOT NULL "
                f"OR meta_json IS NOT NULL)",
                (task_id,),
            )
        return state

    async def heartbeat(self, worker: str, info: dict[str, Any], ttl: float) -> None:
        now = self.now()
        await self._fetch(
            f"WITH gone AS (DELETE FROM {self._s}.workers WHERE expires < %s AND id <> %s) "
            f"INSERT INTO {self._s}.workers (id, info, expires) VALUES (%s, %s, %s) "
            f"ON CONFLICT (id) DO UPDATE SET info = EXCLUDED.info, expires = EXCLUDED.expires",
            (now, worker, worker, json.dumps(info), now + ttl),
            fast=True,
        )

    async def forget_worker(self, worker: str) -> None:
        await self._fetch(f"DELETE FROM {self._s}.workers WHERE id = %s", (worker,), fast=True)

    async def workers(self) -> builtins.list[dict[str, Any]]:
        rows = await self._fetch(
            f"SELECT info FROM {self._s}.workers WHERE expires >= %s ORDER BY id", (self.now(),)
        )
        return decode_workers([row[0] for row in rows])

    async def wait(self, task_id: str, timeout: float | None) -> Task | None:
        loop = asyncio.get_running_loop()
        end = None if timeout is None else loop.time() + timeout
        listener = self._listen()
        own = task_id in self._expected or task_id in self._arrived
        channel = self.reply_channel if own else self.done_channel
        generation = self._expected.get(task_id, 0)
        listening = await listener.ensure(channel, 2.0 if end is None else end - loop.time())
        fut = self._watch(task_id)
        try:
            covered = listening and own and generation and generation == listener.generation
            if not covered and not fut.done():
                task = await self.get(task_id)
                if task is None or task.done:
                    return task
            while True:
                remaining = _REREAD if end is None else min(_REREAD, end - loop.time())
                if remaining <= 0:
                    raise TimeoutError(f"task {task_id} not done after {timeout}s")
                await asyncio.wait((fut,), timeout=remaining)
                record = fut.result() if fut.done() else None
                if record:
                    final = _final(record, self.now())
                    if final is True:  # kept here past its TTL: gone for every reader
                        return None
                    if final is not False:
                        return final
                # a done notification, a record too large to send, no news within a second,
                # or a reconnection: read it
                task = await self.get(task_id)
                if task is None or task.done:
                    return task
                if fut.done():
                    self._unwatch(task_id, fut)
                    await listener.ensure(channel, min(1.0, remaining))
                    fut = self._watch(task_id)
        finally:
            self._unwatch(task_id, fut)
            self._expected.pop(task_id, None)

    def _watch(self, task_id: str) -> asyncio.Future[str | None]:
        fut: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        record = self._arrived.pop(task_id, None)
        if record is not None:
            fut.set_result(record or None)
        self._waiters.setdefault(task_id, []).append(fut)
        return fut

    def _unwatch(self, task_id: str, fut: asyncio.Future[str | None]) -> None:
        futs = self._waiters.get(task_id)
        if futs is not None:
            with contextlib.suppress(ValueError):
                futs.remove(fut)
            if not futs:
                del self._waiters[task_id]

    async def counts(self) -> dict[str, int]:
        rows = await self._fetch(
            f"SELECT status, count(*) FROM {self._s}.tasks "
            f"WHERE purge_at IS NULL OR purge_at > %s GROUP BY status",
            (self.now(),),
        )
        return {status: int(n) for status, n in rows}

    async def queue_counts(self) -> dict[str, dict[str, int]]:
        rows = await self._fetch(
            f"SELECT queue, status, count(*) FROM {self._s}.tasks "
            f"WHERE purge_at IS NULL OR purge_at > %s GROUP BY queue, status",
            (self.now(),),
        )
        out: dict[str, dict[str, int]] = {}
        for queue, status, n in rows:
            out.setdefault(queue, {})[status] = int(n)
        return out

    async def pending(self, queues: Sequence[str]) -> int:
        rows = await self._fetch(
            f"SELECT count(*) FROM {self._s}.tasks WHERE status IN ('QUEUED', 'RETRY') "
            f"AND queue = ANY(%s)",
            (list(queues),),
        )
        return int(rows[0][0])

    # -- workers -------------------------------------------------------------------------------
    async def claim(self, queues: Sequence[str], worker: str, lease: float, limit: int) -> Claim:
        # what was seen before this claim: a notification arriving meanwhile ends the next wait
        self._claim_mark = self._mark(queues)
        now = time.monotonic()
        if self._recover_apart and now - self._recovered >= min(_RECOVER_EVERY, lease / 4):
            # expired leases (a worker that stopped answering): at most every second, not in
            # every claim (see _schema_v3); before the claim, which can then take them
            self._recovered = now
            await self._fetch(
                f"SELECT {self._s}.recover_expired(%s, %s)",
                (self.now(), self.result_ttl),
                fast=True,
            )
        rows = await self._fetch(
            f"SELECT {self._s}.claim(%s, %s, %s, %s, %s, %s, %s)",
            (list(queues), worker, lease, limit, self.now(), os.urandom(8).hex(), self.result_ttl),
            fast=True,
        )
        data = rows[0][0]
        return Claim(list(data["tasks"] or []), data["next"])

    def _mark(self, queues: Sequence[str]) -> tuple[int, dict[str, int]]:
        listener = self._listener
        listening = listener is not None and listener.live
        if listener is None or not listening or self.work_channel not in listener.listened:
            generation = -1
        else:
            generation = listener.generation
        return generation, {q: self._seen.get(q, 0) for q in queues}

    async def _wait_work(self, queues: Sequence[str], timeout: float) -> str:
        """Wait for a notification of work in ``queues``: ``'notified'``, ``'timeout'`` or
        ``'listening'`` (the listener was not listening at the last claim: claim again)."""
        listener = self._listen()
        if not await listener.ensure(self.work_channel, timeout):
            return "timeout"
        mark = self._claim_mark
        self._claim_mark = None
        if mark is None or mark[0] != listener.generation:
            return "listening"
        if any(self._seen.get(q, 0) != n for q, n in mark[1].items()):
            return "notified"
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (frozenset(queues), fut)
        self._work_waiters.add(entry)
        try:
            await asyncio.wait_for(fut, timeout)
            return "notified"
        except TimeoutError:
            return "timeout"
        finally:
            self._work_waiters.discard(entry)

    async def wait_for_work(self, queues: Sequence[str], timeout: float) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            woke = await self._wait_work(queues, max(0.0, end - loop.time()))
            if woke != "listening":
                return
            # no claim since the listener listens: the wait counts from now
            self._claim_mark = self._mark(queues)

    async def wait_and_claim(
        self, queues: Sequence[str], worker: str, lease: float, limit: int, timeout: float
    ) -> Claim:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            woke = await self._wait_work(queues, max(0.0, end - loop.time()))
            claim = await self.claim(queues, worker, lease, limit)
            if claim.tasks or claim.next_eta is not None or woke != "listening":
                return claim  # (with a due time ahead: the caller's wait is shorter)
            if loop.time() >= end:
                return claim
            # the listener just started: this claim saw everything notified before it, and
            # nothing is pending: wait for the rest of the time

    async def release_worker(self, worker: str) -> int:
        rows = await self._fetch(
            f"SELECT {self._s}.release_worker(%s, %s, %s)",
            (worker, self.now(), self.result_ttl),
            fast=True,
        )
        return int(rows[0][0] or 0)

    async def renew(self, leases: dict[str, str], lease: float) -> dict[str, str]:
        if not leases:
            return {}
        ids = list(leases)
        rows = await self._fetch(
            f"UPDATE {self._s}.tasks t SET lease_expires = %s "
            f"FROM unnest(%s::text[], %s::text[]) AS v(id, token) "
            f"WHERE t.id = v.id AND t.token = v.token AND t.status = 'STARTED' "
            f"RETURNING t.id, t.revoke",
            (self.now() + lease, ids, [leases[i] for i in ids]),
            fast=True,
        )
        renewed = {task_id: revoke for task_id, revoke in rows}
        out: dict[str, str] = {}
        for task_id in ids:
            if task_id not in renewed:
                out[task_id] = "lost"
            elif renewed[task_id]:
                out[task_id] = "revoked"
        return out

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
        return bool(await self._completer((task_id, token, str(status), result, error, traceback)))

    async def _complete_many(self, items: Sequence[tuple[Any, ...]]) -> Sequence[bool]:
        now = self.now()
        s = self._s
        columns = list(zip(*items, strict=True))
        rows = await self._fetch(
            f"WITH v AS (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], "
            f"%s::text[], %s::text[]) AS v(id, token, status, result, error, tb)), "
            f"up AS (UPDATE {s}.tasks t SET status = v.status, result_json = v.result, "
            f"error = v.error, traceback = v.tb, time_finished = %s, token = NULL, "
            f"lease_expires = NULL, purge_at = %s FROM v "
            f"WHERE t.id = v.id AND t.token = v.token AND t.status = 'STARTED' RETURNING t.*) "
            f"SELECT up.id, {s}.final(up.id, up.reply_to, "
            f"CASE WHEN up.reply_to IS NOT NULL OR up.dependents IS NOT NULL "
            f"THEN row_to_json(up) END) FROM up",
            (*[list(col) for col in columns], now, _purge_at(now, self.result_ttl)),
            fast=True,
        )
        done = {row[0] for row in rows}
        return [item[0] in done for item in items]

    async def retry(
        self, task_id: str, token: str, eta: float, *, error: str, traceback: str | None
    ) -> bool:
        rows = await self._fetch(
            f"UPDATE {self._s}.tasks SET status = 'RETRY', error = %s, traceback = %s, eta = %s, "
            f"token = NULL, lease_expires = NULL WHERE id = %s AND token = %s "
            f"AND status = 'STARTED' AND revoke = 0 RETURNING pg_notify(%s, queue)",
            (error, traceback, eta, task_id, token, self.work_channel),
            fast=True,
        )
        return bool(rows)

    async def release(self, task_id: str, token: str) -> bool:
        rows = await self._fetch(
            f"UPDATE {self._s}.tasks SET status = 'QUEUED', attempts = GREATEST(0, attempts - 1), "
            f"token = NULL, worker = NULL, lease_expires = NULL, eta = %s "
            f"WHERE id = %s AND token = %s AND status = 'STARTED' AND revoke = 0 "
            f"RETURNING pg_notify(%s, queue)",
            (self.now(), task_id, token, self.work_channel),
            fast=True,
        )
        return bool(rows)

    # -- scheduling (see _schedule) ----------------------------------------------------------
    async def postpone(self, task_id: str, token: str, eta: float) -> bool:
        rows = await self._fetch(
            f"UPDATE {self._s}.tasks SET status = 'QUEUED', attempts = GREATEST(0, attempts - 1), "
            f"token = NULL, worker = NULL, lease_expires = NULL, eta = %s "
            f"WHERE id = %s AND token = %s AND status = 'STARTED' AND revoke = 0 "
            f"RETURNING pg_notify(%s, queue)",
            (eta, task_id, token, self.work_channel),
            fast=True,
        )
        return bool(rows)

    async def acquire_rate(self, key: str, limit: int, period: float) -> float:
        rows = await self._fetch(
            f"SELECT {self._s}.rate_acquire(%s, %s, %s)",
            (key, int(limit), float(period)),
            fast=True,
        )
        return float(rows[0][0])

    # -- jobs and maintenance ------------------------------------------------------------------
    async def register_jobs(self, metas: dict[str, dict[str, Any]]) -> None:
        if not metas:
            return
        names = sorted(metas)
        await self._fetch(
            f"INSERT INTO {self._s}.jobs (name, meta) SELECT * FROM unnest(%s::text[], "
            f"%s::text[]) ON CONFLICT (name) DO UPDATE SET meta = EXCLUDED.meta",
            (names, [json.dumps(metas[n]) for n in names]),
        )

    async def jobs(self) -> dict[str, dict[str, Any]]:
        rows = await self._fetch(f"SELECT name, meta FROM {self._s}.jobs")
        return {name: json.loads(meta) for name, meta in rows}

    async def put_raw(self, row: dict[str, Any]) -> None:
        cols = [c for c in row if c in _COLUMNS]
        values = [None if row[c] is None else str(row[c]) for c in cols]
        casts = {c: _cast(c) for c in cols}

        async def op(conn: Any) -> None:
            async with conn.transaction():
                await conn.execute(f"DELETE FROM {self._s}.tasks WHERE id = %s", (str(row["id"]),))
                await conn.execute(
                    f"INSERT INTO {self._s}.tasks ({', '.join(cols)}) VALUES "
                    f"({', '.join('%s::' + casts[c] for c in cols)})",
                    values,
                )
                await conn.execute(
                    "SELECT pg_notify(%s, %s)", (self.work_channel, row.get("queue") or "default")
                )

        await self._run(op)

    async def flush(self) -> None:
        async def op(conn: Any) -> None:
            async with conn.transaction():
                await conn.execute(f"DELETE FROM {self._s}.tasks")
                await conn.execute(f"DELETE FROM {self._s}.jobs")
                await conn.execute(f"DELETE FROM {self._s}.workers")
                await conn.execute(f"DELETE FROM {self._s}.rate_limits")
                await conn.execute(f"DELETE FROM {self._s}.events")

        await self._run(op)

    async def purge_expired(self) -> int:
        """Delete the records whose result TTL passed; returns how many."""

        async def op(conn: Any) -> int:
            cur = await conn.execute(
                f"DELETE FROM {self._s}.tasks WHERE purge_at <= %s", (self.now(),)
            )
            return int(cur.rowcount)

        return await self._run(op, fast=True)

    # -- progress and events -------------------------------------------------------------------
    async def set_progress(
        self, updates: Sequence[tuple[str, str, float | None, str | None]]
    ) -> builtins.list[bool]:
        if not updates:
            return []
        ids, tokens, progress, metas = (list(column) for column in zip(*updates, strict=True))
        rows = await self._fetch(
            f"UPDATE {self._s}.tasks t SET progress = COALESCE(u.p, t.progress), "
            f"meta_json = COALESCE(u.m, t.meta_json) "
            f"FROM unnest(%s::text[], %s::text[], %s::double precision[], %s::text[]) "
            f"AS u(id, token, p, m) "
            f"WHERE t.id = u.id AND t.token = u.token AND t.status = 'STARTED' "
            f"RETURNING t.id, t.token",
            (ids, tokens, progress, metas),
            fast=True,
        )
        done = {(row[0], row[1]) for row in rows}
        return [pair in done for pair in zip(ids, tokens, strict=True)]

    def event_reader(self, after: str | None = None) -> EventReader:
        return _PostgresEvents(self, after)

    async def drop_schema(self) -> None:
        """Drop this backend's schema and everything in it, whatever its version (tests and
        tools)."""
        import psycopg

        try:
            conn = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise BackendError(
                f"cannot connect to PostgreSQL at {_redact(self.url)}: {_one_line(exc)}"
            ) from exc
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {self._s} CASCADE")
        finally:
            await conn.close()


def _conflict(task: Task, unique: bool, again: bool, found: tuple[Any, ...] | None) -> int:
    """An enqueue that found its id taken: 1 when the record is the one a first attempt
    (whose reply the broken connection lost) stored, 0 for a unique enqueue, -1 otherwise."""
    if again and found is not None and found == (task.time_queued, task.payload):
        return 1
    return 0 if unique else -1


def _cast(column: str) -> str:
    if column in ("attempts", "max_retries", "revoke", "priority", "waiting"):
        return "integer"
    if column in _FLOATS or column == "eta":
        return "double precision"
    return "text"


#: seconds a reader waits for an event id seen missing (a transaction that took its sequence
#: number and had not committed yet) before it gives it up (rolled back)
_HOLE_WAIT = 2.0


class _PostgresEvents(EventReader):
    """Reads ``events`` after a sequence number, woken by ``NOTIFY <schema>:events`` (and
    every 0.5 s while ids are missing). Sequence numbers are taken when a transaction writes,
    not when it commits, so a reader may see 12 before 11 commits: 11 is looked for again for
    up to two seconds, and delivered late if it comes (out of order)."""

    def __init__(self, backend: PostgresBackend, after: str | None) -> None:
        self.backend = backend
        self.cursor: int | None = None if after is None else int(after or 0)
        self.holes: dict[int, float] = {}
        self.woken = asyncio.Event()

    async def start(self) -> str:
        """Fix "now" (the last event recorded) as the start, if not given; returns it."""
        if self.cursor is None:
            rows = await self.backend._fetch(
                f"SELECT COALESCE(MAX(seq), 0) FROM {self.backend._s}.events"
            )
            self.cursor = int(rows[0][0])
        return str(self.cursor)

    async def _fetch(self) -> list[dict[str, Any]]:
        assert self.cursor is not None
        now = time.monotonic()
        for seq, deadline in list(self.holes.items()):
            if deadline < now:
                del self.holes[seq]
        rows = await self.backend._rows(
            f"SELECT seq AS id, {_EVENT_COLUMNS} FROM {self.backend._s}.events "
            f"WHERE seq > %s OR seq = ANY(%s) ORDER BY seq LIMIT 500",
            (self.cursor, list(self.holes)),
        )
        for row in rows:
            seq = int(row["id"])
            if self.holes.pop(seq, None) is not None or seq <= self.cursor:
                continue
            for missing in range(self.cursor + 1, min(seq, self.cursor + 1001)):
                self.holes[missing] = now + _HOLE_WAIT
            self.cursor = seq
        return rows

    async def read(self, timeout: float) -> list[TaskEvent]:
        backend = self.backend
        backend._event_waiters.add(self.woken)
        try:
            await backend._listen().ensure(backend.events_channel, timeout)
            await self.start()
            self.woken.clear()
            rows = await self._fetch()
            if not rows:
                wait = min(timeout, 0.5) if self.holes else timeout
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.woken.wait(), wait)
                rows = await self._fetch()
        finally:
            backend._event_waiters.discard(self.woken)
        return [TaskEvent.from_row(row) for row in rows]
