"""pulsar.apps.test: the pytest plugin of pulsar and the helpers it ships — see the README.

The plugin itself is :mod:`pulsar.apps.test.plugin`, enabled by installing the package. This
module re-exports the helpers tests may call directly.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from ._fixtures import start_server
from ._ports import unused_tcp_port
from ._stacks import format_task_stacks, format_thread_stacks

try:
    __version__ = version("pulsar-test")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    import pulsar

    __version__ = pulsar.__version__

__all__ = [
    "__version__",
    "format_task_stacks",
    "format_thread_stacks",
    "start_server",
    "unused_tcp_port",
]
