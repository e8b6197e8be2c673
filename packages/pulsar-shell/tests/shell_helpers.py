"""Helpers for pulsar-shell's tests, importable by name in the shell and in actor processes."""

from __future__ import annotations

import os
from typing import Any

import psutil


def noop_start(actor: Any) -> None:
    """Start callable of the test application's workers: nothing to do."""


def worker_pid(actor: Any) -> int:
    """Run in a worker with ``await send(aid, 'run', worker_pid)``: the worker's pid."""
    return os.getpid()


def wait_gone(pids: list[int], timeout: float = 30) -> list[int]:
    """The pids among ``pids`` still alive after ``timeout`` (waits for them to end)."""
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return [p.pid for p in alive if p.status() != psutil.STATUS_ZOMBIE]
