"""The thread pool running a WSGI callable (``thread_workers`` threads per server).

How it works
------------
:class:`CallPool` is the smallest pool that does the job: ``submit(fn, arg)`` puts the call on a
:class:`queue.SimpleQueue` (implemented in C) that ``size`` daemon threads, started on first use,
take calls from. There is no future: ``fn`` reports its outcome itself (the request cycle hands
it to the event loop with ``call_soon_threadsafe``). Compared with
:class:`concurrent.futures.ThreadPoolExecutor` it saves a ``Future`` (and its
``threading.Condition``), a work item and a done callback per request, a sizeable part of a small
request's cost. The threads are daemons, so an application blocked forever does not keep a
stopping worker process alive.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["CallPool"]


class CallPool:
    """``size`` threads running ``fn(arg)`` calls in submission order.

    Args:
        size: the number of threads (at least 1).
        name: the threads' name prefix.
        initializer: called first in each thread (inside a pulsar actor: the actor's
            ``bind_thread``, so the application sees ``pulsar.get_actor()``).
    """

    def __init__(
        self,
        size: int,
        name: str = "pulsar-wsgi",
        initializer: Callable[[], Any] | None = None,
    ) -> None:
        self.size = max(1, size)
        self.name = name
        self.initializer = initializer
        self._queue: queue.SimpleQueue[tuple[Callable[[Any], Any], Any] | None] = (
            queue.SimpleQueue()
        )
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.closed = False

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> None:
        """Run ``fn(arg)`` in a thread of the pool; ``fn`` must not raise (an exception is
        printed by :func:`threading.excepthook` and the thread goes on).

        Raises:
            RuntimeError: the pool is shut down.
        """
        if self.closed:
            raise RuntimeError("the WSGI thread pool is shut down")
        if not self._threads:
            self._start()
        self._queue.put((fn, arg))

    def _start(self) -> None:
        with self._lock:
            if self._threads or self.closed:
                return
            for i in range(self.size):
                thread = threading.Thread(target=self._work, name=f"{self.name}-{i}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _work(self) -> None:
        if self.initializer is not None:
            try:
                self.initializer()
            except BaseException:  # reported; the thread serves anyway
                exc_type, exc, tb = sys.exc_info()
                threading.excepthook(
                    threading.ExceptHookArgs((exc_type, exc, tb, threading.current_thread()))
                )
        get = self._queue.get
        while True:
            item = get()
            if item is None:
                return
            fn, arg = item
            try:
                fn(arg)
            except BaseException:  # fn reports its own errors; never lose the thread
                exc_type, exc, tb = sys.exc_info()
                threading.excepthook(
                    threading.ExceptHookArgs((exc_type, exc, tb, threading.current_thread()))
                )
            del item, fn, arg

    def shutdown(self) -> None:
        """Stop the threads once the calls already queued are done (no wait)."""
        self.closed = True
        with self._lock:
            for _ in self._threads:
                self._queue.put(None)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self._threads)} threads"
        return f"<CallPool {self.name} size={self.size} {state}>"
