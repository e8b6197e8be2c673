"""Responses by status code and a latency histogram, per server (one worker).

How it works
------------
The counting is done on the event loop, where the response head is handed to the transport
(:meth:`~._cycle.RequestCycle._head` and ``send_error``), in both serving modes: a thread-pool
application's response is written by the loop too. So the counters need no lock, and a response
costs a few integer operations: ``codes[status] += 1`` in a list indexed by the status code, one
``bisect`` of the duration in :data:`LATENCY_BUCKETS` (a tuple) and one float addition.

The duration of a response is measured from its request head parsed (the request's cycle
created: one clock read, which the access log's duration fields share) to its response head
handed to the transport, read from the clock the ``Date`` header already reads. For a
list/tuple body — the usual WSGI response — the head and the whole body go out in that one write:
that is the request's whole time in the server. For a streaming or ``wsgi.file_wrapper`` body it
is the time to the first byte, what the application controls (the rest depends on how fast the
client reads; a long-poll or event stream would otherwise fill the last bucket). It is wall-clock
time (``time.time()``, the ``Date`` header's, as gunicorn's request time): a clock step during
a request misfiles that request (a negative duration counts as 0). Time spent in the kernel's
socket buffer before the worker reads the request is not seen (no server-side timer can).

Counted: every response whose head was sent, the server's own error responses included (400,
408, 413, 431... to requests it could not take, which the ``requests`` counter does not count;
500 when the application failed before its headers). A request whose client went away before
any response started is not.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LATENCY_BUCKETS", "ResponseStats"]

#: upper bounds (seconds, inclusive: Prometheus' ``le``) of the latency histogram; the last
#: bucket, above 10 s, is ``+Inf``
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
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
)
#: status codes are three digits (start_response checks it; the server's own are 4xx/5xx)
_CODES = 1000


class ResponseStats:
    """The counters of one server: responses by status code and their latency histogram.

    The hot path updates the attributes directly (see the module docstring); :meth:`snapshot`
    turns them into the ``info`` shape.
    """

    __slots__ = ("buckets", "codes", "seconds")

    def __init__(self) -> None:
        #: responses by status code (index)
        self.codes = [0] * _CODES
        #: responses per latency bucket (not cumulative; the last one is above the last bound)
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        #: the sum of the durations (seconds)
        self.seconds = 0.0

    def record(self, code: int, seconds: float) -> None:
        """Count one response (what the hot path does inline)."""
        from bisect import bisect_left

        if seconds < 0.0:
            seconds = 0.0
        self.codes[code] += 1
        self.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.seconds += seconds

    def snapshot(self) -> dict[str, Any]:
        """``{"statuses": {code: count}, "latency": {"le": [...], "buckets": [...], "sum": s,
        "count": n}}``: the histogram in Prometheus' shape, ``buckets[i]`` the responses that
        took at most ``le[i]`` seconds (cumulative), ``count`` all of them (``+Inf``)."""
        codes = self.codes
        statuses = {code: n for code, n in enumerate(codes) if n}
        cumulative: list[int] = []
        running = 0
        for n in self.buckets[:-1]:
            running += n
            cumulative.append(running)
        return {
            "statuses": statuses,
            "latency": {
                "le": list(LATENCY_BUCKETS),
                "buckets": cumulative,
                "sum": self.seconds,
                "count": running + self.buckets[-1],
            },
        }
