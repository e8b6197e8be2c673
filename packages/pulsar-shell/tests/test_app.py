"""PulsarShell as an application: public surface, settings, command line (no process)."""

from __future__ import annotations

import pytest

import pulsar
from pulsar.apps import shell
from pulsar.apps.shell._app import split_script_argv
from pulsar.apps.shell._settings import default_history_file, validate_modules


def test_public_surface() -> None:
    assert sorted(shell.__all__) == sorted(
        [
            "__version__",
            "AsyncConsole",
            "AttachError",
            "Guest",
            "PulsarShell",
            "RemoteActor",
            "main",
        ]
    )
    for name in shell.__all__:
        assert getattr(shell, name) is not None
    assert issubclass(shell.PulsarShell, pulsar.Application)
    assert issubclass(shell.AttachError, pulsar.PulsarError)


def test_settings_and_defaults() -> None:
    app = shell.PulsarShell(imports="json, xml.dom", history_length=10)
    assert app.cfg.imports == ["json", "xml.dom"]
    assert app.cfg.history_length == 10
    assert app.cfg.workers == 0 and app.cfg.attach is None
    with pytest.raises(pulsar.ConfigError, match="history_length"):
        shell.PulsarShell(history_length=-1)
    with pytest.raises(ValueError, match="not a module name"):
        validate_modules("json,not a module")


def test_default_history_file(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_history_file() == str(tmp_path / "pulsar" / "shell_history")
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_history_file().endswith(".local/share/pulsar/shell_history")


def test_command_line_script_and_its_arguments() -> None:
    app = shell.PulsarShell()
    app.load_config(["--io", "asyncio", "--imports", "json", "run.py", "-x", "--io", "y"], {})
    assert (app.cfg.io, app.cfg.imports) == ("asyncio", ["json"])
    assert (app.script, app.script_args) == ("run.py", ["-x", "--io", "y"])
    parser = app.cfg.parser()
    assert split_script_argv(parser, ["--debug", "s.py"]) == (["--debug", "s.py"], [])
    assert split_script_argv(parser, ["--io", "uvloop"]) == (["--io", "uvloop"], None)
    assert split_script_argv(parser, ["--", "-odd.py", "a"]) == (["--", "-odd.py"], ["a"])


def test_a_multiapp_can_include_the_shell() -> None:
    class Site(pulsar.MultiApp):
        def build(self):
            yield self.new_app(shell.PulsarShell, "shell", imports="json")

    apps = Site().apps()
    assert isinstance(apps[0], shell.PulsarShell)
    assert apps[0].cfg.prefix == "shell" and apps[0].cfg.imports == ["json"]
