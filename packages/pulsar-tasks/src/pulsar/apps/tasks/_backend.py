"""The backend interface every store implements, and :func:`create_backend` (URL -> backend).

How it works
------------
A backend keeps task records and hands them to workers under a *lease*:

* :meth:`Backend.enqueue` stores a QUEUED task due at ``task.eta``;
* :meth:`Backend.claim` atomically takes up to ``limit`` due tasks of some queues: each becomes
  STARTED with ``attempts + 1``, the claiming worker and a fresh lease ``token`` valid for
  ``lease`` seconds. The same call first recovers tasks whose lease expired (their worker died):
  they are queued again, or fail as ``lost`` once they used up ``max_retries``; and it revokes
  due tasks past their ``expires`` time;
* :meth:`Backend.renew` extends the leases a worker holds and reports the tasks it lost or that
  were revoked meanwhile;
* :meth:`Backend.complete` / :meth:`Backend.retry` / :meth:`Backend.release` end an attempt;
  each applies only when the token is still the task's current one, so a late or duplicate
  completion (a worker that was presumed dead) changes nothing: the result is recorded once.

Every backend runs the same conformance suite (``tests/test_backends.py``).
"""

from __future__ import annotations

import abc
import asyncio
import builtins
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ._errors import BackendError, TaskError
from ._events import EventReader, events_in_url
from ._state import Task, TaskState

__all__ = [
    "DEFAULT_RETRY_TIMEOUT",
    "Backend",
    "Claim",
    "create_backend",
    "decode_workers",
    "guarded",
]

logger = logging.getLogger("pulsar.tasks")

#: seconds results (final records) are kept by default
DEFAULT_RESULT_TTL = 86400.0
#: seconds a backend call keeps retrying through an outage before it raises BackendError
DEFAULT_RETRY_TIMEOUT = 10.0

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def guarded(method: F) -> F:
    """Wrap a backend coroutine method: errors meaning "unreachable right now"
    (``Backend.transient``) are retried with back-off (50 ms doubling to 1 s) for up to
    ``retry_timeout`` seconds, then raised as :class:`BackendError`; other backend failures
    (``Backend.failures``) are raised as :class:`BackendError` at once. The original error is
    the ``__cause__``; the message is one line naming the backend."""

    @functools.wraps(method)
    async def wrapper(self: Backend, *args: Any, **kwargs: Any) -> Any:
        deadline: float | None = None
        delay = 0.05
        while True:
            try:
                return await method(self, *args, **kwargs)
            except (BackendError, TimeoutError):  # TimeoutError: a wait ran out (not an outage)
                raise
            except self.transient as exc:
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.retry_timeout
                    logger.debug("%s unreachable (%s), retrying", self.describe(), exc)
                if now >= deadline:
                    raise BackendError(
                        f"{self.describe()} unreachable for {self.retry_timeout:g}s: "
                        f"{_one_line(exc)}"
                    ) from exc
                await asyncio.sleep(min(delay, max(0.0, deadline - now)))
                delay = min(1.0, delay * 2)
            except self.failures as exc:
                raise BackendError(f"{self.describe()}: {_one_line(exc)}") from exc

    return wrapper  # type: ignore[return-value]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


@dataclass(slots=True)
class Claim:
    """What :meth:`Backend.claim` returns.

    ``tasks`` are the claimed rows (dicts, decoded by the worker so that a corrupt record fails
    alone); ``next_eta`` the earliest due time still waiting in those queues (None if empty).
    """

    tasks: list[dict[str, Any]] = field(default_factory=list)
    next_eta: float | None = None


class Backend(abc.ABC):
    """A task store (see the module docstring). Every method is a coroutine except the helpers.

    ``result_ttl``: seconds a finished record is kept (0 keeps it forever). ``retry_timeout``:
    seconds a call retries through an outage before raising :class:`BackendError` (see
    :func:`guarded`). ``events``: record task events for :meth:`event_reader` (see
    :mod:`._events`; also ``?events=1`` in the URL).
    """

    scheme: str = ""
    #: errors meaning "unreachable right now": retried for up to ``retry_timeout`` seconds
    transient: tuple[type[BaseException], ...] = ()
    #: errors meaning "the backend failed": raised at once as :class:`BackendError`
    failures: tuple[type[BaseException], ...] = ()

    def __init__(
        self,
        url: str,
        *,
        result_ttl: float = DEFAULT_RESULT_TTL,
        retry_timeout: float = DEFAULT_RETRY_TIMEOUT,
        events: bool = False,
    ) -> None:
        self.url = url
        self.result_ttl = float(result_ttl)
        self.retry_timeout = float(retry_timeout)
        #: True when the changes this object makes record task events (see _events.py)
        self.events = bool(events) or events_in_url(url)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def public_url(self) -> str:
        """The URL with its password masked (``***``): what logs and errors show."""
        parts = urlsplit(self.url)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
            return parts._replace(netloc=netloc).geturl()
        return self.url

    def describe(self) -> str:
        """How errors name this backend (its URL without a password)."""
        return f"task backend {self.public_url()}"

    # -- producers -----------------------------------------------------------------------------
    @abc.abstractmethod
    async def enqueue(self, task: Task, *, unique: bool = False, reply: bool = False) -> bool:
        """Store a new task (QUEUED, due at ``task.eta``) and wake a worker of its queue.

        With ``unique``, nothing happens when a task with this id exists (returns False).
        With ``reply``, the backend may arrange for the final record to be sent back to this
        backend object, so that :meth:`wait` needs no subscription or read (Redis does).
        Raises :class:`JobOverlap` when ``task.overlap_key`` is held by a pending task.
        """

    async def enqueue_flow(self, tasks: Sequence[Task], *, reply: bool = False) -> None:
        """Store tasks that may wait for others (``depends_on``, workflows), all or nothing,
        in one atomic step (see ``_workflow``). Each task's ``depends`` lists ids stored
        before or earlier in ``tasks``: a task without it is QUEUED as by :meth:`enqueue`; one
        with it is DEFERRED (not claimable) with ``waiting`` the number of dependencies not
        SUCCESS yet and its id added to their ``dependents``, then at once QUEUED (or, a
        workflow record, SUCCESS) when none is left, or REVOKED (a record: FAILURE) with the
        reason when one is already FAILURE or REVOKED.

        Every end of a task (complete, revoke, purge, expiry, lost) resolves its dependents in
        the same atomic step. Raises :class:`DuplicateTask` (an id in use) or ValueError (a
        dependency that is no task); nothing is stored then. ``reply``: as for
        :meth:`enqueue`, for the last task only (a workflow's record; waiting for another
        member works as for a task queued by another client).
        """
        raise NotImplementedError(f"{type(self).__name__} does not support depends_on")

    @abc.abstractmethod
    async def get(self, task_id: str) -> Task | None:
        """The task ``task_id`` or None (unknown or expired). A corrupt record raises ValueError."""

    @abc.abstractmethod
    async def list(
        self,
        status: TaskState | str | None = None,
        limit: int = 100,
        *,
        since: float | None = None,
    ) -> list[Task]:
        """The most recently queued tasks first, optionally only those with ``status`` and
        only those finished at or after ``since`` (a UNIX time; unfinished tasks are left out
        then): ``list("FAILURE", since=...)`` is the dead-letter view."""

    @abc.abstractmethod
    async def revoke(self, task_id: str) -> TaskState | None:
        """Revoke a task: a pending one becomes REVOKED at once; a STARTED one is flagged and its
        worker cancels it at its next lease renewal. Returns the state then, None if unknown."""

    # -- operators ------------------------------------------------------------------------------
    @abc.abstractmethod
    async def purge(self, queue: str) -> int:
        """Revoke every task of ``queue`` that has not started (QUEUED or RETRY, due or not):
        each becomes REVOKED with error ``'purged'``, as a revoke would make it (its waiters
        are woken with that record, its ``overlap=False`` key is freed, the record is kept for
        the result TTL). Running tasks are left alone. Returns how many were purged.

        One transaction on SQLite and PostgreSQL; on Redis one script per 1,000 tasks (Redis
        never blocks for long), so a task queued while a large purge runs may be purged too.
        """

    @abc.abstractmethod
    async def requeue(self, task_id: str) -> TaskState | None:
        """Queue a FAILURE or REVOKED task again under the same id, as if it were new: QUEUED,
        due now, ``attempts`` 0 (its whole ``max_retries`` budget again), result, error,
        traceback, worker, times and ``expires`` cleared; its queue's workers are woken.

        Returns the state the task was in: FAILURE or REVOKED means it is QUEUED now; any
        other state (SUCCESS, or still pending or running) means nothing changed. None when
        there is no such task (unknown, or its record expired). Raises :class:`JobOverlap`
        when its ``overlap=False`` key is held by another pending or running task.
        """

    @abc.abstractmethod
    async def heartbeat(self, worker: str, info: dict[str, Any], ttl: float) -> None:
        """Publish (or refresh) the record of a running consumer, ``info`` (JSON-friendly:
        worker id, host, pid, queues, concurrency, running tasks...), kept ``ttl`` seconds:
        a worker that stops beating disappears from :meth:`workers` by then."""

    @abc.abstractmethod
    async def forget_worker(self, worker: str) -> None:
        """Remove the heartbeat record of ``worker`` (it stopped, or its monitor reaped it)."""

    @abc.abstractmethod
    async def workers(self) -> builtins.list[dict[str, Any]]:
        """The heartbeat records of the live workers (those not expired), by worker id."""

    @abc.abstractmethod
    async def wait(self, task_id: str, timeout: float | None) -> Task | None:
        """Wait until the task is final and return it (None if unknown). ``TimeoutError``
        after ``timeout`` seconds."""

    @abc.abstractmethod
    async def counts(self) -> dict[str, int]:
        """How many tasks are in each state (only states with tasks appear)."""

    @abc.abstractmethod
    async def queue_counts(self) -> dict[str, dict[str, int]]:
        """How many tasks are in each state per queue: ``{queue: {state: n}}`` (only queues
        and states with tasks appear); the same records as :meth:`counts`, as costly (one
        grouped scan; on Redis the walk :meth:`counts` makes)."""

    async def pending(self, queues: Sequence[str]) -> int:
        """How many tasks wait (QUEUED or RETRY) in ``queues``; cheap, unlike :meth:`counts`
        (workers call it every few seconds)."""
        counts = await self.counts()
        return counts.get("QUEUED", 0) + counts.get("RETRY", 0)

    # -- workers -------------------------------------------------------------------------------
    @abc.abstractmethod
    async def claim(self, queues: Sequence[str], worker: str, lease: float, limit: int) -> Claim:
        """Take up to ``limit`` due tasks (see the module docstring)."""

    @abc.abstractmethod
    async def renew(self, leases: dict[str, str], lease: float) -> dict[str, str]:
        """Extend the leases ``{task_id: token}``; returns ``{task_id: reason}`` for those not
        renewed: ``'revoked'`` (revoke requested) or ``'lost'`` (the lease went elsewhere)."""

    @abc.abstractmethod
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
        """End the attempt holding ``token`` with a final ``status``; False (no change) when the
        token is not the current one."""

    @abc.abstractmethod
    async def retry(
        self, task_id: str, token: str, eta: float, *, error: str, traceback: str | None
    ) -> bool:
        """End the attempt with RETRY: the task is due again at ``eta``. False on a stale token."""

    @abc.abstractmethod
    async def release(self, task_id: str, token: str) -> bool:
        """Hand a claimed task back (graceful stop): QUEUED again, this attempt not counted."""

    async def release_worker(self, worker: str) -> int:
        """The worker ``worker`` is known to be dead (its monitor reaped it): its STARTED tasks
        are treated at once as if their leases had expired (queued again, or FAILURE
        ``'lost'`` once out of retries) and workers are woken. Returns how many. The lease
        remains the fallback when a whole machine dies. Default: nothing (0)."""
        return 0

    # -- scheduling (priorities and rate limits: see _schedule) -------------------------------
    async def postpone(self, task_id: str, token: str, eta: float) -> bool:
        """Hand a claimed task back due at ``eta`` (a rate limit refused it): QUEUED again,
        this attempt not counted, the lease released, its priority kept; its queue's workers
        are woken (their next due time changed). False (no change) on a stale token."""
        raise NotImplementedError(f"{type(self).__name__} has no rate limits")

    async def acquire_rate(self, key: str, limit: int, period: float) -> float:
        """Take a start from the rate limiter ``key`` (a job name) allowing ``limit`` starts in
        any ``period`` seconds, shared by every backend object of this store: 0.0 when admitted
        (the start is counted), else the seconds until a start may be admitted (nothing is
        counted). The state is the store's, and so is the clock where the store has one."""
        raise NotImplementedError(f"{type(self).__name__} has no rate limits")

    @abc.abstractmethod
    async def wait_for_work(self, queues: Sequence[str], timeout: float) -> None:
        """Return when new work may be due in ``queues`` or after ``timeout`` seconds."""

    async def wait_and_claim(
        self, queues: Sequence[str], worker: str, lease: float, limit: int, timeout: float
    ) -> Claim:
        """:meth:`wait_for_work`, then :meth:`claim`: what an idle worker does. A backend may
        do both in one round trip (Redis pipelines the claim behind its blocking wait)."""
        await self.wait_for_work(queues, timeout)
        return await self.claim(queues, worker, lease, limit)

    # -- progress and events (see _events.py) ---------------------------------------------------
    async def set_progress(
        self, updates: Sequence[tuple[str, str, float | None, str | None]]
    ) -> builtins.list[bool]:
        """Store the latest ``(task_id, token, progress, meta_json)`` of running tasks (None
        leaves that field as it is); each applies only while its token is the task's current
        one and the task is STARTED (a stale attempt, or a task already final, changes
        nothing: False). One round trip for the batch."""
        raise TaskError(f"{self.describe()} does not store progress")

    def event_reader(self, after: str | None = None) -> EventReader:
        """A reader of the task events recorded from now on (``after=None``), or after the
        event ``after`` (an event's ``id``; ``"0"``: from the oldest kept). Events are only
        recorded by backend objects made with ``events=True`` (see :mod:`._events`)."""
        raise TaskError(f"{self.describe()} has no events")

    # -- jobs, scheduling and maintenance ------------------------------------------------------
    @abc.abstractmethod
    async def register_jobs(self, metas: dict[str, dict[str, Any]]) -> None:
        """Publish job descriptions (so that clients without the code can validate names)."""

    @abc.abstractmethod
    async def jobs(self) -> dict[str, dict[str, Any]]:
        """The job descriptions published by workers."""

    @abc.abstractmethod
    async def put_raw(self, row: dict[str, Any]) -> None:
        """Write a raw record as is, queued in ``row['queue']`` (tests and repair tools)."""

    @abc.abstractmethod
    async def flush(self) -> None:
        """Delete everything this backend stores (tests)."""

    async def close(self) -> None:  # noqa: B027 - optional for a backend
        """Release connections."""

    # -- helpers -------------------------------------------------------------------------------
    @staticmethod
    def now() -> float:
        """The current UNIX time in seconds."""
        return time.time()


def decode_workers(texts: Sequence[str | bytes | None]) -> list[dict[str, Any]]:
    """Heartbeat records stored as JSON texts, as dicts (what :meth:`Backend.workers`
    returns); a missing or unreadable one is left out."""
    out = []
    for text in texts:
        if text is None:
            continue
        try:
            info = json.loads(text)
        except ValueError:
            continue
        if isinstance(info, dict):
            out.append(info)
    return out


def create_backend(
    url: str,
    *,
    result_ttl: float = DEFAULT_RESULT_TTL,
    retry_timeout: float = DEFAULT_RETRY_TIMEOUT,
    events: bool = False,
) -> Backend:
    """A backend for ``url``: ``sqlite:///path/tasks.db`` (or ``sqlite://:memory:`` for one
    process), ``redis://host:port/db`` (needs ``pip install pulsar-tasks[redis]``) or
    ``postgresql://user@host:port/db`` (or ``postgres://``; needs
    ``pip install pulsar-tasks[postgres]``).

    ``events=True`` (or ``?events=1`` in the URL) records task events (see :mod:`._events`).
    Raises :class:`BackendError` for an unknown scheme.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme == "sqlite":
        from ._sqlite import SQLiteBackend

        return SQLiteBackend(url, result_ttl=result_ttl, retry_timeout=retry_timeout, events=events)
    if scheme in ("redis", "rediss", "unix"):
        from ._redis import RedisBackend

        return RedisBackend(url, result_ttl=result_ttl, retry_timeout=retry_timeout, events=events)
    if scheme in ("postgresql", "postgres"):
        from ._postgres import PostgresBackend

        return PostgresBackend(
            url, result_ttl=result_ttl, retry_timeout=retry_timeout, events=events
        )
    raise BackendError(
        f"unknown task backend {url!r}: use sqlite:///path, redis://host:port/db or "
        f"postgresql://user@host:port/db"
    )
