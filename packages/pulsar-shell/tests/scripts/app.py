"""A running pulsar application the shell attaches to (started by the tests).

usage: app.py [--pidfile FILE]
Prints ``READY <mailbox address> <worker pids...>`` once its two workers run.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import shell_helpers

import pulsar


async def started(arbiter: pulsar.Arbiter) -> None:
    monitor = arbiter.add_monitor("demo", start=shell_helpers.noop_start, workers=2)
    deadline = time.monotonic() + 30
    while len(monitor.proxies()) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    info = await pulsar.send("arbiter", "info")
    pids = [str(w["pid"]) for w in info["monitors"]["demo"]["workers"]]
    print("READY", arbiter.address, *pids, flush=True)


def main() -> int:
    params = {}
    if len(sys.argv) > 2 and sys.argv[1] == "--pidfile":
        params["pidfile"] = sys.argv[2]
    return int(pulsar.arbiter(start=started, log_level="warning", **params).start())


if __name__ == "__main__":
    sys.exit(main())
