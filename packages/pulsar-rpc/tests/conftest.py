"""Fixtures of the pulsar-rpc tests; the helpers live in ``rpc_helpers``."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import rpc_helpers as h  # noqa: E402

from pulsar.apps import rpc  # noqa: E402


@pytest.fixture
def root() -> Iterator[rpc.JSONRPC]:
    """A PulsarServerCommands handler with a ``calc`` Calculator, 2 s per call."""
    handler = h.make_root(timeout=2)
    yield handler
    handler.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[..., Any]], str]]:
    """``serve(app)`` -> the URL of a real HTTP server running ``app`` (stopped afterwards)."""
    stops: list[Callable[[], None]] = []

    def start(app: Callable[..., Any]) -> str:
        url, stop = h.serve(app)
        stops.append(stop)
        return url

    yield start
    for stop in reversed(stops):
        stop()
