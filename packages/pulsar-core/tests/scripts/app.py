"""A pulsar Application run as a real process by the tests.

usage: app.py [single|multi] [pulsar options...]
Environment: APP_MARKERS=<dir> (hooks write marker files), APP_STOP_DELAY=<seconds>
(worker_stopping sleeps that long). Prints ``READY {...}`` once every monitor has its workers.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pulsar

MARKERS = os.environ.get("APP_MARKERS")


def mark(name: str) -> None:
    if MARKERS:
        with open(os.path.join(MARKERS, f"{name}-{os.getpid()}"), "w") as f:
            f.write(str(os.getpid()))


class Demo(pulsar.Application):
    """A demo application."""

    def monitor_start(self, monitor):
        mark(f"monitor_start-{self.name}")

    def monitor_stopping(self, monitor):
        mark(f"monitor_stopping-{self.name}")

    async def worker_start(self, worker):
        mark(f"worker_start-{self.name}")

    async def worker_stopping(self, worker):
        await asyncio.sleep(float(os.environ.get("APP_STOP_DELAY", "0")))
        mark(f"worker_stopping-{self.name}")

    def worker_info(self, worker, info):
        info["demo_pid"] = os.getpid()


class Multi(pulsar.MultiApp):
    def build(self):
        yield self.new_app(Demo, "a")
        yield self.new_app(Demo, "b")


async def ready(arbiter):
    while True:
        monitors = arbiter.monitors.values()
        if all(len(m.proxies()) >= m.num_workers for m in monitors):
            break
        await asyncio.sleep(0.05)
    info = await pulsar.send("arbiter", "info")
    out = {
        "arbiter": os.getpid(),
        "address": str(arbiter.address),
        "monitors": {
            name: {
                "pids": [w["pid"] for w in m["workers"]],
                "demo": [w.get("demo_pid") for w in m["workers"]],
                "timeout": arbiter.monitors[name].cfg.timeout,
            }
            for name, m in info["monitors"].items()
        },
    }
    print("READY " + json.dumps(out), flush=True)


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] in ("single", "multi") else "single"
    argv = (
        sys.argv[2:] if len(sys.argv) > 1 and sys.argv[1] in ("single", "multi") else sys.argv[1:]
    )
    pulsar.arbiter(start=ready)
    app = Multi() if mode == "multi" else Demo(name="demo", start_method="fork")
    app.start(argv)
