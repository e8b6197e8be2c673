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
from collections.abc import Callable
from typing import Any

from ._actor import CHILD_SIGNALS, ActorSpec, run_actor
from ._supervision import ActorHandle

__all__ = [
    "ActorHandle",
    "resolve_start_method",
    "start_process",
    "start_thread",
    "register_fork_fd",
    "unregister_fork_fd",
    "pid_gone",
    "watch_foreign_exit",
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
    # the child starts with the arbiter's signals blocked (a fork, and a spawn's exec, keep the
    # mask) and unblocks them once its loop runs: see _actor._process_signals
    mask = getattr(signal, "pthread_sigmask", None)
    old = mask(signal.SIG_BLOCK, CHILD_SIGNALS) if mask is not None else None
    try:
        process.start()
    finally:
        if mask is not None and old is not None:
            mask(signal.SIG_SETMASK, old)
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
        if method == "forkserver" and code == _FORKSERVER_LOST and handle.pid is not None:
            # The forkserver (the child's real parent, which reaps it and reports its status)
            # died, typically of a TERM sent to the whole process group: multiprocessing then
            # reports 255 while the child may still run. Report the exit only once it is gone.
            watch_foreign_exit(handle.pid, lambda: on_exit(handle, None))
            return
        on_exit(handle, code)

    def ended() -> None:
        loop.remove_reader(sentinel)
        reap()

    loop.add_reader(sentinel, ended)


#: the exit code multiprocessing reports for a forkserver child when the forkserver is gone
_FORKSERVER_LOST = 255


def pid_gone(pid: int) -> bool:
    """True when no process ``pid`` exists any more (not even a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # pragma: no cover - reused by another user's process
        return True
    return False


def watch_foreign_exit(pid: int, done: Callable[[], None], interval: float = 0.02) -> None:
    """Call ``done()`` on the running loop once process ``pid`` (not a child of this process,
    so it cannot be waited for) has exited and been reaped by its parent.

    Linux: a pidfd becomes readable when the process exits, then a short poll until its new
    parent (init or a subreaper) has reaped it. Elsewhere: poll ``kill(pid, 0)``.
    """
    loop = asyncio.get_running_loop()

    def poll() -> None:
        if pid_gone(pid):
            done()
        else:
            loop.call_later(interval, poll)

    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:  # pragma: no cover - macOS
        poll()
        return
    try:
        pidfd = pidfd_open(pid)
    except ProcessLookupError:
        done()
        return
    except OSError:  # pragma: no cover - old kernel, no pidfd support
        poll()
        return

    def exited() -> None:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        poll()

    loop.add_reader(pidfd, exited)


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
