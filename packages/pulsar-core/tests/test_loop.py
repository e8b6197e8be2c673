from __future__ import annotations

import asyncio

import core_helpers as h
import pytest

import pulsar
from pulsar import _loop


def test_asyncio_loop() -> None:
    loop = pulsar.new_event_loop("asyncio")
    try:
        assert isinstance(loop, asyncio.AbstractEventLoop)
        assert _loop.loop_name(loop) == "asyncio"
    finally:
        loop.close()


def test_uvloop_when_installed() -> None:
    pytest.importorskip("uvloop")
    loop = pulsar.new_event_loop("uvloop")
    try:
        assert _loop.loop_name(loop) == "uvloop"
    finally:
        loop.close()
    auto = pulsar.new_event_loop("auto")
    try:
        assert _loop.loop_name(auto) == "uvloop"
    finally:
        auto.close()


def test_bad_io_value() -> None:
    with pytest.raises(pulsar.ConfigError, match="io"):
        pulsar.new_event_loop("twisted")


@pytest.mark.parametrize("io", ["asyncio", "uvloop"])
def test_actors_run_on_the_chosen_loop(io: str) -> None:
    if io == "uvloop":
        pytest.importorskip("uvloop")

    async def main(arbiter):
        proxy = await pulsar.spawn(name="looped")
        info = await pulsar.send(proxy, "info")
        return _loop.loop_name(asyncio.get_running_loop()), info["loop"]

    assert h.run_arbiter(main, io=io) == (io, io)


def test_monitor_target_from_a_worker() -> None:
    async def main(arbiter):
        monitor = arbiter.add_monitor("m", workers=1)
        await pulsar.async_while(10, lambda: not monitor.proxies())
        (worker,) = monitor.proxies()
        who = await pulsar.send(worker, "relay", "monitor", "ping")
        info = await pulsar.send(worker, "run", _monitor_info)
        return who, info

    who, info = h.run_arbiter(main)
    assert who == "pong"
    assert info["kind"] == "monitor" and info["name"] == "m"


async def _monitor_info(actor):
    return await pulsar.send("monitor", "info")


def test_monitor_target_without_monitor() -> None:
    async def main(arbiter):
        proxy = await pulsar.spawn(name="free")
        with pytest.raises(pulsar.ActorNotFound, match="has no monitor"):
            await pulsar.send(proxy, "relay", "monitor", "ping")
        return True

    assert h.run_arbiter(main)
