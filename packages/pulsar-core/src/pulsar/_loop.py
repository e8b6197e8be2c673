"""Event loop selection: asyncio, with uvloop when installed and asked for.

The ``io`` setting chooses: ``auto`` (uvloop when importable, else asyncio), ``asyncio`` or
``uvloop`` (an error when uvloop is not installed). Pulsar never runs a home-made loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ._exceptions import ConfigError

__all__ = ["IO_CHOICES", "loop_name", "new_event_loop", "resolve_io", "uvloop_available"]

IO_CHOICES = ("auto", "asyncio", "uvloop")


def uvloop_available() -> bool:
    """True when uvloop can be imported on this platform."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_io(io: str = "auto") -> str:
    """Return the concrete loop kind (``asyncio`` or ``uvloop``) for an ``io`` setting value."""
    io = (io or "auto").lower()
    if io not in IO_CHOICES:
        raise ConfigError(
            f"io: invalid value {io!r} (expected one of {', '.join(IO_CHOICES)})", "io"
        )
    if io == "auto":
        return "uvloop" if uvloop_available() else "asyncio"
    if io == "uvloop" and not uvloop_available():
        raise ConfigError(
            "io: uvloop requested but not installed (pip install pulsar-core[uvloop])", "io"
        )
    return io


def new_event_loop(io: str = "auto") -> asyncio.AbstractEventLoop:
    """Create a new event loop of the kind chosen by ``io`` (``auto|asyncio|uvloop``)."""
    if resolve_io(io) == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def loop_name(loop: Any) -> str:
    """A short name of the loop implementation (``asyncio`` or ``uvloop``)."""
    module = type(loop).__module__
    return "uvloop" if module.startswith("uvloop") else "asyncio"
