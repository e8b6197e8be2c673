"""The import package exists at its documented path and reports the shared version."""

from __future__ import annotations

import importlib
from importlib.metadata import requires, version
from pathlib import Path

import pulsar


def test_import_path_and_version() -> None:
    mod = importlib.import_module("pulsar.apps.dashboard")
    assert mod.__version__ == pulsar.__version__ == version("pulsar-dashboard")
    assert Path(mod.__file__).parent.name == "dashboard"
    assert Path(mod.__file__).parent.parent.name == "apps"


def test_namespace_rule() -> None:
    import pulsar.apps

    assert getattr(pulsar.apps, "__file__", None) is None


def test_dependencies() -> None:
    reqs = requires("pulsar-dashboard") or []
    names = {
        r.split(";")[0].split("=")[0].split(">")[0].strip().lower().replace("_", "-") for r in reqs
    }
    assert {"pulsar-core", "pulsar-wsgi", "prometheus-client"} <= names
    tasks = [r for r in reqs if r.startswith("pulsar-tasks")]
    assert tasks and all(r.replace("'", '"').endswith('extra == "tasks"') for r in tasks)
