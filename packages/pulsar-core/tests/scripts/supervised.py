"""An arbiter with one monitor, run as a real process by the tests.

usage: supervised.py MODE [settings as key=value ...]
MODE: ok | crash | hang | busy
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


START = {"ok": h.noop_start, "crash": h.crash_start, "hang": h.hang_start, "busy": busy_start}


def main() -> int:
    mode = sys.argv[1]
    settings = {}
    for arg in sys.argv[2:]:
        key, value = arg.split("=", 1)
        settings[key] = json.loads(value)
    workers = settings.pop("workers", 2)

    async def started(arbiter):
        monitor = arbiter.add_monitor("app", start=START[mode], workers=workers)
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
