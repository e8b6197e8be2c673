"""The pytest plugin module of pulsar-test, registered under the entry point name ``pulsar``.

Nothing to import by hand: installing pulsar-test enables it (disable it with ``-p no:pulsar``).
The implementation lives in :mod:`pulsar.apps.test._plugin`; see the package README.
"""

from __future__ import annotations

from ._fixtures import arbiter, run_server, spawn
from ._plugin import (
    pulsar_loop,
    pytest_addoption,
    pytest_configure,
    pytest_unconfigure,
    unused_tcp_port,
    unused_tcp_port_factory,
)

__all__ = [
    "arbiter",
    "pulsar_loop",
    "run_server",
    "spawn",
    "pytest_addoption",
    "pytest_configure",
    "pytest_unconfigure",
    "unused_tcp_port",
    "unused_tcp_port_factory",
]
