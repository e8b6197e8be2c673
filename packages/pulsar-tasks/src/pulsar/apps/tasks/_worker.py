"""The consumer: the loop of a TaskQueue worker that claims tasks and runs them.

How it works
------------
The consumer claims due tasks in batches of at most its free slots (``concurrent_tasks`` minus
the tasks running), and runs each in its own asyncio task: an ``async`` job inside that task,
a sync job in the actor's thread pool (or a child process) behind a task of its own. While
tasks run, a renewer extends their leases every ``lease / 3`` seconds; a task reported
``revoked`` is cancelled (REVOKED), one reported ``lost`` (its lease went to another worker)
is cancelled without recording anything. When idle, the
consumer waits on the backend's wake-up (Redis BLPOP, SQLite change polling) until the next due
time at most. Each attempt ends with exactly one of complete/retry/release, keyed by its lease
token; those calls are retried through backend outages for as long as the lease could still be
ours. A run's slot is free from the moment its job is over: the next claim goes out beside the
round trip that records the outcome (at most ``2 * concurrent_tasks`` runs held).
:meth:`Consumer.stop` stops claiming, lets running tasks finish within a grace period and hands
the rest back (QUEUED again, attempt not counted). A task of a job with a ``rate_limit``
asks the backend's limiter before it runs; refused, it is handed back due when the limit
allows (``Backend.postpone``, attempt not counted) and its slot takes other work (see
:mod:`._schedule`). The per-task log lines are batched
(:mod:`._tasklog`): a line appends a tuple, the batch is written every 10 ms and at the stop.
Every ``lease / 3`` seconds (at most 5 s) a heartbeat task publishes the consumer's record
(:meth:`Consumer.heartbeat_info`: what ``pulsar-tasks inspect`` shows) with an expiry of three
periods; it is removed when the consumer stops. It is a task of its own, off the claim and
renewal paths: a slow backend delays no lease renewal. What a job publishes with
``tasks.update()`` is written by one call per loop iteration for all the running tasks (the
latest update of each; see :mod:`._progress`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ._backend import Backend
from ._child import ChildError, run_in_child
from ._errors import TaskTimeout
from ._job import _CURRENT, get_job, registry
from ._progress import SINK
from ._runtimes import RunTimes
from ._schedule import RateGate
from ._state import Task, TaskState
from ._tasklog import TaskLog

__all__ = ["Consumer"]

logger = logging.getLogger("pulsar.tasks")
#: the per-task lines (received, succeeded, failed, retried, revoked): set this logger to
#: WARNING to keep only failures and retries. The lines are batched (see ``_tasklog``): a line
#: appends a tuple, a batch is formatted and written every 10 ms, and when the consumer stops
task_logger = logging.getLogger("pulsar.tasks.task")

RunSync = Callable[..., Awaitable[Any]]


async def _timed(work: Awaitable[Any], timeout: float | None) -> Any:
    """``work`` under ``timeout`` (TimeoutError), in the calling task: one task per run, where
    ``asyncio.wait_for`` would add a second."""
    if timeout is None:
        return await work
    async with asyncio.timeout(timeout):
        return await work


def _cancel_requested() -> bool:
    """The running task was asked to stop: a loop that swallowed the CancelledError (a backend
    call can turn a cancel that lands in it into an error, e.g. CPython 3.11's ``wait_for``
    when the inner call completes at the same moment) ends at its next turn."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _cancel_and_wait(task: asyncio.Task[Any], timeout: float = 5.0) -> None:
    """Cancel a background loop and wait for its end, at most ``timeout`` seconds."""
    task.cancel()
    await asyncio.wait({task}, timeout=timeout)
    if task.done() and not task.cancelled():
        with contextlib.suppress(asyncio.CancelledError, Exception):
            task.result()


#: the ends of an attempt that hand the task back (RETRY, QUEUED): refused when it was revoked
_HAND_BACK = frozenset({"retry", "release", "postpone"})


class _Running:
    __slots__ = ("ending", "job_task", "name", "reason", "started", "task_id", "token", "updated")

    def __init__(self, task_id: str, token: str) -> None:
        self.task_id = task_id
        self.token = token
        self.job_task: asyncio.Task[Any] | None = None
        self.reason: str | None = None  # 'revoked' | 'lost' | 'stopping'
        self.name: Any = None  # the job's name and the claim's time_started, as claimed
        self.started: Any = None  # (decoded only by the heartbeat)
        self.updated = False  # the job published progress (tasks.update())
        self.ending = False  # its outcome is being recorded: its slot is free


class Consumer:
    """Claims and runs tasks from ``backend`` (see the module docstring).

    ``run_sync(fn, *args)`` runs a blocking callable and returns an awaitable (the actor's
    ``run_in_executor``; a default thread pool when None).
    """

    def __init__(
        self,
        backend: Backend,
        *,
        worker_id: str,
        queues: Sequence[str] = ("default",),
        concurrent_tasks: int = 10,
        lease: float = 30.0,
        run_sync: RunSync | None = None,
        max_idle: float = 1.0,
    ) -> None:
        self.backend = backend
        self.worker_id = worker_id
        self.queues = list(queues)
        self.concurrent_tasks = max(1, int(concurrent_tasks))
        self.lease = float(lease)
        self.max_idle = max_idle
        self._run_sync = run_sync
        self.running: dict[str, _Running] = {}
        self._ending = 0  # runs of ``running`` whose outcome is being recorded (see _end)
        self.counters = {
            "claimed": 0,
            "processed": 0,
            "succeeded": 0,
            "failed": 0,
            "retried": 0,
            "revoked": 0,
            "postponed": 0,  # handed back by a rate limit (not processed)
        }
        self._rate_gate = RateGate()
        #: how long the runs took, per queue (those that reached an outcome here: succeeded,
        #: failed or retried, revoked while running)
        self.run_times = RunTimes()
        self.queued = 0
        self._stopping = False
        self._log = TaskLog(task_logger)
        self._main: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._beater: asyncio.Task[None] | None = None
        self._started_at = time.time()
        self._wake: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        # tasks.update(): the latest (token, progress, meta_json) per task, and their writer
        self._updates: dict[str, tuple[str, float | None, str | None]] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._sink_fn: Callable[[float | None, str | None], None] | None = None

    # -- life ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Start claiming on the running loop."""
        self._wake = asyncio.Event()
        self._main = asyncio.get_running_loop().create_task(self._run())
        self._renewer = asyncio.get_running_loop().create_task(self._renew_loop())
        self._started_at = time.time()
        self._beater = asyncio.get_running_loop().create_task(self._beat_loop())

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming; wait up to ``grace`` seconds for running tasks, then hand the others
        back to the queue."""
        try:
            self._stopping = True
            if self._wake is not None:
                self._wake.set()
            if self._main is not None:
                # an idle wait ends within max_idle; tasks it claimed are then run (or handed
                # back) below, where cancelling it could leave them claimed until their lease
                # expires
                await asyncio.wait({self._main}, timeout=self.max_idle + 0.5)
                self._main.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._main
            pending = {r.job_task for r in self.running.values() if r.job_task is not None}
            if pending:
                await asyncio.wait(pending, timeout=grace)
            for run in list(self.running.values()):
                run.reason = "stopping"
                if run.job_task is not None:
                    run.job_task.cancel()
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=5.0)
            if self._renewer is not None:
                await _cancel_and_wait(self._renewer)
            await self._stop_beating()
        finally:  # the lines still waiting are written: none is lost
            self._log.flush()

    def info(self) -> dict[str, Any]:
        """Counters for the worker's ``info``: queued (pending in its queues, refreshed every
        few seconds), running, processed, failed..., and ``run_time``: the run-time histogram
        per queue (see :class:`._runtimes.RunTimes`)."""
        return {
            "queued": self.queued,
            "running": len(self.running) - self._ending,
            **self.counters,
            "concurrent_tasks": self.concurrent_tasks,
            "queues": list(self.queues),
            "run_time": self.run_times.info(),
        }

    # -- claiming ------------------------------------------------------------------------------
    async def _run(self) -> None:
        assert self._wake is not None
        failures = 0
        idle: float | None = None  # how long to wait for work before the next claim
        while not self._stopping:
            # nothing else is awaited in this loop: a claim waits for no bookkeeping (the
            # ``queued`` statistic is refreshed by the renewer)
            # a run whose job is over frees its slot while its outcome is recorded: the next
            # claim goes out beside those round trips (at most as many again in flight)
            running = len(self.running)
            free = min(
                self.concurrent_tasks - (running - self._ending),
                2 * self.concurrent_tasks - running,
            )
            if free <= 0:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                if idle is None:
                    claim = await self.backend.claim(self.queues, self.worker_id, self.lease, free)
                else:
                    # a task ending meanwhile does not interrupt this: it frees a slot, it
                    # does not make work due (stop() waits for this call to return)
                    claim = await self.backend.wait_and_claim(
                        self.queues, self.worker_id, self.lease, free, idle
                    )
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                idle = None
                delay = min(2.0, 0.05 * 2**failures)
                logger.warning("task backend unavailable (%s), retrying in %.2fs", exc, delay)
                await asyncio.sleep(delay)
                continue
            for row in claim.tasks:
                self._start(row)
            if len(claim.tasks) >= free:  # there may be more due: claim again at once
                idle = None
                continue
            if claim.tasks:
                # the runs take their first step before the next wait is sent: an async job
                # that does not wait sends its outcome first (it is what a client waits for)
                await asyncio.sleep(0)
            # fewer than asked for: nothing else is due now, so the next claim waits for work
            # (an enqueue wakes it) or for the next due time
            idle = self.max_idle
            if claim.next_eta is not None:
                idle = max(0.001, min(idle, claim.next_eta - time.time()))

    def _start(self, row: dict[str, Any]) -> None:
        task_id = str(row.get("id") or "")
        token = str(row.get("token") or "")
        self.counters["claimed"] += 1
        run = _Running(task_id, token)
        run.name, run.started = row.get("name"), row.get("time_started")
        self.running[task_id] = run
        task = asyncio.get_running_loop().create_task(self._execute(row, run))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- running -------------------------------------------------------------------------------
    async def _execute(self, row: dict[str, Any], run: _Running) -> None:
        try:
            try:
                task = Task.from_row(row)
                job = get_job(task.name)
                if job is None:
                    raise LookupError(f"unknown job {task.name!r} (not loaded by this worker)")
                args, kwargs = task.arguments()
            except Exception as exc:
                logger.error("task %s: invalid record: %s", run.task_id, exc)
                self.counters["failed"] += 1
                await self._end("complete", run, TaskState.FAILURE, error=f"invalid task: {exc}")
                return
            if job.rate is not None and await self._rate_limited(task, job, run):
                return
            self._log.info("task %s[%s] received (attempt %d)", task.name, task.id, task.attempts)
            inline = job.is_async
            started = time.perf_counter()
            try:
                if inline:
                    # an async job runs in this task (one task per run), which has a context of
                    # its own: the job sees its task (tasks.current_task()) there. A cancel of
                    # the run (revoke, lost lease, stop) lands on the job's await and is caught
                    # below; once the job is over nothing cancels this task (job_task None)
                    _CURRENT.set(task)
                    SINK.set(self._sink())
                    run.job_task = asyncio.current_task()
                    try:
                        result = await _timed(job.run(*args, **kwargs), job.timeout)
                    finally:
                        run.job_task = None
                else:
                    # a sync job runs in a task of its own, in a context with its task:
                    # cancelling it leaves this one free to record the outcome
                    context = contextvars.copy_context()
                    context.run(_CURRENT.set, task)
                    context.run(SINK.set, self._sink())
                    work: Awaitable[Any]
                    if job.in_process:  # a child process, killed at the timeout (or on revoke)
                        work = run_in_child(
                            job,
                            task,
                            args,
                            kwargs,
                            job.timeout,
                            on_update=lambda p, m: self._publish(run, p, m),
                        )
                    else:
                        work = self._threaded(context, job.timeout, job.run, *args, **kwargs)
                    run.job_task = asyncio.get_running_loop().create_task(work, context=context)
                    result = await run.job_task
                text = json.dumps(result, allow_nan=False)
            except asyncio.CancelledError:
                if run.reason is None:  # this task itself was cancelled (worker shutting down)
                    if not inline and run.job_task is not None:
                        run.job_task.cancel()
                    raise
                if inline:  # our own cancel, consumed here: the task carries on
                    current = asyncio.current_task()
                    if current is not None:
                        current.uncancel()
                if run.reason == "revoked":
                    self.run_times.observe(task.queue, time.perf_counter() - started)
                    self._log.info("task %s[%s] revoked while running", task.name, task.id)
                    self.counters["revoked"] += 1
                    await self._end("complete", run, TaskState.REVOKED, error="revoked")
                    return
                if run.reason == "stopping":
                    await self._end("release", run)
                    return
                return  # lost: the lease went to another worker, which records the outcome
            except ChildError as exc:  # raised in the child process: its own traceback
                self.run_times.observe(task.queue, time.perf_counter() - started)
                await self._failed(task, job, run, exc.exc, exc.tb or None)
                return
            except Exception as exc:
                self.run_times.observe(task.queue, time.perf_counter() - started)
                await self._failed(task, job, run, exc)
                return
            elapsed = time.perf_counter() - started
            self.run_times.observe(task.queue, elapsed)
            self.counters["succeeded"] += 1
            self._log.info(
                "task %s[%s] succeeded in %.3fs: %s",
                task.name,
                task.id,
                elapsed,
                text if len(text) <= 80 else text[:77] + "...",
            )
            await self._end("complete", run, TaskState.SUCCESS, result=text)
        finally:
            self.running.pop(run.task_id, None)
            if run.ending:
                self._ending -= 1
            if run.reason != "postponed":
                self.counters["processed"] += 1
            if self._wake is not None:
                self._wake.set()

    async def _rate_limited(self, task: Task, job: Any, run: _Running) -> bool:
        """True when the job's rate limit refuses this start: the task was handed back due
        when the limit allows (see _schedule), this attempt not counted."""
        limit, period = job.rate
        interval = period / limit
        due = self._rate_gate.blocked(job.name, interval)
        if due is None:
            try:
                wait = await self.backend.acquire_rate(job.name, limit, period)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the backend is out: hand it back, try again later
                logger.warning("task %s: cannot check the rate limit: %s", task.id, exc)
                wait = 1.0
            if wait <= 0:
                return False
            due = self._rate_gate.refused(job.name, wait, interval)
        run.reason = "postponed"  # no lease renewal any more
        self.counters["postponed"] += 1
        self._log.info(
            "task %s[%s] over its rate limit: due again in %.3fs",
            task.name,
            task.id,
            due - time.time(),
        )
        await self._end("postpone", run, eta=due)
        return True

    async def _threaded(
        self,
        context: contextvars.Context,
        timeout: float | None,
        fn: Callable[..., Any],
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        """Run a sync job in the thread pool; its timeout counts from the moment a thread
        runs it (not from the wait for a free thread). A thread cannot be stopped: at the
        timeout the task fails and the run's late result is ignored (``process=False``)."""
        loop = asyncio.get_running_loop()
        started: asyncio.Future[None] = loop.create_future()

        def mark() -> None:
            if not started.done():
                started.set_result(None)

        def call() -> Any:
            loop.call_soon_threadsafe(mark)
            return context.copy().run(fn, *args, **kwargs)

        if self._run_sync is not None:
            fut = asyncio.ensure_future(self._run_sync(call))
        else:
            fut = asyncio.ensure_future(loop.run_in_executor(None, call))
        if timeout is None:
            return await fut
        try:
            await asyncio.wait({started, fut}, return_when=asyncio.FIRST_COMPLETED)
            async with asyncio.timeout(timeout):
                return await fut
        finally:
            fut.cancel()

    async def _failed(
        self, task: Task, job: Any, run: _Running, exc: BaseException, tb: str | None = None
    ) -> None:
        if isinstance(exc, TimeoutError | asyncio.TimeoutError):
            exc = TaskTimeout(f"timeout: ran longer than {job.timeout}s")
            error = "timeout"
            tb = None
        elif isinstance(exc, TypeError | ValueError) and "JSON" in str(exc):
            error = f"result is not JSON serializable: {exc}"
            tb = tb or traceback.format_exc()
        else:
            error = f"{type(exc).__name__}: {exc}"
            tb = tb or traceback.format_exc()
        if job.should_retry(exc, task.attempts):
            delay = job.retry_delay_for(task.attempts)
            self.counters["retried"] += 1
            self._log.warning(
                "task %s[%s] retry in %.2fs (attempt %d): %s",
                task.name,
                task.id,
                delay,
                task.attempts,
                error,
            )
            await self._end("retry", run, eta=time.time() + delay, error=error, traceback=tb)
            return
        self.counters["failed"] += 1
        self._log.error("task %s[%s] failed: %s", task.name, task.id, error)
        await self._end("complete", run, TaskState.FAILURE, error=error, traceback=tb)

    async def _end(self, op: str, run: _Running, *args: Any, **kwargs: Any) -> None:
        """Record the end of an attempt, retrying through backend outages while the lease may
        still be ours (afterwards another worker has it)."""
        deadline = time.monotonic() + max(self.lease * 2, 5.0)
        delay = 0.05
        if not run.ending:  # the job is over: its slot takes the next claim meanwhile
            run.ending = True
            self._ending += 1
            if self._wake is not None:
                self._wake.set()
        flusher = self._flusher
        if run.updated and flusher is not None and not flusher.done():
            # its last update is written before its outcome (which it would not overwrite)
            await asyncio.wait({flusher}, timeout=self.lease)
        while True:
            try:
                method = getattr(self.backend, op)
                done = await method(run.task_id, run.token, *args, **kwargs)
                if not done and op in _HAND_BACK:
                    # revoked while it ran (or its lease is lost: then this changes nothing):
                    # a revoked task is not queued again, where its next claim would forget
                    # the revoke
                    await self._revoked_instead(run, op)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if time.monotonic() > deadline:
                    logger.error("task %s: could not record %s: %s", run.task_id, op, exc)
                    return
                await asyncio.sleep(delay)
                delay = min(1.0, delay * 2)

    async def _revoked_instead(self, run: _Running, op: str) -> None:
        if await self.backend.complete(run.task_id, run.token, TaskState.REVOKED, error="revoked"):
            self.counters["revoked"] += 1
            if op == "retry":  # counted as it was handed back: it was not retried
                self.counters["retried"] -= 1
            elif op == "postpone":
                self.counters["postponed"] -= 1
            self._log.info("task %s[%s] revoked", run.name, run.task_id)

    # -- progress (tasks.update(), see _progress.py) --------------------------------------------
    def _sink(self) -> Callable[[float | None, str | None], None]:
        """Where the updates of the runs of this consumer go, from the loop or a thread (one
        function for every run: the run is the one of the caller's ``current_task()``)."""
        sink = self._sink_fn
        if sink is None:
            loop = asyncio.get_running_loop()
            ident = threading.get_ident()

            def sink(progress: float | None, meta: str | None) -> None:
                task = _CURRENT.get()
                run = None if task is None else self.running.get(task.id)
                if run is None or run.token != task.token:  # type: ignore[union-attr]
                    return  # that attempt is over
                if threading.get_ident() == ident:
                    self._publish(run, progress, meta)
                else:
                    with contextlib.suppress(RuntimeError):  # the loop is gone: so is the run
                        loop.call_soon_threadsafe(self._publish, run, progress, meta)

            self._sink_fn = sink
        return sink

    def _publish(self, run: _Running, progress: float | None, meta: str | None) -> None:
        if run.reason is not None or self.running.get(run.task_id) is not run:
            return  # the attempt is over (or being stopped): nothing more is written
        last = self._updates.get(run.task_id)
        if last is not None:  # latest wins, per field
            progress = last[1] if progress is None else progress
            meta = last[2] if meta is None else meta
        self._updates[run.task_id] = (run.token, progress, meta)
        run.updated = True
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_updates())

    async def _flush_updates(self) -> None:
        """Write the latest update of every task that has one, one call per round."""
        await asyncio.sleep(0)  # the updates made in this loop iteration go together
        while self._updates:
            batch, self._updates = self._updates, {}
            try:
                await self.backend.set_progress(
                    [(task_id, *update) for task_id, update in batch.items()]
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # progress is advisory: a later update carries on
                logger.warning("cannot store the progress of %d task(s): %s", len(batch), exc)

    # -- leases --------------------------------------------------------------------------------
    async def _renew_loop(self) -> None:
        interval = max(0.05, min(self.lease / 3.0, 5.0))
        last_purge = last_publish = time.monotonic()
        last_stats = 0.0
        while not _cancel_requested():
            await asyncio.sleep(interval)
            if time.monotonic() - last_stats > 2.0:
                last_stats = time.monotonic()
                with contextlib.suppress(Exception):
                    self.queued = await self.backend.pending(self.queues)
            leases = {r.task_id: r.token for r in self.running.values() if r.reason is None}
            if leases:
                try:
                    lost = await self.backend.renew(leases, self.lease)
                except Exception as exc:
                    logger.warning("cannot renew task leases: %s", exc)
                    continue
                for task_id, reason in lost.items():
                    run = self.running.get(task_id)
                    if run is not None and run.reason is None:
                        run.reason = reason
                        if run.job_task is not None:
                            run.job_task.cancel()
            if time.monotonic() - last_publish > 30:
                last_publish = time.monotonic()
                with contextlib.suppress(Exception):  # a backend that lost its data gets them
                    ttl = self.backend.result_ttl
                    await self.backend.register_jobs(
                        {n: {**j.meta(), "result_ttl": ttl} for n, j in registry().items()}
                    )
            purge = getattr(self.backend, "purge_expired", None)
            if purge is not None and time.monotonic() - last_purge > 60:
                last_purge = last_publish = time.monotonic()
                with contextlib.suppress(Exception):
                    await purge()

    # -- heartbeats ----------------------------------------------------------------------------
    def heartbeat_interval(self) -> float:
        """Seconds between heartbeats (and lease renewals): ``lease / 3``, at most 5 s."""
        return max(0.05, min(self.lease / 3.0, 5.0))

    def heartbeat_info(self) -> dict[str, Any]:
        """The record a heartbeat publishes: ``worker``, ``host``, ``pid``, ``queues``,
        ``concurrency``, ``started`` (UNIX time the consumer started), ``beat`` (now), the
        ``processed``/``failed`` counters and ``running``: per task ``id``, ``name`` and
        ``started`` (the UNIX time of its claim)."""
        running = []
        for run in list(self.running.values()):
            try:
                started = None if run.started in (None, "") else float(run.started)
            except (TypeError, ValueError):
                started = None
            running.append({"id": run.task_id, "name": run.name, "started": started})
        return {
            "worker": self.worker_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queues": list(self.queues),
            "concurrency": self.concurrent_tasks,
            "started": self._started_at,
            "beat": time.time(),
            "processed": self.counters["processed"],
            "failed": self.counters["failed"],
            "running": running,
        }

    async def _beat_loop(self) -> None:
        interval = self.heartbeat_interval()
        ttl = max(3 * interval, 1.0)  # gone within three missed beats
        while not _cancel_requested():
            try:
                await self.backend.heartbeat(self.worker_id, self.heartbeat_info(), ttl)
            except Exception as exc:  # the next beat tries again
                logger.debug("cannot publish the worker heartbeat: %s", exc)
            await asyncio.sleep(interval)

    async def _stop_beating(self) -> None:
        beater, self._beater = self._beater, None
        if beater is None:
            return
        await _cancel_and_wait(beater)
        with contextlib.suppress(Exception):  # else it expires within three beats
            await asyncio.wait_for(self.backend.forget_worker(self.worker_id), 2.0)
