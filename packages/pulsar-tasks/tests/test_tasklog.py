"""The batched per-task log lines (``_tasklog.TaskLog``) and the worker's use of them."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Iterator

import pytest
from test_api import consuming

from pulsar.apps.tasks import _tasklog
from pulsar.apps.tasks._tasklog import MAX_PENDING, TaskLog

FMT = "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s"


@pytest.fixture
def plain() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger with one plain stream handler (the fast path), not propagating."""
    logger = logging.getLogger("pulsar.tests.tasklog")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(FMT))
    saved = logger.handlers[:]  # the capture handlers pytest's logging plugin may add
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, stream
    logger.handlers = saved
    logger.propagate = True
    logger.setLevel(logging.NOTSET)


class Writes(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, s: str) -> int:
        self.writes += 1
        return super().write(s)


async def test_lines_wait_for_one_write_per_batch_same_text(plain) -> None:
    logger, _ = plain
    del logger.handlers[1:]  # the capture handlers the test run adds in its call phase
    stream = Writes()
    handler = logger.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    log = TaskLog(logger)
    log.info("task %s[%s] received (attempt %d)", "add", "a1", 1)
    log.info("task %s[%s] succeeded in %.3fs: %s", "add", "a1", 0.0012, "3")
    log.error("task %s[%s] failed: %s", "boom", "b1", "ValueError: x")
    assert stream.getvalue() == "" and log.pending == 3  # nothing formatted nor written yet
    deadline = time.monotonic() + 5
    while log.pending and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    lines = stream.getvalue().splitlines()
    assert stream.writes == 1, lines
    assert lines[0].endswith("[INFO] pulsar.tests.tasklog: task add[a1] received (attempt 1)")
    assert lines[1].endswith("[INFO] pulsar.tests.tasklog: task add[a1] succeeded in 0.001s: 3")
    assert lines[2].endswith("[ERROR] pulsar.tests.tasklog: task boom[b1] failed: ValueError: x")
    assert len(lines) == 3


def test_disabled_info_appends_nothing_but_errors_still_go(plain) -> None:
    logger, stream = plain
    del logger.handlers[1:]  # the capture handlers the test run adds in its call phase
    logger.setLevel(logging.WARNING)
    log = TaskLog(logger)

    class Loud:
        def __str__(self) -> str:
            raise AssertionError("formatted although INFO is off")

    for _ in range(10):
        log.info("task %s received", Loud())
    assert log.pending == 0
    log.error("task %s failed", "x")  # no loop: written at once
    assert stream.getvalue().endswith("[ERROR] pulsar.tests.tasklog: task x failed\n")


def test_max_pending_flushes_at_once(plain) -> None:
    logger, stream = plain
    del logger.handlers[1:]  # the capture handlers the test run adds in its call phase

    async def main() -> None:
        log = TaskLog(logger)
        for i in range(MAX_PENDING):
            log.info("line %d", i)
        assert log.pending == 0
        assert stream.getvalue().count("\n") == MAX_PENDING

    asyncio.run(main())


def test_handler_level_and_other_handlers_get_ordinary_records(caplog, plain) -> None:
    logger, stream = plain
    del logger.handlers[1:]  # the capture handlers the test run adds in its call phase
    handler = logger.handlers[0]
    handler.setLevel(logging.WARNING)
    log = TaskLog(logger)
    log.info("quiet %s", 1)
    log.warning("loud %s", 2)
    log.flush()
    assert "quiet" not in stream.getvalue() and "[WARNING] pulsar.tests.tasklog: loud 2" in (
        stream.getvalue()
    )
    # a non-plain handler (pytest's caplog) gets one ordinary record per line, in order
    logger.propagate = True
    logger.handlers = []
    caplog.set_level(logging.INFO, logger="pulsar.tests.tasklog")
    log.info("first %s", "a")
    log.error("second %s", "b")
    log.flush()
    got = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == logger.name]
    assert got == [(logging.INFO, "first a"), (logging.ERROR, "second b")]


def test_a_bad_line_is_reported_not_raised(plain) -> None:
    logger, stream = plain
    del logger.handlers[1:]  # the capture handlers the test run adds in its call phase
    log = TaskLog(logger)
    log.info("two %s %s", "only-one")
    log.flush()
    assert "bad log line" in stream.getvalue()


async def test_worker_lines_written_in_batches_flushed_at_stop(
    client, backend_url, tmp_path
) -> None:
    """A worker with a plain file handler: every line written, and none left after stop."""
    path = tmp_path / "tasks.log"
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(FMT))
    task_logger = logging.getLogger("pulsar.tasks.task")
    old = task_logger.level, task_logger.propagate, task_logger.handlers[:]
    task_logger.handlers = [handler]
    task_logger.setLevel(logging.INFO)
    task_logger.propagate = False
    try:
        task_logger.handlers = [handler]
        async with consuming(backend_url) as consumer:
            queued = [await client.queue_task("add", [i, 1]) for i in range(20)]
            for t in queued:
                await client.wait_for_task(t.id, timeout=10)
        assert consumer._log.pending == 0
        text = path.read_text()
    finally:
        task_logger.handlers = old[2]
        handler.close()
        task_logger.setLevel(old[0])
        task_logger.propagate = old[1]
    for i, t in enumerate(queued):
        assert f"[INFO] pulsar.tasks.task: task add[{t.id}] received (attempt 1)\n" in text
        assert f"task add[{t.id}] succeeded in " in text and f"s: {i + 1}\n" in text


def test_module_has_no_per_line_clock_or_record_on_the_append_path() -> None:
    import inspect

    source = inspect.getsource(TaskLog.info)
    for banned in ("strftime", "makeRecord", "time."):
        assert banned not in source
    assert _tasklog.FLUSH_DELAY <= 0.05
