"""The settings of ``pulsar-dashboard`` (``app = "dashboard"``), declared once like the core ones.

A :class:`~pulsar.apps.dashboard.DashboardServer` is a WSGI server (every ``socket`` and ``wsgi``
setting applies) with these on its command line. They are global (no MultiApp prefix: one
dashboard per arbiter), each with a long flag that names it (``--dashboard-token``, hence
``PULSAR_DASHBOARD_TOKEN``) and a short alias for the ``pulsar-dashboard`` command
(``--token``). Regenerate ``docs/settings.md`` after a
change: ``hatch run python tools/gen_settings_doc.py``.
"""

from __future__ import annotations

from pulsar import Setting
from pulsar.validators import (
    declare_app,
    validate_path_or_none,
    validate_positive_number,
    validate_string_or_none,
)

__all__ = [
    "DASHBOARD",
    "DEFAULT_BIND",
    "DashboardAttach",
    "DashboardInterval",
    "DashboardTaskBackend",
    "DashboardToken",
]

DASHBOARD = "Dashboard"
DEFAULT_BIND = "127.0.0.1:8070"
declare_app("dashboard", requires=("wsgi",))


class DashboardAttach(Setting):
    name = "dashboard_attach"
    app = "dashboard"
    section = DASHBOARD
    is_global = True  # one dashboard per arbiter: `--token`, not `--<prefix>-token`, in a MultiApp
    flags = ["--dashboard-attach", "--attach"]
    meta = "PIDFILE|SOCKET"
    validator = validate_path_or_none
    desc = "The running application to show: its pid file or its mailbox socket."
    doc = """
        The dashboard connects to that application's arbiter as an authenticated guest
        (`pulsar.connect`): give the `--pidfile` of the application (the socket path is read
        from `<pidfile>.mailbox`) or the socket itself. The per-arbiter secret is read next to
        the socket, so the dashboard runs as the user who started the application.
        """


class DashboardToken(Setting):
    name = "dashboard_token"
    app = "dashboard"
    section = DASHBOARD
    is_global = True  # one dashboard per arbiter: `--token`, not `--<prefix>-token`, in a MultiApp
    flags = ["--dashboard-token", "--token"]
    meta = "TOKEN"
    validator = validate_string_or_none
    desc = "The token required by actions (and by every page on a non-loopback bind)."
    doc = """
        Without a token the dashboard only binds loopback addresses (127.0.0.1, ::1): any other
        `--bind` is refused at start. With one, stopping or recycling an actor and retrying or
        revoking a task need it (a login form sets a cookie; scripts send
        `Authorization: Bearer TOKEN`), on localhost too; on a non-loopback bind every page
        and `/metrics` need it. Prefer the `PULSAR_DASHBOARD_TOKEN` environment variable to the
        command line (other users can read a process's arguments).
        """


class DashboardTaskBackend(Setting):
    name = "dashboard_task_backend"
    app = "dashboard"
    section = DASHBOARD
    is_global = True  # one dashboard per arbiter: `--token`, not `--<prefix>-token`, in a MultiApp
    flags = ["--dashboard-task-backend", "--task-backend"]
    meta = "URL"
    validator = validate_string_or_none
    desc = "The task backend to show (default: the one of the attached TaskQueue, if any)."
    doc = """
        The task views need pulsar-tasks (`pip install "pulsar-dashboard[tasks]"`). Without
        this setting the dashboard asks the attached application's task queue monitor for its
        `backend` setting.
        """


class DashboardInterval(Setting):
    name = "dashboard_interval"
    app = "dashboard"
    section = DASHBOARD
    is_global = True  # one dashboard per arbiter: `--token`, not `--<prefix>-token`, in a MultiApp
    flags = ["--dashboard-interval", "--interval"]
    meta = "SECONDS"
    default = 1.0
    validator = validate_positive_number
    desc = "Seconds between two reads of the application's state (and page updates)."
    doc = """
        Every read is one `info` request to the arbiter (which gathers its actors' info) and,
        with tasks, a few backend queries; the pages poll `/api/state` at the same pace.
        """
