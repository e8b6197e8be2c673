"""Task states and the task record.

State machine (the only transitions backends perform)::

    QUEUED  --claim-->  STARTED  --success-->  SUCCESS
    RETRY   --claim-->  STARTED  --error, retries left-->  RETRY (queued again at a later eta)
                        STARTED  --error, no retry / timeout-->  FAILURE
                        STARTED  --lease expired, retries left-->  QUEUED (redelivered)
                        STARTED  --lease expired, no retries left-->  FAILURE ('lost')
                        STARTED  --graceful stop hands it back-->  QUEUED
    QUEUED/RETRY/STARTED  --revoke, or expired before it started-->  REVOKED
    QUEUED/RETRY  --purge of its queue-->  REVOKED ('purged')
    FAILURE/REVOKED  --requeue by an operator-->  QUEUED (attempts 0, result and error cleared)
    DEFERRED  --its last dependency SUCCESS-->  QUEUED (the results it asked for injected)
    DEFERRED  --a dependency FAILURE/REVOKED-->  REVOKED (error names the dependency and why)
    DEFERRED  --revoke-->  REVOKED
    DEFERRED (a workflow's record)  --its last dependency SUCCESS-->  SUCCESS (collected result)
    DEFERRED (a workflow's record)  --a dependency FAILURE/REVOKED-->  FAILURE (naming it)

A DEFERRED task (``depends_on``, a workflow's step) is stored but not claimable: the backend
moves it on in the same atomic step (Lua script, transaction) that ends its last dependency.

SUCCESS, FAILURE and REVOKED are final: no worker moves a task out of them (results then expire
after the TTL); only an operator's requeue (``pulsar-tasks retry``) queues a failed or revoked
task again. SUCCESS is never left.
"""

from __future__ import annotations

import enum
import json
import time
from dataclasses import dataclass, field
from typing import Any

from ._errors import TaskFailed

__all__ = ["FINAL", "PENDING", "REQUEUEABLE", "TRANSITIONS", "Task", "TaskState"]


class TaskState(enum.StrEnum):
    """The status of a task."""

    QUEUED = "QUEUED"
    STARTED = "STARTED"
    RETRY = "RETRY"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    REVOKED = "REVOKED"
    DEFERRED = "DEFERRED"


#: the states a task can go to from each state (see the module docstring)
TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    TaskState.QUEUED: frozenset({TaskState.STARTED, TaskState.REVOKED}),
    TaskState.RETRY: frozenset({TaskState.STARTED, TaskState.REVOKED}),
    TaskState.STARTED: frozenset(
        {
            TaskState.SUCCESS,
            TaskState.FAILURE,
            TaskState.RETRY,
            TaskState.QUEUED,
            TaskState.REVOKED,
        }
    ),
    TaskState.SUCCESS: frozenset(),
    TaskState.FAILURE: frozenset({TaskState.QUEUED}),  # an operator's requeue only
    TaskState.REVOKED: frozenset({TaskState.QUEUED}),  # an operator's requeue only
    TaskState.DEFERRED: frozenset(
        {TaskState.QUEUED, TaskState.REVOKED, TaskState.SUCCESS, TaskState.FAILURE}
    ),
}
#: states a worker may claim
PENDING = frozenset({TaskState.QUEUED, TaskState.RETRY})
#: states no worker moves a task out of
FINAL = frozenset({TaskState.SUCCESS, TaskState.FAILURE, TaskState.REVOKED})
#: final states an operator may queue again (``Backend.requeue``)
REQUEUEABLE = frozenset({TaskState.FAILURE, TaskState.REVOKED})

_INT = ("attempts", "max_retries", "revoke", "priority", "waiting")
_FLOAT = (
    "time_queued",
    "time_started",
    "time_finished",
    "eta",
    "expires",
    "lease_expires",
    "progress",
)


@dataclass(slots=True)
class Task:
    """One run of a job: the record a backend keeps (times are UNIX seconds).

    ``payload`` is the JSON text of ``{"args": [...], "kwargs": {...}}`` and ``result_json`` the
    JSON text of the return value; :attr:`args`, :attr:`kwargs` and :attr:`result` decode them
    (``task.result`` is the value the job returned, as in Celery's ``AsyncResult.result`` and
    RQ's ``job.result``).
    ``token`` is the lease token of the current attempt (None when no worker holds it).
    ``priority`` (0-9, default 0): a worker claims the highest due priority of a queue first.
    ``progress`` (0..1) and ``meta_json`` (JSON text, decoded by :attr:`meta`) are what the
    job last published with :func:`~pulsar.apps.tasks.update` (None until it does).
    """

    id: str
    name: str
    queue: str = "default"
    status: TaskState = TaskState.QUEUED
    payload: str = '{"args": [], "kwargs": {}}'
    result_json: str | None = None
    error: str | None = None
    traceback: str | None = None
    attempts: int = 0
    max_retries: int = 0
    worker: str | None = None
    token: str | None = None
    time_queued: float = field(default_factory=time.time)
    time_started: float | None = None
    time_finished: float | None = None
    eta: float = 0.0
    expires: float | None = None
    lease_expires: float | None = None
    revoke: int = 0
    overlap_key: str | None = None
    #: 0-9, higher first within a queue (see :mod:`._schedule`)
    priority: int = 0
    # -- progress (``tasks.update()``), see _progress.py
    progress: float | None = None
    meta_json: str | None = None
    # -- workflows and depends_on (see _workflow.py): None for a task without them ----------
    #: the id of the workflow this task is a member of
    workflow: str | None = None
    #: JSON list of the ids this task waits for (in order: results are collected so)
    depends: str | None = None
    #: JSON list of the ids waiting for this task (the backend resolves them when it ends)
    dependents: str | None = None
    #: how many dependencies are not SUCCESS yet (while DEFERRED)
    waiting: int | None = None
    #: what the task receives when released: None, "arg" (the first dependency's result as
    #: its first positional argument), "list" (the list of their results as its first
    #: argument); a workflow's record: "result" / "results" (completed with it, not queued)
    inject: str | None = None

    # -- decoding --------------------------------------------------------------------------------
    @property
    def args(self) -> list[Any]:
        """The positional arguments (decoded from the payload)."""
        return self.arguments()[0]

    @property
    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments (decoded from the payload)."""
        return self.arguments()[1]

    def arguments(self) -> tuple[list[Any], dict[str, Any]]:
        """``(args, kwargs)``, decoding the payload once."""
        data = json.loads(self.payload)
        return list(data.get("args", [])), dict(data.get("kwargs", {}))

    @property
    def result(self) -> Any:
        """The value the job returned, decoded (None until SUCCESS); the stored JSON text is
        :attr:`result_json`."""
        return None if self.result_json is None else json.loads(self.result_json)

    @property
    def meta(self) -> Any:
        """The metadata the job last published with ``tasks.update(meta=...)``, decoded (None
        until it does); the stored JSON text is :attr:`meta_json`."""
        return None if self.meta_json is None else json.loads(self.meta_json)

    @property
    def value(self) -> Any:
        """The same as :attr:`result` (kept for code written before ``result`` was the value)."""
        return self.result

    @property
    def depends_on(self) -> list[str]:
        """The ids this task waits for (``depends_on``; empty for most tasks)."""
        return list(json.loads(self.depends)) if self.depends else []

    @property
    def done(self) -> bool:
        """True once the task is in a final state."""
        return self.status in FINAL

    def result_or_raise(self) -> Any:
        """The decoded result; raises :class:`TaskFailed` for FAILURE/REVOKED."""
        if self.status in (TaskState.FAILURE, TaskState.REVOKED):
            raise TaskFailed(f"task {self.id} ({self.name}) {self.status}: {self.error}")
        return self.result

    # -- conversions ---------------------------------------------------------------------------
    def to_row(self) -> dict[str, Any]:
        """A flat dict of strings/numbers/None (a SQLite row or a Redis hash)."""
        row = {key: getattr(self, key) for key in _FIELD_NAMES}  # flat: no deep copy needed
        row["status"] = str(self.status)
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Task:
        """Build a task from a backend row; numbers may arrive as strings, empty means None.

        Raises ValueError/KeyError on a row that is not a task record.
        """
        data: dict[str, Any] = {}
        convert = _CONVERT
        for key, value in row.items():
            conv = convert.get(key)
            if conv is None:  # not a field
                continue
            if value.__class__ is bytes:
                value = value.decode()
            if value == "" and key not in _KEEP_EMPTY:
                value = None
            elif value is not None and conv is not str:
                value = conv(value)
            data[key] = value
        data["status"] = TaskState(data.get("status") or "QUEUED")
        if not data.get("id") or not data.get("name"):
            raise ValueError("a task record needs an id and a name")
        if data.get("payload") is None:
            data["payload"] = ""
        return cls(**data)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view for users (RPC, CLI): decoded args, kwargs and result."""
        out = self.to_row()
        for key in ("payload", "token", "revoke", "overlap_key", "waiting", "inject"):
            out.pop(key, None)
        for key in ("depends", "dependents"):
            text = out.get(key)
            try:
                out[key] = json.loads(text) if text else None
            except ValueError:
                pass
        try:
            out["args"], out["kwargs"] = self.args, self.kwargs
        except (ValueError, AttributeError):
            out["args"], out["kwargs"] = None, None
        out.pop("result_json", None)
        try:
            out["result"] = self.result
        except ValueError:
            out["result"] = self.result_json
        out.pop("meta_json", None)
        try:
            out["meta"] = self.meta
        except ValueError:
            out["meta"] = self.meta_json
        return out


_FIELD_NAMES = tuple(Task.__dataclass_fields__)
_KEEP_EMPTY = frozenset({"payload", "name", "id"})


def _to_int(value: Any) -> int:
    return int(float(value))


#: per field, how a stored value becomes the field's (strings stay as they are)
_CONVERT: dict[str, Any] = {
    key: _to_int if key in _INT else float if key in _FLOAT else str for key in _FIELD_NAMES
}
