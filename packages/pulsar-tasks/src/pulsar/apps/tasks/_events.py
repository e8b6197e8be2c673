"""Task events: what a dashboard reads (``client.events()``, ``pulsar-tasks events``).

How it works
------------
An event is written by the backend in the same step as the change of the task record it
reports, so none is missed and none is made up: on SQLite by temporary triggers of the
connection (``AFTER INSERT``/``UPDATE OF status, progress, meta_json`` on ``tasks``, inserting
into the ``events`` table in the same transaction), on PostgreSQL by a trigger of the schema
(same table, a ``NOTIFY <schema>:events`` wakes readers), on Redis by the Lua script that
changes the record (``XADD {p}:events MAXLEN ~ 10000``). The kind follows from the change
(:data:`KINDS`), with the same rules on every backend:

* a new record: ``queued``; QUEUED/RETRY -> STARTED: ``started``;
* -> SUCCESS ``succeeded``; -> FAILURE ``failed`` (``reason`` ``'lost'`` when its workers kept
  dying, ``'timeout'``); -> RETRY ``retried`` (``error``); -> REVOKED ``revoked`` (``reason``
  ``'revoked'``, ``'purged'`` or ``'expired'``);
* STARTED -> QUEUED: ``retried`` with ``reason`` ``'lost'`` (its worker died, it is queued
  again), or ``queued`` with ``reason`` ``'released'`` (a graceful stop handed it back);
  FAILURE/REVOKED -> QUEUED: ``queued`` with ``reason`` ``'requeued'`` (an operator's retry);
* progress or meta changed while STARTED: ``progress`` (``progress``, ``meta``).

Producing events is off by default (``?events=1`` in the backend URL, ``connect(url,
events=True)``, the ``--task-events`` setting): when off, the hot path is exactly what it was
(no trigger on SQLite, the scripts without ``XADD`` on Redis; on PostgreSQL the trigger's
``WHEN`` reads one session setting and returns). Each process decides for the changes it
makes, so turn it on in the workers *and* the producers (the same URL does it).

Delivery: a reader starts at "now" (a live tail) or after a given event ``id`` (``"0"``: the
oldest kept); the backlog is bounded (the last ~10,000 events). Events are at-least-once per
reader and in order per backend (Redis: stream order; SQLite: commit order; PostgreSQL: by
sequence, an id that commits late is waited for up to 2 s).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["EVENTS_KEPT", "KINDS", "EventReader", "TaskEvent", "events_in_url"]

#: the kinds of event, in the order of a task's life
KINDS = ("queued", "started", "progress", "succeeded", "failed", "retried", "revoked")
#: about how many events a backend keeps for readers starting in the past
EVENTS_KEPT = 10000


def events_in_url(url: str) -> bool:
    """True when the URL asks for events (``?events=1``, ``true``, ``on`` or ``yes``)."""
    from urllib.parse import parse_qs, urlsplit

    values = parse_qs(urlsplit(url).query).get("events") or [""]
    return values[-1].strip().lower() in ("1", "true", "on", "yes")


def strip_events(query: dict[str, Any]) -> None:
    """Drop the ``events`` parameter from a parsed query (it is pulsar-tasks', not the
    server's)."""
    query.pop("events", None)


@dataclass(frozen=True, slots=True)
class TaskEvent:
    """One event of a task (the same on every backend; times are UNIX seconds).

    ``id`` is the event's position in the backend's stream (pass it as ``after=`` to resume
    after it); ``progress``/``meta`` are set for ``progress`` events, ``error`` for ``failed``
    and ``retried``, ``reason`` says why for ``failed`` (``'lost'``, ``'timeout'``),
    ``retried`` (``'lost'``), ``revoked`` (``'revoked'``, ``'purged'``, ``'expired'``) and
    ``queued`` (``'released'``, ``'requeued'``).
    """

    kind: str
    task_id: str
    name: str
    queue: str
    time: float
    worker: str | None
    attempts: int
    id: str = ""
    progress: float | None = None
    meta: Any = None
    error: str | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict of the fields."""
        return asdict(self)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> TaskEvent:
        """An event from a backend's stored fields (strings or numbers; empty means None)."""

        def text(key: str) -> str | None:
            value = row.get(key)
            if isinstance(value, bytes):
                value = value.decode()
            return None if value in (None, "") else str(value)

        progress = text("progress")
        meta = text("meta_json")
        try:
            meta_value = None if meta is None else json.loads(meta)
        except ValueError:
            meta_value = meta
        return cls(
            kind=text("kind") or "",
            task_id=text("task_id") or "",
            name=text("name") or "",
            queue=text("queue") or "default",
            time=float(text("time") or 0.0),
            worker=text("worker"),
            attempts=int(float(text("attempts") or 0)),
            id=text("id") or "",
            progress=None if progress is None else float(progress),
            meta=meta_value,
            error=text("error"),
            reason=text("reason"),
        )


class EventReader:
    """Reads a backend's events in order, from where it was opened (see
    :meth:`Backend.event_reader`)."""

    async def start(self) -> str:
        """Fix where reading starts (now, unless the reader was opened after an event id) and
        return that position: an event id to resume after."""
        return ""

    async def read(self, timeout: float) -> list[TaskEvent]:  # pragma: no cover - abstract
        """The next events (at most a few hundred), waiting up to ``timeout`` seconds for one;
        an empty list when none came."""
        raise NotImplementedError

    async def close(self) -> None:
        """Release what the reader holds."""
