"""Tests of pulsar._companions: the ``dashboard`` / ``metrics`` settings find the application
serving them through an entry point (a real distribution's metadata on ``sys.path``; the one
pulsar-dashboard declares is tested in its own package)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import pulsar
from pulsar._companions import COMPANIONS, GROUP, find_companions, load_factory
from pulsar.apps.socket import SocketServer

TEST_GROUP = "pulsar.companions.tests"

FACTORY = """
import pulsar
from pulsar.apps.socket import SocketServer

CALLS = []


def companions(setting, address, *, apps, label):
    CALLS.append((setting, address, [a.name for a in apps], label))
    if address.endswith(":1"):
        raise pulsar.ConfigError(f"{label}: refused")
    name = "web" if address.endswith(":2") else f"the-{setting}"
    return [SocketServer(callable=object, name=name, bind=address)]
"""


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A distribution ``fake-companions`` declaring ``dashboard`` in :data:`TEST_GROUP` (and a
    broken ``broken``): its module and its ``.dist-info`` in a folder on ``sys.path``."""
    module = f"fake_companions_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(FACTORY)
    info = tmp_path / "fake_companions-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-companions\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        textwrap.dedent(
            f"""
            [{TEST_GROUP}]
            dashboard = {module}:companions
            broken = {module}_missing:companions
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield __import__(module)
    sys.modules.pop(module, None)


def server(**params: Any) -> SocketServer:
    return SocketServer(callable=object, name="web", **params)


def test_every_companion_setting_is_declared_and_global() -> None:
    cfg = pulsar.Config()
    for companion in COMPANIONS:
        setting = cfg.settings[companion.setting]
        assert setting.is_global and setting.value is None
    assert GROUP == "pulsar.companions"


def test_nothing_asked_nothing_looked_up() -> None:
    assert find_companions([server()], group="pulsar.companions.absent") == {}


def test_a_missing_package_is_a_config_error_naming_it() -> None:
    with pytest.raises(pulsar.ConfigError) as info:
        find_companions([server(dashboard=True)], group="pulsar.companions.absent")
    assert str(info.value) == (
        "dashboard needs pulsar-dashboard, which is not installed: pip install pulsar-dashboard"
    )
    with pytest.raises(pulsar.ConfigError, match=r"^--metrics needs pulsar-dashboard"):
        load_factory(
            "dashboard", distribution="pulsar-dashboard", label="--metrics", group="nope.nope"
        )


def test_the_factory_is_called_with_the_setting_the_address_the_apps(installed: Any) -> None:
    web = server()
    web.cfg.load(["--dashboard", "--metrics", "127.0.0.1:9999"], {})
    found = find_companions([web], group=TEST_GROUP)
    assert [a.name for a in found["dashboard"]] == ["the-dashboard"]
    assert [a.name for a in found["metrics"]] == ["the-metrics"]
    assert installed.CALLS == [
        ("dashboard", "127.0.0.1:8070", ["web"], "--dashboard"),
        ("metrics", "127.0.0.1:9999", ["web"], "--metrics"),
    ]


def test_set_on_one_application_it_applies_once(installed: Any) -> None:
    apps = [server(), SocketServer(callable=object, name="rpc", dashboard="127.0.0.1:7000")]
    found = find_companions(apps, group=TEST_GROUP)
    assert [a.name for a in found["dashboard"]] == ["the-dashboard"]
    assert installed.CALLS == [("dashboard", "127.0.0.1:7000", ["web", "rpc"], "dashboard")]


def test_an_arbiter_runs_each_companion_once(installed: Any) -> None:
    running = {"dashboard": []}
    assert find_companions([server(dashboard=True)], running=running, group=TEST_GROUP) == {}
    assert installed.CALLS == []


def test_different_addresses_are_refused() -> None:
    apps = [server(dashboard="127.0.0.1:1"), SocketServer(name="b", dashboard="127.0.0.1:2")]
    with pytest.raises(pulsar.ConfigError, match=r"different addresses .*one runs per arbiter"):
        find_companions(apps, group="pulsar.companions.absent")  # before any lookup


def test_the_factory_errors_and_name_clashes(installed: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("PULSAR_DASHBOARD", "127.0.0.1:1")
    web = server()
    web.cfg.load([], None)
    with pytest.raises(pulsar.ConfigError, match=r"^PULSAR_DASHBOARD: refused$"):
        find_companions([web], group=TEST_GROUP)
    with pytest.raises(pulsar.ConfigError, match=r"named 'web', like one of yours"):
        find_companions([server(dashboard="127.0.0.1:2")], group=TEST_GROUP)


def test_a_broken_entry_point_is_a_config_error(installed: Any) -> None:
    with pytest.raises(pulsar.ConfigError, match=r"dashboard: cannot load .*_missing:companions"):
        load_factory("broken", distribution="x", label="dashboard", group=TEST_GROUP)
