"""Producers: :func:`connect` gives a :class:`TaskClient` (async) or a :class:`SyncClient`.

Any process may queue tasks: a job name is accepted when the job is declared in this process
(its module imported) or published in the backend by a running TaskQueue worker.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ._backend import DEFAULT_RESULT_TTL, Backend, create_backend
from ._errors import PayloadTooLarge, TaskError, TaskNotFound, TaskTimeout, UnknownJob
from ._events import KINDS, TaskEvent
from ._job import Job, dumps_payload, get_job
from ._schedule import check_priority
from ._state import REQUEUEABLE, Task, TaskState

if TYPE_CHECKING:
    from ._workflow import Workflow

__all__ = [
    "DEFAULT_MAX_PAYLOAD_SIZE",
    "SyncClient",
    "TaskClient",
    "connect",
    "connect_sync",
    "default_client",
    "queue_from_anywhere",
]

T = TypeVar("T")
_DEFAULT: TaskClient | None = None
_DEFAULT_SYNC: list[SyncClient] = []  # the open sync clients, the last one is the default

#: bytes of JSON arguments a task may carry by default (``max_payload_size``)
DEFAULT_MAX_PAYLOAD_SIZE = 4 * 1024 * 1024


def default_client() -> TaskClient:
    """The client ``Job.delay()`` uses in async code: the last one :func:`connect` made in this
    process (in a TaskQueue worker, the worker's own). Raises TaskError when there is none."""
    if _DEFAULT is None:
        raise TaskError("no task backend connected: call pulsar.apps.tasks.connect(url) first")
    return _DEFAULT


def queue_from_anywhere(
    name: str, args: Sequence[Any], kwargs: Mapping[str, Any], **options: Any
) -> Any:
    """What ``Job.delay()``/``Job.apply()`` do: with a running event loop, a coroutine queueing
    the task with :func:`default_client`; in plain sync code, the queued :class:`Task`, through
    the last open :func:`connect_sync` client, or else the default async client's loop when it
    runs in another thread (a sync job inside a worker). Raises TaskError when neither exists.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:
        return default_client().queue_task(name, args, kwargs, **options)
    if _DEFAULT_SYNC and _DEFAULT_SYNC[-1].pid == os.getpid():
        return _DEFAULT_SYNC[-1].queue_task(name, args, kwargs, **options)
    client = _DEFAULT
    if client is not None and client.pid != os.getpid():
        # a forked child (a sync job in its own process): the parent's loop does not run
        # here, so a sync client of the same backend serves this process
        forked = SyncClient(client.backend.url, max_payload_size=client.max_payload_size)
        return forked.queue_task(name, args, kwargs, **options)
    if client is not None and client.loop is not None and client.loop.is_running():
        coro = client.queue_task(name, args, kwargs, **options)
        return asyncio.run_coroutine_threadsafe(coro, client.loop).result()
    raise TaskError(
        "no task backend connected: open one with pulsar.apps.tasks.connect_sync(url) "
        "(sync code) or pulsar.apps.tasks.connect(url) (async code)"
    )


def connect(
    url: str | Backend = "sqlite:///pulsar-tasks.db",
    *,
    result_ttl: float = DEFAULT_RESULT_TTL,
    max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE,
    set_default: bool = True,
    events: bool = False,
) -> TaskClient:
    """An async client of the backend at ``url`` (or an existing :class:`Backend`).

    ``events=True`` (or ``?events=1`` in the URL) records the task events of the changes this
    client makes (tasks queued, revoked...); see :meth:`TaskClient.events`.

    ``max_payload_size``: bytes of JSON arguments a task may carry (0: no limit); larger ones
    are refused with :class:`PayloadTooLarge` before anything is stored. It becomes the default
    client of ``Job.delay()`` unless ``set_default=False``.
    """
    global _DEFAULT
    backend = (
        url
        if isinstance(url, Backend)
        else create_backend(url, result_ttl=result_ttl, events=events)
    )
    client = TaskClient(backend, max_payload_size=max_payload_size)
    if set_default:
        _DEFAULT = client
    return client


def _check_arguments(
    args: Sequence[Any] | None, kwargs: Mapping[str, Any] | None
) -> tuple[list[Any], dict[str, Any]]:
    if args is None:
        args = ()
    if isinstance(args, str | bytes) or not isinstance(args, list | tuple):
        raise TypeError(
            f"args must be a list or tuple of the job's positional arguments, not "
            f"{type(args).__name__} (queue_task(name, args=[...], kwargs={{...}}, **options))"
        )
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, Mapping):
        raise TypeError(
            f"kwargs must be a dict of the job's keyword arguments, not {type(kwargs).__name__}"
        )
    bad = [k for k in kwargs if not isinstance(k, str)]
    if bad:
        raise TypeError(f"kwargs keys must be strings, got {bad[0]!r}")
    return list(args), dict(kwargs)


def connect_sync(url: str = "sqlite:///pulsar-tasks.db", **kwargs: Any) -> SyncClient:
    """A blocking client (for scripts, WSGI views, the CLI): the methods of :class:`TaskClient`
    without ``await``, run on a private event loop thread."""
    return SyncClient(url, **kwargs)


def _timestamp(value: float | dt.datetime | None) -> float | None:
    if value is None or isinstance(value, int | float):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


class TaskClient:
    """Queue tasks, wait for them, look them up and revoke them; the operator's calls
    (:meth:`purge`, :meth:`requeue`, :meth:`workers`). Every method is async."""

    def __init__(
        self, backend: Backend, *, max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE
    ) -> None:
        self.backend = backend
        self.max_payload_size = int(max_payload_size or 0)
        self.pid = os.getpid()
        self._remote_jobs: dict[str, dict[str, Any]] = {}
        try:  # where a sync caller in another thread can run this client's calls
            self.loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self.loop = None

    def __repr__(self) -> str:
        return f"TaskClient({self.backend.url!r})"

    async def close(self) -> None:
        """Close the backend connections."""
        await self.backend.close()

    async def _job_meta(self, name: str) -> tuple[Job | None, dict[str, Any]]:
        job = get_job(name)
        if job is not None:  # its options are read from the job itself
            return job, {}
        if name not in self._remote_jobs:
            self._remote_jobs = await self.backend.jobs()
        meta = self._remote_jobs.get(name)
        if meta is None:
            raise UnknownJob(
                f"unknown job {name!r}: import the module declaring it, or start a TaskQueue "
                f"worker that loads it"
            )
        return None, meta

    async def queue_task(
        self,
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        *,
        countdown: float | None = None,
        eta: float | dt.datetime | None = None,
        expires: float | dt.timedelta | dt.datetime | None = None,
        queue: str | None = None,
        task_id: str | None = None,
        priority: int | None = None,
        depends_on: Sequence[str | Task] | None = None,
    ) -> Task:
        """Queue a task of job ``name`` called with ``*args, **kwargs`` and return its record.

        The job's arguments and the task's options have separate places (Celery's
        ``send_task``/``apply_async`` split), so a job argument may have any name, ``queue`` or
        ``eta`` included: ``queue_task("add", [1, 2])``, ``queue_task("send", kwargs={"queue":
        "x"}, countdown=5)``.

        Options: ``countdown`` (seconds from now) or ``eta`` (UNIX time or datetime; naive means
        UTC) delay it; ``expires`` (seconds from now — whatever its size —, a timedelta, or an
        absolute datetime) revokes it if not started by then (default: the job's ``expires``);
        ``queue`` overrides the job's; ``task_id`` names the task (default: a random id);
        ``priority`` (0-9, higher first within the queue) overrides the job's.
        ``depends_on`` (task ids, or tasks) makes it wait, DEFERRED, until every one of them is
        SUCCESS (then it is queued; one already SUCCESS counts as met), and REVOKED with the
        reason when one ends FAILURE or REVOKED (at once when one already has); an unknown id
        is a ValueError and nothing is stored.

        Raises :class:`UnknownJob`, :class:`TypeError` (``args`` not a list or tuple,
        ``kwargs`` not a dict with string keys), :class:`TaskSerializationError` (arguments not
        JSON), :class:`PayloadTooLarge` (arguments over ``max_payload_size`` bytes),
        :class:`DuplicateTask` (``task_id`` already used), :class:`JobOverlap` (``overlap=False``
        and the same arguments pending) or :class:`BackendError` (the backend is unreachable
        after the bounded retries); nothing is stored then.
        """
        args, kwargs = _check_arguments(args, kwargs)
        if priority is not None:
            check_priority(priority)
        job, meta = await self._job_meta(name)
        payload = dumps_payload(args, kwargs)
        if self.max_payload_size and len(payload) > self.max_payload_size:
            raise PayloadTooLarge(
                f"task arguments of {name!r} are {len(payload):,} bytes of JSON, over "
                f"max_payload_size={self.max_payload_size:,}: store large data elsewhere and "
                f"pass a reference"
            )
        now = time.time()
        if countdown is not None and eta is not None:
            raise TypeError("give countdown or eta, not both")
        when = now + float(countdown) if countdown is not None else _timestamp(eta) or now
        default_queue: str | None
        max_retries: int | None
        if job is not None:
            default_expires, default_queue = job.expires, job.default_queue
            max_retries = job.max_retries
            overlap_key = job.overlap_key(payload)
            default_priority = job.priority
        else:
            default_expires, default_queue = meta.get("expires"), meta.get("queue")
            max_retries = meta.get("max_retries")
            overlap_key = None if meta.get("overlap", True) else _overlap_key(name, payload)
            default_priority = meta.get("priority") or 0
        exp = expires if expires is not None else default_expires
        exp_at: float | None
        if exp is None:
            exp_at = None
        elif isinstance(exp, dt.datetime):
            exp_at = _timestamp(exp)
        elif isinstance(exp, dt.timedelta):
            exp_at = now + exp.total_seconds()
        else:
            exp_at = now + float(exp)
        task = Task(
            id=task_id or uuid.uuid4().hex,
            name=name,
            queue=queue or default_queue or "default",
            payload=payload,
            max_retries=int(max_retries or 0),
            time_queued=now,
            eta=when,
            expires=exp_at,
            overlap_key=overlap_key,
            priority=check_priority(default_priority if priority is None else priority),
        )
        if depends_on is not None:
            return await self._queue_dependent(task, depends_on)
        await self.backend.enqueue(task, reply=True)
        return task

    # -- workflows (see _workflow.py) ----------------------------------------------------------
    async def _queue_dependent(self, task: Task, depends_on: Sequence[str | Task]) -> Task:
        from ._workflow import check_deferrable, depends_json

        task.depends = depends_json(depends_on)
        if task.depends == "[]":
            task.depends = None
        else:
            check_deferrable(task)
        await self.backend.enqueue_flow([task], reply=True)
        return await self.backend.get(task.id) or task

    async def queue_workflow(self, flow: Workflow) -> Task:
        """Queue a :func:`chain`, :func:`group` or :func:`chord` (nested ones too), every
        task of it in one backend call (all or nothing), and return the workflow's record: a
        task (``name`` ``workflow.<kind>``) that :meth:`get_task` and :meth:`wait_for_task`
        follow like any other. It ends SUCCESS with the workflow's result (a chain's last
        step's, a group's list, a chord's callback's) or FAILURE, its ``error`` naming the
        step that failed and why. Every step carries the workflow's id in ``workflow``.

        Raises TypeError for something that is not a workflow, and what :meth:`queue_task`
        raises for a bad step (nothing is stored then).
        """
        from ._workflow import Workflow, build

        if not isinstance(flow, Workflow):
            raise TypeError(
                f"queue_workflow() takes chain(...), group(...) or chord(...), not "
                f"{type(flow).__name__} (a single job: queue_task or job.delay)"
            )
        record, members = await build(self, flow)
        await self.backend.enqueue_flow(members, reply=True)
        return await self.backend.get(record.id) or record

    async def get_task(self, task_id: str) -> Task | None:
        """The task record, or None when unknown (or its result expired)."""
        return await self.backend.get(task_id)

    async def list_tasks(
        self,
        status: TaskState | str | None = None,
        limit: int = 100,
        *,
        since: float | dt.datetime | None = None,
    ) -> list[Task]:
        """Recent tasks, newest queued first, optionally only those with ``status``, and only
        those finished at or after ``since`` (a UNIX time or a datetime, naive means UTC):
        ``list_tasks("FAILURE", since=...)`` is the dead-letter view (tasks that failed, ran
        out of retries or were lost)."""
        return await self.backend.list(status, limit, since=_timestamp(since))

    async def wait_for_task(self, task_id: str, timeout: float | None = None) -> Task:
        """Wait until the task is SUCCESS, FAILURE or REVOKED and return its record.

        Event driven where the backend can notify (Redis pub/sub; SQLite: immediately within
        this process, within a few ms across processes). Raises :class:`TaskTimeout` after
        ``timeout`` seconds and :class:`TaskNotFound` for an unknown id.
        """
        try:
            task = await self.backend.wait(task_id, timeout)
        except TimeoutError:
            raise TaskTimeout(f"task {task_id} not done after {timeout}s") from None
        if task is None:
            raise TaskNotFound(f"no task {task_id!r}")
        return task

    async def follow(self, task_id: str, *, poll: float = 0.25) -> AsyncIterator[Task]:
        """Yield the task's record now and each time its status, progress or meta changes,
        ending after its final state (a task already done: one record, then the end)::

            async for task in client.follow(task.id):
                print(task.status, task.progress, task.meta)

        Event driven when this client's backend records events (``events=True``: it reads
        the events of the task, and re-reads the record once a second in any case);
        otherwise it waits for the final record and re-reads every ``poll`` seconds.
        Raises :class:`TaskNotFound` for an unknown id (or one whose record expired).
        """
        reader = self.backend.event_reader() if self.backend.events else None
        try:
            if reader is not None:
                await reader.start()  # from before the first read: no change slips through
            task = await self.get_task(task_id)
            if task is None:
                raise TaskNotFound(f"no task {task_id!r}")
            yield task
            seen = _follow_key(task)
            while not task.done:
                if reader is not None:  # until an event of this task, or a second
                    end = time.monotonic() + 1.0
                    while (left := end - time.monotonic()) > 0:
                        if any(e.task_id == task_id for e in await reader.read(left)):
                            break
                else:
                    with contextlib.suppress(TimeoutError):
                        await self.backend.wait(task_id, poll)
                task = await self.get_task(task_id)
                if task is None:
                    raise TaskNotFound(f"task {task_id!r} is gone (its record expired)")
                if _follow_key(task) != seen:
                    seen = _follow_key(task)
                    yield task
        finally:
            if reader is not None:
                await reader.close()

    def events(
        self,
        *,
        queue: str | Iterable[str] | None = None,
        task_id: str | Iterable[str] | None = None,
        kinds: str | Iterable[str] | None = None,
        after: str | None = None,
    ) -> AsyncIterator[TaskEvent]:
        """Yield task events (:class:`TaskEvent`: ``kind``, ``task_id``, ``name``, ``queue``,
        ``time``, ``worker``, ``attempts``, and ``progress``/``meta``/``error``/``reason`` as
        the kind has them) from now on, forever (stop iterating to end)::

            async for event in client.events(queue="images", kinds=["failed", "retried"]):
                print(event.kind, event.task_id, event.error)

        Filters: ``queue``, ``task_id`` (one or several), ``kinds`` (of
        ``queued, started, progress, succeeded, failed, retried, revoked``; ValueError for
        another). ``after``: an event's ``id`` to resume after (``"0"``: the oldest event the
        backend keeps, about the last 10,000). Only changes made by backend objects recording
        events (``events=True``, ``?events=1``, ``--task-events``) produce events. Bad filters
        raise here, before the first event.
        """
        return self._events(_names(queue), _names(task_id), _kinds(kinds), after)

    async def _events(
        self,
        queues: frozenset[str] | None,
        ids: frozenset[str] | None,
        wanted: frozenset[str] | None,
        after: str | None,
    ) -> AsyncIterator[TaskEvent]:
        reader = self.backend.event_reader(after)
        try:
            await reader.start()
            while True:
                for event in await reader.read(1.0):
                    if queues is not None and event.queue not in queues:
                        continue
                    if ids is not None and event.task_id not in ids:
                        continue
                    if wanted is not None and event.kind not in wanted:
                        continue
                    yield event
        finally:
            await reader.close()

    async def last_event_id(self) -> str:
        """The id of the last event recorded (``"0"``-like when none): pass it as
        ``events(after=...)`` to read every event from this moment on."""
        reader = self.backend.event_reader()
        try:
            return await reader.start()
        finally:
            await reader.close()

    async def revoke(self, task_id: str) -> TaskState | None:
        """Revoke a task: a pending one is REVOKED at once; a running async one is cancelled by
        its worker at its next lease renewal (a sync one is marked REVOKED when it returns).
        Returns the state after the call, None for an unknown id.

        A workflow's record (:meth:`queue_workflow`) is revoked with every member not final
        yet: the record first (it ends REVOKED, not FAILURE), then each member, so that steps
        waiting for others are REVOKED too and a running one is cancelled as above."""
        state = await self.backend.revoke(task_id)
        if state is None:
            return None
        record = await self.backend.get(task_id)
        if record is not None and record.name.startswith("workflow."):
            try:
                tree = record.kwargs
            except ValueError:
                tree = {}
            for member in _members(tree):
                await self.backend.revoke(member)
        return state

    async def purge(self, queue: str) -> int:
        """Revoke every task of ``queue`` that has not started yet (QUEUED or RETRY): each
        becomes REVOKED with error ``'purged'`` (its waiters get that record, as after a
        revoke); running tasks are left alone. Returns how many were purged (Celery's
        ``purge``, RQ's ``empty``)."""
        return await self.backend.purge(queue)

    async def requeue(self, task_id: str) -> bool:
        """Queue a FAILURE (lost included) or REVOKED task again under the same id (RQ's
        ``requeue``): due now, ``attempts`` reset to 0 (its whole retry budget again),
        result, error and traceback cleared; a worker of its queue is woken.

        Returns False for an unknown id (or an expired record). Raises :class:`TaskError`
        for a task that is SUCCESS, or still pending or running (nothing changes), and
        :class:`JobOverlap` when an ``overlap=False`` twin is pending or running.
        """
        before = await self.backend.requeue(task_id)
        if before is None:
            return False
        if before not in REQUEUEABLE:
            raise TaskError(
                f"task {task_id} is {before}: only FAILURE and REVOKED tasks can be requeued"
            )
        return True

    async def workers(self) -> list[dict[str, Any]]:
        """The live workers' heartbeat records (``pulsar-tasks inspect``), by worker id: each
        a dict with ``worker``, ``host``, ``pid``, ``queues``, ``concurrency``, ``started``,
        ``beat``, ``processed``, ``failed`` and ``running`` (``[{"id", "name", "started"}]``,
        times in UNIX seconds). A worker that stopped or died is gone within three heartbeat
        periods (``task_lease / 3``, at most 5 s, each)."""
        return await self.backend.workers()

    async def job_list(self) -> dict[str, dict[str, Any]]:
        """Every known job: those declared here and those published by workers."""
        jobs = await self.backend.jobs()
        from ._job import registry

        for name, job in registry().items():
            jobs.setdefault(name, job.meta())
        return jobs

    async def counts(self) -> dict[str, int]:
        """How many tasks are in each state."""
        return await self.backend.counts()

    async def queue_counts(self) -> dict[str, dict[str, int]]:
        """How many tasks are in each state, per queue: ``{queue: {state: n}}`` (only queues
        and states with tasks appear; the values add up to :meth:`counts`). It reads every
        record, as :meth:`counts` does: for a dashboard or a metrics scrape, not a hot path
        (:meth:`pending` is the cheap one)."""
        return await self.backend.queue_counts()

    async def pending(self, queues: Sequence[str] = ("default",)) -> int:
        """How many tasks wait (QUEUED or RETRY, due or not) in ``queues``."""
        return await self.backend.pending(list(queues))


def _follow_key(task: Task) -> tuple[Any, ...]:
    return (task.status, task.progress, task.meta_json, task.attempts)


def _names(value: str | Iterable[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return frozenset((value,))
    names = frozenset(value)
    if not all(isinstance(n, str) for n in names):
        raise TypeError(f"give a name or a list of names, not {value!r}")
    return names


def _kinds(value: str | Iterable[str] | None) -> frozenset[str] | None:
    kinds = _names(value)
    if kinds is not None:
        unknown = sorted(kinds - set(KINDS))
        if unknown:
            raise ValueError(f"unknown event kind(s) {', '.join(unknown)}: use {', '.join(KINDS)}")
    return kinds


def _members(tree: Any) -> list[str]:
    """The ids of every member of a workflow's tree (its record's kwargs), depth first."""
    out: list[str] = []
    if isinstance(tree, dict):
        for member in tree.get("members") or ():
            if isinstance(member, dict):
                if isinstance(member.get("id"), str):
                    out.append(member["id"])
                out += _members(member)
    return out


def _overlap_key(name: str, payload: str) -> str:
    import hashlib

    return f"{name}:{hashlib.sha1(payload.encode()).hexdigest()}"


class SyncClient:
    """The blocking twin of :class:`TaskClient` (same methods, no ``await``)."""

    def __init__(self, url: str | Backend = "sqlite:///pulsar-tasks.db", **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="pulsar-tasks-client", daemon=True
        )
        self._thread.start()
        kwargs.setdefault("set_default", False)
        self.client = connect(url, **kwargs)
        self.client.loop = self._loop
        self.pid = os.getpid()
        _DEFAULT_SYNC.append(self)  # the default of Job.delay() in sync code while open

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def queue_task(
        self,
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Task:
        """See :meth:`TaskClient.queue_task`."""
        return self._call(self.client.queue_task(name, args, kwargs, **options))

    def queue_workflow(self, flow: Workflow) -> Task:
        """See :meth:`TaskClient.queue_workflow`."""
        return self._call(self.client.queue_workflow(flow))

    def get_task(self, task_id: str) -> Task | None:
        """See :meth:`TaskClient.get_task`."""
        return self._call(self.client.get_task(task_id))

    def list_tasks(
        self,
        status: TaskState | str | None = None,
        limit: int = 100,
        *,
        since: float | dt.datetime | None = None,
    ) -> list[Task]:
        """See :meth:`TaskClient.list_tasks`."""
        return self._call(self.client.list_tasks(status, limit, since=since))

    def wait_for_task(self, task_id: str, timeout: float | None = None) -> Task:
        """See :meth:`TaskClient.wait_for_task`."""
        return self._call(self.client.wait_for_task(task_id, timeout))

    def follow(self, task_id: str, *, poll: float = 0.25) -> Iterator[Task]:
        """See :meth:`TaskClient.follow` (a blocking iterator)."""
        return self._iterate(self.client.follow(task_id, poll=poll))

    def events(self, **filters: Any) -> Iterator[TaskEvent]:
        """See :meth:`TaskClient.events` (a blocking iterator; same keyword filters). Bad
        filters raise here, before the first event."""
        return self._iterate(self.client.events(**filters))

    def last_event_id(self) -> str:
        """See :meth:`TaskClient.last_event_id`."""
        return self._call(self.client.last_event_id())

    def _iterate(self, agen: AsyncIterator[T]) -> Iterator[T]:
        """``agen`` (an async generator) as a blocking iterator on the private loop; leaving
        it (break, an exception, Ctrl-C in the wait) cancels the pending step and closes it."""

        async def step() -> T:
            return await agen.__anext__()

        async def close() -> None:
            aclose = getattr(agen, "aclose", None)
            for _ in range(500):  # a cancelled step may still be unwinding: "already running"
                try:
                    if aclose is not None:
                        await aclose()
                    return
                except RuntimeError:
                    await asyncio.sleep(0.01)

        pending: concurrent.futures.Future[T] | None = None
        try:
            while True:
                pending = asyncio.run_coroutine_threadsafe(step(), self._loop)
                try:
                    value = pending.result()
                except StopAsyncIteration:
                    return
                pending = None
                yield value
        finally:
            if pending is not None and not pending.done():
                pending.cancel()
            if self._thread.is_alive():
                with contextlib.suppress(Exception):
                    asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)

    def revoke(self, task_id: str) -> TaskState | None:
        """See :meth:`TaskClient.revoke`."""
        return self._call(self.client.revoke(task_id))

    def purge(self, queue: str) -> int:
        """See :meth:`TaskClient.purge`."""
        return self._call(self.client.purge(queue))

    def requeue(self, task_id: str) -> bool:
        """See :meth:`TaskClient.requeue`."""
        return self._call(self.client.requeue(task_id))

    def workers(self) -> list[dict[str, Any]]:
        """See :meth:`TaskClient.workers`."""
        return self._call(self.client.workers())

    def job_list(self) -> dict[str, dict[str, Any]]:
        """See :meth:`TaskClient.job_list`."""
        return self._call(self.client.job_list())

    def counts(self) -> dict[str, int]:
        """See :meth:`TaskClient.counts`."""
        return self._call(self.client.counts())

    def queue_counts(self) -> dict[str, dict[str, int]]:
        """See :meth:`TaskClient.queue_counts`."""
        return self._call(self.client.queue_counts())

    def pending(self, queues: Sequence[str] = ("default",)) -> int:
        """See :meth:`TaskClient.pending`."""
        return self._call(self.client.pending(queues))

    def close(self) -> None:
        """Close the backend and stop the private loop thread."""
        if self in _DEFAULT_SYNC:
            _DEFAULT_SYNC.remove(self)
        if self._thread.is_alive():
            self._call(self.client.close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
