"""LoopRunner without pytest in the way: results, errors, timeouts, task origins, shutdown."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from pulsar.apps.test._runner import OWNER, LoopError, LoopRunner, TimeoutExpired


@pytest.fixture
def runner():
    runner = LoopRunner("asyncio")
    yield runner
    runner.close()


def test_loop_is_created_lazily_and_reused(runner: LoopRunner) -> None:
    assert not runner.started
    assert runner.pending_tasks() == set()

    async def which_loop() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    loop = runner.run(which_loop())
    assert runner.started
    assert runner.run(which_loop()) is loop is runner.loop
    runner.close()
    assert loop.is_closed() and not runner.started


def test_result_error_and_awaitables(runner: LoopRunner) -> None:
    async def fail() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom") as info:
        runner.run(fail())
    # the traceback reaches the coroutine without passing through the loop's machinery
    assert not any("base_events" in str(entry.path) for entry in info.traceback)
    future = runner.loop.create_future()
    runner.loop.call_soon(future.set_result, 7)
    assert runner.run(future) == 7


def test_context_is_used(runner: LoopRunner) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    context = contextvars.copy_context()
    context.run(var.set, "set")

    async def read() -> str:
        return var.get()

    assert runner.run(read(), context=context) == "set"
    assert runner.run(read()) == "unset"


def test_timeout_report_then_cancel(runner: LoopRunner) -> None:
    cancelled = []

    async def hang() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    with pytest.raises(TimeoutExpired) as info:
        runner.run(hang(), timeout=0.05, label="the hang")
    assert cancelled == [True]
    report = info.value.report
    assert report.startswith("pulsar: the hang timed out after 0.05 s and was cancelled.")
    assert "in hang\n" in report and "await asyncio.sleep(3600)" in report
    assert "Other threads:" in report


def test_reentrant_run_is_refused(runner: LoopRunner) -> None:
    async def inner() -> None:
        pass

    async def outer() -> None:
        coro = inner()
        with pytest.raises(LoopError, match="already running"):
            runner.run(coro)
        assert coro.cr_frame is None  # closed: no 'never awaited' warning

    runner.run(outer())


def test_loop_stopped_by_user_code(runner: LoopRunner) -> None:
    async def stop_it() -> None:
        asyncio.get_running_loop().stop()
        await asyncio.sleep(3600)

    with pytest.raises(LoopError, match="stopped before"):
        runner.run(stop_it())


def test_tracker_records_owner_and_stack(runner: LoopRunner) -> None:
    owner = object()
    context = contextvars.copy_context()
    context.run(OWNER.set, owner)

    async def spawn() -> tuple[asyncio.Task[None], asyncio.Task[None]]:
        mine = asyncio.create_task(asyncio.sleep(3600))
        anonymous = asyncio.create_task(asyncio.sleep(3600), context=contextvars.Context())
        return mine, anonymous

    mine, anonymous = runner.run(spawn(), context=context)
    origin = runner.origin(mine)
    assert origin is not None and origin.owner is owner
    assert origin.stack[-1].name == "spawn"
    assert runner.origin(anonymous) is None
    assert runner.settle({mine, anonymous}, rounds=2) == {mine, anonymous}
    runner.cancel({mine, anonymous}, "test over")
    assert mine.cancelled() and anonymous.cancelled()


def test_loop_errors_are_captured_or_logged(
    runner: LoopRunner, caplog: pytest.LogCaptureFixture
) -> None:
    async def callback_error() -> None:
        asyncio.get_running_loop().call_soon(lambda: 1 / 0)
        await asyncio.sleep(0)

    runner.capture = []
    runner.run(callback_error())
    assert len(runner.capture) == 1
    assert isinstance(runner.capture[0]["exception"], ZeroDivisionError)
    runner.capture = None
    runner.run(callback_error())
    assert "Exception in callback" in caplog.text


def test_close_cancels_what_is_left(runner: LoopRunner) -> None:
    async def spawn() -> asyncio.Task[None]:
        return asyncio.create_task(asyncio.sleep(3600))

    task = runner.run(spawn())
    loop = runner.loop
    runner.close()
    assert task.cancelled() and loop.is_closed()
    runner.close()  # idempotent


def test_keyboard_interrupt_leaves_the_runner_usable(runner: LoopRunner) -> None:
    async def interrupt() -> None:
        await asyncio.sleep(0)
        raise KeyboardInterrupt

    async def fine() -> int:
        await asyncio.sleep(0.01)
        return 1

    with pytest.raises(KeyboardInterrupt):
        runner.run(interrupt())
    # the stop scheduled by the interrupted run does not cut the next one short
    assert runner.run(fine()) == 1
