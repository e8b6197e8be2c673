"""The import package exists at its documented path and reports the shared version."""

from __future__ import annotations

import importlib
from importlib.metadata import version
from pathlib import Path

import pulsar


def test_import_path_and_version() -> None:
    mod = importlib.import_module("pulsar.apps.tasks")
    assert mod.__version__ == pulsar.__version__ == version("pulsar-tasks")
    assert Path(mod.__file__).parent.name == "tasks"
    assert Path(mod.__file__).parent.parent.name == "apps"


def test_namespace_rule() -> None:
    # pulsar.apps is an implicit namespace package: no distribution ships its __init__.py
    import pulsar.apps

    assert getattr(pulsar.apps, "__file__", None) is None


def test_rpc_is_an_extra_and_importing_tasks_brings_no_http_stack() -> None:
    """``pip install pulsar-tasks`` needs only pulsar-core and croniter; pulsar-rpc (with
    pulsar-wsgi, httptools, httpx) comes with the ``rpc`` extra, and nothing imports it."""
    import subprocess
    import sys
    import tomllib

    pyproject = Path(__file__).parent.parent / "pyproject.toml"
    project = tomllib.loads(pyproject.read_text())["project"]
    names = [d.split("=")[0].split(">")[0].strip() for d in project["dependencies"]]
    assert names == ["pulsar-core", "croniter"]
    assert project["optional-dependencies"]["rpc"] == ["pulsar-rpc==0.1.0"]
    code = (
        "import sys; import pulsar.apps.tasks as t; t.TaskQueue; t.TaskQueueRpc; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('httpx', 'httptools', "
        "'redis') or m.startswith(('pulsar.apps.rpc', 'pulsar.apps.wsgi'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout
