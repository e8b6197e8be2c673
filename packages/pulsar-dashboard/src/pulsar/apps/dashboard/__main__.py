"""``python -m pulsar.apps.dashboard --attach PIDFILE [options]``."""

from __future__ import annotations

from ._server import main

__all__: list[str] = []

if __name__ == "__main__":
    main()
