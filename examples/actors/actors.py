"""Actors example: a supervised pool of workers exchanging messages through the arbiter.

Run it with ``python examples/actors/actors.py`` (or ``hatch run demo``). It:

1. starts an arbiter and a monitor keeping two worker processes alive;
2. has each worker greet the other with a custom command (actor → arbiter → actor);
3. kills one worker with SIGKILL and shows the monitor replacing it;
4. stops everything cleanly (no process is left behind).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import pulsar


@pulsar.command()
def hello(request: pulsar.Request, sender_name: str) -> str:
    """Reply to a greeting from another worker."""
    actor = request.actor
    actor.extra["greetings"] = actor.extra.get("greetings", 0) + 1
    return f"{actor.name}[{os.getpid()}] says hello back to {sender_name}"


@pulsar.command()
async def greet(request: pulsar.Request, other: str) -> str:
    """Send ``hello`` to another actor (through the arbiter) and return its reply."""
    return await pulsar.send(other, "hello", f"{request.actor.name}[{os.getpid()}]")


def worker_start(actor: pulsar.Actor) -> None:
    """Runs in each worker once it is up."""
    actor.extra["greetings"] = 0


def say(text: str) -> None:
    print(text, flush=True)


async def wait_for_workers(monitor: pulsar.Monitor, count: int, timeout: float = 30) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proxies = monitor.proxies()
        if len(proxies) >= count:
            return proxies
        await asyncio.sleep(0.05)
    raise RuntimeError("workers did not start in time")


async def main(arbiter: pulsar.Arbiter) -> None:
    try:
        monitor = arbiter.add_monitor("demo", start=worker_start, workers=2)
        a, b = await wait_for_workers(monitor, 2)
        info = await pulsar.send("arbiter", "info")
        pids = {w["aid"]: w["pid"] for w in info["monitors"]["demo"]["workers"]}
        say(f"arbiter pid {os.getpid()}; workers: {sorted(pids.values())}")
        say(await pulsar.send(a, "greet", b.aid))
        say(await pulsar.send(b, "greet", a.aid))

        victim = pids[a.aid]
        say(f"killing worker {a.aid} (pid {victim}) with SIGKILL")
        exited = pulsar.link(a)
        os.kill(victim, signal.SIGKILL)
        reason = await asyncio.wait_for(exited, 10)
        say(f"worker {reason.aid} exited: {reason.reason}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            proxies = [p for p in monitor.proxies() if p.aid != a.aid]
            if len(proxies) == 2:
                break
            await asyncio.sleep(0.05)
        new = next(p for p in monitor.proxies() if p.aid not in (a.aid, b.aid))
        say(f"monitor replaced it with {new.aid}")
        say(await pulsar.send(new, "greet", b.aid))
        say("stopping")
    finally:
        arbiter.stop()


if __name__ == "__main__":
    sys.exit(pulsar.arbiter(start=main, log_level="warning").start())
