"""Applications started with the ``dashboard`` / ``metrics`` settings (no DashboardServer in
sight: pulsar-core finds it through the ``pulsar.companions`` entry point).

    python companion_app.py wsgi ADDRESS [options]     WSGIServer(dashboard=ADDRESS) in code
    python companion_app.py socket [options]           an echo SocketServer (--dashboard ...)
    python companion_app.py tasks BACKEND [options]    a TaskQueue (--dashboard ...)
    python companion_app.py multi BACKEND [options]    a MultiApp: web (2 workers) + tasks
    python companion_app.py running ADDRESS            two WSGIServer(dashboard=ADDRESS) started
                                                       in a running arbiter (pulsar.arbiter)
"""

from __future__ import annotations

import asyncio
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from site_app import hello  # noqa: E402

import pulsar  # noqa: E402
from pulsar.apps import tasks, wsgi  # noqa: E402
from pulsar.apps.socket import SocketServer  # noqa: E402


class Echo(asyncio.Protocol):
    def connection_made(self, transport):  # type: ignore[no-untyped-def]
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class Site(pulsar.MultiApp):
    def __init__(self, backend: str) -> None:
        super().__init__()
        self.backend = backend

    def build(self):  # type: ignore[no-untyped-def]
        yield self.new_app(wsgi.WSGIServer, "web", callable=hello, bind="127.0.0.1:0", workers=2)
        yield self.new_app(
            tasks.TaskQueue, "tasks", backend=self.backend, modules=["site_jobs"], workers=1
        )


def two_servers(address: str) -> None:
    for name in ("one", "two"):
        wsgi.WSGIServer(
            callable=hello, name=name, bind="127.0.0.1:0", workers=1, dashboard=address
        ).start()


if __name__ == "__main__":
    kind, argv = sys.argv[1], sys.argv[2:]
    if kind == "wsgi":
        wsgi.WSGIServer(callable=hello, bind="127.0.0.1:0", workers=1, dashboard=argv[0]).start(
            argv[1:]
        )
    elif kind == "socket":
        SocketServer(callable=Echo, bind="127.0.0.1:0", workers=1).start(argv)
    elif kind == "tasks":
        tasks.TaskQueue(backend=argv[0], modules=["site_jobs"], workers=1).start(argv[1:])
    elif kind == "multi":
        Site(argv[0]).start(argv[1:])
    elif kind == "running":
        raise SystemExit(pulsar.arbiter(start=lambda arbiter: two_servers(argv[0])).start())
    else:
        raise SystemExit(f"unknown kind {kind!r}")
