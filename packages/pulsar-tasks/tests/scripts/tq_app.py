"""A TaskQueue run as a real process by the tests.

usage: tq_app.py [--apps N] [pulsar/tasks options...]
Prints ``READY {"arbiter": pid, "workers": [pids]}`` once every worker consumes.
With ``--apps 2`` two TaskQueue applications (a MultiApp, prefixes a and b) share the backend.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pulsar
from pulsar.apps import tasks


class Two(pulsar.MultiApp):
    def build(self):
        yield self.new_app(tasks.TaskQueue, "a")
        yield self.new_app(tasks.TaskQueue, "b")


async def ready(arbiter):
    while True:
        monitors = list(arbiter.monitors.values())
        if monitors and all(len(m.proxies()) >= m.num_workers for m in monitors):
            info = await pulsar.send("arbiter", "info")
            workers = [w for m in info["monitors"].values() for w in m["workers"]]
            if workers and all("tasks" in w for w in workers):
                break
        await asyncio.sleep(0.05)
    out = {"arbiter": os.getpid(), "workers": [w["pid"] for w in workers]}
    print("READY " + json.dumps(out), flush=True)


if __name__ == "__main__":
    argv = sys.argv[1:]
    two = False
    if argv[:2] == ["--apps", "2"]:
        two, argv = True, argv[2:]
    pulsar.arbiter(start=ready)
    app = Two() if two else tasks.TaskQueue(start_method="fork")
    app.start(argv)
