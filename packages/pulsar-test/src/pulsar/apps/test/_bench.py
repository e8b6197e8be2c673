"""Timings of tests marked ``bench`` and their terminal report (``--pulsar-bench``)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

__all__ = ["BenchResult", "format_bench_report", "format_duration"]


@dataclass(frozen=True, slots=True)
class BenchResult:
    """The run times (seconds) of one bench test."""

    nodeid: str
    timings: tuple[float, ...]

    @property
    def mean(self) -> float:
        """Mean run time."""
        return statistics.fmean(self.timings)

    @property
    def stdev(self) -> float:
        """Sample standard deviation (0 for a single run)."""
        return statistics.stdev(self.timings) if len(self.timings) > 1 else 0.0

    @property
    def min(self) -> float:
        """Fastest run."""
        return min(self.timings)


def format_duration(seconds: float) -> str:
    """A duration with a unit that keeps 3-4 significant digits (``12.3 ms``)."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.4g} {unit}"
    return f"{seconds * 1e9:.4g} ns"


def format_bench_report(results: list[BenchResult]) -> list[str]:
    """Lines of a table: test id, runs, mean, stdev, min (slowest mean first)."""
    header = ("test", "runs", "mean", "stdev", "min")
    rows = [
        (r.nodeid, str(len(r.timings)), *map(format_duration, (r.mean, r.stdev, r.min)))
        for r in sorted(results, key=lambda r: r.mean, reverse=True)
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        first = row[0].ljust(widths[0])
        rest = "  ".join(cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True))
        return f"{first}  {rest}"

    return [line(header), *map(line, rows)]
