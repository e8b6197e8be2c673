"""The scheduler of periodic jobs (``run_every`` / ``cron``).

How it works
------------
Every periodic job has well-defined due times: multiples of ``run_every`` since the UNIX epoch,
or the times its cron expression (UTC) matches. When a due time passes, the scheduler queues a
task whose id is derived from the job and the due time (``<job>@<due>``), with a "create only if
absent" write. Several schedulers on one backend (several TaskQueue applications, machines or
restarts) therefore queue each run exactly once: the second insert of the same id is a no-op.
A scheduler starts at the next due time after it starts (missed runs while nothing ran are not
caught up).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any

from ._backend import Backend
from ._job import Job, dumps_payload
from ._state import Task

__all__ = ["Scheduler", "periodic_task_id"]

logger = logging.getLogger("pulsar.tasks.scheduler")


def periodic_task_id(job: Job, due: float) -> str:
    """The task id of the run of ``job`` due at ``due`` (the same in every scheduler)."""
    return f"{job.name}@{due:.3f}"


class Scheduler:
    """Queues the runs of ``jobs`` (the periodic ones) into ``backend`` when they fall due."""

    def __init__(self, backend: Backend, jobs: Iterable[Job], *, tick: float = 1.0) -> None:
        self.backend = backend
        self.jobs = [j for j in jobs if j.periodic]
        self.tick = tick
        self.next_run: dict[str, float] = {}
        self.queued = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start on the running loop (nothing to do without periodic jobs)."""
        now = time.time()
        for job in self.jobs:
            due = job.next_due(now)
            if due is not None:
                self.next_run[job.name] = due
        if self.jobs:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop scheduling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    def next_scheduled(self) -> dict[str, float]:
        """``{job name: next due time (UNIX seconds)}``."""
        return dict(self.next_run)

    async def run_due(self, now: float | None = None) -> list[str]:
        """Queue every run due at ``now``; returns the ids this scheduler created."""
        now = time.time() if now is None else now
        created = []
        for job in self.jobs:
            due = self.next_run.get(job.name)
            while due is not None and due <= now:
                task = Task(
                    id=periodic_task_id(job, due),
                    name=job.name,
                    queue=job.default_queue,
                    payload=dumps_payload((), {}),
                    max_retries=job.max_retries,
                    time_queued=now,
                    eta=due,
                    expires=None if job.expires is None else due + job.expires,
                    priority=job.priority,
                )
                if await self.backend.enqueue(task, unique=True):
                    created.append(task.id)
                    self.queued += 1
                due = job.next_due(due)
                if due is not None:
                    self.next_run[job.name] = due
        return created

    async def _run(self) -> None:
        while True:
            now = time.time()
            try:
                await self.run_due(now)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("scheduler: cannot queue periodic tasks: %s", exc)
            nxt = min(self.next_run.values(), default=now + self.tick)
            await asyncio.sleep(max(0.01, min(self.tick, nxt - time.time())))

    def info(self) -> dict[str, Any]:
        """Figures for ``info``."""
        return {"periodic_jobs": len(self.jobs), "queued": self.queued}
