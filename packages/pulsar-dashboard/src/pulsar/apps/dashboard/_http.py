"""HTTP responses by status and latency histograms: sums over workers, windows, percentiles.

How it works
------------
Each pulsar-wsgi worker's ``info`` has, under ``wsgi``, its responses by status code
(``statuses``) and a latency histogram in Prometheus' shape (``latency``: ``le`` upper bounds,
cumulative ``buckets``, ``sum``, ``count``). :class:`HttpTotals` adds up the workers of each
application, plus the last numbers read of the workers that were replaced since the dashboard
started (so totals never go backwards), and keeps the last samples of those totals. A window
(the last 10 s, or the span between two samples) is the difference of two samples; its
percentiles are estimated as Prometheus' ``histogram_quantile`` does: linear interpolation inside
the bucket holding the rank, the first bucket starting at 0, a rank in the ``+Inf`` bucket
answered with the highest finite bound.

Histograms are JSON-ready dicts (``/api/state`` shows them as they are).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from ._runtimes import quantile as histogram_quantile

__all__ = [
    "HttpTotals",
    "add_histogram",
    "empty_histogram",
    "histogram_delta",
    "quantile",
    "status_share",
    "window_stats",
]

Histogram = dict[str, Any]
SeriesPoint = tuple[float, float | None, float | None, float | None, float | None, float | None]
#: the percentiles the pages show
QUANTILES = (0.5, 0.95, 0.99)


def empty_histogram(le: Sequence[float] = ()) -> Histogram:
    """A histogram with no observation over the bounds ``le``."""
    return {"le": list(le), "buckets": [0] * len(le), "sum": 0.0, "count": 0}


def _valid(hist: Any) -> bool:
    return (
        isinstance(hist, dict)
        and isinstance(hist.get("le"), list)
        and isinstance(hist.get("buckets"), list)
        and len(hist["le"]) == len(hist["buckets"])
    )


def add_histogram(total: Histogram, other: Any) -> Histogram:
    """``total`` plus ``other`` (in place; returned). An empty ``total`` takes ``other``'s
    bounds; a histogram over other bounds (another pulsar-wsgi version) is left out."""
    if not _valid(other):
        return total
    if not total["le"] and not total["count"]:
        total["le"] = [float(b) for b in other["le"]]
        total["buckets"] = [0] * len(other["le"])
    if [float(b) for b in other["le"]] != total["le"]:
        return total
    total["buckets"] = [a + int(b) for a, b in zip(total["buckets"], other["buckets"], strict=True)]
    total["sum"] += float(other.get("sum") or 0.0)
    total["count"] += int(other.get("count") or 0)
    return total


def histogram_delta(new: Histogram, old: Histogram) -> Histogram:
    """The observations of ``new`` that ``old`` (an earlier sample of the same total) lacks."""
    if new["le"] != old["le"] or not old["le"]:
        return {**new, "buckets": list(new["buckets"])} if not old["count"] else empty_histogram()
    return {
        "le": new["le"],
        "buckets": [max(0, a - b) for a, b in zip(new["buckets"], old["buckets"], strict=True)],
        "sum": max(0.0, new["sum"] - old["sum"]),
        "count": max(0, new["count"] - old["count"]),
    }


def quantile(q: float, hist: Histogram) -> float | None:
    """The ``q`` quantile (0 < q < 1) of ``hist`` in seconds, as Prometheus'
    ``histogram_quantile`` estimates it (:func:`._runtimes.quantile` over its bounds and its
    cumulative buckets, ``count`` as +Inf); None without observations.

    Raises:
        ValueError: ``q`` is not between 0 and 1.
    """
    le, buckets = hist.get("le") or [], hist.get("buckets") or []
    return histogram_quantile(q, le, [*buckets, int(hist.get("count") or 0)])


def status_share(statuses: dict[str, int], first: int, total: int | None = None) -> float | None:
    """The share (0..1) of the responses whose status is in ``first``..``first + 99``; None
    without responses."""
    count = sum(statuses.values()) if total is None else total
    if count <= 0:
        return None
    return sum(n for code, n in statuses.items() if first <= int(code) < first + 100) / count


def _statuses_delta(new: dict[str, int], old: dict[str, int]) -> dict[str, int]:
    return {code: n - old.get(code, 0) for code, n in new.items() if n - old.get(code, 0) > 0}


def _add_statuses(total: dict[str, int], statuses: Any) -> None:
    if isinstance(statuses, dict):
        for code, n in statuses.items():
            key = str(code)
            total[key] = total.get(key, 0) + int(n)


def window_stats(statuses: dict[str, int], hist: Histogram) -> dict[str, Any]:
    """Error shares and percentiles of a window (a difference of two samples)."""
    count = sum(statuses.values())
    out: dict[str, Any] = {
        "responses": count,
        "errors_5xx": status_share(statuses, 500, count),
        "errors_4xx": status_share(statuses, 400, count),
    }
    for q in QUANTILES:
        out[f"p{round(q * 100)}"] = quantile(q, hist)
    return out


class HttpTotals:
    """Per application: responses by status and the latency histogram of its workers, those
    of the workers replaced since the start included, and the last ``history`` samples.

    Call :meth:`update` once per read with each application's workers' ``info``.
    """

    def __init__(self, history: int = 300) -> None:
        # aid -> (app, statuses, latency) of the workers seen in the last read
        self._seen: dict[str, tuple[str, Any, Any]] = {}
        # app -> (statuses, latency) of the workers gone
        self._retired: dict[str, tuple[dict[str, int], Histogram]] = {}
        self._history: dict[str, deque[tuple[float, dict[str, int], Histogram]]] = {}
        # app -> one chart point per pair of consecutive samples (computed once, when it comes)
        self._series: dict[str, deque[SeriesPoint]] = {}
        self._history_len = history

    def update(
        self, now: float, apps: Iterable[tuple[str, Iterable[tuple[str, Any]]]]
    ) -> dict[str, dict[str, Any]]:
        """``apps``: ``(app, [(aid, wsgi info), ...])``; returns per application with HTTP
        numbers: ``statuses`` and ``latency`` (totals), ``window`` (the last 10 s: see
        :func:`window_stats`) and ``series`` (per sample: time, 5xx %, 4xx %, p50, p95, p99 in
        seconds) for the charts."""
        seen: dict[str, tuple[str, Any, Any]] = {}
        current: dict[str, tuple[dict[str, int], Histogram]] = {}
        for app, workers in apps:
            statuses: dict[str, int] = {}
            latency = empty_histogram()
            http = False
            for aid, wsgi in workers:
                if not isinstance(wsgi, dict) or "statuses" not in wsgi:
                    continue
                http = True
                seen[aid] = (app, wsgi.get("statuses"), wsgi.get("latency"))
                _add_statuses(statuses, wsgi.get("statuses"))
                add_histogram(latency, wsgi.get("latency"))
            if http:
                current[app] = (statuses, latency)
        for aid, (app, statuses, latency) in self._seen.items():
            if aid not in seen:  # gone since the last read: its numbers stay in the totals
                retired = self._retired.setdefault(app, ({}, empty_histogram()))
                _add_statuses(retired[0], statuses)
                add_histogram(retired[1], latency)
        self._seen = seen
        out: dict[str, dict[str, Any]] = {}
        for app, (statuses, latency) in current.items():
            retired_statuses, retired_latency = self._retired.get(app, ({}, empty_histogram()))
            _add_statuses(statuses, retired_statuses)
            if retired_latency["count"]:
                add_histogram(latency, retired_latency)
            history = self._history.setdefault(app, deque(maxlen=self._history_len))
            history.append((now, statuses, latency))
            series = self._series.setdefault(app, deque(maxlen=max(1, self._history_len - 1)))
            if len(history) >= 2:
                series.append(_point(history[-2], history[-1]))
            out[app] = {
                "statuses": dict(sorted(statuses.items())),
                "latency": latency,
                "window": self._window(history, 10.0),
                "series": list(series),
            }
        return out

    @staticmethod
    def _window(
        history: deque[tuple[float, dict[str, int], Histogram]], seconds: float
    ) -> dict[str, Any]:
        last = history[-1]
        first = last
        for sample in reversed(history):
            if last[0] - sample[0] > seconds:
                break
            first = sample
        if first is last:
            return window_stats({}, empty_histogram())
        return window_stats(_statuses_delta(last[1], first[1]), histogram_delta(last[2], first[2]))


def _point(
    old: tuple[float, dict[str, int], Histogram], new: tuple[float, dict[str, int], Histogram]
) -> SeriesPoint:
    """The chart point of the responses between two samples: (time, 5xx %, 4xx %, p50, p95,
    p99 in seconds), None where there were none."""
    (_, s0, h0), (t1, s1, h1) = old, new
    w = window_stats(_statuses_delta(s1, s0), histogram_delta(h1, h0))
    share5, share4 = w["errors_5xx"], w["errors_4xx"]
    return (
        t1,
        None if share5 is None else 100.0 * share5,
        None if share4 is None else 100.0 * share4,
        w["p50"],
        w["p95"],
        w["p99"],
    )
