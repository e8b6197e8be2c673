from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
# helper modules importable by name in spawn/forkserver children
if HERE not in sys.path:
    sys.path.insert(0, HERE)


def _stray_children() -> list[str]:
    import psutil

    out = []
    for child in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(child.cmdline())
            if "multiprocessing.forkserver" in cmd or "resource_tracker" in cmd:
                continue
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            out.append(f"{child.pid} {cmd}")
        except psutil.Error:
            continue
    return out


@pytest.fixture(autouse=True)
def no_orphans() -> Iterator[None]:
    """Every test of pulsar-core leaves no child process behind."""
    yield
    import core_helpers

    core_helpers.kill_running()
    stray = _stray_children()
    assert not stray, f"child processes left behind: {stray}"
