"""The :class:`TaskQueue` application: workers that run tasks, and a periodic scheduler.

In the arbiter (``monitor_start``) the application imports its modules, publishes the job
descriptions in the backend and starts the :class:`~._scheduler.Scheduler`; each worker actor
runs a :class:`~._worker.Consumer`. With ``workers=0`` both run inside the arbiter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import pulsar
from pulsar.options import MonitorOptions

from . import _settings  # noqa: F401  (declares the settings)
from ._backend import Backend, create_backend
from ._client import TaskClient, connect
from ._errors import BackendError
from ._job import import_modules, registry
from ._scheduler import Scheduler
from ._worker import Consumer

__all__ = ["TaskQueue"]

logger = logging.getLogger("pulsar.tasks")

#: seconds a call of a TaskQueue's own backend retries before its caller logs and retries
WORKER_RETRY_TIMEOUT = 2.0


async def wait_for_backend(what: str, call: Any) -> None:
    """Run ``call()`` until the backend answers, logging each failed try (a TaskQueue started
    while its backend is down waits for it instead of exiting)."""
    tries = 0
    while True:
        try:
            await call()
            if tries:
                logger.warning("task backend reachable again: %s done", what)
            return
        except BackendError as exc:
            tries += 1
            delay = min(5.0, 0.5 * tries)
            logger.warning(
                "task backend unavailable (%s): %s, retry %d in %.1fs", what, exc, tries, delay
            )
            await asyncio.sleep(delay)


class TaskQueue(pulsar.Application):
    """A distributed task queue: ``TaskQueue(backend=..., modules=[...], workers=2).start()``."""

    name = "tasks"
    cfg_apps = ("tasks",)
    description = "A pulsar task queue"

    def __init__(self, callable: Any = None, **params: Any) -> None:
        super().__init__(callable, **params)
        self._scheduler: Scheduler | None = None
        self._consumer: Consumer | None = None
        self._backend: Backend | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.update(_scheduler=None, _consumer=None, _backend=None)
        return state

    # -- helpers -------------------------------------------------------------------------------
    def backend(self) -> Backend:
        """A new backend object for this process, from the ``backend`` setting (its calls
        retry through an outage for 2 s before failing: the worker's loops then log and
        retry, so every retry shows in the log)."""
        return create_backend(
            str(self.cfg.get("backend")),
            result_ttl=self.cfg.get("result_ttl"),
            retry_timeout=WORKER_RETRY_TIMEOUT,
            events=bool(self.cfg.get("task_events")),
        )

    def queues(self) -> list[str]:
        """The queues consumed: the ``task_queues`` setting, or default + the jobs' queues."""
        configured = list(self.cfg.get("task_queues"))
        if configured:
            return configured
        found = ["default"]
        for job in registry().values():
            if job.default_queue not in found:
                found.append(job.default_queue)
        return found

    def load_jobs(self) -> None:
        """Import the ``modules`` setting (ImportError names the missing module)."""
        import_modules(self.cfg.get("modules"))

    @property
    def scheduler(self) -> Scheduler | None:
        """The scheduler running in this process, if any."""
        return self._scheduler

    @property
    def consumer(self) -> Consumer | None:
        """The consumer running in this process (a worker), if any."""
        return self._consumer

    # -- arbiter side --------------------------------------------------------------------------
    async def monitor_start(self, monitor: Any) -> None:
        """Arbiter: load the jobs, publish them, start the scheduler."""
        await self._start_scheduler()

    async def monitor_stopping(self, monitor: Any) -> None:
        """Arbiter: stop the scheduler."""
        await self._stop_scheduler()

    async def worker_exit(self, monitor: Any, aid: str, exit_code: int | None) -> None:
        """Arbiter: worker ``aid`` exited; its tasks go back to the queue at once (or fail as
        ``lost`` once out of retries) instead of waiting for their leases to expire, and its
        heartbeat record is removed (``pulsar-tasks inspect`` no longer lists it)."""
        backend = self._backend
        if backend is None:
            return
        with contextlib.suppress(Exception):  # else its heartbeat expires within three beats
            await backend.forget_worker(str(aid))
        try:
            count = await backend.release_worker(str(aid))
        except Exception as exc:  # the lease expiry still recovers them
            logger.warning("could not release the tasks of worker %s: %s", aid, exc)
            return
        if count:
            logger.warning(
                "worker %s exited (code %s) holding %d task(s): released to the queue",
                aid,
                exit_code,
                count,
            )

    async def _start_scheduler(self) -> None:
        self.load_jobs()
        backend = self._backend = self.backend()
        # with the TTL its workers keep results for (a client's revoke uses it too)
        metas = {
            name: {**job.meta(), "result_ttl": backend.result_ttl}
            for name, job in registry().items()
        }
        await wait_for_backend("publishing the jobs", lambda: backend.register_jobs(metas))
        if self.cfg.get("schedule_periodic"):
            self._scheduler = Scheduler(backend, registry().values())
            self._scheduler.start()

    async def _stop_scheduler(self) -> None:
        if self._scheduler is not None:
            await self._scheduler.stop()
            self._scheduler = None
        if self._backend is not None:
            await self._backend.close()
            self._backend = None

    # -- worker side ---------------------------------------------------------------------------
    async def worker_start(self, worker: Any) -> None:
        """Worker: connect and start consuming (and scheduling, with ``workers=0``)."""
        inline = self.cfg.view(MonitorOptions).workers == 0
        if inline:
            await self._start_scheduler()
        else:
            self.load_jobs()
        backend = self.backend()
        # the default client of Job.delay() here
        client: TaskClient = connect(
            backend, max_payload_size=int(self.cfg.get("max_payload_size"))
        )
        worker.extra["task_client"] = client
        self._consumer = Consumer(
            backend,
            worker_id=str(worker.aid),
            queues=self.queues(),
            concurrent_tasks=int(self.cfg.get("concurrent_tasks")),
            lease=float(self.cfg.get("task_lease")),
            run_sync=worker.run_in_executor,
        )
        self._consumer.start()
        logger.info(
            "worker %s ready: backend %s, queues %s, concurrency %d",
            worker.aid,
            backend.public_url(),
            ", ".join(self._consumer.queues),
            self._consumer.concurrent_tasks,
        )

    async def worker_stopping(self, worker: Any) -> None:
        """Worker: stop claiming, finish in-flight tasks within ``graceful_timeout`` (minus a
        margin), hand the rest back."""
        grace = float(self.cfg.view(MonitorOptions).graceful_timeout)
        if self._consumer is not None:
            await self._consumer.stop(grace=max(0.5, grace * 0.8 - 0.5))
            await self._consumer.backend.close()
            self._consumer = None
        if self.cfg.view(MonitorOptions).workers == 0:
            await self._stop_scheduler()

    def worker_info(self, worker: Any, info: dict[str, Any]) -> None:
        """Worker: add ``tasks`` (queued/running/processed/failed...) to ``info``."""
        if self._consumer is not None:
            info["tasks"] = self._consumer.info()
