"""``--pulsar-profile``: cProfile over the whole run, a text report sorted by cumulative time."""

from __future__ import annotations

import cProfile
import os
import pstats

__all__ = ["RunProfiler"]


class RunProfiler:
    """Profile from :meth:`start` to :meth:`stop`, then write the report to ``path``."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self._profile = cProfile.Profile()
        self._running = False

    def start(self) -> None:
        """Start profiling this thread (raises ValueError if another profiler is active)."""
        self._profile.enable()
        self._running = True

    def stop(self) -> str:
        """Stop profiling, write the report and return its path."""
        if self._running:
            self._profile.disable()
            self._running = False
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        with open(self.path, "w", encoding="utf-8") as stream:
            stream.write("pulsar-test profile of the pytest run, sorted by cumulative time\n\n")
            stats = pstats.Stats(self._profile, stream=stream)
            stats.sort_stats(pstats.SortKey.CUMULATIVE).print_stats()
        return self.path
