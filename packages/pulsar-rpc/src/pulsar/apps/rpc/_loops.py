"""Where the coroutines of ``async def`` rpc methods run, seen from a WSGI thread.

A WSGI application is synchronous: the server calls it in one of its threads and waits for the
response. pulsar-rpc runs ``async def`` methods on an event loop and blocks that thread until
they are done (:func:`run_threadsafe`):

* in a pulsar worker, the WSGI server calls the application from the actor's thread pool, and
  ``pulsar.get_actor()`` gives the actor: the coroutine runs on the actor's own loop with
  :func:`asyncio.run_coroutine_threadsafe`, so it can ``await pulsar.send(...)`` and use
  anything bound to that loop;
* anywhere else (a plain WSGI server, a test calling the application directly), or when the
  calling thread runs an event loop itself (waiting for it there would deadlock), the coroutine
  runs on a private loop: one daemon thread per process, started on first use and replaced
  after a fork.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Coroutine
from typing import Any

import pulsar

__all__ = ["PrivateLoop", "private_loop", "run_threadsafe", "target_loop"]


class PrivateLoop:
    """An event loop running for ever in a daemon thread of this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0

    def get(self) -> asyncio.AbstractEventLoop:
        """The running loop (started on first use, and again in a forked child)."""
        loop = self._loop
        if loop is not None and self._pid == os.getpid() and not loop.is_closed():
            return loop
        with self._lock:
            if self._loop is None or self._pid != os.getpid() or self._loop.is_closed():
                started = threading.Event()
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=self._run, args=(loop, started), name="pulsar-rpc-loop", daemon=True
                )
                thread.start()
                started.wait()
                self._loop, self._pid = loop, os.getpid()
            return self._loop

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(started.set)
        loop.run_forever()


_PRIVATE = PrivateLoop()


def private_loop() -> asyncio.AbstractEventLoop:
    """The process-wide private loop of pulsar-rpc."""
    return _PRIVATE.get()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def target_loop(actor: Any = None) -> asyncio.AbstractEventLoop:
    """The loop on which a WSGI thread should run a coroutine: the loop of ``actor`` (default:
    the actor of this thread) when it runs in another thread, else the private loop."""
    if actor is None:
        actor = pulsar.get_actor()
    loop = getattr(actor, "loop", None)
    if (
        loop is not None
        and loop.is_running()
        and not loop.is_closed()
        and _running_loop() is None  # never block the thread that runs a loop
    ):
        return loop  # type: ignore[no-any-return]
    return private_loop()


def run_threadsafe(
    coro: Coroutine[Any, Any, Any], *, actor: Any = None
) -> concurrent.futures.Future[Any]:
    """Schedule ``coro`` on :func:`target_loop` and return a concurrent future of its result."""
    return asyncio.run_coroutine_threadsafe(coro, target_loop(actor))
