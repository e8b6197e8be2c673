"""Concurrency backends: how an actor is started in a process or a thread.

The arbiter keeps one :class:`ActorHandle` per child actor. A process actor is a
``multiprocessing`` process (start methods ``fork``, ``forkserver`` and ``spawn`` all work: the
:class:`~pulsar._actor.ActorSpec` and its ``start`` callable must pickle for the last two); a
thread actor is a thread with its own event loop. Either way the child connects back to the
arbiter's mailbox, so both kinds are driven by the same messages.

Fork hygiene: a forked child closes every mailbox socket it inherited (the arbiter's server and
its connections to other actors), so the arbiter's death is seen by each child as the end of its
own connection, and resets the signal wake-up fd it inherited from the arbiter's loop.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from ._actor import ActorSpec, ExitInfo, run_actor

__all__ = [
    "ActorHandle",
    "resolve_start_method",
    "start_process",
    "start_thread",
    "register_fork_fd",
    "unregister_fork_fd",
]

# mailbox sockets of this process, closed in every forked child
_fork_fds: set[int] = set()


def register_fork_fd(fd: int) -> None:
    """Mark a mailbox fd to be closed in forked children."""
    _fork_fds.add(fd)


def unregister_fork_fd(fd: int) -> None:
    _fork_fds.discard(fd)


def _after_fork_in_child() -> None:
    try:
        signal.set_wakeup_fd(-1)
    except (ValueError, OSError):  # not the main thread
        pass
    fds = list(_fork_fds)
    _fork_fds.clear()
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def resolve_start_method(method: str | None) -> str:
    """The multiprocessing start method for a ``start_method`` setting value.

    ``auto``: ``fork`` on Linux when this process runs a single thread (fast, no pickling), else
    ``forkserver`` (fork from a clean single-threaded server, what Python 3.14 chose as default);
    ``spawn`` on macOS and Windows.
    """
    method = (method or "auto").lower()
    if method != "auto":
        return method
    if sys.platform.startswith("linux"):
        return "fork" if threading.active_count() == 1 else "forkserver"
    return "spawn"


class ActorHandle:
    """The arbiter's record of one child actor."""

    def __init__(self, spec: ActorSpec, monitor: Any = None) -> None:
        self.spec = spec
        self.aid = spec.aid
        self.name = spec.name
        self.kind = spec.kind
        self.concurrency = spec.concurrency
        self.monitor = monitor
        self.process: Any = None
        self.thread: threading.Thread | None = None
        self.thread_actor: Any = None
        self.proto: Any = None
        self.spawned_at = time.monotonic()
        self.last_notify = self.spawned_at
        self.info: dict[str, Any] = {}
        self.pid: int | None = None
        self.stop_requested = False
        self.timed_out = False
        #: the actor told it is up and serving (its ``start`` returned)
        self.ready = False
        self.exit_info: ExitInfo | None = None
        self.backlog: list[Any] = []
        self.timers: list[asyncio.TimerHandle] = []
        loop = asyncio.get_running_loop()
        self.spawned: asyncio.Future[Any] = loop.create_future()
        self.exited: asyncio.Future[ExitInfo] = loop.create_future()

    def __repr__(self) -> str:
        return f"<ActorHandle {self.name} aid={self.aid} pid={self.pid}>"

    @property
    def alive(self) -> bool:
        return self.exit_info is None

    @property
    def running(self) -> bool:
        return self.alive and self.proto is not None and self.spawned.done()

    def signal(self, sig: int) -> bool:
        """Send ``sig`` to a process actor. False when not a process or already gone."""
        if self.process is None or self.pid is None or not self.alive:
            return False
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            return False
        return True

    def cancel_timers(self) -> None:
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()

    def summary(self) -> dict[str, Any]:
        """What the arbiter knows without asking the actor."""
        return {
            "aid": self.aid,
            "name": self.name,
            "kind": self.kind,
            "pid": self.pid,
            "concurrency": self.concurrency,
            "state": "RUNNING" if self.running else ("CLOSED" if not self.alive else "STARTING"),
            "last_notify": round(time.monotonic() - self.last_notify, 3),
        }


def _process_main(spec: ActorSpec) -> None:  # pragma: no cover - runs in the child
    code = run_actor(spec, in_process=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def start_process(
    handle: ActorHandle, method: str, on_exit: Callable[[ActorHandle, int | None], None]
) -> None:
    """Start ``handle``'s actor in a new process and call ``on_exit(handle, exitcode)`` when the
    process ends (watched through its sentinel fd, no polling)."""
    ctx: Any = multiprocessing.get_context(method)
    process = ctx.Process(
        target=_process_main, args=(handle.spec,), name=handle.spec.title or handle.name
    )
    process.start()
    handle.process = process
    handle.pid = process.pid
    loop = asyncio.get_running_loop()
    sentinel = process.sentinel

    def reap() -> None:
        # the sentinel is readable once the child closed its fds, which happens a moment before
        # the kernel makes it a zombie that waitpid can reap: poll briefly until it is
        code = process.exitcode
        if code is None:
            loop.call_later(0.005, reap)
            return
        process.close()
        on_exit(handle, code)

    def ended() -> None:
        loop.remove_reader(sentinel)
        reap()

    loop.add_reader(sentinel, ended)


def start_thread(handle: ActorHandle, on_exit: Callable[[ActorHandle, int | None], None]) -> None:
    """Start ``handle``'s actor in a new thread with its own loop."""
    loop = asyncio.get_running_loop()

    def target() -> None:
        code: int | None = 1
        try:
            code = run_actor(handle.spec, in_process=False)
        finally:
            if not loop.is_closed():
                loop.call_soon_threadsafe(on_exit, handle, code)

    thread = threading.Thread(target=target, name=handle.spec.title or handle.name, daemon=True)
    handle.thread = thread
    handle.pid = os.getpid()
    thread.start()
