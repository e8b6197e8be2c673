"""Batched per-task log lines: what makes the worker's INFO lines cost little.

How it works
------------
The worker logs one line per task received, succeeded, failed, retried or revoked (logger
``pulsar.tasks.task``), on by default at INFO. Going through ``logging`` for each of them (a
``LogRecord``, ``time.strftime`` in the formatter, a ``write`` and a ``flush`` per line) cost
a no-op task 20-40% of its throughput. So a line only appends a tuple ``(level, msg, args)``
to a list: no formatting, no record, no write. The first line of a batch checks the logger is
enabled (a line the logger would drop is not even appended: a disabled INFO costs one cached
``isEnabledFor`` lookup) and schedules :meth:`TaskLog.flush` :data:`FLUSH_DELAY` (10 ms) later,
or it runs at once when :data:`MAX_PENDING` lines wait. The flush formats the lines
(``msg % args``) in one loop and writes them:

* when every handler an INFO record of the logger reaches is a plain ``StreamHandler`` /
  ``FileHandler`` without filters (pulsar's default stderr handler, a file handler), each
  handler formats one record per level for the batch, and its prefix/suffix (time, pid, level,
  logger name of that format) wraps every line of that level: one ``write`` and one ``flush``
  per handler per batch, the same text one record per line would give (the time of the batch);
* any other set-up (filters, custom handlers such as pytest's ``caplog``, a disabled logger)
  gets one ordinary record per line, emitted by the flush, in order.

The worker calls :meth:`TaskLog.flush` when it stops, so no line is lost. Lines logged
without a running loop are written at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

__all__ = ["FLUSH_DELAY", "MAX_PENDING", "TaskLog"]

#: lines wait at most this long (seconds) to be written with the others of that time
FLUSH_DELAY = 0.01
#: ... or until this many are pending
MAX_PENDING = 1024

INFO = logging.INFO
_PLACEHOLDER = "\x00pulsar-task-line\x00"
_FAST_HANDLERS = (logging.StreamHandler, logging.FileHandler)


class TaskLog:
    """The batched lines of one logger (see the module docstring).

    Args:
        logger: where the lines go.
    """

    __slots__ = ("_info", "_pending", "_scheduled", "logger")

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._pending: list[tuple[int, str, tuple[Any, ...]]] = []
        self._scheduled = False
        self._info = False  # INFO enabled, as checked by the first line of this batch

    def info(self, msg: str, *args: Any) -> None:
        """An INFO line, ``msg % args`` formatted at the flush (the args must not change)."""
        pending = self._pending
        if not pending:
            self._info = self.logger.isEnabledFor(INFO)
            if not self._info:
                return
            pending.append((INFO, msg, args))
            self._schedule()
            return
        if self._info:
            pending.append((INFO, msg, args))
            if len(pending) >= MAX_PENDING:
                self.flush()

    def log(self, level: int, msg: str, *args: Any) -> None:
        """A line at ``level`` (WARNING, ERROR: rare lines, checked each time)."""
        if not self.logger.isEnabledFor(level):
            return
        pending = self._pending
        if not pending:
            self._info = self.logger.isEnabledFor(INFO)
            pending.append((level, msg, args))
            self._schedule()
            return
        pending.append((level, msg, args))
        if len(pending) >= MAX_PENDING:
            self.flush()

    def warning(self, msg: str, *args: Any) -> None:
        self.log(logging.WARNING, msg, *args)

    def error(self, msg: str, *args: Any) -> None:
        self.log(logging.ERROR, msg, *args)

    @property
    def pending(self) -> int:
        """Lines waiting for the next :meth:`flush`."""
        return len(self._pending)

    def _schedule(self) -> None:
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._scheduled = True
        loop.call_later(FLUSH_DELAY, self.flush)

    def flush(self) -> None:
        """Format and write the pending lines (one write per handler when it can)."""
        self._scheduled = False
        pending = self._pending
        if not pending:
            return
        self._pending = []
        logger = self.logger
        handlers = self._fast_handlers()
        if handlers is None:
            for level, msg, args in pending:
                logger.log(level, msg, *args)
            return
        lines = []
        for level, msg, args in pending:
            try:
                lines.append((level, msg % args if args else msg))
            except (TypeError, ValueError, KeyError) as exc:
                lines.append((level, f"bad log line {msg!r}: {exc}"))
        for handler in handlers:
            wraps: dict[int, tuple[str, str] | None] = {}
            records: list[logging.LogRecord] = []
            chunks: list[str] = []
            for level, line in lines:
                if level < handler.level:
                    continue
                if level not in wraps:
                    record = logger.makeRecord(logger.name, level, "", 0, _PLACEHOLDER, (), None)
                    records.append(record)
                    before, found, after = handler.format(record).partition(_PLACEHOLDER)
                    wraps[level] = (before, after + handler.terminator) if found else None
                wrap = wraps[level]
                if wrap is None:  # a format without the message: an ordinary record
                    handler.handle(logger.makeRecord(logger.name, level, "", 0, line, (), None))
                    continue
                chunks.append(wrap[0])
                chunks.append(line)
                chunks.append(wrap[1])
            if not chunks:
                continue
            handler.acquire()
            try:
                handler.stream.write("".join(chunks))
                handler.flush()
            except Exception:
                handler.handleError(records[0])
            finally:
                handler.release()

    def _fast_handlers(self) -> list[logging.StreamHandler[Any]] | None:
        """The handlers a record of the logger reaches, when they all are plain stream/file
        handlers without filters (None: use ordinary records)."""
        logger: logging.Logger | None = self.logger
        if self.logger.filters or self.logger.disabled:
            return None
        found: list[logging.StreamHandler[Any]] = []
        while logger is not None:
            for handler in logger.handlers:
                if (
                    type(handler) not in _FAST_HANDLERS
                    or handler.filters
                    or getattr(handler, "stream", None) is None
                ):
                    return None
                found.append(handler)  # type: ignore[arg-type]
            logger = logger.parent if logger.propagate else None
        if not found:
            return None  # logging's last resort (or nothing): let logging decide
        return found
