"""An arbiter with one monitor, run as a real process by the tests.

usage: supervised.py MODE [settings as key=value ...]
MODE: ok | crash | hang | busy | sync
(sync: each worker is busy in a long blocking call, ``sync_seconds`` long, like a task-queue
worker running a sync task in its loop; it prints ``SYNC START <pid>`` and ``SYNC DONE <pid>``
on stderr around it)
Prints one JSON line ``READY {...}`` once the workers run (with their pids).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import core_helpers as h  # noqa: E402

import pulsar  # noqa: E402


def busy_start(actor):
    async def work():
        while True:
            await asyncio.sleep(0.05)

    actor.extra["task"] = asyncio.ensure_future(work())


def sync_start(actor):
    seconds = float(actor.params.get("sync_seconds", 3))

    def blocking():
        print(f"SYNC START {os.getpid()}", file=sys.stderr, flush=True)
        time.sleep(seconds)  # a signal arriving now waits for the loop (PEP 475 retries)
        print(f"SYNC DONE {os.getpid()}", file=sys.stderr, flush=True)

    actor.loop.call_later(0.1, blocking)


START = {
    "ok": h.noop_start,
    "crash": h.crash_start,
    "hang": h.hang_start,
    "busy": busy_start,
    "sync": sync_start,
}


def main() -> int:
    mode = sys.argv[1]
    settings = {}
    for arg in sys.argv[2:]:
        key, value = arg.split("=", 1)
        settings[key] = json.loads(value)
    workers = settings.pop("workers", 2)
    params = {"sync_seconds": settings.pop("sync_seconds")} if "sync_seconds" in settings else {}

    async def started(arbiter):
        monitor = arbiter.add_monitor("app", start=START[mode], workers=workers, **params)
        if mode == "crash":
            return
        deadline = time.monotonic() + 20
        while len(monitor.proxies()) < workers and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        info = await pulsar.send("arbiter", "info")
        pids = [w["pid"] for w in info["monitors"]["app"]["workers"]]
        print("READY " + json.dumps({"pids": pids, "aids": list(monitor.workers)}), flush=True)

    arbiter = pulsar.arbiter(start=started, **settings)
    return arbiter.start()


if __name__ == "__main__":
    sys.exit(main())
