"""pulsar.apps.wsgi — see the package README."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pulsar-wsgi")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    import pulsar

    __version__ = pulsar.__version__

__all__ = ["__version__"]
