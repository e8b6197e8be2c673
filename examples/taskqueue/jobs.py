"""The jobs of the task queue example (imported by the workers: ``--tasks-modules jobs``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

from pulsar.apps import tasks


@tasks.job()
def add(a: float, b: float) -> float:
    """Add two numbers (a sync job: runs in the worker's thread pool)."""
    return a + b


@tasks.job(timeout=10, max_retries=2, retry_on=(ConnectionError,))
async def slow_square(x: float, delay: float = 0.1) -> float:
    """Square a number after a delay (an async job: runs on the worker's loop)."""
    await asyncio.sleep(delay)
    return x * x


@tasks.job(run_every=dt.timedelta(minutes=1), max_retries=0)
def heartbeat() -> float:
    """A periodic job, queued once a minute by the scheduler."""
    return time.time()
