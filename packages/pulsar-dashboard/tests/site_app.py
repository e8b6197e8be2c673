"""The application the dashboard tests attach to: a WSGI server (2 workers) and a TaskQueue
(1 worker) on SQLite, in one MultiApp.

    python site_app.py --backend sqlite:///PATH --pidfile PIDFILE [--wsgi-bind 127.0.0.1:0]

Prints ``LISTENING <address>`` once the WSGI server listens.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import pulsar  # noqa: E402
from pulsar.apps import tasks, wsgi  # noqa: E402


def hello(environ, start_response):  # type: ignore[no-untyped-def]
    """``/missing``: 404, ``/fail``: the application fails (the server answers 500), anything
    else: Hello World."""
    path = environ.get("PATH_INFO")
    if path == "/missing":
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "0")])
        return [b""]
    if path == "/fail":
        raise RuntimeError("failed on purpose (a dashboard test)")
    body = b"Hello World!\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


class Web(wsgi.WSGIServer):
    def listening(self, addresses: list[str]) -> None:
        super().listening(addresses)
        print("LISTENING " + " ".join(addresses), flush=True)


class Site(pulsar.MultiApp):
    def __init__(self, backend: str, **params: object) -> None:
        super().__init__(**params)
        self.backend = backend

    def build(self):  # type: ignore[no-untyped-def]
        yield self.new_app(Web, "wsgi", callable=hello, bind="127.0.0.1:0", workers=2)
        yield self.new_app(
            tasks.TaskQueue, "tasks", backend=self.backend, modules=["site_jobs"], workers=1
        )


if __name__ == "__main__":
    argv = sys.argv[1:]
    i = argv.index("--backend")
    backend = argv[i + 1]
    Site(backend).start(argv[:i] + argv[i + 2 :])
