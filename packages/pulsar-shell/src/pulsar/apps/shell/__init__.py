"""pulsar.apps.shell — an asynchronous Python console on a live pulsar arbiter (POSIX).

``pulsar-shell`` (or ``python -m pulsar.apps.shell``) starts an arbiter and an interactive console
whose top-level ``await`` runs on the arbiter's loop; ``pulsar-shell --attach PIDFILE`` opens the
same console on an application already running; ``pulsar-shell script.py`` runs an asynchronous
script. See the package README.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pulsar-shell")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    import pulsar

    __version__ = pulsar.__version__

from ._app import PulsarShell, main
from ._console import AsyncConsole
from ._remote import AttachError, Guest, RemoteActor

__all__ = [
    "__version__",
    "AsyncConsole",
    "AttachError",
    "Guest",
    "PulsarShell",
    "RemoteActor",
    "main",
]
