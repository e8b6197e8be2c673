"""Jobs: what a task runs, declared with :func:`job` or as :class:`Job` subclasses.

A job is registered by name in a process-wide registry when its module is imported; workers
import the TaskQueue's ``modules`` so that every job they may be asked to run is known.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import functools
import hashlib
import importlib
import inspect
import json
import os
import random
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ._errors import TaskError, TaskSerializationError
from ._schedule import check_priority, format_rate_limit, parse_rate_limit

if TYPE_CHECKING:  # pragma: no cover
    from ._state import Task
    from ._workflow import Signature

__all__ = [
    "Job",
    "current_task",
    "dumps_payload",
    "get_job",
    "import_modules",
    "job",
    "registry",
]

_REGISTRY: dict[str, Job] = {}
#: where each registered job was declared ("module.qualname"), for duplicate-name errors
_DECLARED: dict[str, tuple[str, str]] = {}
_CURRENT: contextvars.ContextVar[Task | None] = contextvars.ContextVar(
    "pulsar_tasks_current", default=None
)


def current_task() -> Task | None:
    """The task being run, from inside a job (async or sync, in the worker's threads or in
    the child process of a sync job with a timeout): its ``id``, ``attempts`` (1 on the first
    run), ``queue``, ``name``, ``args``... as claimed. None outside a task run."""
    return _CURRENT.get()


def registry() -> dict[str, Job]:
    """The jobs declared in this process, by name."""
    return dict(_REGISTRY)


def get_job(name: str) -> Job | None:
    """The job registered as ``name`` in this process, or None."""
    return _REGISTRY.get(name)


def import_modules(modules: Iterable[str]) -> None:
    """Import the modules declaring jobs (``"pkg.jobs"``); ImportError names the module."""
    for name in modules:
        importlib.import_module(name)


def dumps_payload(args: Iterable[Any], kwargs: dict[str, Any]) -> str:
    """The JSON text of a task's arguments; :class:`TaskSerializationError` when not JSON."""
    try:
        return json.dumps({"args": list(args), "kwargs": kwargs}, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TaskSerializationError(
            f"task arguments must be JSON serializable (str, int, float, bool, None, list, "
            f"dict with str keys): {exc}"
        ) from None


class Job:
    """A unit of work. Subclass and implement :meth:`run` (sync or ``async``)::

        class Resize(tasks.Job):
            name = "resize"
            timeout = 30
            max_retries = 3
            retry_on = (IOError,)

            async def run(self, path, width):
                ...

    Options (class attributes, or arguments of :func:`job`):

    - ``name``: the registry name (default: the function or class name);
    - ``queue``: the queue its tasks go to (``"default"``);
    - ``timeout``: seconds a run may take, counted from its start; the run is then stopped
      and the task fails with ``'timeout'``: an async run is cancelled, a sync run (in a
      child process, see ``process``) is killed;
    - ``process``: for sync jobs, run each attempt in a child process that can be killed
      (at the timeout, on revoke): None (default) when ``timeout`` is set, True always,
      False in the worker's threads (a thread cannot be stopped: at the timeout the task
      fails and the run's late result is ignored);
    - ``expires``: seconds after queueing; a task not started by then is REVOKED;
    - ``max_retries``: how many times a failed attempt runs again; an attempt fails when it
      raises one of ``retry_on`` or when its worker dies (lease expired);
    - ``retry_delay``: seconds before the first retry, doubled at each further retry
      (``retry_backoff``), capped by ``retry_max_delay``, with ``retry_jitter`` (±10%);
    - ``retry_on``: exception types that are retried (others fail at once);
    - ``overlap``: False refuses a second task with the same arguments while one is queued
      or running (:class:`JobOverlap`);
    - ``run_every`` (a :class:`datetime.timedelta`) or ``cron`` (``"*/5 * * * *"``, UTC):
      a periodic job, queued by the TaskQueue scheduler once per due time;
    - ``priority``: 0 (default) to 9, the priority of its tasks (higher first within a queue;
      ``queue_task(..., priority=7)`` per task);
    - ``rate_limit``: at most N starts in any window of the period across every worker of the
      backend, ``"100/s"``, ``"10/m"``, ``"600/h"`` (a number: per second); tasks over the
      limit wait in the queue (see :mod:`._schedule`).
    """

    name: str = ""
    #: the ``queue`` option (a ``queue = "..."`` class attribute is moved here, since
    #: ``Job.queue()`` is the method queueing a task)
    default_queue: str = "default"
    timeout: float | None = None
    expires: float | None = None
    max_retries: int = 3
    retry_delay: float = 1.0
    retry_backoff: float = 2.0
    retry_max_delay: float = 3600.0
    retry_jitter: float = 0.1
    retry_on: tuple[type[BaseException], ...] = ()
    overlap: bool = True
    #: sync jobs only: run each attempt in a child process that is killed at the timeout or
    #: on revoke (None: when ``timeout`` is set), or in the worker's threads (False)
    process: bool | None = None
    run_every: dt.timedelta | None = None
    cron: str | None = None
    priority: int = 0
    rate_limit: str | float | None = None
    #: ``rate_limit`` parsed: (N, period in seconds), None without a limit
    rate: tuple[int, float] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = cls.__dict__.get("queue")
        if isinstance(declared, str):
            cls.default_queue = declared
            delattr(cls, "queue")
        if "run" in cls.__dict__ and not cls.__dict__.get("abstract", False):
            if not cls.name or "name" not in cls.__dict__:
                cls.name = cls.__name__
            register(cls())

    def __init__(self) -> None:
        label = f"job {self.name!r}"
        check_priority(self.priority, f"{label}: priority")
        try:
            self.rate = parse_rate_limit(self.rate_limit)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{label}: {exc}") from None
        if self.run_every is not None and self.cron is not None:
            raise TaskError(f"job {self.name!r}: give run_every or cron, not both")
        if self.run_every is not None and self.run_every.total_seconds() <= 0:
            raise TaskError(f"job {self.name!r}: run_every must be positive")
        if self.cron is not None:
            from croniter import croniter

            if not croniter.is_valid(self.cron):
                raise TaskError(f"job {self.name!r}: invalid cron expression {self.cron!r}")

    def __repr__(self) -> str:
        return f"<Job {self.name!r} queue={self.default_queue!r}>"

    def __reduce__(self) -> Any:
        return (_job_by_name, (self.name,))

    # -- running -------------------------------------------------------------------------------
    def run(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - abstract
        """The work (override; sync or ``async``)."""
        raise NotImplementedError

    @property
    def is_async(self) -> bool:
        """True when :meth:`run` is a coroutine function (runs on the worker's loop)."""
        return inspect.iscoroutinefunction(self.run)

    @property
    def in_process(self) -> bool:
        """True when a run of this (sync) job goes to a child process of its own."""
        if self.is_async:
            return False
        return self.timeout is not None if self.process is None else bool(self.process)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the job in this process, now (no task, no queue)."""
        return self.run(*args, **kwargs)

    # -- retries -------------------------------------------------------------------------------
    def should_retry(self, exc: BaseException, attempts: int) -> bool:
        """True when an attempt that raised ``exc`` is retried (``attempts`` done so far)."""
        return (
            bool(self.retry_on)
            and isinstance(exc, self.retry_on)
            and (attempts <= self.max_retries)
        )

    def retry_delay_for(self, attempts: int) -> float:
        """Seconds before the retry following attempt number ``attempts`` (1-based)."""
        base = self.retry_delay * self.retry_backoff ** max(0, attempts - 1)
        base = min(base, self.retry_max_delay)
        jitter = base * self.retry_jitter
        return max(0.0, base + random.uniform(-jitter, jitter))

    # -- periodic ------------------------------------------------------------------------------
    @property
    def periodic(self) -> bool:
        """True for ``run_every``/``cron`` jobs."""
        return self.run_every is not None or self.cron is not None

    def next_due(self, after: float) -> float | None:
        """The first due time (UNIX seconds, UTC) strictly after ``after``; None if not periodic.

        ``run_every`` due times are multiples of the period since the epoch, so every scheduler
        computes the same times.
        """
        if self.run_every is not None:
            period = self.run_every.total_seconds()
            return (int(after // period) + 1) * period
        if self.cron is not None:
            from croniter import croniter

            start = dt.datetime.fromtimestamp(after, dt.UTC)
            return float(croniter(self.cron, start).get_next(float))
        return None

    # -- queueing ------------------------------------------------------------------------------
    def overlap_key(self, payload: str) -> str | None:
        """The key identifying "the same job with the same arguments" (None when overlap is ok)."""
        if self.overlap:
            return None
        return f"{self.name}:{hashlib.sha1(payload.encode()).hexdigest()}"

    def own_doc(self) -> str:
        """This job's own docstring (its ``run``'s, else its class's), never one inherited from
        :class:`Job`."""
        for cls in type(self).__mro__:
            if cls is Job or cls is object:
                break
            run = cls.__dict__.get("run")
            if run is not None and getattr(run, "__doc__", None):
                return inspect.cleandoc(run.__doc__)
        for cls in type(self).__mro__:
            if cls is Job or cls is object:
                break
            if cls.__dict__.get("__doc__"):
                return inspect.cleandoc(cls.__dict__["__doc__"])
        return ""

    def meta(self) -> dict[str, Any]:
        """What workers publish about this job in the backend (for clients without the code)."""
        doc = self.own_doc()
        return {
            "name": self.name,
            "queue": self.default_queue,
            "timeout": self.timeout,
            "expires": self.expires,
            "max_retries": self.max_retries,
            "overlap": self.overlap,
            "run_every": self.run_every.total_seconds() if self.run_every else None,
            "cron": self.cron,
            "doc": doc.split("\n\n")[0],
            "async": self.is_async,
            "priority": self.priority,
            "rate_limit": format_rate_limit(self.rate),
        }

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        """Queue a task of this job called with ``*args, **kwargs`` (every keyword is the job's:
        task options go to :meth:`apply`).

        In async code it returns a coroutine (``task = await add.delay(1, 2)``) using the
        default client (:func:`connect`); in plain sync code it queues at once and returns the
        :class:`Task`, through the last open :func:`connect_sync` client (``with
        tasks.connect_sync(url): add.delay(1, 2)``). Raises TaskError without a client.
        """
        from ._client import queue_from_anywhere

        return queue_from_anywhere(self.name, args, kwargs)

    def apply(
        self,
        args: Iterable[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Queue a task with explicit ``args``/``kwargs`` and task options (``countdown``,
        ``eta``, ``expires``, ``queue``, ``task_id``), as :meth:`TaskClient.queue_task`; async or
        sync like :meth:`delay`. Celery's ``apply()`` runs locally: here, call the job
        (``add(1, 2)``) for that."""
        from ._client import queue_from_anywhere

        return queue_from_anywhere(
            self.name, tuple(args) if args is not None else (), kwargs or {}, **options
        )

    #: Celery's name of :meth:`apply`
    apply_async = apply

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """A signature of this job called with ``*args, **kwargs`` (every keyword is the
        job's; task options with ``.set(queue=..., countdown=...)``), for :func:`chain`,
        :func:`group` and :func:`chord`: in a chain it receives the previous step's result
        as its first positional argument."""
        from ._workflow import Signature

        return Signature(self.name, args, kwargs)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        """An immutable signature: like :meth:`s`, but it does not receive the previous
        step's result."""
        from ._workflow import Signature

        return Signature(self.name, args, kwargs, immutable=True)

    def queue(self, *args: Any, **kwargs: Any) -> Any:
        """The same as :meth:`delay`."""
        return self.delay(*args, **kwargs)


def _job_by_name(name: str) -> Job:
    found = _REGISTRY.get(name)
    if found is None:
        raise TaskError(f"job {name!r} is not registered in this process")
    return found


def _where(instance: Job) -> tuple[str, str]:
    """(identity, description) of a declaration: its source file and qualified name (the same
    for a module imported under two names), and ``module.qualname (file:line)``."""
    target = getattr(instance, "fn", None) or type(instance)
    qualname = getattr(target, "__qualname__", "?")
    try:
        path = os.path.realpath(inspect.getfile(target))
    except (TypeError, OSError):
        path = "?"
    code = getattr(target, "__code__", None)
    line = f":{code.co_firstlineno}" if code is not None else ""
    return f"{path}:{qualname}", f"{target.__module__}.{qualname} ({path}{line})"


def register(instance: Job) -> Job:
    """Add ``instance`` to the registry.

    A second job with the same name raises TaskError naming both declarations (give one an
    explicit ``name=``); declaring the same function again (a module imported twice, under two
    names, or reloaded) replaces the first.
    """
    if not instance.name:
        raise TaskError("a job needs a name")
    where = _where(instance)
    first = _DECLARED.get(instance.name)
    if first is not None and first[0] != where[0] and instance.name in _REGISTRY:
        raise TaskError(
            f"two jobs are named {instance.name!r}: {first[1]} and {where[1]}; give one of "
            f"them another name (@tasks.job(name=...) or a name class attribute)"
        )
    _REGISTRY[instance.name] = instance
    _DECLARED[instance.name] = where
    return instance


class _FunctionJob(Job):
    """A job wrapping a function (made by :func:`job`)."""

    abstract = True

    def __init__(self, fn: Callable[..., Any], **options: Any) -> None:
        if "queue" in options:
            options["default_queue"] = options.pop("queue")
        for key, value in options.items():
            if not hasattr(Job, key) or callable(getattr(Job, key)):
                raise TypeError(f"job() got an unexpected option {key!r}")
            setattr(self, key, value)
        if isinstance(self.retry_on, type):
            self.retry_on = (self.retry_on,)
        self.fn = fn
        self.name = options.get("name") or fn.__name__
        super().__init__()
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)

    def run(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def meta(self) -> dict[str, Any]:
        meta = super().meta()
        meta["doc"] = (inspect.getdoc(self.fn) or "").split("\n\n")[0]
        return meta


def job(fn: Callable[..., Any] | None = None, **options: Any) -> Any:
    """Declare a job from a plain or ``async def`` function: ``@tasks.job(max_retries=2)``.

    The decorated name becomes a :class:`Job`: calling it runs the function here and now;
    ``fn.delay(*args, **kwargs)`` queues a task (``await`` it in async code) and
    ``fn.apply(args=[...], kwargs={...}, countdown=5)`` queues one with task options. Options
    are those of :class:`Job`.
    """

    def decorate(f: Callable[..., Any]) -> Job:
        return register(_FunctionJob(f, **options))

    if fn is not None:
        return decorate(fn)
    return decorate


def is_coroutine_result(value: Any) -> bool:
    """True for awaitables returned by a sync-declared run()."""
    return inspect.isawaitable(value) or asyncio.isfuture(value)


def next_due_from_meta(meta: dict[str, Any], after: float) -> float | None:
    """:meth:`Job.next_due` computed from a published job description."""
    every = meta.get("run_every")
    if every:
        return (int(after // float(every)) + 1) * float(every)
    if meta.get("cron"):
        from croniter import croniter

        start = dt.datetime.fromtimestamp(after, dt.UTC)
        return float(croniter(meta["cron"], start).get_next(float))
    return None
