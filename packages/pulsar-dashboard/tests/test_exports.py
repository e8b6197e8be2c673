"""The public surface of pulsar.apps.dashboard is pinned."""

from __future__ import annotations

import pkgutil

from pulsar.apps import dashboard

EXPECTED = {
    "__version__",
    "AttachError",
    "Dashboard",
    "DashboardServer",
    "SnapshotCollector",
    "Source",
    "check_config",
    "is_loopback",
    "main",
    "render_metrics",
}


def test_public_names() -> None:
    assert set(dashboard.__all__) == EXPECTED
    assert len(dashboard.__all__) == len(EXPECTED)
    for name in dashboard.__all__:
        assert hasattr(dashboard, name), name


def test_one_base_error() -> None:
    import pulsar

    assert issubclass(dashboard.AttachError, pulsar.PulsarError)


def test_private_modules() -> None:
    names = [m.name for m in pkgutil.iter_modules(dashboard.__path__)]
    assert names and all(n.startswith("_") for n in names)


def test_settings_registered() -> None:
    import pulsar

    cfg = pulsar.Config(apps=("dashboard",))
    for name in (
        "dashboard_attach",
        "dashboard_token",
        "dashboard_task_backend",
        "dashboard_interval",
        "bind",
        "thread_workers",
    ):
        assert name in cfg.settings
    assert cfg.settings["dashboard_token"].env_var() == "PULSAR_DASHBOARD_TOKEN"


def test_tasks_not_imported_by_the_dashboard() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from pulsar.apps import dashboard; "
        "from pulsar.apps.dashboard import _app, _source, _metrics, _views, _server; "
        "sys.exit(1 if 'pulsar.apps.tasks' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
