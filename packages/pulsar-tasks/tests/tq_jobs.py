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


def _context() -> dict:
    me = tasks.current_task()
    assert me is not None
    return {"id": me.id, "attempts": me.attempts, "queue": me.queue,
            "workflow": getattr(me, "workflow", None)}  # fmt: skip


@tasks.job(max_retries=0)
async def progress_async(steps: int, pause: float) -> dict:
    """Publish progress step by step (awaiting update() works too)."""
    for i in range(1, steps + 1):
        await tasks.update(progress=i / steps, meta={"step": i})
        await asyncio.sleep(pause)
    return _context()


@tasks.job(max_retries=0, process=False)
def progress_thread(steps: int, pause: float) -> dict:
    """The same in the worker's threads."""
    for i in range(1, steps + 1):
        tasks.update(progress=i / steps, meta={"step": i})
        time.sleep(pause)
    return _context()


@tasks.job(max_retries=0, process=True)
def progress_child(steps: int, pause: float) -> dict:
    """The same in a child process."""
    for i in range(1, steps + 1):
        tasks.update(progress=i / steps, meta={"step": i})
        time.sleep(pause)
    return _context()


@tasks.job(max_retries=0)
async def bad_updates() -> list:
    """What update() says about bad values, from inside a run."""
    out = []
    for kwargs in ({"progress": 1.5}, {"meta": {"x": object()}}, {"meta": "x" * 70000}, {}):
        try:
            tasks.update(**kwargs)
        except (TypeError, ValueError) as exc:
            out.append(type(exc).__name__)
    return out


@tasks.job(max_retries=0)
async def sleeper_once(seconds: float) -> None:
    """Sleep, with no retry: a worker dying under it makes it FAILURE 'lost'."""
    await asyncio.sleep(seconds)


# -- workflows (test_workflows.py) -----------------------------------------------------------
def _log(path: str, line: str) -> int:
    """Append ``line`` to the file ``path``; how many lines the file then has starting so."""
    with open(path, "a") as f:
        f.write(f"{line} {os.getpid()}\n")
    with open(path) as f:
        return sum(1 for text in f if text.split()[0] == line)


@tasks.job(max_retries=0)
def wf_step(prev: list, path: str, tag: str) -> list:
    """A chain step: logs its run, returns the previous result with its tag appended."""
    _log(path, tag)
    return [*prev, tag]


@tasks.job(max_retries=2, retry_on=(ConnectionError,), retry_delay=0.05, retry_jitter=0.0)
def wf_flaky_step(prev: list, path: str, tag: str) -> list:
    """A chain step that fails (retried) on its first run."""
    if _log(path, tag) == 1:
        raise ConnectionError("first run fails")
    return [*prev, tag]


@tasks.job(max_retries=0)
def wf_fail(prev: object, message: str) -> None:
    raise ValueError(message)


@tasks.job()
def wf_sum(values: list) -> int:
    return sum(values)


@tasks.job(max_retries=3)
async def wf_slow_step(prev: list, path: str, tag: str, seconds: float) -> list:
    """A chain step that sleeps ``seconds`` on its first run (long enough to be killed)."""
    if _log(path, tag) == 1:
        await asyncio.sleep(seconds)
    return [*prev, tag]


@tasks.job(max_retries=0)
async def wf_barrier(folder: str, index: int, count: int) -> int:
    """A chord member: arrives, then waits until ``count`` members arrived, so that the last
    ones finish at the same moment."""
    _log(os.path.join(folder, "arrived"), "m")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with open(os.path.join(folder, "arrived")) as f:
            if sum(1 for _ in f) >= count:
                break
        await asyncio.sleep(0.002)
    return index


@tasks.job(max_retries=0)
def wf_count(values: list, path: str) -> int:
    """A chord callback counting its runs in the file ``path``."""
    _log(path, "callback")
    return sum(values)


@tasks.job(max_retries=3, retry_on=(ConnectionError,), retry_delay=0.05, retry_jitter=0.0)
async def slow_flaky(tag: str) -> None:
    """Marks its start, then fails with a retryable error 0.4 s later."""
    mark(f"slow_flaky:{tag}")
    await asyncio.sleep(0.4)
    raise ConnectionError("try again")
