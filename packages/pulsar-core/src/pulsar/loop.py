"""Event loops: the ``io`` setting's choices and the loop pulsar runs on (asyncio, or uvloop
when installed and selected)."""

from __future__ import annotations

from ._loop import IO_CHOICES, loop_name, new_event_loop, resolve_io, uvloop_available

__all__ = ["IO_CHOICES", "loop_name", "new_event_loop", "resolve_io", "uvloop_available"]
