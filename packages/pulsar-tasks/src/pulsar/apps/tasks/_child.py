"""Sync jobs run in a child process that can be killed (a hard time limit, as Celery's).

How it works
------------
A sync job with a ``timeout`` (or ``process=True``) runs in a child process forked from the
worker for this one run: the child sets :func:`~pulsar.apps.tasks.current_task`, calls the
job and sends back ``("ok", value)`` or ``("error", exception, traceback text)`` through a
pipe, then leaves with ``os._exit`` (none of the worker's exit handlers run twice). The worker
waits for the pipe on its event loop, so the timeout counts from the moment the run starts
(no wait for a thread of a pool). When the timeout passes, or the task is revoked, its lease
lost or the worker stops, the child is killed with SIGKILL: the run really stops, wherever it
is. Side effects: what the job did before the kill stays done (files written, rows committed,
messages sent); anything it buffered in the process (open files not flushed, a transaction
not committed) is lost, as after a crash. A child whose worker dies notices within half a
second and exits. ``tasks.update()`` in the child writes one JSON line per update to a second
pipe, which the worker reads on its loop and hands to the run's sink (see :mod:`._progress`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pickle
import signal
import threading
import traceback
from collections.abc import Callable
from typing import Any

from ._job import _CURRENT, Job
from ._progress import SINK
from ._state import Task

__all__ = ["run_in_child"]


def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:  # the worker died: nobody waits for this run
            os._exit(1)
        threading.Event().wait(0.5)


def _pipe_sink(fd: int) -> Callable[[float | None, str | None], None]:
    lock = threading.Lock()

    def sink(progress: float | None, meta: str | None) -> None:
        view = memoryview(json.dumps([progress, meta]).encode() + b"\n")
        with lock, contextlib.suppress(OSError):  # the worker is gone: nobody reads it
            while view:
                view = view[os.write(fd, view) :]

    return sink


def _child_main(
    job: Job,
    task: Task,
    args: list[Any],
    kwargs: dict[str, Any],
    fd: int,
    progress_fd: int | None = None,
) -> None:
    parent = os.getppid()
    with contextlib.suppress(Exception):  # the worker's loop owns these
        signal.set_wakeup_fd(-1)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
        with contextlib.suppress(Exception):
            signal.signal(sig, signal.SIG_DFL)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    _CURRENT.set(task)
    SINK.set(None if progress_fd is None else _pipe_sink(progress_fd))
    try:
        value = job.run(*args, **kwargs)
        message: tuple[Any, ...] = ("ok", value)
    except BaseException as exc:
        message = ("error", exc, traceback.format_exc())
    try:
        data = pickle.dumps(message)
    except Exception as exc:  # not picklable: say what it was
        if message[0] == "ok":
            error: BaseException = TypeError(f"result is not JSON serializable: {exc}")
            data = pickle.dumps(("error", error, ""))
        else:
            text = f"{type(message[1]).__name__}: {message[1]}"
            data = pickle.dumps(("error", RuntimeError(text), message[2]))
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.close(fd)


class ChildError(Exception):
    """A job's exception raised in its child process (its traceback text attached)."""

    def __init__(self, exc: BaseException, tb: str) -> None:
        super().__init__(str(exc))
        self.exc = exc
        self.tb = tb


async def run_in_child(
    job: Job,
    task: Task,
    args: list[Any],
    kwargs: dict[str, Any],
    timeout: float | None,
    *,
    on_update: Callable[[float | None, str | None], None] | None = None,
) -> Any:
    """Run ``job`` in a child process; its value, or :class:`ChildError` wrapping what it
    raised. TimeoutError after ``timeout`` seconds from the start (the child is killed);
    cancelling the caller kills it too. ``on_update(progress, meta_json)`` receives the
    child's ``tasks.update()`` calls."""
    loop = asyncio.get_running_loop()
    r, w = os.pipe()
    pr, pw = os.pipe() if on_update is not None else (-1, -1)
    pid = os.fork()
    if pid == 0:  # the child: run, report, leave (no exit handler of the worker runs here)
        code = 0
        try:
            os.close(r)
            if pr >= 0:
                os.close(pr)
            _child_main(job, task, args, kwargs, w, pw if pw >= 0 else None)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    os.set_blocking(r, False)
    updates = _Updates(loop, pr, on_update) if on_update is not None else None
    if pw >= 0:
        os.close(pw)
    chunks: list[bytes] = []
    eof: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        try:
            data = os.read(r, 1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        if data:
            chunks.append(data)
        elif not eof.done():
            eof.set_result(None)

    loop.add_reader(r, readable)
    try:
        async with asyncio.timeout(timeout):
            await eof
    finally:
        loop.remove_reader(r)
        os.close(r)
        if updates is not None:
            updates.close()  # what the child wrote before its result is handed on first
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # done, timed out or cancelled: it goes now
        await loop.run_in_executor(None, _reap, pid)
    if not chunks:
        raise ChildError(RuntimeError("the job's process died before it returned"), "")
    message = pickle.loads(b"".join(chunks))
    if message[0] == "ok":
        return message[1]
    raise ChildError(message[1], message[2])


class _Updates:
    """Reads the child's update lines on the loop and hands each to ``on_update``."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        fd: int,
        on_update: Callable[[float | None, str | None], None],
    ) -> None:
        self.loop, self.fd, self.on_update = loop, fd, on_update
        self.buffer = b""
        os.set_blocking(fd, False)
        loop.add_reader(fd, self.readable)

    def readable(self) -> bool:
        try:
            data = os.read(self.fd, 1 << 16)
        except (BlockingIOError, InterruptedError):
            return False
        if not data:
            self.loop.remove_reader(self.fd)
            return False
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            with contextlib.suppress(ValueError, TypeError):
                progress, meta = json.loads(line)
                self.on_update(progress, meta)
        return True

    def close(self) -> None:
        self.loop.remove_reader(self.fd)
        while self.readable():
            pass
        os.close(self.fd)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):  # someone else reaped it
        os.waitpid(pid, 0)
