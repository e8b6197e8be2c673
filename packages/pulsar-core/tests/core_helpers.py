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
def bad_plain_result(request: pulsar.Request) -> Any:
    """A plain dict (the inlined reply path) holding what cannot be pickled."""
    return {"ok": 1, "bad": Unpicklable()}


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


#: settings every :func:`run_arbiter` uses unless the test gives them (the second run of the
#: actor tests sets ``start_method='spawn'`` here, with a TCP mailbox)
RUN_DEFAULTS: dict[str, Any] = {}


def run_arbiter(main: Any, **params: Any) -> Any:
    """Run an arbiter in this process; ``await main(arbiter)`` then stop. Returns main's value."""
    result: dict[str, Any] = {}
    for key, value in RUN_DEFAULTS.items():
        params.setdefault(key, value)

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


def guest_call(
    address: str,
    action: str,
    *args: Any,
    timeout: float = 10,
    target: str = "arbiter",
    **kwargs: Any,
) -> Any:
    """Call ``action`` on a running arbiter from outside, as an authenticated guest."""

    async def call() -> Any:
        async with await pulsar.connect(address, name="test-guest", timeout=timeout) as client:
            return await client.send(target, action, *args, **kwargs)

    return asyncio.run(asyncio.wait_for(call(), timeout))


SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts")
RUNNING: list[ScriptRun] = []


class ScriptRun:
    """A test script run as a real process; output collected; killed at the end of the test."""

    def __init__(self, script: str, *args: str, env: dict[str, str] | None = None) -> None:
        import subprocess
        import sys

        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(SCRIPTS, script), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        RUNNING.append(self)

    def wait_ready(self, timeout: float = 30) -> dict[str, Any]:
        """The JSON of the next ``READY`` line on stdout."""
        import json

        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.startswith("READY "):
                return json.loads(line[6:])  # type: ignore[no-any-return]
        self.kill()
        raise AssertionError(f"never ready: {self.proc.communicate()[1][-3000:]}")

    def finish(self, timeout: float = 30) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def kill(self) -> None:
        import psutil

        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            children = []
        for child in children:
            try:
                child.kill()
            except psutil.Error:
                pass
        self.proc.kill()
        self.proc.communicate()


def kill_running() -> None:
    while RUNNING:
        run = RUNNING.pop()
        if run.proc.poll() is None:
            run.kill()


def wait_for(predicate: Any, timeout: float = 10, interval: float = 0.05) -> Any:
    """Poll ``predicate()`` until truthy; returns its value or raises AssertionError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


@pulsar.command()
async def burst(
    request: pulsar.Request, target: str, n: int, wait_link: bool = False
) -> dict[str, Any]:
    """Send ``n`` fire-and-forget ``count`` then ``get_count`` to ``target``, yielding to the
    loop now and then (so a link can open mid-stream); with ``wait_link`` first wait until the
    direct link to ``target`` is ready. Returns the count and the links (the count proves
    per-pair ordering across the switch to a direct link)."""
    actor = request.actor
    if wait_link:  # two messages make the link due, the next one opens it (pulsar._links)
        for _ in range(3):
            await pulsar.send(target, "count")
        await pulsar.async_while(10, lambda: target not in actor.links.info()["out"])
    for i in range(n):
        await pulsar.send(target, "count")
        if i % 7 == 0:
            await asyncio.sleep(0)
    got = await pulsar.send(target, "get_count")
    links = actor.links.info() if getattr(actor, "links", None) is not None else None
    return {"count": got, "links": links}


@pulsar.command()
async def ping_many(request: pulsar.Request, target: str, n: int) -> list[Any]:
    """``n`` acked pings to ``target``; each result or the exception's class name."""
    out: list[Any] = []
    for _ in range(n):
        try:
            out.append(await pulsar.send(target, "ping"))
        except Exception as exc:
            out.append(type(exc).__name__)
    return out


@pulsar.command()
def drop_links(request: pulsar.Request) -> int:
    """Close every direct link of this actor, incoming and outgoing (the fallback path)."""
    links = request.actor.links
    n = 0
    for incoming in list(links._in.values()):
        incoming.proto.close()
        n += 1
    return n
