"""Helpers for pulsar-core's tests, importable by name in spawn/forkserver children."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import pulsar


@pulsar.command()
async def add(request: pulsar.Request, a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@pulsar.command()
def whoami(request: pulsar.Request) -> dict[str, Any]:
    actor = request.actor
    return {"aid": actor.aid, "name": actor.name, "pid": os.getpid(), "caller": request.caller}


@pulsar.command()
async def relay(request: pulsar.Request, target: str, action: str, *args: Any) -> Any:
    """Send ``action`` to ``target`` from this actor and return the reply (actor to actor)."""
    return await pulsar.send(target, action, *args)


@pulsar.command()
def fail(request: pulsar.Request, message: str) -> None:
    raise ValueError(message)


class Unpicklable:
    def __reduce__(self) -> Any:
        raise TypeError("Unpicklable cannot be pickled")


@pulsar.command()
def bad_result(request: pulsar.Request) -> Any:
    return Unpicklable()


@pulsar.command()
async def sleep(request: pulsar.Request, seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@pulsar.command()
def block(request: pulsar.Request, seconds: float) -> float:
    """Block the actor's loop (a hung worker)."""
    time.sleep(seconds)
    return seconds


@pulsar.command(ack=False)
def count(request: pulsar.Request) -> None:
    request.actor.extra["count"] = request.actor.extra.get("count", 0) + 1


@pulsar.command()
def get_count(request: pulsar.Request) -> int:
    return int(request.actor.extra.get("count", 0))


def noop_start(actor: Any) -> None:
    actor.extra["started"] = True


def crash_start(actor: Any) -> None:
    os._exit(3)


def hang_start(actor: Any) -> None:
    """Block the loop forever: no more heartbeats."""
    while True:
        time.sleep(0.05)


def _slow(delay: float) -> Any:
    time.sleep(delay)
    return noop_start


class SlowToStart:
    """A start callable that takes ``delay`` seconds to unpickle in the child (spawn methods)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def __reduce__(self) -> Any:
        return (_slow, (self.delay,))


def run_arbiter(main: Any, **params: Any) -> Any:
    """Run an arbiter in this process; ``await main(arbiter)`` then stop. Returns main's value."""
    result: dict[str, Any] = {}

    async def start(arbiter: Any) -> None:
        async def go() -> None:
            try:
                result["value"] = await main(arbiter)
            except BaseException as exc:
                result["error"] = exc
            finally:
                arbiter.stop()

        arbiter.extra["main"] = asyncio.ensure_future(go())

    params.setdefault("start_method", "fork")
    params.setdefault("log_level", "warning")
    code = pulsar.arbiter(start=start, **params).start(install_signals=False)
    if "error" in result:
        raise result["error"]
    result["exit_code"] = code
    return result.get("value")
