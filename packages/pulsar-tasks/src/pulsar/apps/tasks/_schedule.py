"""Scheduling: task priorities and per-job rate limits.

How it works
------------
*Priorities.* Every task has a ``priority`` from 0 to 9 (default 0, or its job's ``priority``
option; ``queue_task(..., priority=7)`` per task). A claim takes the due tasks of a queue
highest priority first, and within a priority the earliest due first (FIFO). Each backend
keeps priority-0 tasks exactly where they were before priorities existed, so a queue that uses
none pays nothing: SQLite and PostgreSQL index the other priorities in a partial index of
their own (``tasks_prio``), that a claim probes one priority at a time; Redis keeps one sorted
set per priority in use (``{p}:qp:<priority>:<queue>``) next to the ``{p}:q:<queue>`` of
priority 0, and a set ``{p}:prios:<queue>`` of the priorities in use that the claim reads.
Retries, redeliveries and requeues keep a task's priority; a delayed task waits for its eta
whatever its priority.

*Rate limits.* ``@job(rate_limit="10/s")`` (also ``"/m"``, ``"/h"``; a number means per second)
allows at most N starts of the job in any window of the period, across every worker sharing
the backend. The state is the backend's: the times of the last N admissions (a Redis list
under a Lua script with the server's clock, a SQLite row changed in a write transaction, a
PostgreSQL row locked by a PL/pgSQL function with the database's clock). A worker that claims a
task of a rate-limited job asks :meth:`Backend.acquire_rate` first (one round trip, only for
such jobs): admitted, it runs the task; refused, it gets the seconds until a start is allowed
and hands the task back due then (:meth:`Backend.postpone`: QUEUED, the attempt not counted,
the lease released), so the task waits in the backend and the worker's slot goes to other
work. Until that time the worker hands further tasks of the job back without asking,
spreading them one interval (period / N) apart, so a backlog does not come back all at once.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any

__all__ = ["MAX_PRIORITY", "RateGate", "check_priority", "parse_rate_limit"]

#: priorities go from 0 (the default, lowest) to MAX_PRIORITY (highest)
MAX_PRIORITY = 9

_PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_RATE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:/\s*([smh])\s*)?$")


def check_priority(value: Any, where: str = "priority") -> int:
    """``value`` as a priority (an int from 0 to 9); TypeError/ValueError saying what to write."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"{where} must be an int from 0 to {MAX_PRIORITY} (higher runs first), not "
            f"{type(value).__name__} {value!r}: write e.g. priority=5"
        )
    if not 0 <= value <= MAX_PRIORITY:
        raise ValueError(
            f"{where} must be from 0 to {MAX_PRIORITY} (higher runs first), not {value}"
        )
    return int(value)


def parse_rate_limit(value: Any) -> tuple[int, float] | None:
    """``rate_limit`` as ``(N, period in seconds)``: at most N starts in any window of the
    period. ``"100/s"``, ``"10/m"``, ``"600/h"`` (Celery's syntax); an int, a float or a
    string without a unit means per second; a fractional N is 1 per ``period / N``
    (``"0.5/s"``: one every 2 s). None stays None (no limit). Raises ValueError (TypeError
    for another type) saying what to write."""
    if value is None:
        return None
    hint = 'write e.g. rate_limit="100/s", "10/m" or "600/h" (a number means per second)'
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"rate_limit must be a string or a number, not {value!r}: {hint}")
    if isinstance(value, str):
        match = _RATE.match(value)
        if match is None:
            raise ValueError(f"invalid rate_limit {value!r}: {hint}")
        count, period = float(match.group(1)), _PERIODS[match.group(2) or "s"]
    else:
        count, period = float(value), 1.0
    if not math.isfinite(count) or count <= 0:
        raise ValueError(f"rate_limit must allow more than 0 tasks, not {value!r}: {hint}")
    if count.is_integer():
        return int(count), period
    return 1, period / count


def format_rate_limit(limit: tuple[int, float] | None) -> str | None:
    """``(N, period)`` as text (``"10/s"``, ``"1/2.5s"``), for job descriptions and logs."""
    if limit is None:
        return None
    count, period = limit
    for unit, seconds in _PERIODS.items():
        if period == seconds:
            return f"{count}/{unit}"
    return f"{count}/{period:g}s"


class RateGate:
    """A worker's memory of the rate-limited jobs it was refused: until the time the backend
    named, further tasks of the job are handed back without asking it, one interval apart."""

    __slots__ = ("_gates",)

    def __init__(self) -> None:
        #: job name -> [refused until (UNIX time), the next due time to hand out]
        self._gates: dict[str, list[float]] = {}

    def blocked(self, name: str, interval: float, now: float | None = None) -> float | None:
        """The due time for a task of ``name`` handed back without asking the backend, or
        None when the backend must be asked."""
        gate = self._gates.get(name)
        now = time.time() if now is None else now
        if gate is None or now >= gate[0]:
            return None
        due = gate[1]
        gate[1] = due + interval
        return due

    def refused(self, name: str, wait: float, interval: float, now: float | None = None) -> float:
        """The backend refused a task of ``name`` for ``wait`` seconds: its due time (and the
        gate is set for the others)."""
        now = time.time() if now is None else now
        until = now + wait
        gate = self._gates.get(name)
        # behind the tasks handed back already (they hold the earlier times)
        due = until if gate is None else max(until, gate[1])
        self._gates[name] = [until, due + interval]
        return due
