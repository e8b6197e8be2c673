"""A task queue and a JSON-RPC server to queue work over HTTP, in one MultiApp.

    python examples/taskqueue/server.py          # SQLite: <tmp>/pulsar-taskqueue-example.db
    python examples/taskqueue/server.py --backend redis://127.0.0.1:6379/0
    python examples/taskqueue/server.py --rpc-bind 127.0.0.1:0 --tasks-workers 2

The ``tasks`` application runs the workers (settings prefixed ``--tasks-``), the ``rpc``
application serves ``queue_task``, ``wait_for_task``, ``get_task``, ``list_tasks``,
``job_list`` and ``next_scheduled`` (settings prefixed ``--rpc-``). Once listening it prints
``LISTENING <address>``; then run ``python examples/taskqueue/client.py <address>``.
"""

from __future__ import annotations

import os
import sys
import tempfile

import pulsar
from pulsar.apps import rpc, tasks, wsgi

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)


class TaskApi(tasks.TaskQueueRpc, rpc.PulsarServerCommands):
    """The JSON-RPC API: the task queue methods plus pulsar's server commands."""


class RpcServer(wsgi.WSGIServer):
    """The WSGI server of the API; prints where it listens."""

    def listening(self, addresses: list[str]) -> None:
        super().listening(addresses)
        print("LISTENING " + " ".join(addresses), flush=True)


class Site(pulsar.MultiApp):
    """TaskQueue + JSON-RPC server sharing one backend."""

    def __init__(self, backend: str, **params: object) -> None:
        super().__init__(**params)
        self.backend = backend

    def build(self):  # type: ignore[no-untyped-def]
        yield self.new_app(tasks.TaskQueue, "tasks", backend=self.backend, modules=["jobs"])
        yield self.new_app(
            RpcServer, "rpc", callable=TaskApi(task_backend=self.backend), bind="127.0.0.1:8060"
        )


def main(argv: list[str]) -> None:
    """Run the site; ``--backend URL`` picks the backend (by default a SQLite file in the
    system's temporary folder: the example writes nothing into the repository)."""
    backend = "sqlite:///" + os.path.join(tempfile.gettempdir(), "pulsar-taskqueue-example.db")
    if "--backend" in argv:
        i = argv.index("--backend")
        backend = argv[i + 1]
        argv = argv[:i] + argv[i + 2 :]
    Site(backend).start(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
