"""CallPool, the thread pool running the WSGI callable in thread-pool mode."""

from __future__ import annotations

import threading
import time

import pytest

from pulsar.apps.wsgi._pool import CallPool


def test_runs_calls_in_its_threads() -> None:
    pool = CallPool(3, name="t-pool")
    seen: list[str] = []
    done = threading.Event()

    def call(i: int) -> None:
        seen.append(threading.current_thread().name)
        if len(seen) == 20:
            done.set()

    for i in range(20):
        pool.submit(call, i)
    assert done.wait(5)
    assert all(name.startswith("t-pool-") for name in seen)
    assert len({t.name for t in pool._threads}) == 3
    assert all(t.daemon for t in pool._threads)
    pool.shutdown()
    for thread in pool._threads:
        thread.join(5)
        assert not thread.is_alive()
    with pytest.raises(RuntimeError):
        pool.submit(call, 0)


def test_blocking_calls_run_concurrently() -> None:
    pool = CallPool(4)
    barrier = threading.Barrier(4, timeout=5)
    results: list[int] = []

    def call(i: int) -> None:
        barrier.wait()  # only returns once 4 calls run at the same time
        results.append(i)

    for i in range(4):
        pool.submit(call, i)
    deadline = time.monotonic() + 5
    while len(results) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(results) == [0, 1, 2, 3]
    pool.shutdown()


def test_a_failing_call_does_not_lose_the_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    hooked: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: hooked.append(args.exc_value))
    pool = CallPool(1)
    done = threading.Event()

    def boom(_: object) -> None:
        raise ValueError("boom")

    pool.submit(boom, None)
    pool.submit(lambda _: done.set(), None)
    assert done.wait(5)
    assert len(hooked) == 1 and isinstance(hooked[0], ValueError)
    pool.shutdown()


def test_the_initializer_runs_first_in_each_thread() -> None:
    local = threading.local()
    pool = CallPool(3, initializer=lambda: setattr(local, "ready", threading.get_ident()))
    seen: list[tuple[int, int | None]] = []
    done = threading.Event()

    def call(i: int) -> None:
        seen.append((threading.get_ident(), getattr(local, "ready", None)))
        if len(seen) == 12:
            done.set()

    for i in range(12):
        pool.submit(call, i)
    assert done.wait(5)
    assert all(ident == ready for ident, ready in seen)
    pool.shutdown()


def test_a_failing_initializer_is_reported_and_the_thread_serves(monkeypatch) -> None:
    reported: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: reported.append(args.exc_value))

    def broken() -> None:
        raise ValueError("init")

    pool = CallPool(1, initializer=broken)
    done = threading.Event()
    pool.submit(lambda _: done.set(), None)
    assert done.wait(5)
    assert [type(e) for e in reported] == [ValueError]
    pool.shutdown()
