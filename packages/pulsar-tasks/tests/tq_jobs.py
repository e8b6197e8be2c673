"""Jobs used by the tests (imported by name in worker processes)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time

from pulsar.apps import tasks

MARKS = os.environ.get("TQ_MARKS")


def mark(name: str) -> None:
    """Append a line to the marks file (every run of a job leaves a trace)."""
    if MARKS:
        with open(MARKS, "a") as f:
            f.write(f"{name} {os.getpid()} {time.time()}\n")


@tasks.job()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@tasks.job()
async def aadd(a: int, b: int) -> int:
    """Add two numbers, asynchronously."""
    await asyncio.sleep(0)
    return a + b


@tasks.job()
async def sleeper(seconds: float, tag: str = "") -> str:
    """Sleep, then leave a mark."""
    await asyncio.sleep(seconds)
    mark(f"sleeper:{tag}")
    return tag


@tasks.job(max_retries=2)
def sync_sleeper(seconds: float, tag: str = "") -> str:
    time.sleep(seconds)
    mark(f"sync_sleeper:{tag}")
    return tag


@tasks.job(max_retries=0)
def boom(message: str) -> None:
    raise ValueError(message)


@tasks.job(max_retries=3, retry_on=(ConnectionError,), retry_delay=0.2, retry_jitter=0.0)
def flaky(tag: str) -> str:
    """Fails with ConnectionError until it ran three times."""
    mark(f"flaky:{tag}")
    runs = 0
    if MARKS and os.path.exists(MARKS):
        with open(MARKS) as f:
            runs = sum(1 for line in f if line.startswith(f"flaky:{tag} "))
    if runs < 3:
        raise ConnectionError(f"run {runs}")
    return "ok"


@tasks.job(timeout=0.3, max_retries=0)
async def too_slow() -> None:
    await asyncio.sleep(30)


@tasks.job(max_retries=2)
def poison() -> None:
    """Kills its worker process every time."""
    mark("poison")
    os._exit(9)


@tasks.job(overlap=False)
async def exclusive(key: str, seconds: float = 0.5) -> str:
    await asyncio.sleep(seconds)
    return key


@tasks.job()
def unserializable_result() -> object:
    return object()


@tasks.job(queue="other")
def elsewhere() -> str:
    return "other"


@tasks.job(run_every=dt.timedelta(seconds=1), max_retries=0)
def tick() -> float:
    mark("tick")
    return time.time()


class Multiply(tasks.Job):
    """A class-declared job."""

    name = "multiply"
    queue = "default"

    async def run(self, a: int, b: int) -> int:
        return a * b


@tasks.job()
def options_echo(queue: str, countdown: int, eta: str, expires: float, task_id: str) -> list:
    """Job arguments named like task options."""
    return [queue, countdown, eta, expires, task_id]


def _me() -> dict:
    task = tasks.current_task()
    assert task is not None
    return {"id": task.id, "attempts": task.attempts, "queue": task.queue, "name": task.name}


@tasks.job(queue="other")
def whoami() -> dict:
    """The task running it, seen from a sync job."""
    return _me()


@tasks.job()
async def awhoami() -> dict:
    """The task running it, seen from an async job."""
    await asyncio.sleep(0)
    return _me()


@tasks.job(timeout=0.5, max_retries=0)
def sync_timed(seconds: float, tag: str) -> str:
    """A sync job with a timeout: runs in a child process."""
    time.sleep(seconds)
    mark(f"sync_timed:{tag}")
    return tag


@tasks.job(timeout=60, max_retries=0)
def sync_long(seconds: float, tag: str) -> dict:
    """Sleeps, then leaves a mark (a revoke must stop it first)."""
    me = tasks.current_task()
    mark(f"sync_long-start:{tag}")
    time.sleep(seconds)
    mark(f"sync_long:{tag}")
    return {"id": me.id if me else None, "pid": os.getpid()}


@tasks.job(timeout=5, max_retries=1, retry_on=(KeyError,), retry_delay=0.05)
def sync_boom(message: str) -> None:
    raise KeyError(message)


@tasks.job()
def queue_another(a: int, b: int) -> str:
    """A sync job queueing another task with the sync shortcut (the worker's client)."""
    return add.delay(a, b).id


@tasks.job(timeout=10)
def queue_another_in_process(a: int, b: int) -> str:
    """The same from a sync job in its own child process (it has a timeout)."""
    return add.delay(a, b).id


@tasks.job(max_retries=0)
def fails_until(path: str) -> str:
    """Fails (ValueError) until the file ``path`` exists: an outage fixed by an operator."""
    if not os.path.exists(path):
        raise ValueError(f"{path} is missing")
    return "fixed"


# -- scheduling (test_scheduling.py) ------------------------------------------------------------
@tasks.job(priority=5)
def urgent(tag: str = "") -> str:
    """A job whose tasks have priority 5 unless queued with another."""
    return tag


@tasks.job(max_retries=0)
def started_at(tag: str = "") -> list:
    """The time this run started (a worker's clock) and its tag."""
    return [time.time(), tag]


@tasks.job(rate_limit="10/s", max_retries=0)
async def rated(tag: str = "") -> list:
    """At most 10 starts in any second across every worker: the time this run started (an
    async job: it starts in the worker's task that was admitted, no thread hop between)."""
    return [time.time(), tag]


@tasks.job(rate_limit="2/s", max_retries=0)
async def arated(tag: str = "") -> str:
    """An async job limited to 2 starts a second."""
    return tag
