"""The pytest plugin: ``async def`` tests and fixtures on the pulsar loop, without marks.

How it works. ``pytest_configure`` validates the options into one :class:`Settings` and registers
a :class:`PulsarPlugin` holding the state of the run. Each test item is classified once: it runs
"on the loop" when it is an ``async def`` test or uses an async fixture, and is not claimed by
another async plugin (anyio's ``anyio_backend``, a ``trio`` mark). Items not on the loop go
through pytest untouched: every hook below returns at once for them.

* Loops: with ``--pulsar-loop-scope=session`` (default) one :class:`LoopRunner` serves the whole
  session; its loop is created the first time something async runs and closed at session end,
  after the session fixtures' teardown. With ``function`` each item gets its own runner, closed
  at the end of its teardown, and async fixtures of a wider scope are refused (they would outlive
  their loop).
* Fixtures: ``pytest_fixture_setup`` swaps an async fixture's function for a sync one (a
  generator for async generators, so pytest runs the teardown as usual) for the duration of the
  setup. Function-scoped fixtures and the test run in the item's :class:`contextvars.Context`
  (so context variables they set are seen by the test); wider fixtures in their own.
* Tests: ``pytest_pyfunc_call`` runs the coroutine through the runner, with the timeout of the
  ``timeout_async`` mark or ``--pulsar-timeout``.
* Dirt: while an item on the loop runs, unawaited-coroutine warnings and loop exception handler
  errors are collected; after its teardown, tasks the item created and still pending are
  cancelled and reported. The report fails the teardown, and ``pytest_runtest_protocol`` moves it
  to the call report, so the test itself is the one shown FAILED.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import sys
import time
import unittest
import warnings
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from _pytest.runner import runtestprotocol

from ._bench import BenchResult, format_bench_report
from ._dirt import describe_unawaited, format_dirt, is_unawaited_warning
from ._dist import DistSession, check_usable
from ._options import MARKERS, SETTINGS_KEY, Settings, add_options, parse_timeout
from ._ports import unused_tcp_port as _unused_tcp_port
from ._profile import RunProfiler
from ._runner import OWNER, LoopError, LoopRunner, TimeoutExpired

__all__ = [
    "PulsarPlugin",
    "pulsar_loop",
    "pytest_addoption",
    "pytest_configure",
    "pytest_unconfigure",
    "unused_tcp_port",
    "unused_tcp_port_factory",
]

_PLUGIN_KEY = pytest.StashKey["PulsarPlugin"]()
_STATE_KEY = pytest.StashKey["ItemState | None"]()
#: Marks by which other async plugins claim a test.
_FOREIGN_MARKERS = ("anyio", "trio")
#: Frames kept by ``sys.set_coroutine_origin_tracking_depth`` while an item runs on the loop.
_ORIGIN_DEPTH = 10


class _Owner:
    """The owner of tasks created by a test or a fixture (see :data:`OWNER`)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<owner {self.name}>"


@dataclass(eq=False)
class ItemState:
    """What the plugin keeps about one test item that runs on the loop."""

    nodeid: str
    async_test: bool
    owner: _Owner
    context: contextvars.Context
    allow_leaks: bool
    bench: bool
    timeout: float = 0.0
    timeout_error: str | None = None
    runner: LoopRunner | None = None  # its own runner, with --pulsar-loop-scope=function
    before: set[asyncio.Task[Any]] = field(default_factory=set)
    unawaited: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    dirt: str | None = None


# --------------------------------------------------------------------------- module hooks


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the plugin's options and ini keys."""
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers, validate the options and start the plugin."""
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    settings = Settings.from_config(config)
    config.stash[SETTINGS_KEY] = settings
    if _asyncio_mode(config) == "auto":
        raise pytest.UsageError(
            "pulsar-test and pytest-asyncio (asyncio_mode=auto) would both run every async "
            "test. Pick one: keep pulsar-test with '-p no:asyncio', or keep pytest-asyncio with "
            "'-p no:pulsar'."
        )
    if settings.workers and not config.getoption("collectonly", False):
        check_usable(config)
    plugin = PulsarPlugin(config, settings)
    config.stash[_PLUGIN_KEY] = plugin
    config.pluginmanager.register(plugin, "pulsar-test-run")
    if settings.workers:
        config.pluginmanager.register(
            DistSession(config, settings.workers, io=settings.io), "pulsar-test-dist"
        )


def pytest_unconfigure(config: pytest.Config) -> None:
    """Close the session loop if the session did not (an early usage error, say)."""
    plugin = config.stash.get(_PLUGIN_KEY, None)
    if plugin is not None:
        plugin.close()
        del config.stash[_PLUGIN_KEY]


def _asyncio_mode(config: pytest.Config) -> str | None:
    """pytest-asyncio's mode when it is active in this run, else None."""
    try:
        ini = config.getini("asyncio_mode")
    except ValueError:
        return None
    option = config.getoption("asyncio_mode", None)
    return str(option or ini or "strict").strip().lower()


def _is_async_callable(func: object) -> bool:
    func = getattr(func, "__func__", func)
    return inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)


def _pytest_asyncio_fixture(func: object) -> bool:
    return bool(getattr(getattr(func, "__func__", func), "_force_asyncio_fixture", False))


def _foreign_claim(item: pytest.Item) -> str | None:
    """The other async plugin that claims ``item``, if any."""
    if "anyio_backend" in getattr(item, "fixturenames", ()):
        return "anyio"
    for name in _FOREIGN_MARKERS:
        if item.get_closest_marker(name) is not None:
            return name
    return None


def _bind(func: Any, request: pytest.FixtureRequest) -> Any:
    """Bind a fixture method to the test's instance, exactly as pytest does."""
    instance = request.instance
    if instance is not None:
        if hasattr(func, "__self__") and not isinstance(instance, func.__self__.__class__):
            return func
        unbound = getattr(func, "__func__", func)
        if unbound is not func:
            return unbound.__get__(instance)
    return func


def _reemit(message: warnings.WarningMessage) -> None:
    """Hand a recorded warning to whoever records warnings outside (pytest)."""
    show = getattr(warnings, "_showwarnmsg", None)
    if show is not None:
        show(message)
    else:  # pragma: no cover - every CPython we support has it
        warnings.showwarning(
            message.message, message.category, message.filename, message.lineno, message.file
        )


# --------------------------------------------------------------------------- fixtures


def _loop_scope(fixture_name: str, config: pytest.Config) -> Any:
    return config.stash[_PLUGIN_KEY].settings.loop_scope


@pytest.fixture(scope=_loop_scope)
def pulsar_loop(request: pytest.FixtureRequest) -> asyncio.AbstractEventLoop:
    """The event loop async tests and fixtures run on (for sync code that needs it).

    Its scope is the loop scope: session by default, function with
    ``--pulsar-loop-scope=function``. Do not close it, and do not run it from async code.
    """
    plugin = request.config.stash[_PLUGIN_KEY]
    if plugin.session_runner is not None:
        return plugin.session_runner.loop
    state = plugin.state(request.node, force=True)
    assert state is not None
    return plugin.runner_for(state).loop


@pytest.fixture
def unused_tcp_port() -> int:
    """A free TCP port on 127.0.0.1."""
    return _unused_tcp_port()


@pytest.fixture
def unused_tcp_port_factory() -> Callable[..., int]:
    """A function returning a different free TCP port at each call (``host`` optional)."""
    produced: set[int] = set()

    def factory(host: str = "127.0.0.1") -> int:
        port = _unused_tcp_port(host)
        while port in produced:
            port = _unused_tcp_port(host)
        produced.add(port)
        return port

    return factory


# --------------------------------------------------------------------------- the plugin


class PulsarPlugin:
    """The state of one pytest run: settings, the session loop, bench results, the profiler."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.session_runner = LoopRunner(settings.io) if settings.loop_scope == "session" else None
        self.bench_results: list[BenchResult] = []
        self.profiler = RunProfiler(settings.profile) if settings.profile else None
        self.profile_path: str | None = None

    def close(self) -> None:
        """Close the session loop (idempotent)."""
        if self.session_runner is not None:
            self.session_runner.close()

    # ----------------------------------------------------------------- items

    def state(self, item: pytest.Item, *, force: bool = False) -> ItemState | None:
        """The item's :class:`ItemState`, or None when it does not run on the loop.

        ``force`` makes one for an item that turns out to need the loop at run time (an async
        fixture requested dynamically, the ``pulsar_loop`` fixture).
        """
        if _STATE_KEY in item.stash:
            state = item.stash[_STATE_KEY]
        else:
            state = item.stash[_STATE_KEY] = self._classify(item)
        if state is None and force:
            state = self._new_state(item, async_test=False)
            item.stash[_STATE_KEY] = state
        return state

    def _classify(self, item: pytest.Item) -> ItemState | None:
        if not isinstance(item, pytest.Function) or _foreign_claim(item):
            return None
        obj = item.obj
        unit = item.cls is not None and issubclass(item.cls, unittest.TestCase)
        async_test = not unit and _is_async_callable(obj)
        if not async_test:
            defs = item._fixtureinfo.name2fixturedefs.values()
            if not any(d and _is_async_callable(d[-1].func) for d in defs):
                return None
        return self._new_state(item, async_test=async_test)

    def _new_state(self, item: pytest.Item, *, async_test: bool) -> ItemState:
        owner = _Owner(f"test {item.nodeid}")
        context = contextvars.copy_context()
        context.run(OWNER.set, owner)
        state = ItemState(
            nodeid=item.nodeid,
            async_test=async_test,
            owner=owner,
            context=context,
            allow_leaks=item.get_closest_marker("allow_leaks") is not None,
            bench=self.settings.bench and item.get_closest_marker("bench") is not None,
            timeout=self.settings.timeout,
        )
        mark = item.get_closest_marker("timeout_async")
        if mark is not None:
            raw = mark.args[0] if mark.args else mark.kwargs.get("seconds")
            try:
                state.timeout = parse_timeout(raw, "@pytest.mark.timeout_async")
            except pytest.UsageError as exc:
                state.timeout_error = str(exc)
        if self.session_runner is not None:
            self.session_runner.capture = state.errors
            state.before = self.session_runner.pending_tasks()
        return state

    def runner_for(self, state: ItemState) -> LoopRunner:
        """The runner the item's test and function-scoped fixtures run on."""
        if self.session_runner is not None:
            return self.session_runner
        if state.runner is None:
            state.runner = LoopRunner(self.settings.io)
            state.runner.capture = state.errors
        return state.runner

    def _run(
        self,
        runner: LoopRunner,
        awaitable: Awaitable[Any],
        *,
        context: contextvars.Context,
        timeout: float,
        label: str,
    ) -> Any:
        __tracebackhide__ = True
        try:
            return runner.run(awaitable, context=context, timeout=timeout, label=label)
        except (TimeoutExpired, LoopError) as exc:
            message = str(exc)
        pytest.fail(message, pytrace=False)

    @contextmanager
    def _watch(self, state: ItemState) -> Iterator[None]:
        """Collect never-awaited coroutines while a phase of the item runs."""
        depth = sys.get_coroutine_origin_tracking_depth()
        if not state.bench:
            sys.set_coroutine_origin_tracking_depth(max(depth, _ORIGIN_DEPTH))
        recorder = warnings.catch_warnings(record=True)
        log = recorder.__enter__()
        try:
            yield
        finally:
            recorder.__exit__(None, None, None)
            sys.set_coroutine_origin_tracking_depth(depth)
            for message in log or ():
                if is_unawaited_warning(message) and not state.allow_leaks:
                    state.unawaited.append(describe_unawaited(message))
                else:
                    _reemit(message)

    def _finish(self, state: ItemState) -> str | None:
        """After the teardown: report and cancel leaked tasks; close a function-scoped loop."""
        runner = state.runner or self.session_runner
        leaked: set[asyncio.Task[Any]] = set()
        created = {}
        if runner is not None and runner.started:
            mine = set()
            for task in runner.pending_tasks():
                origin = runner.origin(task)
                if (origin.owner is state.owner) if origin else (task not in state.before):
                    mine.add(task)
                    if origin:
                        created[task] = origin.stack
            leaked = runner.settle(mine)
        if runner is not None:
            runner.capture = None
        dirt = None
        if state.allow_leaks:
            if runner is not None and runner.started:
                for context in state.errors:
                    runner.loop.default_exception_handler(context)
        else:
            dirt = format_dirt(
                state.nodeid,
                tasks=sorted(leaked, key=lambda t: t.get_name()),
                created=created,
                unawaited=state.unawaited,
                errors=state.errors,
            )
            if leaked and runner is not None:
                runner.cancel(leaked, f"pulsar: leaked by {state.nodeid}")
        # the item stays in the session: drop what the test's objects hang on to
        state.before, state.errors, state.unawaited = set(), [], []
        state.context = contextvars.Context()
        if state.runner is not None:
            state.runner.close()
            state.runner = None
        return dirt

    # ----------------------------------------------------------------- pytest hooks

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Refuse tests that pytest-asyncio claims too (strict mode)."""
        if _asyncio_mode(self.config) is None:
            return
        claimed = []
        for item in items:
            if not isinstance(item, pytest.Function):
                continue
            if item.get_closest_marker("asyncio") is not None:
                claimed.append(f"  {item.nodeid} (marked asyncio)")
                continue
            for name, defs in item._fixtureinfo.name2fixturedefs.items():
                if defs and _pytest_asyncio_fixture(defs[-1].func):
                    claimed.append(f"  {item.nodeid} (pytest_asyncio.fixture {name!r})")
                    break
        if claimed:
            shown = "\n".join(claimed[:10])
            more = f"\n  ... and {len(claimed) - 10} more" if len(claimed) > 10 else ""
            raise pytest.UsageError(
                "pulsar-test runs async tests and fixtures on the pulsar loop, and pytest-asyncio "
                f"claims these too:\n{shown}{more}\nPick one: keep pulsar-test with "
                "'-p no:asyncio' and drop the asyncio marks, or keep pytest-asyncio with "
                "'-p no:pulsar'."
            )

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self) -> None:
        """Start the profiler (``--pulsar-profile``)."""
        if self.profiler is not None:
            try:
                self.profiler.start()
            except ValueError as exc:
                raise pytest.UsageError(f"pulsar: --pulsar-profile: {exc}") from None

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self) -> None:
        """Close the session loop (session fixtures are torn down by now); stop the profiler."""
        self.close()
        if self.profiler is not None:
            self.profile_path = self.profiler.stop()
            self.profiler = None

    def pytest_report_header(self, config: pytest.Config) -> str | None:
        """One header line with ``-v``."""
        if config.get_verbosity() <= 0:
            return None
        s = self.settings
        return f"pulsar: io={s.io}, loop scope={s.loop_scope}, timeout={s.timeout:g}s"

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """The bench table and the profile path."""
        if self.bench_results:
            runs = self.settings.bench_runs
            terminalreporter.write_sep("=", f"pulsar bench ({runs} runs per test)")
            for line in format_bench_report(self.bench_results):
                terminalreporter.write_line(line)
        if self.profile_path is not None:
            terminalreporter.write_sep("=", "pulsar profile")
            terminalreporter.write_line(
                f"cProfile report (sorted by cumulative time) written to {self.profile_path}"
            )

    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Any:
        """For items on the loop: run the protocol, then show a dirty loop as the test failing."""
        state = self.state(item)
        if state is None:
            return None
        ihook = item.ihook
        ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        reports = runtestprotocol(item, nextitem=nextitem, log=False)
        if state.dirt is not None:
            _move_dirt_to_call(state.dirt, reports)
        for report in reports:
            ihook.pytest_runtest_logreport(report=report)
        ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Any:
        """Watch the setup of items on the loop."""
        state = self.state(item)
        if state is None:
            return (yield)
        if state.timeout_error:
            pytest.fail(state.timeout_error, pytrace=False)
        with self._watch(state):
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Any:
        """Watch the call of items on the loop."""
        state = self.state(item)
        if state is None:
            return (yield)
        with self._watch(state):
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Any:
        """Watch the teardown, then check the loop is clean (fails the teardown if not)."""
        state = self.state(item)
        if state is None:
            return (yield)
        error: BaseException | None = None
        with self._watch(state):
            try:
                yield
            except BaseException as exc:
                error = exc
        dirt = self._finish(state)
        if error is not None:
            if dirt:
                item.add_report_section("teardown", "pulsar dirty loop", dirt)
            raise error
        if dirt:
            state.dirt = dirt
            pytest.fail(dirt, pytrace=False)
        return None

    @pytest.hookimpl(tryfirst=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> Any:
        """Run async tests on the loop; run bench tests ``--pulsar-bench-runs`` times."""
        __tracebackhide__ = True
        state = self.state(pyfuncitem)
        bench = self.settings.bench and pyfuncitem.get_closest_marker("bench") is not None
        if state is None or not state.async_test:
            if bench and not _is_async_callable(pyfuncitem.obj):
                self._bench_sync(pyfuncitem)
                return True
            return None
        func = pyfuncitem.obj
        if inspect.isasyncgenfunction(getattr(func, "__func__", func)):
            pytest.fail(
                f"{pyfuncitem.nodeid}: an async generator function cannot be a test", pytrace=False
            )
        kwargs = {arg: pyfuncitem.funcargs[arg] for arg in pyfuncitem._fixtureinfo.argnames}
        runner = self.runner_for(state)
        if bench:
            runs = self.settings.bench_runs
            timings: list[float] = []
            self._run(
                runner,
                _bench_async(func, kwargs, runs, timings),
                context=state.context,
                timeout=state.timeout * runs,
                label=f"bench {pyfuncitem.nodeid} ({runs} runs)",
            )
            self.bench_results.append(BenchResult(pyfuncitem.nodeid, tuple(timings)))
        else:
            self._run(
                runner,
                func(**kwargs),
                context=state.context,
                timeout=state.timeout,
                label=pyfuncitem.nodeid,
            )
        return True

    def _bench_sync(self, item: pytest.Function) -> None:
        __tracebackhide__ = True
        func = item.obj
        kwargs = {arg: item.funcargs[arg] for arg in item._fixtureinfo.argnames}
        timings = []
        for _ in range(self.settings.bench_runs):
            start = time.perf_counter()
            func(**kwargs)
            timings.append(time.perf_counter() - start)
        self.bench_results.append(BenchResult(item.nodeid, tuple(timings)))

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef: Any, request: Any) -> Any:
        """Set up async fixtures through a sync stand-in that runs them on the loop."""
        func = fixturedef.func
        if not _is_async_callable(func) or _pytest_asyncio_fixture(func):
            return (yield)
        item = getattr(request, "_pyfuncitem", None) or request.node
        if isinstance(item, pytest.Item) and _foreign_claim(item):
            return (yield)
        fixturedef.func = self._sync_fixture(fixturedef, request, item, func)
        try:
            return (yield)
        finally:
            fixturedef.func = func

    def _sync_fixture(self, fixturedef: Any, request: Any, item: Any, func: Any) -> Any:
        name, scope = fixturedef.argname, fixturedef.scope
        bound = _bind(func, request)
        plugin = self

        def placement() -> tuple[LoopRunner, contextvars.Context, float]:
            __tracebackhide__ = True
            state = plugin.state(item, force=True) if isinstance(item, pytest.Item) else None
            timeout = state.timeout if state is not None else plugin.settings.timeout
            if scope == "function" and state is not None:
                return plugin.runner_for(state), state.context, timeout
            if plugin.session_runner is None:
                pytest.fail(
                    f"async fixture {name!r} has scope {scope!r}, but --pulsar-loop-scope="
                    f"function gives each test its own loop, which a {scope}-scoped fixture "
                    "would outlive. Make the fixture function-scoped, or use "
                    "--pulsar-loop-scope=session.",
                    pytrace=False,
                )
            context = contextvars.copy_context()
            context.run(OWNER.set, _Owner(f"{scope} fixture {name!r}"))
            return plugin.session_runner, context, timeout

        if inspect.iscoroutinefunction(getattr(func, "__func__", func)):

            def call_fixture(**kwargs: Any) -> Any:
                __tracebackhide__ = True
                runner, context, timeout = placement()
                return plugin._run(
                    runner,
                    bound(**kwargs),
                    context=context,
                    timeout=timeout,
                    label=f"fixture {name!r} (setup)",
                )

            return call_fixture

        def drive_fixture(**kwargs: Any) -> Iterator[Any]:
            __tracebackhide__ = True
            runner, context, timeout = placement()
            agen = bound(**kwargs)

            def step(label: str) -> Any:
                __tracebackhide__ = True
                return plugin._run(
                    runner, agen.__anext__(), context=context, timeout=timeout, label=label
                )

            try:
                value = step(f"fixture {name!r} (setup)")
            except StopAsyncIteration:
                raise ValueError(f"{name} did not yield a value") from None
            yield value
            try:
                step(f"fixture {name!r} (teardown)")
            except StopAsyncIteration:
                return
            plugin._run(runner, agen.aclose(), context=context, timeout=timeout, label=name)
            pytest.fail(f"async fixture {name!r} has more than one 'yield'", pytrace=False)

        return drive_fixture


async def _bench_async(
    func: Callable[..., Awaitable[Any]], kwargs: dict[str, Any], runs: int, timings: list[float]
) -> None:
    for _ in range(runs):
        start = time.perf_counter()
        await func(**kwargs)
        timings.append(time.perf_counter() - start)


def _move_dirt_to_call(dirt: str, reports: list[pytest.TestReport]) -> None:
    """Report a dirty loop on the test's call instead of its teardown.

    Only when the teardown failed for that reason alone and the call passed or failed (a skipped
    or xfail test keeps the teardown error). A failed call gets the dirt as an extra section.
    """
    by_when = {report.when: report for report in reports}
    call, teardown = by_when.get("call"), by_when.get("teardown")
    if call is None or teardown is None or not teardown.failed or hasattr(call, "wasxfail"):
        return
    if call.passed:
        call.outcome = "failed"
        call.longrepr = teardown.longrepr
    elif call.failed:
        call.sections.append(("pulsar: dirty loop", dirt))
    else:
        return
    teardown.outcome = "passed"
    teardown.longrepr = None
