"""The run-time histogram a worker keeps, per queue, for its ``info`` (and so for Prometheus).

How it works
------------
:class:`RunTimes` holds, per queue, one count per bucket of :data:`BUCKETS` plus one for
longer runs, the sum of the run times and their count: :meth:`RunTimes.observe` is one bisect
and three additions, cheap enough for every task. :meth:`RunTimes.info` gives them the way
Prometheus histograms are written: cumulative counts (``le`` bounds), the last one (+Inf)
equal to ``count``. Per queue, not per job: the label values are the queues a worker
consumes (a handful), where per job they would be every job times every queue.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

__all__ = ["BUCKETS", "RunTimes"]

#: the upper bounds (seconds, ``le``) of the buckets; a last one, +Inf, takes the longer runs
BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)


class RunTimes:
    """Per queue run-time histograms (see the module docstring)."""

    __slots__ = ("_counts", "_sums", "buckets")

    def __init__(self, buckets: tuple[float, ...] = BUCKETS) -> None:
        if list(buckets) != sorted(set(buckets)) or not buckets:
            raise ValueError(f"histogram buckets must be increasing and distinct: {buckets!r}")
        self.buckets = tuple(float(b) for b in buckets)
        self._counts: dict[str, list[int]] = {}  # per bucket (not cumulative), +Inf last
        self._sums: dict[str, float] = {}

    def observe(self, queue: str, seconds: float) -> None:
        """Count one run of ``seconds`` in ``queue`` (a negative time counts as 0)."""
        counts = self._counts.get(queue)
        if counts is None:
            counts = self._counts[queue] = [0] * (len(self.buckets) + 1)
            self._sums[queue] = 0.0
        seconds = max(0.0, seconds)
        counts[bisect_left(self.buckets, seconds)] += 1
        self._sums[queue] += seconds

    def info(self) -> dict[str, Any]:
        """``{"buckets": [le, ...], "queues": {queue: {"counts": [cumulative per le, +Inf],
        "sum": seconds, "count": runs}}}`` (``counts`` has one more entry than ``buckets``:
        +Inf, equal to ``count``)."""
        queues: dict[str, Any] = {}
        for queue, counts in self._counts.items():
            cumulative, total = [], 0
            for n in counts:
                total += n
                cumulative.append(total)
            queues[queue] = {"counts": cumulative, "sum": self._sums[queue], "count": total}
        return {"buckets": list(self.buckets), "queues": queues}
