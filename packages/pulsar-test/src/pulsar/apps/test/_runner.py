"""Run coroutines to completion on one lazily created loop, with timeouts and task tracking.

How it works: :class:`LoopRunner` owns at most one event loop, made by
:func:`pulsar.new_event_loop` the first time something must run. Each :meth:`LoopRunner.run`
runs the coroutine as a task created in a given :class:`contextvars.Context` and runs the loop
until that task is done; its exception is re-raised from the caller's frame, so tracebacks show
the user's code and not the loop's. A timeout is a loop timer: when it fires the runner writes down
the stack of every pending task and every thread *before* cancelling the task, so the report shows
where things were stuck, not where the cancellation unwound them.

The runner installs a task factory (:class:`TaskTracker`) that tags every task with the *owner*
found in the :data:`OWNER` context variable of the code creating it, plus its creation stack. A
test's tasks inherit the test's owner, so after the test the plugin can tell the tasks it leaked
from the long-lived tasks of a module fixture. Errors handed to the loop's exception handler
("Task exception was never retrieved", "Exception in callback ...") are collected too.

The runner knows nothing of pytest: the plugin turns :class:`TimeoutExpired` into a test failure.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import traceback
import weakref
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from pulsar.loop import new_event_loop

from ._stacks import creation_stack, format_task_stacks, format_thread_stacks

__all__ = ["OWNER", "LoopRunner", "LoopError", "TaskOrigin", "TaskTracker", "TimeoutExpired"]

#: Who is running: a test or fixture marker object, inherited by every task created beneath it.
OWNER: contextvars.ContextVar[object | None] = contextvars.ContextVar(
    "pulsar_test_owner", default=None
)

#: After a timeout, the task is cancelled again this often until it gives up.
_RECANCEL_EVERY = 1.0


class TimeoutExpired(Exception):
    """A run took longer than its timeout; ``report`` holds the stacks taken when it expired."""

    def __init__(self, report: str) -> None:
        super().__init__(report)
        self.report = report


class LoopError(RuntimeError):
    """The runner cannot run now (its loop is already running, or was closed by user code)."""


@dataclass(slots=True)
class TaskOrigin:
    """Who created a task (the :data:`OWNER` at creation) and where."""

    owner: object
    stack: traceback.StackSummary


class TaskTracker:
    """A task factory recording the :class:`TaskOrigin` of tasks created under an owner.

    Wraps the factory that was set on the loop before, if any. Tasks created where :data:`OWNER`
    is unset cost one context-variable lookup more than usual.
    """

    def __init__(self, previous: Any = None) -> None:
        self.origins: weakref.WeakKeyDictionary[asyncio.Task[Any], TaskOrigin] = (
            weakref.WeakKeyDictionary()
        )
        self._previous = previous

    def __call__(
        self, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any
    ) -> asyncio.Task[Any]:
        if self._previous is not None:
            task = self._previous(loop, coro, **kwargs)
        else:
            task = asyncio.Task(coro, loop=loop, **kwargs)
        context = kwargs.get("context")
        owner = context.get(OWNER) if context is not None else OWNER.get()
        if owner is not None:
            self.origins[task] = TaskOrigin(owner, creation_stack(skip=1))
        return task


@dataclass(slots=True)
class _Timing:
    report: str | None = None
    timers: list[asyncio.TimerHandle] = field(default_factory=list)


async def _await(awaitable: Awaitable[Any]) -> Any:
    __tracebackhide__ = True
    return await awaitable


class LoopRunner:
    """One event loop, created on first use, that runs coroutines one at a time.

    ``io`` is pulsar's loop setting (``auto|asyncio|uvloop``).
    """

    def __init__(self, io: str = "asyncio") -> None:
        self.io = io
        self._loop: asyncio.AbstractEventLoop | None = None
        self.tracker: TaskTracker | None = None
        #: When a list, the contexts given to the loop's exception handler are appended to it
        #: instead of being logged (the plugin collects them per test).
        self.capture: list[dict[str, Any]] | None = None

    @property
    def started(self) -> bool:
        """True once the loop exists (and until :meth:`close`)."""
        return self._loop is not None and not self._loop.is_closed()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The runner's loop, created now if needed."""
        if self._loop is None:
            loop = new_event_loop(self.io)
            self.tracker = TaskTracker(loop.get_task_factory())
            loop.set_task_factory(self.tracker)
            loop.set_exception_handler(self._exception_handler)
            self._loop = loop
        elif self._loop.is_closed():
            raise LoopError("the pulsar test loop was closed by the code under test")
        return self._loop

    def _exception_handler(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if self.capture is not None:
            self.capture.append(context)
        else:
            loop.default_exception_handler(context)

    def run(
        self,
        awaitable: Awaitable[Any],
        *,
        context: contextvars.Context | None = None,
        timeout: float = 0,
        label: str = "coroutine",
    ) -> Any:
        """Run ``awaitable`` in a new task (in ``context``) until done; return or raise its outcome.

        ``timeout`` (seconds, 0 = none) bounds the run: when it expires the stacks of all pending
        tasks and threads are written down, the task is cancelled (again every second if it
        ignores it) and :class:`TimeoutExpired` is raised once it ends, whatever it returned.
        Raises :class:`LoopError` when called from inside the running loop.
        """
        __tracebackhide__ = True
        try:
            loop = self.loop
        except BaseException:
            _close_awaitable(awaitable)
            raise
        if loop.is_running():
            _close_awaitable(awaitable)
            raise LoopError(
                f"cannot run {label}: the pulsar test loop is already running (an async fixture "
                "requested with request.getfixturevalue() from async code? request it as an "
                "argument instead)"
            )
        timing = _Timing()
        coro = awaitable if asyncio.iscoroutine(awaitable) else _await(awaitable)
        task = loop.create_task(coro, context=context, name=label)
        stopper = _Stopper(loop)
        task.add_done_callback(stopper)
        if timeout > 0:
            timing.timers.append(
                loop.call_later(timeout, self._expire, task, timing, label, timeout)
            )
        try:
            loop.run_forever()
        finally:
            # run_forever may end early (KeyboardInterrupt): the stop already scheduled must not
            # stop the next run, and the task's outcome counts as seen.
            stopper.active = False
            for timer in timing.timers:
                timer.cancel()
            task.remove_done_callback(stopper)
            if task.done() and not task.cancelled():
                task.exception()
        if timing.report is not None:
            raise TimeoutExpired(timing.report)
        if not task.done():
            raise LoopError(f"the loop was stopped before {label} finished (loop.stop() called?)")
        if task.cancelled():
            task.result()  # raises the CancelledError, with its message
        error = task.exception()
        if error is not None:
            try:
                raise error
            finally:
                del error
        return task.result()

    def _expire(self, task: asyncio.Task[Any], timing: _Timing, label: str, timeout: float) -> None:
        if task.done():
            return
        loop = task.get_loop()
        tasks = sorted(asyncio.all_tasks(loop), key=lambda t: t is not task)
        origins = self.tracker.origins if self.tracker else {}
        created = {t: origins[t].stack for t in tasks if t in origins}
        timing.report = (
            f"pulsar: {label} timed out after {timeout:g} s and was cancelled.\n"
            f"(--pulsar-timeout or @pytest.mark.timeout_async(seconds) set the limit)\n\n"
            f"{len(tasks)} pending task(s) on the loop when it expired:\n"
            + format_task_stacks(tasks, created=created, notes={task: "  <- this run"})
            + "\n\nOther threads:\n"
            + format_thread_stacks()
        )
        self._cancel(task, timing, label)

    def _cancel(self, task: asyncio.Task[Any], timing: _Timing, label: str) -> None:
        if task.done():
            return
        task.cancel(msg=f"pulsar: {label} timed out")
        timing.timers.append(
            task.get_loop().call_later(_RECANCEL_EVERY, self._cancel, task, timing, label)
        )

    # ------------------------------------------------------------------ leaks and shutdown

    def pending_tasks(self) -> set[asyncio.Task[Any]]:
        """Tasks of this loop not done yet (empty before the loop exists)."""
        if not self.started:
            return set()
        return asyncio.all_tasks(self.loop)

    def origin(self, task: asyncio.Task[Any]) -> TaskOrigin | None:
        """The recorded origin of ``task``, if the tracker saw it created under an owner."""
        return self.tracker.origins.get(task) if self.tracker else None

    def settle(self, tasks: set[asyncio.Task[Any]], rounds: int = 20) -> set[asyncio.Task[Any]]:
        """Let the loop turn (at most ``rounds`` times) so tasks already finishing can end.

        A task cancelled without being awaited is still pending until the loop runs it once
        more; that is not a leak. Returns the tasks of ``tasks`` still pending.
        """
        pending = {t for t in tasks if not t.done()}
        for _ in range(rounds):
            if not pending:
                break
            self.loop.run_until_complete(asyncio.sleep(0))
            pending = {t for t in pending if not t.done()}
        return pending

    def cancel(self, tasks: set[asyncio.Task[Any]], reason: str, wait: float = 1.0) -> None:
        """Cancel ``tasks`` and let them unwind for at most ``wait`` seconds."""
        if not tasks:
            return
        for task in tasks:
            task.cancel(msg=reason)
        loop = self.loop
        loop.run_until_complete(asyncio.wait(tasks, timeout=wait))
        for task in tasks:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: no "exception was never retrieved" later

    def close(self) -> None:
        """Cancel what is left, shut down async generators and the executor, close the loop."""
        loop, self._loop = self._loop, None
        self.capture = None
        if loop is None or loop.is_closed():
            return
        try:
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            for task in tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    loop.call_exception_handler(
                        {
                            "message": "unhandled exception while closing the pulsar test loop",
                            "exception": task.exception(),
                            "task": task,
                        }
                    )
            loop.run_until_complete(loop.shutdown_asyncgens())
            if sys.version_info >= (3, 12):
                loop.run_until_complete(loop.shutdown_default_executor(timeout=30))
            else:  # pragma: no cover - 3.11 has no timeout here
                loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()


class _Stopper:
    """Done callback stopping the loop at the end of one run, unless that run is over."""

    __slots__ = ("active", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.active = True

    def __call__(self, task: asyncio.Task[Any]) -> None:
        if self.active:
            self.loop.stop()


def _close_awaitable(awaitable: Awaitable[Any]) -> None:
    """Close a coroutine that will never run, so it does not warn 'never awaited'."""
    if isinstance(awaitable, Coroutine):
        awaitable.close()
