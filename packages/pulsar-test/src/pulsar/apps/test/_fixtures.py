"""Fixtures that run pulsar itself inside a test: ``arbiter``, ``spawn`` and ``run_server``.

How it works: ``arbiter`` is an async generator fixture of function scope, so it runs on the
test's loop (see the loop rule in the README). It starts a :class:`pulsar.Arbiter` in the pytest
process with ``await arbiter.startup(install_signals=False)`` (pytest keeps its own Ctrl-C) and,
at teardown, ``await arbiter.shutdown()``, which stops every actor and monitor it started and
waits until each process has exited and been reaped: no orphan survives the test. Process actors
use ``--pulsar-start-method`` (``fork`` on Linux: the pytest process is single threaded).

``spawn`` and ``run_server`` are factories bound to the test's arbiter: whatever they start is
stopped at their teardown, before the arbiter's.

The arbiter only runs while the loop does, that is while an async test or async fixture runs:
use these fixtures from ``async def`` tests.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

import pulsar

from ._options import SETTINGS_KEY

__all__ = ["arbiter", "run_server", "spawn", "start_server"]

#: Settings of every arbiter the fixture starts, unless ``@pytest.mark.arbiter_settings``
#: changes them.
ARBITER_DEFAULTS: dict[str, Any] = {"log_level": "warning", "graceful_timeout": 5}


def _proctitle() -> str | None:
    module = sys.modules.get("setproctitle")
    return module.getproctitle() if module is not None else None  # type: ignore[no-any-return]


def _set_proctitle(title: str | None) -> None:
    module = sys.modules.get("setproctitle")
    if module is not None and title is not None:
        module.setproctitle(title)


@pytest.fixture
async def arbiter(request: pytest.FixtureRequest) -> AsyncIterator[pulsar.Arbiter]:
    """A running :class:`pulsar.Arbiter` for this test, on the test's loop.

    Its settings: ``log_level='warning'``, ``graceful_timeout=5``, the start method of
    ``--pulsar-start-method``, then the keyword arguments of
    ``@pytest.mark.arbiter_settings(...)``. At teardown every actor it started is stopped and
    reaped. Fails the test at set-up when another arbiter runs in this process.
    """
    running = pulsar.get_arbiter()
    if running is not None and pulsar.ActorState.STARTING <= running.state < (
        pulsar.ActorState.CLOSED
    ):
        pytest.fail(
            "the 'arbiter' fixture cannot start an arbiter: one already runs in this process",
            pytrace=False,
        )
    settings = dict(ARBITER_DEFAULTS)
    settings["start_method"] = request.config.stash[SETTINGS_KEY].start_method
    for mark in reversed(list(request.node.iter_markers("arbiter_settings"))):
        settings.update(mark.kwargs)
    title = _proctitle()
    level = logging.getLogger("pulsar").level
    arb = pulsar.Arbiter(**settings)
    try:
        await arb.startup(install_signals=False)
        yield arb
    finally:
        await arb.shutdown()
        logging.getLogger("pulsar").setLevel(level)
        _set_proctitle(title)


@pytest.fixture
async def spawn(
    arbiter: pulsar.Arbiter,
) -> AsyncIterator[Callable[..., Awaitable[pulsar.ActorProxy]]]:
    """A factory: ``proxy = await spawn(name=..., start=fn, ...)`` spawns an actor in the test's
    arbiter (the parameters of :func:`pulsar.spawn`) and returns its :class:`pulsar.ActorProxy`
    once it runs. Every actor it spawned and still running is stopped at teardown."""
    spawned: list[pulsar.ActorProxy] = []

    async def spawn(**params: Any) -> pulsar.ActorProxy:
        proxy = await arbiter.spawn(**params)
        spawned.append(proxy)
        return proxy

    yield spawn
    await asyncio.gather(*(arbiter.kill_actor(proxy.aid) for proxy in reversed(spawned)))


async def start_server(arbiter: pulsar.Arbiter, app: Any, *, timeout: float = 10.0) -> list[str]:
    """Start ``app`` (a :class:`pulsar.Application`) in ``arbiter``; return its bound addresses.

    A ``bind`` setting left at its default becomes ``127.0.0.1:0`` (a free port). Waits until
    the application's monitor has started (its ``monitor_start`` hook ran, so a socket server is
    bound) and all its ``workers`` run; with ``workers=0`` until its start hooks ran in the
    arbiter. Returns ``app.addresses`` (``['127.0.0.1:39217']``), or ``[]`` for an application
    without that attribute. Raises the hook's error when the start fails, and
    :class:`TimeoutError` when the workers are not all running after ``timeout`` seconds.
    """
    cfg = getattr(app, "cfg", None)
    if cfg is not None and "bind" in cfg and cfg.settings["bind"].source == "default":
        cfg.set("bind", "127.0.0.1:0")
    before = len(arbiter.start_callbacks)
    tasks = asyncio.all_tasks()
    monitor = app.add_to(arbiter)
    # add_to() starts the monitor in a task of its own: await it, so a failing monitor_start
    # (a port in use) raises here instead of being logged by the loop
    for task in asyncio.all_tasks() - tasks:
        await task
    if monitor is None:  # workers=0: the application runs in the arbiter itself
        for fn in arbiter.start_callbacks[before:]:
            await pulsar.maybe_async(fn(arbiter))
    else:
        deadline = time.monotonic() + timeout
        while True:
            state = monitor.monitor_state
            if state is not pulsar.MonitorState.RUNNING:
                reason = monitor.failed_reason or f"its monitor is {state.value}"
                raise pulsar.PulsarError(f"{app!r} did not start: {reason}")
            running = sum(1 for h in monitor.workers.values() if h.running)
            if running >= monitor.num_workers:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{app!r}: {running} of {monitor.num_workers} workers running after "
                    f"{timeout:g}s ({len(monitor.failures)} failed to start; see the log)"
                )
            await asyncio.sleep(0.01)
    return list(getattr(app, "addresses", None) or [])


@pytest.fixture
async def run_server(
    arbiter: pulsar.Arbiter,
) -> AsyncIterator[Callable[..., Awaitable[list[str]]]]:
    """A factory: ``addresses = await run_server(app)`` starts a :class:`pulsar.Application` in
    the test's arbiter and returns the addresses it bound (see :func:`start_server`; pass
    ``timeout=`` to wait longer). The applications are stopped at teardown."""
    monitors: list[pulsar.Monitor] = []

    async def run_server(app: Any, *, timeout: float = 10.0) -> list[str]:
        addresses = await start_server(arbiter, app, timeout=timeout)
        monitor = getattr(app, "monitor", None)
        if monitor is not None:
            monitors.append(monitor)
        return addresses

    yield run_server
    await asyncio.gather(*(monitor.close() for monitor in reversed(monitors)))
