"""``pulsar-dashboard``: the dashboard as a pulsar-wsgi application.

:class:`DashboardServer` is :class:`~pulsar.apps.wsgi.WSGIServer` serving :class:`Dashboard`
with the ``dashboard`` settings on its command line, bound to 127.0.0.1:8070 with one worker by
default. Its configuration is checked before anything starts: a bind that is not a loopback
address needs a token (``--token`` or ``PULSAR_DASHBOARD_TOKEN``), otherwise the start fails
with one ``error:`` line and exit code 2 (``ExitCode.CONFIG``). The ``pulsar-dashboard``
command requires ``--attach``; a ``DashboardServer`` in an application's own ``MultiApp``
without it shows that application.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Sequence
from typing import Any

import pulsar
from pulsar.apps.wsgi import WSGIServer

from . import _settings
from ._app import Dashboard

__all__ = ["DashboardServer", "is_loopback", "main"]


def is_loopback(bind: str) -> bool:
    """True for a bind address only this machine can reach (127.0.0.0/8, ::1, localhost,
    ``unix:`` paths); False for ``0.0.0.0``, ``:PORT`` (every interface) and other hosts."""
    bind = str(bind).strip()
    if bind.startswith("unix:"):
        return True
    if bind.startswith("["):
        host = bind[1:].split("]", 1)[0]
    elif bind.count(":") == 1:
        host = bind.split(":", 1)[0]
    elif bind.isdigit():
        host = ""
    else:
        host = bind
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class DashboardServer(WSGIServer):
    """Serve the dashboard of the application named by ``dashboard_attach``.

    ``DashboardServer(dashboard_attach="app.pid").start()`` or ``pulsar-dashboard --attach
    app.pid``; every ``socket``/``wsgi`` setting applies (``--bind``, TLS with ``--cert-file``).
    """

    name = "dashboard"
    cfg_apps: tuple[str, ...] = ("socket", "wsgi", "dashboard")
    description = "Pulsar dashboard: a live view and Prometheus metrics of a running application"
    defaults = {"bind": [_settings.DEFAULT_BIND], "workers": 1, "thread_workers": 4}

    #: ``--attach`` is required (the ``pulsar-dashboard`` command); in a ``MultiApp`` beside
    #: the application, without ``dashboard_attach`` the dashboard shows its own application
    standalone = False

    def __init__(self, callable: Any = None, **params: Any) -> None:
        super().__init__(callable or Dashboard(), **params)

    def add_to(self, arbiter: Any) -> Any:
        """Check the configuration (a remote bind needs a token), then add the monitor.

        In a ``MultiApp`` this is where the check runs: a refused configuration prints one
        ``error:`` line and exits with code 2, as a bad command line does."""
        try:
            check_config(self.cfg, require_attach=self.standalone)
        except pulsar.ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(int(pulsar.ExitCode.CONFIG)) from None
        return super().add_to(arbiter)

    async def worker_start(self, worker: Any) -> None:
        """Serve, and start reading the attached application at once (the charts' history
        begins before the first page is asked for)."""
        await super().worker_start(worker)
        app = self.wsgi_callable
        if isinstance(app, Dashboard):
            app.start_source()

    def load_config(self, argv: Sequence[str] | None = None, environ: Any = None) -> None:
        """Load the configuration, then refuse what is unsafe or incomplete (ConfigError)."""
        super().load_config(argv, environ)
        check_config(self.cfg, require_attach=self.standalone)


def check_config(cfg: Any, *, require_attach: bool = False) -> None:
    """Raise :class:`pulsar.ConfigError` for a remote bind without a token, or (with
    ``require_attach``) no ``--attach``."""
    token = cfg.get("dashboard_token")
    remote = [b for b in list(cfg.get("bind")) if not is_loopback(b)]
    if remote and not token:
        raise pulsar.ConfigError(
            f"pulsar-dashboard: refusing to listen on {', '.join(remote)} without a token: "
            "anyone who reaches it could stop your workers and read your tasks. Set --token "
            "(or PULSAR_DASHBOARD_TOKEN), or bind 127.0.0.1"
        )
    if require_attach and not cfg.get("dashboard_attach"):
        raise pulsar.ConfigError(
            "pulsar-dashboard: --attach PIDFILE|SOCKET is required (the running application's "
            "--pidfile or mailbox socket)"
        )


def main(argv: list[str] | None = None) -> Any:
    """The ``pulsar-dashboard --attach PIDFILE [options]`` command (and ``python -m``)."""
    server = DashboardServer()
    server.standalone = True
    return server.start(argv)
