"""pulsar-test's own tests drive pytest with ``pytester`` (a pytest run inside the test)."""

from __future__ import annotations

pytest_plugins = ["pytester"]
