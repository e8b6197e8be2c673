"""``TaskQueueRpc``: the task queue over JSON-RPC, as a mixin of a pulsar-rpc handler::

    class Api(TaskQueueRpc, rpc.JSONRPC):
        pass

    handler = Api(task_backend="sqlite:///tasks.db")

Methods: ``queue_task(jobname, args=[], kwargs={}, countdown, eta, expires, queue, priority,
depends_on)``,
``get_task(id)``, ``list_tasks(status, limit, since)``, ``wait_for_task(id, timeout)``,
``revoke_task(id)``, ``job_list()``, ``next_scheduled(jobnames)``, and the operator's calls
``purge_queue(queue)``, ``requeue_task(id)``, ``workers()``, ``task_counts()``. Tasks are
returned as JSON objects (:meth:`Task.as_dict`). Bad input (unknown job, arguments that are not
JSON, an overlapping task, a task that cannot be requeued) answers -32602 Invalid params with
the reason.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ._client import TaskClient, connect
from ._errors import (
    BackendError,
    DuplicateTask,
    JobOverlap,
    PayloadTooLarge,
    TaskError,
    TaskNotFound,
    TaskSerializationError,
    TaskTimeout,
    UnknownJob,
)
from ._job import next_due_from_meta

__all__ = ["TaskQueueRpc"]


def _rpc_errors() -> tuple[Any, Any]:
    try:
        from pulsar.apps.rpc import InvalidParams, ServerError
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("TaskQueueRpc needs pulsar-rpc: pip install 'pulsar-tasks[rpc]'") from exc

    return InvalidParams, ServerError


class TaskQueueRpc:
    """Mixin adding task-queue methods to a :class:`pulsar.apps.rpc.JSONRPC` handler.

    ``task_backend``: the backend URL (a keyword of ``__init__`` or a class attribute).
    One client is made per event loop the methods run on.
    """

    task_backend: str = "sqlite:///pulsar-tasks.db"

    def __init__(self, *args: Any, task_backend: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if task_backend is not None:
            self.task_backend = task_backend
        self._task_clients: dict[int, TaskClient] = {}

    def task_client(self) -> TaskClient:
        """The :class:`TaskClient` of the running loop (created on first use)."""
        loop = asyncio.get_running_loop()
        clients = self.__dict__.setdefault("_task_clients", {})
        client = clients.get(id(loop))
        if client is None:
            client = clients[id(loop)] = connect(self.task_backend, set_default=False)
        return client

    async def rpc_queue_task(
        self,
        request: Any,
        jobname: str,
        args: list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        countdown: float | None = None,
        eta: float | None = None,
        expires: float | None = None,
        queue: str | None = None,
        priority: int | None = None,
        depends_on: list[str] | None = None,
    ) -> dict[str, Any]:
        """Queue a task of ``jobname`` and return it (its ``id`` waits with wait_for_task);
        ``priority``: 0-9, higher first within its queue (default: the job's);
        ``depends_on``: ids of tasks it waits for (DEFERRED until they all succeed)."""
        invalid, _ = _rpc_errors()
        if args is not None and not isinstance(args, list):
            raise invalid(message="args must be a list")
        if kwargs is not None and not isinstance(kwargs, dict):
            raise invalid(message="kwargs must be an object")
        try:
            task = await self.task_client().queue_task(
                jobname,
                args,
                kwargs,
                countdown=countdown,
                eta=eta,
                expires=expires,
                queue=queue,
                priority=priority,
                depends_on=depends_on,
            )
        except (
            UnknownJob,
            TaskSerializationError,
            JobOverlap,
            PayloadTooLarge,
            DuplicateTask,
            TypeError,
            ValueError,
        ) as exc:
            raise invalid(message=str(exc)) from None
        return task.as_dict()

    async def rpc_get_task(self, request: Any, id: str) -> dict[str, Any] | None:
        """The task ``id`` (null when unknown or expired)."""
        task = await self.task_client().get_task(id)
        return None if task is None else task.as_dict()

    async def rpc_list_tasks(
        self,
        request: Any,
        status: str | None = None,
        limit: int = 100,
        since: float | None = None,
    ) -> list[Any]:
        """Recent tasks, newest first, optionally with ``status`` and finished at or after
        ``since`` (UNIX seconds): ``list_tasks("FAILURE", since=...)`` is the dead-letter view."""
        invalid, _ = _rpc_errors()
        if since is not None and (isinstance(since, bool) or not isinstance(since, int | float)):
            raise invalid(message="since must be a number (UNIX seconds)")
        try:
            found = await self.task_client().list_tasks(status, limit, since=since)
        except ValueError as exc:
            raise invalid(message=str(exc)) from None
        return [t.as_dict() for t in found]

    async def rpc_wait_for_task(
        self, request: Any, id: str, timeout: float | None = 30.0
    ) -> dict[str, Any]:
        """Wait until the task is final (at most ``timeout`` seconds) and return it."""
        invalid, server_error = _rpc_errors()
        try:
            task = await self.task_client().wait_for_task(id, timeout=timeout)
        except TaskNotFound as exc:
            raise invalid(message=str(exc)) from None
        except TaskTimeout as exc:
            raise server_error(message=str(exc)) from None
        return task.as_dict()

    async def rpc_revoke_task(self, request: Any, id: str) -> str | None:
        """Revoke a task; returns its state afterwards (null when unknown)."""
        state = await self.task_client().revoke(id)
        return None if state is None else str(state)

    async def rpc_purge_queue(self, request: Any, queue: str) -> int:
        """Revoke every task of ``queue`` not started yet (error ``'purged'``); returns how
        many. Running tasks are left alone."""
        invalid, _ = _rpc_errors()
        if not isinstance(queue, str) or not queue:
            raise invalid(message="queue must be a non-empty string")
        return await self.task_client().purge(queue)

    async def rpc_requeue_task(self, request: Any, id: str) -> bool:
        """Queue a FAILURE or REVOKED task again under its id (attempts reset); false when
        unknown. A SUCCESS, pending or running task answers Invalid params."""
        invalid, _ = _rpc_errors()
        try:
            return await self.task_client().requeue(id)
        except BackendError:
            raise  # the backend is unreachable: an internal error, not bad params
        except TaskError as exc:  # not requeueable (its state), or an overlapping twin
            raise invalid(message=str(exc)) from None

    async def rpc_workers(self, request: Any) -> list[dict[str, Any]]:
        """The live workers' heartbeat records: what each one runs now (``pulsar-tasks
        inspect``)."""
        return await self.task_client().workers()

    async def rpc_task_counts(self, request: Any) -> dict[str, int]:
        """How many tasks are in each state."""
        return await self.task_client().counts()

    async def rpc_job_list(self, request: Any, jobnames: list[str] | None = None) -> dict[str, Any]:
        """The known jobs (name -> description), optionally only ``jobnames``."""
        jobs = await self.task_client().job_list()
        if jobnames:
            jobs = {k: v for k, v in jobs.items() if k in jobnames}
        return jobs

    async def rpc_next_scheduled(
        self, request: Any, jobnames: list[str] | None = None
    ) -> dict[str, Any]:
        """``{job: next due time (UNIX seconds)}`` of the periodic jobs."""
        jobs = await self.task_client().job_list()
        now = time.time()
        out: dict[str, Any] = {}
        for name, meta in jobs.items():
            if jobnames and name not in jobnames:
                continue
            due = next_due_from_meta(meta, now)
            if due is not None:
                out[name] = due
        return out
