"""Progress and metadata a running job publishes: :func:`update`.

How it works
------------
``tasks.update(progress=0.4, meta={...})`` validates its arguments in the job (a bad value
raises there, never in the worker), then hands ``(progress, meta as JSON)`` to the *sink* of
the run, a context variable the worker sets for each run: in an async job and a sync job in
the worker's threads it is the consumer's (thread-safe: it records the latest update of the
task and wakes the loop), in a child process (``in_process`` jobs) it writes one line to a
pipe the worker reads. The job never waits for the backend. The consumer writes the latest
update of every task that has one in one call (``Backend.set_progress``) per loop iteration,
so updates made faster than the backend answers are coalesced (latest wins, per field). Each
write is keyed by the attempt's lease token and applies only while the task is STARTED: a
stale attempt cannot overwrite, and no update lands after the final record. An attempt that
published progress waits for its last write before it records its outcome.
"""

from __future__ import annotations

import contextvars
import json
import math
from collections.abc import Callable, Generator
from typing import Any

from ._errors import TaskError

__all__ = ["MAX_META_SIZE", "check_update", "update"]

#: bytes of JSON metadata one update may carry
MAX_META_SIZE = 64 * 1024

#: where the run in this context sends its updates: ``sink(progress, meta_json)``
SINK: contextvars.ContextVar[Callable[[float | None, str | None], None] | None] = (
    contextvars.ContextVar("pulsar_tasks_progress", default=None)
)


class _Sent:
    """What :func:`update` returns: nothing to wait for, but ``await update(...)`` works too
    (the update is on its way either way)."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield  # pragma: no cover - makes this a generator

    def __repr__(self) -> str:
        return "<update sent>"


_SENT = _Sent()


def check_update(progress: Any = None, meta: Any = None) -> tuple[float | None, str | None]:
    """``(progress, meta as JSON text)`` validated: ValueError for a progress that is not a
    number from 0 to 1, TypeError for metadata that is not JSON or over
    :data:`MAX_META_SIZE` bytes, or when neither is given."""
    if progress is None and meta is None:
        raise TypeError("update() needs progress= (a number from 0 to 1) or meta= (a dict)")
    value: float | None = None
    if progress is not None:
        if isinstance(progress, bool) or not isinstance(progress, int | float):
            raise ValueError(
                f"progress must be a number from 0 to 1 (0.4 for 40%), not "
                f"{type(progress).__name__} {progress!r}"
            )
        value = float(progress)
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            raise ValueError(
                f"progress must be a number from 0 to 1 (0.4 for 40%), not {progress!r}"
            )
    text: str | None = None
    if meta is not None:
        try:
            text = json.dumps(meta, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"meta must be JSON serializable (str, int, float, bool, None, list, dict "
                f"with str keys): {exc}"
            ) from None
        size = len(text.encode())
        if size > MAX_META_SIZE:
            raise TypeError(
                f"meta is {size} bytes of JSON, more than the {MAX_META_SIZE} an update may "
                f"carry: publish a summary (large data belongs in a file or a database)"
            )
    return value, text


def update(progress: float | None = None, meta: Any = None) -> _Sent:
    """Publish the progress (a number from 0 to 1) and/or metadata (JSON, at most 64 KiB) of
    the task being run, from inside its job: an async job (no ``await`` needed; awaiting
    works too), a sync job in the worker's threads, or one in a child process.

    It returns at once: the worker writes the latest update to the backend (``progress`` and
    ``meta`` of the record, a ``progress`` event), coalescing quick successive ones. Raises
    ValueError for a bad progress, TypeError for metadata that is not JSON or too large,
    :class:`TaskError` outside a task run.
    """
    value, text = check_update(progress, meta)
    sink = SINK.get()
    if sink is None:
        raise TaskError(
            "tasks.update() publishes the progress of the task being run: call it inside a job"
        )
    sink(value, text)
    return _SENT
