"""The import package exists at its documented path and reports the shared version."""

from __future__ import annotations

import importlib
from importlib.metadata import version
from pathlib import Path

import pulsar


def test_import_path_and_version() -> None:
    mod = importlib.import_module("pulsar.apps.test")
    assert mod.__version__ == pulsar.__version__ == version("pulsar-test")
    assert Path(mod.__file__).parent.name == "test"
    assert Path(mod.__file__).parent.parent.name == "apps"


def test_namespace_rule() -> None:
    # pulsar.apps is an implicit namespace package: no distribution ships its __init__.py
    import pulsar.apps

    assert getattr(pulsar.apps, "__file__", None) is None
