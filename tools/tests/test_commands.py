"""Checks over every package's command line and sources (the commands run for real)."""

from __future__ import annotations

import ast
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

#: flags of the server settings (app "socket"): only servers list them
SERVER_FLAGS = ("--bind", "--cert-file", "--keep-alive", "--access-log", "--max-requests")


def _help(*command: str) -> str:
    result = subprocess.run(
        [str(BIN / command[0]), *command[1:], "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _flags(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text))


@pytest.mark.parametrize("command", [("pulsar-tasks", "worker"), ("pulsar-shell",)])
def test_help_lists_no_server_settings(command: tuple[str, ...]) -> None:
    flags = _flags(_help(*command))
    assert "--workers" in flags or "--imports" in flags
    assert not flags & set(SERVER_FLAGS), flags & set(SERVER_FLAGS)


def test_servers_list_the_server_settings() -> None:
    flags = _flags(_help("pulsar-wsgi"))
    assert set(SERVER_FLAGS) <= flags
    assert "--preload" in flags and "--error-logfile" in flags and "--access-logfile" in flags


def _all_settings() -> list[type]:
    import importlib

    for module in ("wsgi", "rpc", "tasks", "shell"):
        importlib.import_module(f"pulsar.apps.{module}")
    from pulsar import Setting

    seen: list[type] = []
    stack = list(Setting.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.__dict__.get("name"):
            seen.append(cls)
    return seen


@pytest.mark.parametrize("prefix", [None, "tasks"])
def test_flags_and_environment_variables_line_up(prefix: str | None) -> None:
    settings = _all_settings()
    assert len(settings) > 40
    for cls in settings:
        flags = cls.flags_for(prefix)  # type: ignore[attr-defined]
        env = cls.env_var(prefix)  # type: ignore[attr-defined]
        if not flags:
            assert env is None, cls
            continue
        first = next(flag for flag in flags if flag.startswith("--"))
        assert env == "PULSAR_" + first[2:].replace("-", "_").upper(), (cls, flags, env)


def test_tasks_queues_flag_and_environment() -> None:
    from pulsar import Config
    from pulsar.apps import tasks  # noqa: F401  (registers the tasks settings)

    cfg = Config(apps=("tasks",), prefix="tasks")
    queues = cfg.settings["task_queues"]
    assert queues.flags_for("tasks") == ("--tasks-queues",)
    assert queues.env_var("tasks") == "PULSAR_TASKS_QUEUES"


# -- private imports across packages ------------------------------------------------------------


def _package_of(path: Path) -> str:
    return path.relative_to(REPO / "packages").parts[0]


#: the import package (``pulsar.apps.wsgi``) -> the distribution folder shipping it
def _owners() -> dict[str, str]:
    owners: dict[str, str] = {"pulsar": "pulsar-core"}
    for dist in (REPO / "packages").iterdir():
        apps = dist / "src" / "pulsar" / "apps"
        if apps.is_dir():
            for app in apps.iterdir():
                if app.is_dir() and not app.name.startswith(("_", ".")):
                    owners[f"pulsar.apps.{app.name}"] = dist.name
    return owners


def _private_imports(path: Path) -> list[str]:
    """The ``pulsar...`` modules (or names) imported by ``path`` whose dotted path has a part
    starting with ``_`` after the package that ships it."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
            found += [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Attribute):  # pulsar._arbiter._arbiter = None
            parts = [node.attr]
            value = node.value
            while isinstance(value, ast.Attribute):
                parts.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id == "pulsar":
                found.append(".".join(["pulsar", *reversed(parts)]))
    return [name for name in found if name.startswith("pulsar")]


def _owner(module: str, owners: dict[str, str]) -> tuple[str, str] | None:
    best = max((p for p in owners if module == p or module.startswith(p + ".")), key=len)
    return (best, owners[best]) if best else None


def test_no_package_imports_a_private_module_of_another() -> None:
    owners = _owners()
    offences: list[str] = []
    for path in sorted((REPO / "packages").glob("*/src/**/*.py")):
        dist = _package_of(path)
        for module in _private_imports(path):
            owner = _owner(module, owners)
            if owner is None or owner[1] == dist:
                continue
            rest = module[len(owner[0]) :].lstrip(".").split(".")
            if any(part.startswith("_") and part != "__version__" for part in rest if part):
                offences.append(f"{path.relative_to(REPO)}: {module}")
    assert offences == [], "\n".join(offences)


def test_the_private_import_check_catches_one(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from pulsar._config import Config\nimport pulsar._loop\nfrom pulsar import x\n"
        "pulsar._arbiter._arbiter = None\n"
    )
    owners = _owners()
    private = sorted({m for m in _private_imports(sample) if "._" in m})
    assert private == [
        "pulsar._arbiter",
        "pulsar._arbiter._arbiter",
        "pulsar._config",
        "pulsar._config.Config",
        "pulsar._loop",
    ]
    assert _owner("pulsar._config", owners) == ("pulsar", "pulsar-core")
    assert _owner("pulsar.apps.wsgi._server", owners) == ("pulsar.apps.wsgi", "pulsar-wsgi")


# -- each default lives only in its Setting ------------------------------------------------------

_RESTATED = re.compile(
    r"cfg\.get\(\s*\"[a-z_]+\"\s*\)\s+or\s+[-0-9\"'\[(]"  # cfg.get("x") or 10
    r"|cfg\.get\(\s*\"[a-z_]+\"\s*,\s*[^)\s]"  # cfg.get("x", 30)
)


def test_no_code_restates_a_settings_default() -> None:
    offences = []
    for path in sorted((REPO / "packages").glob("*/src/**/*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if _RESTATED.search(line):
                offences.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert offences == [], "\n".join(offences)


def test_the_restated_default_check_catches_them() -> None:
    for line in ('self.cfg.get("graceful_timeout") or 10', 'cfg.get("graceful_timeout", 30)'):
        assert _RESTATED.search(line), line
    assert not _RESTATED.search("cfg.view(ActorOptions).graceful_timeout")


# -- every launcher finds the modules of the current folder --------------------------------------


def test_tasks_worker_imports_modules_of_the_current_folder(tmp_path: Path) -> None:
    (tmp_path / "jobs.py").write_text(
        "from pulsar.apps import tasks\n\n\n@tasks.job()\ndef add(a, b):\n    return a + b\n"
    )
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                *(str(BIN / "pulsar-tasks"), "worker", "--modules", "jobs", "--workers", "1"),
                *("--backend", f"sqlite:///{tmp_path}/tasks.db"),
            ],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while "started (pid" not in log.read_text():
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, log.read_text()
    assert "No module named 'jobs'" not in log.read_text()
