"""Jobs of the dashboard tests' task queue."""

from __future__ import annotations

import os

from pulsar.apps import tasks


@tasks.job()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@tasks.job(max_retries=0)
def flaky(path: str) -> str:
    """Fail until the file ``path`` exists (retrying it from the dashboard then succeeds)."""
    if not os.path.exists(path):
        raise ValueError(f"no {os.path.basename(path)} yet")
    return "fixed"


@tasks.job()
def halfway() -> str:
    """Publish a progress, then finish (the record keeps the last progress)."""
    tasks.update(progress=0.5, meta={"step": "half"})
    return "done"


@tasks.job(queue="other")
def product(a: int, b: int) -> int:  # (not "multiply": pulsar-tasks' tests declare one)
    """Multiply two numbers, on the queue ``other``."""
    return a * b
