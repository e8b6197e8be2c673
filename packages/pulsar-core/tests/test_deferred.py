"""Tests for pulsar._deferred: Twisted chain semantics, the asyncio bridge and the helpers.

Async tests are ``async def`` functions run on the pulsar loop by the pulsar-test plugin. The
tests about behaviour without a running loop stay sync, and so does the one that needs a loop of
its own that is not running (``Deferred(loop=...)``).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import gc
import logging
import time
from collections.abc import Generator
from typing import Any

import pytest

from pulsar._deferred import (
    AlreadyCalledError,
    Deferred,
    async_while,
    chain_future,
    maybe_async,
    multi_async,
)


async def value_later(value: Any, delay: float = 0) -> Any:
    await asyncio.sleep(delay)
    return value


async def fail_later(exc: BaseException, delay: float = 0) -> Any:
    await asyncio.sleep(delay)
    raise exc


def fired(value: Any) -> Deferred[Any]:
    d: Deferred[Any] = Deferred()
    d.callback(value)
    return d


def failed(exc: BaseException) -> Deferred[Any]:
    d: Deferred[Any] = Deferred()
    d.errback(exc)
    return d


def consume(d: Deferred[Any]) -> Any:
    """The outcome of a done Deferred: its value, or its exception (marked handled)."""
    try:
        return d.result()
    except BaseException as exc:
        return exc


# ---------------------------------------------------------------------- chain semantics


def test_public_surface() -> None:
    import pulsar._deferred as mod

    assert sorted(mod.__all__) == [
        "AlreadyCalledError",
        "Deferred",
        "async_while",
        "chain_future",
        "maybe_async",
        "multi_async",
    ]
    for name in mod.__all__:
        assert getattr(mod, name).__doc__


def test_each_callback_receives_previous_result() -> None:
    seen: list[Any] = []
    d: Deferred[int] = Deferred()
    d.add_callback(lambda r: seen.append(r) or r + 1)
    d.add_callback(lambda r, k, *, m: seen.append((r, k, m)) or r * 10, 5, m=7)
    assert not d.done() and not d.called
    d.callback(1)
    assert seen == [1, (2, 5, 7)]
    assert d.done() and d.called
    assert d.result() == 20
    assert d.exception() is None


def test_add_methods_return_self() -> None:
    d: Deferred[Any] = Deferred()
    assert d.add_callback(str) is d
    assert d.add_errback(str) is d
    assert d.add_both(str) is d
    assert d.add_callbacks(str, str) is d


def test_errback_recovers_onto_callback_track() -> None:
    seen: list[Any] = []
    d: Deferred[Any] = Deferred()
    d.add_callback(lambda r: seen.append("skipped"))
    d.add_errback(lambda exc: f"recovered from {exc}")
    d.add_errback(lambda exc: seen.append("not on error track"))
    d.add_callback(lambda r: seen.append(r) or len(r))
    d.errback(ValueError("boom"))
    assert seen == ["recovered from boom"]
    assert d.result() == len("recovered from boom")


def test_errback_returning_none_recovers() -> None:
    d = failed(ValueError("x"))
    d.add_errback(lambda exc: None)
    assert d.result() is None


def test_errback_reraise_keeps_error_track() -> None:
    def reraise(exc: BaseException) -> None:
        raise KeyError("second") from exc

    seen: list[Any] = []
    d: Deferred[Any] = Deferred()
    d.add_errback(reraise)
    d.add_callback(lambda r: seen.append("skipped"))
    d.add_errback(lambda exc: seen.append(exc) or exc)  # returning the error keeps the track
    d.errback(ValueError("first"))
    assert len(seen) == 1 and isinstance(seen[0], KeyError)
    assert isinstance(seen[0].__cause__, ValueError)
    with pytest.raises(KeyError):
        d.result()
    assert isinstance(d.exception(), KeyError)


def test_callback_raising_moves_to_error_track() -> None:
    d: Deferred[Any] = Deferred()
    d.add_callback(lambda r: 1 / r)
    d.add_callback(lambda r: pytest.fail("must be skipped"))
    d.add_errback(lambda exc: type(exc).__name__)
    d.callback(0)
    assert d.result() == "ZeroDivisionError"


def test_callback_returning_exception_instance_is_an_error() -> None:
    d = fired(1)
    d.add_callback(lambda r: RuntimeError("as value"))
    assert isinstance(d.exception(), RuntimeError)


def test_callback_with_exception_instance_fires_error_track() -> None:
    d: Deferred[Any] = Deferred()
    d.callback(ValueError("x"))
    d.add_errback(lambda exc: "handled")
    assert d.result() == "handled"


def test_add_both_sees_values_and_errors() -> None:
    seen: list[Any] = []
    ok = fired(3).add_both(lambda r, tag: seen.append((tag, r)) or r, "ok")
    err = failed(ValueError("e")).add_both(lambda r, tag: seen.append((tag, type(r))), "err")
    assert seen == [("ok", 3), ("err", ValueError)]
    assert ok.result() == 3
    assert err.result() is None


def test_add_callbacks_with_args_and_pass_through() -> None:
    d = fired(2)
    d.add_callbacks(
        lambda r, a, *, b: r + a + b,
        lambda exc: pytest.fail("not an error"),
        callback_args=(3,),
        callback_kwargs={"b": 4},
    )
    assert d.result() == 9
    d.add_callbacks(None, lambda exc: pytest.fail("not an error"))
    assert d.result() == 9
    e = failed(ValueError("x"))
    e.add_callbacks(lambda r: pytest.fail("skip"), None)
    e.add_callbacks(None, lambda exc, tag: tag, errback_args=("fixed",))
    assert e.result() == "fixed"


def test_callbacks_added_after_firing_run_immediately() -> None:
    d = fired("a")
    seen: list[Any] = []
    d.add_callback(seen.append)
    assert seen == ["a"]
    assert d.result() is None


def test_callback_adding_callback_to_own_deferred_runs_in_order() -> None:
    seen: list[Any] = []
    d: Deferred[Any] = Deferred()

    def first(r: Any) -> Any:
        d.add_callback(lambda x: seen.append(("late", x)) or x)
        assert not d.done()  # a callback is running
        seen.append(("first", r))
        return r + 1

    d.add_callback(first)
    d.add_callback(lambda x: seen.append(("second", x)) or x * 2)
    d.callback(1)
    # The link added while running is appended after the already queued ones.
    assert seen == [("first", 1), ("second", 2), ("late", 4)]


def test_firing_twice_raises_already_called() -> None:
    d = fired(1)
    with pytest.raises(AlreadyCalledError):
        d.callback(2)
    with pytest.raises(AlreadyCalledError):
        d.errback(ValueError())
    assert issubclass(AlreadyCalledError, asyncio.InvalidStateError)
    assert d.result() == 1
    e = failed(ValueError())
    with pytest.raises(AlreadyCalledError):
        e.callback(1)
    consume(e)


def test_callback_refuses_a_deferred() -> None:
    d: Deferred[Any] = Deferred()
    with pytest.raises(TypeError, match="chain"):
        d.callback(Deferred())
    assert not d.called


def test_errback_argument_forms() -> None:
    d: Deferred[Any] = Deferred()
    d.errback(KeyError)
    assert isinstance(d.exception(), KeyError)
    try:
        raise ValueError("current")
    except ValueError:
        e: Deferred[Any] = Deferred()
        e.errback()
    assert str(e.exception()) == "current"
    with pytest.raises(TypeError):
        Deferred().errback()
    with pytest.raises(TypeError):
        Deferred().errback("not an exception")  # type: ignore[arg-type]


def test_result_and_exception_before_done() -> None:
    d: Deferred[Any] = Deferred()
    with pytest.raises(asyncio.InvalidStateError):
        d.result()
    with pytest.raises(asyncio.InvalidStateError):
        d.exception()
    assert not d.cancelled()


def test_callback_returning_its_own_deferred_is_an_error() -> None:
    d: Deferred[Any] = Deferred()
    d.add_callback(lambda r: d)
    d.callback(1)
    assert isinstance(d.exception(), RuntimeError)


def test_repr() -> None:
    d: Deferred[Any] = Deferred()
    assert "pending" in repr(d)
    inner: Deferred[Any] = Deferred()
    d.add_callback(lambda r: inner)
    d.callback(None)
    assert "paused" in repr(d)
    inner.callback(5)
    assert "result=5" in repr(d)
    bad = failed(ValueError())
    assert "failed" in repr(bad)
    consume(bad)
    consume(d)


# ---------------------------------------------------------------------- nested Deferreds


def test_callback_returning_fired_deferred_continues_synchronously() -> None:
    d = fired(1)
    d.add_callback(lambda r: fired(r + 1))
    d.add_callback(lambda r: r * 3)
    assert d.result() == 6


def test_callback_returning_pending_deferred_pauses() -> None:
    inner: Deferred[Any] = Deferred()
    seen: list[Any] = []
    outer = fired(1)
    outer.add_callback(lambda r: inner)
    outer.add_callback(lambda r: seen.append(r) or r + 1)
    assert outer.called and not outer.done()
    with pytest.raises(asyncio.InvalidStateError):
        outer.result()
    outer.add_callback(lambda r: r * 10)  # queued while paused
    assert seen == []
    inner.callback(5)
    assert seen == [5]
    assert outer.result() == 60
    assert inner.result() == 5  # the inner Deferred keeps its result (Twisted sets None)


def test_nested_deferred_failure_flows_to_outer(caplog: pytest.LogCaptureFixture) -> None:
    inner: Deferred[Any] = Deferred()
    outer = fired(None)
    outer.add_callback(lambda r, inner=inner: inner)
    outer.add_errback(lambda exc: f"outer handled {exc}")
    with caplog.at_level(logging.ERROR, logger="pulsar"):
        inner.errback(ValueError("inner"))
        assert outer.result() == "outer handled inner"
        del inner
        gc.collect()
    assert "Unhandled" not in caplog.text  # handed over to the outer chain: handled


def test_deep_chain_of_deferreds_does_not_recurse() -> None:
    n = 5000  # well past the recursion limit if resumption were recursive
    ds: list[Deferred[Any]] = [Deferred() for _ in range(n)]
    for i in range(n - 1):
        ds[i].add_callback(lambda r, nxt=ds[i + 1]: nxt)
    for d in ds[:-1]:
        d.callback(None)
    assert not ds[0].done()
    ds[-1].callback("bottom")
    assert all(d.result() == "bottom" for d in ds)


def test_chained_deferred_fired_inside_its_own_callback() -> None:
    inner: Deferred[Any] = Deferred()

    def fire_inner(r: Any) -> Any:
        outer.add_callback(lambda x: x + "!")
        return r

    inner.add_callback(fire_inner)
    outer = fired(None)
    outer.add_callback(lambda r: inner)
    inner.callback("deep")
    assert outer.result() == "deep!"


# ---------------------------------------------------------------------- cancellation (sync)


def test_cancel_before_firing() -> None:
    d: Deferred[Any] = Deferred()
    seen: list[Any] = []
    d.add_errback(lambda exc: seen.append(exc) or exc)
    assert d.cancel("stop") is True
    assert isinstance(seen[0], asyncio.CancelledError)
    assert seen[0].args == ("stop",)
    assert d.cancelled()
    with pytest.raises(asyncio.CancelledError):
        d.exception()
    # The producer firing later is ignored once (Twisted), then refused again.
    d.callback("late")
    with pytest.raises(AlreadyCalledError):
        d.callback("later")


def test_cancel_calls_canceller_which_may_fire() -> None:
    calls: list[Any] = []
    d: Deferred[Any] = Deferred(lambda dd: calls.append(dd) or dd.callback("fallback"))
    assert d.cancel() is True
    assert calls == [d]
    assert d.result() == "fallback"
    assert not d.cancelled()
    with pytest.raises(AlreadyCalledError):  # no suppression: the canceller fired it
        d.callback(1)


def test_cancel_after_firing_is_a_no_op() -> None:
    d = fired(1)
    assert d.cancel() is False
    assert d.result() == 1 and not d.cancelled()


def test_cancel_while_paused_cancels_inner_deferred() -> None:
    inner_cancelled: list[Any] = []
    inner: Deferred[Any] = Deferred(inner_cancelled.append)
    outer = fired(None)
    outer.add_callback(lambda r: inner)
    outer.add_errback(lambda exc: ("recovered", type(exc)))
    assert outer.cancel() is True
    assert inner_cancelled == [inner]
    assert inner.cancelled()
    assert outer.result() == ("recovered", asyncio.CancelledError)


def test_recovered_cancellation_is_not_cancelled() -> None:
    d: Deferred[Any] = Deferred()
    d.add_errback(lambda exc: 0)
    d.cancel()
    assert not d.cancelled() and d.result() == 0


# ---------------------------------------------------------------------- unhandled errors at GC


def test_unhandled_error_is_logged_at_gc(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="pulsar"):
        d = failed(ValueError("lost error"))
        del d
        gc.collect()
    assert "Unhandled error in Deferred" in caplog.text
    assert "lost error" in caplog.text
    assert caplog.records[0].name == "pulsar"
    assert caplog.records[0].exc_info is not None


def test_unhandled_error_in_reference_cycle_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="pulsar"):
        d: Deferred[Any] = Deferred()
        d.add_callback(lambda r, keep=d: 1 / 0)  # the chain refers to the Deferred
        d.callback(1)
        del d
        gc.collect()
    assert "ZeroDivisionError" in caplog.text


@pytest.mark.parametrize(
    "handle",
    [
        lambda d: d.add_errback(lambda exc: None),
        consume,
        lambda d: d.exception(),
    ],
    ids=["errback", "result", "exception"],
)
def test_handled_errors_are_not_logged(caplog: pytest.LogCaptureFixture, handle: Any) -> None:
    with caplog.at_level(logging.ERROR, logger="pulsar"):
        d = failed(ValueError("handled"))
        handle(d)
        del d
        gc.collect()
    assert caplog.text == ""


def test_cancellation_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="pulsar"):
        d: Deferred[Any] = Deferred()
        d.cancel()
        del d
        gc.collect()
    assert caplog.text == ""


def test_error_after_retrieval_is_logged_again(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="pulsar"):
        d = failed(ValueError("first"))
        consume(d)

        def reraise(exc: BaseException) -> None:
            raise KeyError("new error")

        d.add_errback(reraise)
        del d
        gc.collect()
    assert "new error" in caplog.text


# ---------------------------------------------------------------------- awaitables in the chain


async def test_callback_returning_coroutine_pauses_until_it_succeeds() -> None:
    d = fired(2)
    d.add_callback(lambda r: value_later(r * 2, 0.001))
    d.add_callback(lambda r: r + 1)
    assert not d.done()
    assert await d == 5


async def test_callback_returning_coroutine_that_fails() -> None:
    d = fired(None)
    d.add_callback(lambda r: fail_later(ValueError("async boom")))
    d.add_callback(lambda r: pytest.fail("skipped"))
    d.add_errback(lambda exc: f"caught {exc}")
    assert await d == "caught async boom"


async def test_callback_returning_futures() -> None:
    loop = asyncio.get_running_loop()
    done_fut = loop.create_future()
    done_fut.set_result("now")
    d = fired(None).add_callback(lambda r: done_fut)
    assert d.result() == "now"  # a done future is read synchronously

    pending = loop.create_future()
    e = fired(None).add_callback(lambda r: pending)
    assert not e.done()
    loop.call_soon(pending.set_exception, KeyError("later"))
    with pytest.raises(KeyError):
        await e

    cancelled = loop.create_future()
    cancelled.cancel("gone")
    f = fired(None).add_callback(lambda r: cancelled)
    assert f.cancelled()


async def test_callback_returning_custom_awaitable() -> None:
    class Ready:
        def __await__(self) -> Generator[Any, None, str]:
            yield from asyncio.sleep(0).__await__()
            return "custom"

    assert await fired(None).add_callback(lambda r: Ready()) == "custom"


def test_coroutine_in_chain_without_loop_is_an_error() -> None:
    d = fired(None)
    d.add_callback(lambda r: value_later(1))  # closed, so no "never awaited" warning
    exc = d.exception()
    assert isinstance(exc, RuntimeError) and "no event loop" in str(exc)


def test_deferred_with_loop_schedules_coroutines_on_it() -> None:
    # Stays sync with a loop of its own: the callback must fire while no loop runs, so the
    # coroutine can only be scheduled on the ``loop=`` given to the Deferred.
    loop = asyncio.new_event_loop()
    try:
        d: Deferred[Any] = Deferred(loop=loop)
        d.add_callback(lambda r: value_later(r + 1))
        d.callback(1)  # no loop running here
        assert not d.done()
        assert loop.run_until_complete(d.as_future()) == 2
    finally:
        loop.close()


async def test_cancel_while_paused_cancels_the_task() -> None:
    inner_saw: list[Any] = []

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            inner_saw.append("cancelled")
            raise

    d = fired(None)
    d.add_callback(lambda r: slow())
    await asyncio.sleep(0)  # let the task start
    assert d.cancel("enough") is True
    with pytest.raises(asyncio.CancelledError):
        await d
    assert inner_saw == ["cancelled"]
    assert d.cancelled()


# ---------------------------------------------------------------------- asyncio bridge


async def test_await_done_and_pending_deferreds() -> None:
    assert await fired(7) == 7
    with pytest.raises(ValueError):
        await failed(ValueError("x"))
    d: Deferred[Any] = Deferred()
    asyncio.get_running_loop().call_soon(d.callback, "later")
    assert await d == "later"
    assert await d == "later"  # awaiting does not consume the result
    assert d.result() == "later"


async def test_cancelling_the_awaiting_task_cancels_the_deferred() -> None:
    d: Deferred[Any] = Deferred()
    task = asyncio.ensure_future(d)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert d.cancelled()


async def test_gather_and_ensure_future_of_deferreds() -> None:
    loop = asyncio.get_running_loop()
    ds: list[Deferred[Any]] = [Deferred() for _ in range(3)]
    for i, d in enumerate(reversed(ds)):
        loop.call_soon(d.callback, i)
    assert await asyncio.gather(*ds, fired("x")) == [2, 1, 0, "x"]
    task = asyncio.ensure_future(fired(1).add_callback(lambda r: value_later(r + 1)))
    assert await task == 2


async def test_as_future_mirrors_value_error_and_cancellation() -> None:
    d: Deferred[Any] = Deferred()
    fut = d.as_future()
    d.add_callback(lambda r: r * 2)  # added after: does not affect the future
    d.callback(21)
    assert await fut == 21
    assert d.result() == 42

    e = failed(KeyError("k"))
    with pytest.raises(KeyError):
        await e.as_future()

    c: Deferred[Any] = Deferred()
    cf = c.as_future()
    c.cancel("why")
    assert cf.cancelled()
    with pytest.raises(asyncio.CancelledError, match="why"):
        await cf

    s = failed(StopIteration())
    with pytest.raises(RuntimeError, match="StopIteration"):
        await s.as_future()


async def test_cancelling_the_future_cancels_the_deferred() -> None:
    d: Deferred[Any] = Deferred()
    fut = d.as_future()
    fut.cancel("from future")
    await asyncio.sleep(0)
    assert d.cancelled()
    with pytest.raises(asyncio.CancelledError, match="from future"):
        d.result()


async def test_chain_cancelling_its_future_is_not_cancelled_again() -> None:
    d: Deferred[Any] = Deferred()
    fut = d.as_future()
    d.add_errback(lambda exc: value_later("recovered", 0.001))
    d.cancel()  # mirrors a cancellation into fut, then the chain recovers asynchronously
    assert fut.cancelled()
    assert await d == "recovered"


def test_as_future_needs_a_loop() -> None:
    with pytest.raises(RuntimeError):
        Deferred().as_future()


async def test_from_future_value_error_and_cancel() -> None:
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    d = Deferred.from_future(fut)
    assert not d.called
    fut.set_result(3)
    await asyncio.sleep(0)
    assert d.result() == 3

    done = loop.create_future()
    done.set_exception(ValueError("sync"))
    assert isinstance(Deferred.from_future(done).exception(), ValueError)

    cancelled = loop.create_future()
    dc = Deferred.from_future(cancelled)
    cancelled.cancel()
    await asyncio.sleep(0)
    assert dc.cancelled()

    assert await Deferred.from_future(value_later("coro")) == "coro"
    with pytest.raises(ValueError):
        await Deferred.from_future(fail_later(ValueError("coro failed")))

    existing = fired(1)
    assert Deferred.from_future(existing) is existing

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        assert await Deferred.from_future(pool.submit(lambda: "thread")) == "thread"


async def test_cancelling_from_future_deferred_cancels_the_task() -> None:
    started = asyncio.Event()

    async def slow() -> None:
        started.set()
        await asyncio.sleep(10)

    task = asyncio.ensure_future(slow())
    d = Deferred.from_future(task)
    await started.wait()
    assert d.cancel() is True
    assert d.cancelled()  # fires at once, like Twisted
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)  # the task's done-callback is dropped, no AlreadyCalledError
    assert d.cancelled()


def test_from_future_coroutine_without_loop() -> None:
    with pytest.raises(RuntimeError):
        Deferred.from_future(value_later(1))  # closed: no "never awaited" warning


# ---------------------------------------------------------------------- maybe_async


async def test_maybe_async_on_every_kind() -> None:
    class Custom:
        def __await__(self) -> Generator[Any, None, str]:
            return (yield from value_later("custom").__await__())

    loop = asyncio.get_running_loop()
    plain = maybe_async(5)
    assert asyncio.isfuture(plain) and plain.done() and plain.result() == 5
    err = ValueError("a value, not an error")
    assert maybe_async(err).result() is err
    fut = loop.create_future()
    assert maybe_async(fut) is fut
    task = maybe_async(value_later("coro"))
    assert isinstance(task, asyncio.Task)
    assert await task == "coro"
    assert await maybe_async(fired("deferred")) == "deferred"
    assert await maybe_async(Custom()) == "custom"
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        assert await maybe_async(pool.submit(lambda: "cf")) == "cf"


def test_maybe_async_needs_a_loop() -> None:
    with pytest.raises(RuntimeError):
        maybe_async(1)
    with pytest.raises(RuntimeError):
        maybe_async(value_later(1))
    loop = asyncio.new_event_loop()
    try:
        assert maybe_async(1, loop=loop).result() == 1
    finally:
        loop.close()


# ---------------------------------------------------------------------- multi_async

Point = collections.namedtuple("Point", "x y")


async def test_multi_async_preserves_shapes() -> None:
    assert await multi_async([value_later(1), 2, fired(3)]) == [1, 2, 3]
    result = await multi_async((value_later("a", 0.002), value_later("b")))
    assert result == ("a", "b") and type(result) is tuple
    mapping = await multi_async({"z": value_later(1), "a": 2, "m": value_later(3)})
    assert mapping == {"z": 1, "a": 2, "m": 3}
    assert list(mapping) == ["z", "a", "m"]
    assert await multi_async({value_later(1), 2}) == {1, 2}
    assert await multi_async(frozenset([value_later(1)])) == frozenset([1])
    point = await multi_async(Point(value_later(1), 2))
    assert point == Point(1, 2) and type(point) is Point
    ordered = await multi_async(collections.OrderedDict(b=value_later(1), a=2))
    assert type(ordered) is collections.OrderedDict and list(ordered.items()) == [
        ("b", 1),
        ("a", 2),
    ]
    default = collections.defaultdict(list, {"k": value_later(1)})
    got = await multi_async(default)
    assert type(got) is collections.defaultdict and got["missing"] == []


async def test_multi_async_nested_and_edge_cases() -> None:
    nested = {"a": [value_later(1), (value_later(2), {"b": value_later(3)})], "c": "s"}
    assert await multi_async(nested) == {"a": [1, (2, {"b": 3})], "c": "s"}
    plain = [1, [2, 3], {"x": 4}]
    assert await multi_async(plain) == plain
    assert await multi_async([]) == []
    assert await multi_async(value_later("leaf")) == "leaf"
    assert await multi_async("string") == "string"
    coro = value_later("shared")
    assert await multi_async([coro, coro]) == ["shared", "shared"]


async def test_multi_async_is_concurrent() -> None:
    start = time.perf_counter()
    await multi_async([asyncio.sleep(0.05) for _ in range(10)])
    assert time.perf_counter() - start < 0.4


async def test_multi_async_errors_first_cancels_the_rest() -> None:
    cancelled: list[str] = []

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append("slow")
            raise

    with pytest.raises(KeyError, match="first"):
        await multi_async(
            [slow(), fail_later(KeyError("first")), fail_later(ValueError("second"), 0.01)]
        )
    assert cancelled == ["slow"]
    with pytest.raises(KeyError):
        await multi_async({"a": fail_later(KeyError("x"))}, raise_on_error=True)


async def test_multi_async_errors_group() -> None:
    with pytest.raises(ExceptionGroup) as info:
        await multi_async(
            [fail_later(KeyError("a"), 0.002), 1, value_later(2), fail_later(ValueError("b"))],
            errors="group",
        )
    assert [type(e) for e in info.value.exceptions] == [KeyError, ValueError]
    assert "2 of 3" in str(info.value)
    assert await multi_async([value_later(1)], errors="group") == [1]

    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    fut.cancel()
    with pytest.raises(BaseExceptionGroup) as binfo:
        await multi_async([fut, fail_later(KeyError())], errors="group")
    assert not isinstance(binfo.value, ExceptionGroup)


async def test_multi_async_errors_return() -> None:
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    fut.cancel()
    result = await multi_async(
        {"ok": value_later(1), "bad": fail_later(KeyError("k")), "gone": fut},
        errors="return",
    )
    assert result["ok"] == 1
    assert isinstance(result["bad"], KeyError)
    assert isinstance(result["gone"], asyncio.CancelledError)
    same = await multi_async([fail_later(ValueError())], raise_on_error=False)
    assert isinstance(same[0], ValueError)


async def test_multi_async_argument_errors() -> None:
    with pytest.raises(TypeError):
        await multi_async([], errors="first", raise_on_error=True)
    with pytest.raises(ValueError):
        await multi_async([], errors="all")  # type: ignore[arg-type]


async def test_cancelling_multi_async_cancels_children() -> None:
    cancelled: list[int] = []

    async def slow(i: int) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(i)
            raise

    task = asyncio.ensure_future(multi_async([slow(1), slow(2)]))
    await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    assert sorted(cancelled) == [1, 2]


# ---------------------------------------------------------------------- async_while


async def test_async_while_until_falsy() -> None:
    counter = iter([3, 2, 1, 0])
    calls: list[Any] = []

    def predicate(tag: str) -> int:
        calls.append(tag)
        return next(counter)

    assert await async_while(1.0, predicate, "t", interval=0) == 0
    assert calls == ["t"] * 4

    remaining = [2]

    async def apredicate() -> list[int]:
        remaining[0] -= 1
        return [remaining[0]] if remaining[0] else []

    assert await async_while(None, apredicate, interval=0.001) == []


async def test_async_while_timeout_returns_last_truthy_value() -> None:
    calls = []

    def predicate() -> str:
        calls.append(1)
        return "still busy"

    start = time.perf_counter()
    value = await async_while(0.05, predicate, interval=0.01)
    elapsed = time.perf_counter() - start
    assert value == "still busy"
    assert 0.045 <= elapsed < 0.5
    assert len(calls) >= 3


async def test_async_while_zero_timeout_and_errors() -> None:
    calls: list[int] = []
    assert await async_while(0, lambda: calls.append(1) or True) is True
    assert calls == [1]
    with pytest.raises(ValueError):
        await async_while(1, bool, interval=-1)
    with pytest.raises(ZeroDivisionError):
        await async_while(1, lambda: 1 / 0)


# ---------------------------------------------------------------------- chain_future


async def test_chain_future_transforms_into_new_future() -> None:
    loop = asyncio.get_running_loop()
    src = loop.create_future()
    nxt = chain_future(src, callback=lambda r: r + 1)
    assert asyncio.isfuture(nxt) and nxt is not src
    src.set_result(1)
    assert await nxt == 2

    assert await chain_future(value_later(2), lambda r: value_later(r * 5)) == 10
    plain = chain_future(fail_later(KeyError("e")))
    with pytest.raises(KeyError):
        await plain
    recovered = chain_future(fail_later(KeyError("e")), errback=lambda exc: "fixed")
    assert await recovered == "fixed"

    def bad(r: Any) -> None:
        raise ValueError("in callback")

    with pytest.raises(ValueError, match="in callback"):
        await chain_future(value_later(1), callback=bad)


async def test_chain_future_into_given_next() -> None:
    loop = asyncio.get_running_loop()
    target: Deferred[Any] = Deferred()
    assert chain_future(value_later("v"), callback=str.upper, next=target) is target
    assert await target == "V"

    fut = loop.create_future()
    assert chain_future(fired(3), next=fut) is fut
    assert await fut == 3

    done = loop.create_future()
    done.set_result("kept")
    chain_future(value_later("ignored"), next=done)
    await asyncio.sleep(0.001)
    assert done.result() == "kept"

    with pytest.raises(TypeError):
        chain_future(fired(1), next=object())


def test_chain_future_from_deferred_source() -> None:
    src: Deferred[Any] = Deferred()
    nxt = chain_future(src, callback=lambda r: r * 2, errback=lambda exc: "unused")
    assert isinstance(nxt, Deferred) and not nxt.called
    src.callback(4)
    assert nxt.result() == 8
    assert src.result() == 4  # pass-through: the source keeps its result

    err = failed(KeyError("k"))
    nxt2 = chain_future(err)
    assert isinstance(nxt2.exception(), KeyError)


async def test_chain_future_cancelling_next_cancels_source() -> None:
    loop = asyncio.get_running_loop()
    src = loop.create_future()
    nxt = chain_future(src)
    nxt.cancel()
    await asyncio.sleep(0)
    assert src.cancelled()

    dsrc: Deferred[Any] = Deferred()
    dnext = chain_future(dsrc)
    dnext.cancel()
    assert dsrc.cancelled() and dnext.cancelled()

    started = asyncio.Event()

    async def slow_transform(r: Any) -> None:
        started.set()
        await asyncio.sleep(10)

    src2 = loop.create_future()
    src2.set_result(1)
    nxt2 = chain_future(src2, callback=slow_transform)
    await started.wait()
    nxt2.cancel()
    await asyncio.sleep(0.001)
    assert nxt2.cancelled()
