"""``--pulsar-workers N``: the test files of a run spread over N pulsar worker processes.

How it works
------------
The main pytest process collects as usual, so ``-k``, ``-m``, ``--co``, collection errors and
deselection behave exactly as in a serial run. Then, in ``pytest_runtestloop``, it becomes a
pulsar arbiter and forks N worker actors. A worker is a fork of the main process taken *after*
collection: it inherits the collected items and the configured plugins, so it imports and
collects nothing, and its item indices are the main process's.

* Work is pulled, one file at a time: an idle worker sends ``pulsar_test_next`` to the arbiter,
  which answers with the indices of the next file's items (:class:`Scheduler`), or None when
  there is nothing left. A worker asks for its next file when it reaches the last test of the
  current one, so it knows the ``nextitem`` of that test and module fixtures are torn down
  exactly when pytest would tear them down.
* A worker runs each item through ``pytest_runtest_protocol`` and sends the serialized reports
  (``pytest_report_to_serializable``) and warnings with ``pulsar_test_reports``, waiting for the
  reply before its next test. The main process rebuilds them (``pytest_report_from_serializable``)
  and feeds them to its own hooks, so the terminal, ``-x``/``--maxfail``, junitxml, the
  last-failed cache and the exit status work as in a serial run.
* Because each report is acknowledged before the next test starts, the main process knows, when a
  worker dies, the test it died in: the first one it was given and did not report. That test is
  reported failed with the exit reason (``killed by SIGKILL``, ``exit code 3``) and the tail of the
  worker's output; the rest of its work goes back to the head of the queue and a new worker is
  forked while work remains.

In a worker, tests run in the process's main thread (signal handlers and ``fork`` behave as in a
serial run) while the actor's own loop is paused: the running-loop slot and the current actor are
cleared for the duration of each test, so the test sees a process with no pulsar actor and no
running loop, exactly like a plain pytest process.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

import pulsar

__all__ = ["DistSession", "Scheduler", "WorkerCrash", "group_by_file"]

#: Key of the :class:`DistSession` in ``arbiter.extra`` (the command handlers find it there).
_EXTRA_KEY = "pulsar_test_dist"
#: How much of a crashed worker's output the failure shows.
_TAIL_CHARS = 3000
#: Seconds between two progress lines.
_PROGRESS_EVERY = 1.0
#: The session being distributed in this process; a forked worker finds it here.
_ACTIVE: DistSession | None = None

logger = logging.getLogger("pulsar.test")


# --------------------------------------------------------------------------- scheduling (no I/O)


def group_by_file(items: Sequence[pytest.Item]) -> list[list[int]]:
    """Indices of ``items`` grouped by file, files in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        groups.setdefault(item.nodeid.split("::", 1)[0], []).append(index)
    return list(groups.values())


@dataclass(frozen=True, slots=True)
class WorkerCrash:
    """What a worker's death leaves behind: the test it died in (None if between tests) and
    the number of tests given back to the queue."""

    crashed: int | None
    requeued: int


class Scheduler:
    """Which items are queued, which worker holds which, and how many files are done.

    A file is a list of item indices. :meth:`next_for` hands the next file to a worker, which
    then owes a report for each of its items, in order (:meth:`reported`). :meth:`lost` gives a
    dead worker's unreported items back, at the head of the queue, except the first one: the
    test it died in.
    """

    def __init__(self, files: Sequence[Sequence[int]]) -> None:
        self.total_files = len(files)
        self.total_items = sum(len(f) for f in files)
        self.files_done = 0
        self.items_done = 0
        self.queue: deque[list[int]] = deque(list(f) for f in files if f)
        self.files_done += sum(1 for f in files if not f)
        #: per worker: the (file number, item index) pairs it holds and has not reported
        self.held: dict[str, deque[tuple[int, int]]] = {}
        self._file_of: dict[int, int] = {}
        self._left: dict[int, int] = {}
        for number, group in enumerate(self.queue):
            self._left[number] = len(group)
            for index in group:
                self._file_of[index] = number
        self.closed = False

    @property
    def finished(self) -> bool:
        """Nothing queued and nothing held."""
        return not self.queue and not any(self.held.values())

    def close(self) -> None:
        """Hand out nothing more (``-x``, ``--maxfail``, an error)."""
        self.closed = True

    def next_for(self, worker: str) -> list[int] | None:
        """The next file's item indices for ``worker``, or None when there is none."""
        if self.closed or not self.queue:
            return None
        group = self.queue.popleft()
        held = self.held.setdefault(worker, deque())
        held.extend((self._file_of[index], index) for index in group)
        return group

    def reported(self, worker: str, index: int) -> None:
        """``worker`` reported item ``index`` (the first item it holds)."""
        held = self.held.get(worker)
        if not held or held[0][1] != index:
            raise ValueError(f"worker {worker} reported item {index} out of turn")
        number, _ = held.popleft()
        self._done(number)

    def _done(self, number: int) -> None:
        self.items_done += 1
        self._left[number] -= 1
        if self._left[number] == 0:
            self.files_done += 1

    def lost(self, worker: str) -> WorkerCrash:
        """``worker`` died: its current test counts as done (failed), the rest is requeued."""
        held = self.held.pop(worker, deque())
        if not held:
            return WorkerCrash(None, 0)
        number, crashed = held.popleft()
        self._done(number)
        regroup: list[list[int]] = []
        last = None
        for file_number, index in held:
            if file_number != last:
                regroup.append([])
                last = file_number
            regroup[-1].append(index)
        self.queue.extendleft(reversed(regroup))
        return WorkerCrash(crashed, len(held))


# --------------------------------------------------------------------------- actor commands


def _dist(request: pulsar.Request) -> DistSession:
    return request.actor.extra[_EXTRA_KEY]  # type: ignore[no-any-return]


@pulsar.command()
def pulsar_test_next(request: pulsar.Request, worker: str) -> list[int] | None:
    """Worker → arbiter: the item indices of the next file to run, None when done."""
    return _dist(request).next_for(worker)


@pulsar.command()
def pulsar_test_reports(
    request: pulsar.Request,
    worker: str,
    index: int,
    reports: list[dict[str, Any]],
    recorded: list[dict[str, Any]],
) -> bool:
    """Worker → arbiter: the reports of item ``index``; False asks the worker to stop."""
    return _dist(request).receive(worker, index, reports, recorded)


@pulsar.command()
def pulsar_test_done(request: pulsar.Request, worker: str) -> None:
    """Worker → arbiter: this worker ran its last test and tore its session down."""
    _dist(request).worker_done(worker)


# --------------------------------------------------------------------------- warnings


def _serialize_warning(
    message: warnings.WarningMessage, when: str, nodeid: str, location: Any
) -> dict[str, Any]:
    category = message.category
    return {
        "message": str(message.message),
        "category": (category.__module__, category.__qualname__),
        "filename": message.filename,
        "lineno": message.lineno,
        "line": message.line,
        "when": when,
        "nodeid": nodeid,
        "location": location,
    }


def _warning_category(module: str, qualname: str) -> type[Warning]:
    try:
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError):
        return UserWarning
    return found if isinstance(found, type) and issubclass(found, Warning) else UserWarning


def _rebuild_warning(data: dict[str, Any]) -> warnings.WarningMessage:
    category = _warning_category(*data["category"])
    try:
        message: Warning = category(data["message"])
    except Exception:
        category, message = UserWarning, UserWarning(data["message"])
    return warnings.WarningMessage(
        message, category, data["filename"], data["lineno"], line=data["line"]
    )


# --------------------------------------------------------------------------- the session


@dataclass(eq=False)
class _Worker:
    """The main process's record of one worker actor."""

    name: str
    log: str
    proxy: pulsar.ActorProxy | None = None
    pid: int | None = None
    done: bool = False
    exhausted: bool = False  # was told there is no more work
    reported: int = 0


@dataclass(eq=False)
class _WorkerSide:
    """What a worker keeps while it runs one item (reports and warnings to send)."""

    actor: Any
    name: str
    reports: list[dict[str, Any]] = field(default_factory=list)
    recorded: list[dict[str, Any]] = field(default_factory=list)


class DistSession:
    """The plugin of a ``--pulsar-workers`` run: the main process's scheduler and the reporting
    half that each forked worker turns on (see the module docstring)."""

    def __init__(self, config: pytest.Config, workers: int, *, io: str = "asyncio") -> None:
        self.config = config
        self.num_workers = workers
        self.io = io
        self.session: pytest.Session | None = None
        self.scheduler: Scheduler | None = None
        self.workers: dict[str, _Worker] = {}
        self.started = 0
        self.crashes = 0
        self.fruitless = 0
        self.error: BaseException | None = None
        self.abort_reason: str | None = None
        self.elapsed = 0.0
        self._finished: asyncio.Future[None] | None = None
        self._arbiter: pulsar.Arbiter | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._logdir: str | None = None
        self._last_progress = 0.0
        self._last_files = 0
        self._side: _WorkerSide | None = None  # set in a worker only

    # ----------------------------------------------------------------- pytest hooks (main)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool | None:
        """Run the collected items on the workers instead of in this process."""
        if self._side is not None:  # pragma: no cover - a worker never runs the loop again
            return None
        if session.testsfailed and not session.config.option.continue_on_collection_errors:
            raise session.Interrupted(
                f"{session.testsfailed} error{'s' if session.testsfailed != 1 else ''} "
                "during collection"
            )
        if session.config.option.collectonly or not session.items:
            return True
        self.session = session
        files = group_by_file(session.items)
        self.scheduler = Scheduler(files)
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            terminal.showfspath = False  # files interleave: the dots carry no file names
        workers = min(self.num_workers, len(files))
        self._write_line(
            f"[pulsar] {_plural(len(session.items), 'test')} in {_plural(len(files), 'file')} "
            f"on {_plural(workers, 'worker')}"
        )
        start = time.monotonic()
        self._run_arbiter(workers)
        self.elapsed = time.monotonic() - start
        if self.error is not None:
            raise self.error
        if self.abort_reason is not None:
            session.shouldfail = self.abort_reason
        if session.shouldfail:
            raise session.Failed(session.shouldfail)
        if session.shouldstop:
            raise session.Interrupted(session.shouldstop)
        return True

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """One line on the workers (how many, crashes) after a distributed run."""
        if self._side is not None or self.scheduler is None:
            return
        s = self.scheduler
        line = (
            f"[pulsar] {s.files_done}/{s.total_files} files, "
            f"{_plural(self.started, 'worker')} started, {self.crashes} crashed, "
            f"{self.elapsed:.2f}s"
        )
        terminalreporter.write_sep("-", "pulsar workers")
        terminalreporter.write_line(line)

    # ----------------------------------------------------------------- pytest hooks (worker)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Worker: keep the report for the main process."""
        side = self._side
        if side is not None:
            side.reports.append(
                self.config.hook.pytest_report_to_serializable(config=self.config, report=report)
            )

    def pytest_warning_recorded(
        self, warning_message: warnings.WarningMessage, when: str, nodeid: str, location: Any
    ) -> None:
        """Worker: keep the warning for the main process's warnings summary."""
        side = self._side
        if side is not None:
            side.recorded.append(_serialize_warning(warning_message, when, nodeid, location))

    # ----------------------------------------------------------------- main process

    def _write_line(self, line: str) -> None:
        """A line of its own in the terminal, even in the middle of a line of dots."""
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            writer = getattr(terminal, "_tw", None)  # pytest keeps no public handle on it
            if getattr(writer, "width_of_current_line", 0):
                terminal.write("\n")
            terminal.write_line(line)

    def _progress(self) -> None:
        """The progress line, when files were finished since the last one: at the start of a
        line (after a row of dots) at most every second, or breaking a row after 10 s."""
        s = self.scheduler
        assert s is not None
        now = time.monotonic()
        if s.files_done == self._last_files or now - self._last_progress < _PROGRESS_EVERY:
            return
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        writer = getattr(terminal, "_tw", None)
        if getattr(writer, "width_of_current_line", 0) and now - self._last_progress < 10:
            return
        self._last_progress, self._last_files = now, s.files_done
        live = sum(1 for w in self.workers.values() if not w.done)
        self._write_line(
            f"[pulsar] {s.files_done}/{s.total_files} files, {_plural(live, 'worker')}"
        )

    def _run_arbiter(self, workers: int) -> None:
        global _ACTIVE
        loop = pulsar.new_event_loop(self.io)
        level = logging.getLogger("pulsar").level
        _ACTIVE = self
        self._logdir = tempfile.mkdtemp(prefix="pulsar-test-")
        factory = getattr(self.config, "_tmp_path_factory", None)
        if factory is not None:  # one base directory for the run; each worker makes its own in it
            factory.getbasetemp()
        self._last_progress = time.monotonic()
        try:
            main = loop.create_task(self._main(workers))
            try:
                loop.run_until_complete(main)
            except BaseException:
                # Ctrl-C: the main task stops the workers at once (SIGQUIT, then SIGKILL)
                if not main.done():
                    main.cancel()
                    loop.run_until_complete(asyncio.gather(main, return_exceptions=True))
                raise
        finally:
            _ACTIVE = None
            logging.getLogger("pulsar").setLevel(level)
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                shutil.rmtree(self._logdir, ignore_errors=True)

    async def _main(self, workers: int) -> None:
        arbiter = pulsar.Arbiter(
            log_level="warning",
            start_method="fork",
            timeout=0,  # a worker's loop pauses while a test runs: no heartbeats then
            graceful_timeout=5,
            process_name="pytest",
        )
        arbiter.extra[_EXTRA_KEY] = self
        self._arbiter = arbiter
        self._finished = asyncio.get_running_loop().create_future()
        await arbiter.startup(install_signals=False)
        graceful = True
        try:
            for _ in range(workers):
                self._start_worker()
            await self._finished
        except BaseException:
            graceful = False
            raise
        finally:
            for task in list(self._tasks):
                task.cancel()
            await arbiter.shutdown(graceful=graceful and self.error is None)

    def _start_worker(self) -> None:
        assert self._logdir is not None
        name = f"w{self.started}"
        self.started += 1
        worker = _Worker(name, os.path.join(self._logdir, f"{name}.log"))
        self.workers[name] = worker
        task = asyncio.ensure_future(self._supervise(worker))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _supervise(self, worker: _Worker) -> None:
        arbiter = self._arbiter
        assert arbiter is not None
        try:
            worker.proxy = await arbiter.spawn(
                name=f"pytest-{worker.name}",
                start=_worker_start,
                concurrency="process",
                pulsar_test_worker=worker.name,
                pulsar_test_log=worker.log,
            )
            handle = arbiter.handles.get(worker.proxy.aid)
            worker.pid = handle.pid if handle is not None else None
            info = await arbiter.link(worker.proxy.aid)
            reason = info.reason
        except pulsar.SpawnError as exc:
            reason = f"could not start: {exc}"
        self._worker_exited(worker, reason)

    def _worker_exited(self, worker: _Worker, reason: str) -> None:
        scheduler = self.scheduler
        assert scheduler is not None
        if not worker.done:
            worker.done = True
            crash = scheduler.lost(worker.name)
            self.crashes += 1
            progress = crash.crashed is not None or worker.reported
            self.fruitless = 0 if progress else self.fruitless + 1
            self._report_crash(worker, reason, crash)
            if self.fruitless >= max(3, self.num_workers):
                self.abort_reason = (
                    f"pulsar: {self.fruitless} workers in a row died before running a test "
                    f"(last: {reason}); giving up"
                )
                scheduler.close()
        # a new worker when work is queued that no running worker is about to pull
        active = [w for w in self.workers.values() if not w.done and not w.exhausted]
        idle = sum(1 for w in active if not scheduler.held.get(w.name))
        if not scheduler.closed and len(scheduler.queue) > idle and len(active) < self.num_workers:
            self._start_worker()
        elif all(w.done for w in self.workers.values()):
            self._finish()

    def _finish(self) -> None:
        if self._finished is not None and not self._finished.done():
            self._finished.set_result(None)

    def _report_crash(self, worker: _Worker, reason: str, crash: WorkerCrash) -> None:
        who = f"worker {worker.name}" + (f" (pid {worker.pid})" if worker.pid else "")
        tail = _tail(worker.log)
        if crash.crashed is None:
            self._write_line(f"[pulsar] {who} exited between tests: {reason}")
            return
        assert self.session is not None
        item = self.session.items[crash.crashed]
        message = f"{who} crashed while running this test: {reason}"
        if crash.requeued:
            message += f"\n{crash.requeued} test(s) it still had were given to another worker"
        sections = [("pulsar worker output", tail)] if tail else []
        report = pytest.TestReport(
            item.nodeid,
            item.location,
            {name: 1 for name in item.keywords},
            "failed",
            message,
            "call",
            sections,
        )
        hook = self.config.hook
        hook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        hook.pytest_runtest_logreport(report=report)
        hook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        self._check_stop()

    def _check_stop(self) -> None:
        """``-x`` / ``--maxfail`` reached: hand out no more files (running tests finish)."""
        session, scheduler = self.session, self.scheduler
        if session is None or scheduler is None or scheduler.closed:
            return
        if session.shouldfail or session.shouldstop:
            scheduler.close()

    # command handlers (main process, on the arbiter's loop)

    def next_for(self, name: str) -> list[int] | None:
        """The next file for worker ``name`` (see :class:`Scheduler`)."""
        assert self.scheduler is not None
        work = self.scheduler.next_for(name)
        if work is None:
            self.workers[name].exhausted = True
        return work

    def receive(
        self,
        name: str,
        index: int,
        reports: list[dict[str, Any]],
        recorded: list[dict[str, Any]],
    ) -> bool:
        """Feed one item's reports and warnings to this process's hooks."""
        session, scheduler = self.session, self.scheduler
        assert session is not None and scheduler is not None
        worker = self.workers[name]
        try:
            item = session.items[index]
            hook = self.config.hook
            hook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
            for data in reports:
                report = hook.pytest_report_from_serializable(config=self.config, data=data)
                hook.pytest_runtest_logreport(report=report)
            for data in recorded:
                hook.pytest_warning_recorded.call_historic(
                    kwargs={
                        "warning_message": _rebuild_warning(data),
                        "when": data["when"],
                        "nodeid": data["nodeid"],
                        "location": data["location"],
                    }
                )
            hook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
            scheduler.reported(name, index)
        except BaseException as exc:  # a plugin failed in this process: stop the run
            if self.error is None:
                self.error = exc
            scheduler.close()
            self._finish()
            return False
        worker.reported += 1
        self.fruitless = 0
        self._check_stop()
        self._progress()
        return not scheduler.closed

    def worker_done(self, name: str) -> None:
        """Worker ``name`` finished its session: its exit is not a crash."""
        self.workers[name].done = True

    # ----------------------------------------------------------------- worker process

    async def run_worker(self, actor: Any) -> None:
        """In a forked worker: pull files, run their items, send the reports; then stop."""
        assert self.session is not None
        items = self.session.items
        name = actor.params["pulsar_test_worker"]
        side = self._side = _WorkerSide(actor, name)
        _isolate_worker(self.config, actor.params["pulsar_test_log"], name)
        queue: deque[int] = deque()
        more = True
        while True:
            if more and len(queue) <= 1:
                got = await actor.send("arbiter", "pulsar_test_next", name)
                if got:
                    queue.extend(got)
                else:
                    more = False
            if not queue:
                break
            index = queue.popleft()
            nextitem = items[queue[0]] if queue else None
            side.reports, side.recorded = [], []
            with _outside_actor(actor):
                items[index].ihook.pytest_runtest_protocol(item=items[index], nextitem=nextitem)
            keep_going = await actor.send(
                "arbiter", "pulsar_test_reports", name, index, side.reports, side.recorded
            )
            if not keep_going:  # -x, --maxfail: tear the session down as pytest would
                side.reports, side.recorded = [], []
                with _outside_actor(actor):
                    self.session._setupstate.teardown_exact(None)
                break
        # pytest_sessionfinish does not run in a worker: close the session loop of the async
        # tests here (what is left is cancelled, async generators and the executor shut down)
        plugin = self.config.pluginmanager.get_plugin("pulsar-test-run")
        if plugin is not None:
            with _outside_actor(actor):
                plugin.close()
        await actor.send("arbiter", "pulsar_test_done", name)
        actor.stop()


async def _worker_start(actor: Any) -> None:
    """Start callable of a worker actor (it runs in the forked copy of the main process)."""
    dist = _ACTIVE
    if dist is None:  # pragma: no cover - only forked workers are started with it
        raise RuntimeError("pulsar-test worker started outside a --pulsar-workers run")
    await dist.run_worker(actor)


def _isolate_worker(config: pytest.Config, log: str, name: str) -> None:
    """Worker: undo what a fork shares with the main process and the other workers.

    pytest keeps no public handle on these; the attributes touched are the ones pytest-xdist
    documents for its own workers (a base temp directory per worker) or plain fork hygiene.
    """
    import pulsar.testing

    # The module global of the main process's arbiter: tests that create their own
    # (``pulsar.arbiter()``, ``Application.start()``) must not find it.
    pulsar.testing.forget_arbiter()
    # pytest's capture files were created before the fork: every worker would write its tests'
    # output into the same files. Start fresh ones (the old ones are left alone: closing or
    # reading them here would truncate another process's capture).
    capman = config.pluginmanager.get_plugin("capturemanager")
    if capman is not None and getattr(capman, "_global_capturing", None) is not None:
        capman._global_capturing = None
        capman.start_global_capturing()
        capman.suspend_global_capture()
    # tmp_path: a base directory per worker, inside the run's one (made before the fork)
    factory = getattr(config, "_tmp_path_factory", None)
    base = getattr(factory, "_basetemp", None)
    if factory is not None and base is not None:
        own = base / f"pulsar-{name}"
        own.mkdir(exist_ok=True)
        factory._basetemp = own
    # the worker's terminal output (progress, pytest-timeout dumps) goes to its log file
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    if terminal is not None:
        from _pytest.config import create_terminal_writer

        stream = open(log, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - lives with us
        terminal._tw = create_terminal_writer(config, stream)


@contextmanager
def _outside_actor(actor: Any) -> Iterator[None]:
    """Run a test as in a plain pytest process: no running loop, no current actor.

    The worker's loop is paused meanwhile (the test runs inside one of its callbacks): the
    running-loop slot is cleared so the test can run its own loops, and restored after.
    """
    from pulsar.testing import set_actor

    loop = asyncio.get_running_loop()
    asyncio._set_running_loop(None)
    asyncio.set_event_loop(None)
    set_actor(None)
    try:
        yield
    finally:
        set_actor(actor)
        asyncio.set_event_loop(loop)
        asyncio._set_running_loop(loop)


#: Lines of a worker's log that are only its progress dots (``..F.s  [ 40%]``).
_PROGRESS_LINE = re.compile(r"^[.sFExXfpP]*\s*(\[\s*\d+%\])?\s*$")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _tail(path: str) -> str:
    """The end of a worker's output file, progress dots left out ('' when nothing is left)."""
    try:
        with open(path, "rb") as stream:
            stream.seek(0, os.SEEK_END)
            size = stream.tell()
            stream.seek(max(0, size - 4 * _TAIL_CHARS))
            data = stream.read()
    except OSError:
        return ""
    lines = data.decode("utf-8", "replace").splitlines()
    text = "\n".join(line for line in lines if not _PROGRESS_LINE.match(line)).strip()
    return ("..." + text[-_TAIL_CHARS:]) if len(text) > _TAIL_CHARS else text


def check_usable(config: pytest.Config) -> None:
    """Refuse option combinations ``--pulsar-workers`` cannot honour (a usage error)."""
    if not hasattr(os, "fork"):
        raise pytest.UsageError("pulsar: --pulsar-workers needs os.fork (POSIX only)")
    if config.getoption("numprocesses", None):
        raise pytest.UsageError(
            "pulsar: --pulsar-workers and pytest-xdist's -n both distribute the tests; use one"
        )
    if config.getoption("usepdb", False):
        raise pytest.UsageError("pulsar: --pdb cannot be used with --pulsar-workers")
    if sys.platform == "win32":  # pragma: no cover
        raise pytest.UsageError("pulsar: --pulsar-workers is not supported on Windows")
