"""pulsar-dashboard: a live web dashboard and Prometheus metrics for pulsar applications.

``pulsar-dashboard --attach app.pid`` (or :class:`DashboardServer`) serves, on 127.0.0.1:8070,
the actor tree of a running application, its servers' counters, its tasks when pulsar-tasks is
installed, and ``/metrics``. :class:`Dashboard` is the WSGI application, :class:`Source` what
it reads (a guest connection to the arbiter), :class:`SnapshotCollector` the Prometheus
collector.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import _settings  # registers the dashboard settings
from ._app import Dashboard
from ._metrics import SnapshotCollector, render_metrics
from ._server import DashboardServer, check_config, is_loopback, main
from ._source import AttachError, Source

try:
    __version__ = version("pulsar-dashboard")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    import pulsar

    __version__ = pulsar.__version__

del _settings

__all__ = [
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
]
