"""Task run-time histograms: every worker's, added up per task queue application and queue.

How it works
------------
Each task worker's ``info`` has ``tasks.run_time``: Prometheus-style cumulative bucket counts,
the sum and the count of its runs, per queue (pulsar-tasks' ``_runtimes``). At each read
:meth:`RunTimes.update` adds up the workers of every application, per queue, plus the last
histogram seen of every worker that is gone since (replaced, recycled, killed), so the totals
never go backwards while the dashboard runs (a worker still listed without one, its info
timed out, keeps its last) — as the source does for request and task counts
(the runs a worker made between the last read and its death are not seen, as for those
counts). It also keeps the last ``history`` totals over every queue, from which
:meth:`RunTimes.latency` draws p50 / p95 over time: the runs finished within a sliding
window, their quantiles estimated from the bucket counts as Prometheus'
``histogram_quantile`` does (linear within a bucket).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

__all__ = ["RunTimes", "quantile"]


def quantile(q: float, buckets: Sequence[float], counts: Sequence[float]) -> float | None:
    """The ``q`` quantile (0..1) of a histogram: ``buckets`` the finite upper bounds,
    ``counts`` cumulative, one more than ``buckets`` (+Inf last). None without runs; in the
    +Inf bucket, the highest finite bound (what ``histogram_quantile`` returns). The one
    estimate of the dashboard (the HTTP latencies' too, see ``_http.quantile``).

    Raises:
        ValueError: ``q`` is not between 0 and 1.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"a quantile is between 0 and 1, not {q!r}")
    total = counts[-1] if counts else 0
    if total <= 0:
        return None
    rank = q * total
    prev = 0.0
    for i, c in enumerate(counts):
        if c >= rank and c > prev:
            if i >= len(buckets):
                return float(buckets[-1]) if buckets else None
            lower = float(buckets[i - 1]) if i else 0.0
            return lower + (float(buckets[i]) - lower) * (rank - prev) / (c - prev)
        prev = c
    return float(buckets[-1]) if buckets else None


class RunTimes:
    """The run-time histograms of every task queue application (see the module docstring)."""

    def __init__(self, history: int = 300, window: float = 10.0) -> None:
        self.buckets: list[float] | None = None
        self.window = float(window)
        # aid -> (app, run_time info) of the workers seen in the last read
        self._seen: dict[str, tuple[str, dict[str, Any]]] = {}
        # app -> queue -> [cumulative counts..., sum] of the workers gone
        self._retired: dict[str, dict[str, list[float]]] = {}
        # (time, every run so far per bucket, all queues together; None before the first
        # histogram is seen: as zeros, so the first runs count in the window of their read)
        self._history: deque[tuple[float, list[float] | None]] = deque(maxlen=history)
        self._latency: deque[tuple[float, float | None, float | None]] = deque(maxlen=history)

    def update(self, now: float, monitors: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Read the workers of ``monitors`` (the arbiter's ``info["monitors"]``); per
        application with task workers: ``{"buckets", "queues": {queue: {"counts", "sum",
        "count"}}}``."""
        seen: dict[str, tuple[str, dict[str, Any]]] = {}
        for app_name, monitor in (monitors or {}).items():
            for worker in monitor.get("workers") or ():
                aid = str(worker.get("aid"))
                rt = (worker.get("tasks") or {}).get("run_time")
                if isinstance(rt, dict) and self._fits(rt):
                    seen[aid] = (app_name, rt)
                elif aid in self._seen:
                    # listed without its histogram (its info timed out, or it is stopping and
                    # its consumer is gone): its last one, neither dropped nor counted twice
                    seen[aid] = self._seen[aid]
        for aid, (app_name, rt) in self._seen.items():
            if aid not in seen:  # gone since the last read: its runs stay in the totals
                retired = self._retired.setdefault(app_name, {})
                for queue, h in (rt.get("queues") or {}).items():
                    _add(retired, queue, h)
        self._seen = seen
        totals: dict[str, dict[str, list[float]]] = {
            app: {q: list(v) for q, v in queues.items()} for app, queues in self._retired.items()
        }
        for app_name, rt in seen.values():
            queues = totals.setdefault(app_name, {})
            for queue, h in (rt.get("queues") or {}).items():
                _add(queues, queue, h)
        out: dict[str, dict[str, Any]] = {}
        overall = [0.0] * (len(self.buckets) + 1) if self.buckets is not None else None
        for app_name, queues in sorted(totals.items()):
            out[app_name] = {
                "buckets": list(self.buckets or ()),
                "queues": {
                    q: {"counts": v[:-1], "sum": v[-1], "count": v[-2]}
                    for q, v in sorted(queues.items())
                },
            }
            for v in queues.values():
                if overall is not None:
                    overall = [a + b for a, b in zip(overall, v[:-1], strict=True)]
        self._history.append((now, overall))
        self._latency.append((now, *self._window_quantiles()))
        return out

    def latency(self) -> list[tuple[float, float | None, float | None]]:
        """``[(time, p50, p95)]`` of the runs finished within ``window`` seconds before each
        read (None where no run finished), oldest first."""
        return list(self._latency)

    def _window_quantiles(self) -> tuple[float | None, float | None]:
        now, last = self._history[-1]
        if last is None or len(self._history) < 2:
            return None, None
        first: list[float] | None = last
        for t, counts in reversed(self._history):
            first = counts
            if now - t >= self.window:
                break
        if first is None:  # no histogram yet at the window's start: no run before it
            first = [0.0] * len(last)
        delta = [max(0.0, a - b) for a, b in zip(last, first, strict=True)]
        if delta[-1] <= 0:
            return None, None
        buckets = self.buckets or []
        return quantile(0.5, buckets, delta), quantile(0.95, buckets, delta)

    def _fits(self, rt: dict[str, Any]) -> bool:
        """The first histogram seen fixes the buckets; one with other buckets (a worker of
        another pulsar-tasks version) cannot be added up and is left out."""
        buckets = [float(b) for b in rt.get("buckets") or ()]
        if self.buckets is None:
            self.buckets = buckets
        return buckets == self.buckets


def _add(into: dict[str, list[float]], queue: str, h: dict[str, Any]) -> None:
    """Add one worker's histogram of ``queue`` (``counts`` cumulative, ``sum``) to ``into``."""
    values = [float(c) for c in h.get("counts") or ()] + [float(h.get("sum") or 0.0)]
    have = into.get(queue)
    if have is None or len(have) != len(values):
        into[queue] = values
    else:
        into[queue] = [a + b for a, b in zip(have, values, strict=True)]
