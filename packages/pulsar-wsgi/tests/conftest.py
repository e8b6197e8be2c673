from __future__ import annotations

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # the helper module, importable by name
    sys.path.insert(0, HERE)


@pytest.fixture(params=[0, 4], ids=["inline", "threads"])
def thread_workers(request: pytest.FixtureRequest) -> int:
    """Both ways of running the WSGI callable: on the loop (0) and in a thread pool."""
    return int(request.param)
