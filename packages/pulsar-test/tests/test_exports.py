"""The public surface of pulsar.apps.test, pinned."""

from __future__ import annotations

import pulsar.apps.test as pt
import pulsar.apps.test.plugin as plugin


def test_public_names() -> None:
    assert sorted(pt.__all__) == sorted(
        [
            "__version__",
            "format_task_stacks",
            "format_thread_stacks",
            "start_server",
            "unused_tcp_port",
        ]
    )
    for name in pt.__all__:
        assert getattr(pt, name) is not None


def test_plugin_module_names() -> None:
    assert sorted(plugin.__all__) == sorted(
        [
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
    )


def test_plugin_is_registered_as_pulsar(pytestconfig) -> None:
    assert pytestconfig.pluginmanager.get_plugin("pulsar") is plugin
