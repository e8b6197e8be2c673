"""The settings of ``pulsar-shell`` (``app = "shell"``), declared once like the core ones.

Every core setting works on the shell's command line too (``--io asyncio``, ``--log-level``...).
"""

from __future__ import annotations

import os
from typing import Any

import pulsar  # noqa: F401 - the core settings register first (--help, docs order)
from pulsar import Setting
from pulsar.validators import validate_non_negative_int, validate_path_or_none

__all__ = [
    "SHELL",
    "Attach",
    "HistoryFile",
    "HistoryLength",
    "Imports",
    "default_history_file",
    "validate_non_negative_int",
    "validate_modules",
    "validate_path_or_none",
]

SHELL = "Shell"


def validate_modules(value: Any) -> list[str]:
    """Module names: a comma-separated string or a list of strings (``None`` is empty)."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise ValueError("expected module names separated by commas")
    names: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError("expected module names separated by commas")
        for name in (part.strip() for part in item.split(",")):
            if not name:
                continue
            if not all(part.isidentifier() for part in name.split(".")):
                raise ValueError(f"{name!r} is not a module name")
            names.append(name)
    return names


def default_history_file() -> str:
    """``$XDG_DATA_HOME/pulsar/shell_history`` (``~/.local/share/pulsar/shell_history``)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return os.path.join(base, "pulsar", "shell_history")


class Imports(Setting):
    name = "imports"
    app = "shell"
    section = SHELL
    flags = ["--imports"]
    meta = "MODULES"
    default = ()
    validator = validate_modules
    desc = "Modules imported into the shell's namespace at start (comma-separated)."
    doc = """
        `--imports myapp.tasks,json` runs `import myapp.tasks` and `import json` on the
        arbiter's loop before the first prompt (or the script), binding the top-level names
        (`myapp`, `json`). A module that fails to import is reported and skipped. Put the
        functions you send to other actors (`await send(aid, 'run', fn)`) in such a module:
        functions defined at the prompt cannot be pickled by reference.
        """


class HistoryFile(Setting):
    name = "history_file"
    app = "shell"
    section = SHELL
    flags = ["--history-file"]
    meta = "FILE"
    validator = validate_path_or_none
    default_doc = "$XDG_DATA_HOME/pulsar/shell_history"
    desc = "Where the shell keeps its line history between sessions."
    doc = """
        When unset, `$XDG_DATA_HOME/pulsar/shell_history`, or
        `~/.local/share/pulsar/shell_history` when `XDG_DATA_HOME` is not set. The directory is
        created (mode 0700) when missing.
        """


class HistoryLength(Setting):
    name = "history_length"
    app = "shell"
    section = SHELL
    flags = ["--history-length"]
    meta = "INT"
    default = 1000
    validator = validate_non_negative_int
    desc = "Lines of history kept in the history file; 0 keeps no history file."


class Attach(Setting):
    name = "attach"
    app = "shell"
    section = SHELL
    flags = ["--attach"]
    meta = "PIDFILE|SOCKET"
    validator = validate_path_or_none
    desc = "Attach to a running application (its pid file or mailbox socket) as a guest."
    doc = """
        Instead of starting an arbiter, connect to the mailbox of one already running: give
        the `--pidfile` of that application (the shell reads the socket path from
        `<pidfile>.mailbox`) or the socket path itself (`arbiter.address`). The per-arbiter
        secret is read from the file `secret` next to the socket, which only the user who
        started the application can read. `send` in the shell's namespace then talks to that
        arbiter: `await send('arbiter', 'info')`, `await send('arbiter', 'spawn', ...)`,
        `await send('arbiter', 'kill_actor', aid)`, `await send(aid, 'run', fn)`.
        """
