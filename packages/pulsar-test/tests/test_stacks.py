"""Stack formatting helpers (sans-IO: frames in, text out)."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import pulsar.apps.test as pt
from pulsar.apps.test._stacks import await_chain, creation_stack, format_origin


async def test_await_chain_follows_awaits() -> None:
    async def leaf() -> None:
        await asyncio.sleep(3600)

    async def middle() -> None:
        await leaf()

    task = asyncio.create_task(middle())
    await asyncio.sleep(0)
    names = [frame.f_code.co_name for frame in await_chain(task.get_coro())]
    text = pt.format_task_stacks([task])
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert "in leaf" in text and "in middle" in text
    assert names == ["middle", "leaf", "sleep"]


def test_creation_stack_skips_noise() -> None:
    def make() -> list[str]:
        return [frame.name for frame in creation_stack(skip=0)]

    names = make()
    assert names[-1] == "make"
    assert "test_creation_stack_skips_noise" in names
    assert not any(name in ("_multicall", "pytest_pyfunc_call") for name in names)


def test_format_origin_drops_noise() -> None:
    origin = (
        ("/x/user.py", 3, "helper"),
        (asyncio.__file__, 10, "run"),
        ("/x/test_user.py", 8, "test_it"),
    )
    assert [f.name for f in format_origin(origin)] == ["test_it", "helper"]


def test_thread_stacks() -> None:
    release = threading.Event()
    thread = threading.Thread(target=release.wait, name="waiting-thread")
    thread.start()
    try:
        text = pt.format_thread_stacks()
    finally:
        release.set()
        thread.join()
    assert "Thread 'waiting-thread'" in text
    assert "in wait" in text
    assert "test_thread_stacks" not in text  # the calling thread is left out
    assert "test_thread_stacks" in pt.format_thread_stacks(skip_current=False)
