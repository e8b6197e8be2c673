"""``--dashboard`` / ``--metrics`` on any pulsar application: the ``pulsar.companions`` entry point.

How it works
------------
pulsar-core declares the ``dashboard`` and ``metrics`` settings of every application and, when
one is set, calls :func:`companions` (this package's ``dashboard`` entry point of the
``pulsar.companions`` group) before the arbiter starts. It returns one
:class:`~._server.DashboardServer` bound to the address, added to the same arbiter: without
``dashboard_attach`` it shows the application it runs in, exactly as a ``DashboardServer`` in
the application's own ``MultiApp``. For ``metrics`` it serves ``/metrics`` only (any other
path is a 404).

The dashboard's own settings (``dashboard_token``, ``dashboard_interval``,
``dashboard_task_backend``) are not on the command line of other applications
(``pulsar-wsgi`` has no ``--token``): they come from the environment
(``PULSAR_DASHBOARD_TOKEN``, the safer place for a token anyway), or from the application when
it has them (a ``DashboardServer``: ``pulsar-dashboard --attach app.pid --metrics
127.0.0.1:9090`` exports the attached application's metrics). The global settings the user
set (log level, log file, user...) are copied to the companion.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import pulsar

from ._app import Dashboard
from ._server import DashboardServer, is_loopback

__all__ = ["DASHBOARD_SETTINGS", "companions"]

#: the dashboard's own settings a companion takes from the application or the environment
DASHBOARD_SETTINGS = (
    "dashboard_attach",
    "dashboard_interval",
    "dashboard_task_backend",
    "dashboard_token",
)
#: global settings never copied to a companion (the arbiter's business, or its own)
_NOT_COPIED = frozenset({"config", "dashboard", "metrics"})


def companions(
    setting: str, address: str, *, apps: Sequence[Any], label: str
) -> list[DashboardServer]:
    """The application serving ``setting`` (``"dashboard"`` or ``"metrics"``) at ``address``
    beside ``apps``, in their arbiter.

    Raises:
        pulsar.ConfigError: a second dashboard (``--dashboard`` on a ``DashboardServer``), a
            non-loopback ``address`` without a token, a bad ``PULSAR_DASHBOARD_*`` value.
    """
    if setting not in ("dashboard", "metrics"):
        raise pulsar.ConfigError(f"{label}: pulsar-dashboard serves dashboard and metrics only")
    hosts = [a for a in apps if isinstance(a, DashboardServer)]
    metrics_only = setting == "metrics"
    if not metrics_only and any(not _metrics_only(a) for a in hosts):
        raise pulsar.ConfigError(
            f"{label}: this application is a dashboard already (one dashboard per arbiter; "
            "--metrics ADDRESS adds a /metrics exporter)"
        )
    params = _global_params(apps)
    params.update(_dashboard_params(hosts[0].cfg if hosts else None))
    if not is_loopback(address) and not params.get("dashboard_token"):
        what = (
            "read your application's metrics"
            if metrics_only
            else "stop your workers and read your tasks"
        )
        raise pulsar.ConfigError(
            f"{label}: refusing to listen on {address} without a token: anyone who reaches it "
            f"could {what}. Set PULSAR_DASHBOARD_TOKEN, or use a 127.0.0.1 address"
        )
    server = DashboardServer(
        Dashboard(metrics_only=metrics_only), name=setting, bind=[address], **params
    )
    return [server]


def _metrics_only(app: Any) -> bool:
    callable_ = getattr(app, "wsgi_callable", None)
    return isinstance(callable_, Dashboard) and callable_.metrics_only


def _global_params(apps: Sequence[Any]) -> dict[str, Any]:
    """The global settings the user set on the applications (the first one that set each)."""
    known = pulsar.Config(apps=DashboardServer.cfg_apps).settings
    params: dict[str, Any] = {}
    for app in apps:
        for name, setting in app.cfg.settings.items():
            if (
                type(setting).is_global
                and setting.source != "default"
                and name in known
                and name not in _NOT_COPIED
                and name not in DASHBOARD_SETTINGS
            ):
                params.setdefault(name, setting.value)
    return params


def _dashboard_params(host: pulsar.Config | None) -> dict[str, Any]:
    """The dashboard settings: a host dashboard's when there is one, else the environment's
    ``PULSAR_DASHBOARD_*`` variables (checked here, with the variable named in the error)."""
    params: dict[str, Any] = {}
    if host is not None:
        for name in DASHBOARD_SETTINGS:
            if host.settings[name].source != "default":
                params[name] = host.get(name)
        return params
    scratch = pulsar.Config(apps=("dashboard",))
    for name in DASHBOARD_SETTINGS:
        if name == "dashboard_attach":  # beside an application: it shows that application
            continue
        setting = scratch.settings[name]
        env = setting.env_var()
        if env is not None and env in os.environ:
            setting.set(os.environ[env], source="env", label=env)
            params[name] = setting.value
    return params
