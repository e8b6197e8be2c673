from __future__ import annotations

from importlib.metadata import version

import pulsar


def test_version_matches_metadata() -> None:
    assert pulsar.__version__ == version("pulsar-core")
