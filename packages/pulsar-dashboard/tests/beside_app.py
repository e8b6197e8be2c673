"""A WSGI server (2 workers) with the dashboard beside it in one MultiApp (no --attach: the
dashboard shows the application it runs in).

    python beside_app.py [--dashboard-bind 127.0.0.1:0]
"""

from __future__ import annotations

import pulsar
from pulsar.apps import wsgi
from pulsar.apps.dashboard import DashboardServer


def hello(environ, start_response):  # type: ignore[no-untyped-def]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello World!\n"]


class Site(pulsar.MultiApp):
    def build(self):  # type: ignore[no-untyped-def]
        yield self.new_app(wsgi.WSGIServer, "web", callable=hello, bind="127.0.0.1:0", workers=2)
        yield self.new_app(DashboardServer, "dashboard", bind="127.0.0.1:0", dashboard_interval=0.3)


if __name__ == "__main__":
    Site().start()
