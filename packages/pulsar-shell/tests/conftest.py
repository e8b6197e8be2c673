"""Fixtures of pulsar-shell's tests: a shell in a real pseudo-terminal, a running application."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # shell_helpers: importable by the tests and by actors
    sys.path.insert(0, str(HERE))
TIMEOUT = 30  # generous: a slow machine only makes the tests slower, never flaky


class Shell:
    """A ``pulsar-shell`` process driven through a pseudo-terminal."""

    PROMPT = ">>> "

    def __init__(self, child: pexpect.spawn) -> None:
        self.child = child
        self.synced = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.child, name)

    def prompt(self) -> str:
        """Wait for the next prompt; return what was printed before it."""
        self.child.expect_exact(self.PROMPT)
        return str(self.child.before)

    def run(self, line: str) -> str:
        """Send one line, wait for the next prompt; return the output (without the echo)."""
        self.child.sendline(line)
        out = self.prompt()
        return out.replace("\r\n", "\n").split("\n", 1)[-1] if "\n" in out else out

    def sync(self) -> None:
        """Wait until every line sent so far ran (after multi-line blocks and their prompts)."""
        self.synced += 1
        self.child.sendline(f"print('sync', {self.synced})")
        self.child.expect_exact(f"sync {self.synced}")
        self.prompt()

    def wait_exit(self) -> int:
        """Wait for the process to end; its exit status."""
        self.child.expect(pexpect.EOF)
        self.child.close()
        return int(self.child.exitstatus if self.child.exitstatus is not None else -1)


@pytest.fixture
def shell_env(tmp_path: Path) -> dict[str, str]:
    """An environment isolated from the user's history, inputrc and data dir."""
    inputrc = tmp_path / "inputrc"
    inputrc.write_text("set enable-bracketed-paste off\nset bell-style none\n")
    env = dict(os.environ)
    env.update(
        {
            "XDG_DATA_HOME": str(tmp_path / "data"),
            "INPUTRC": str(inputrc),
            "TERM": "xterm",
            "PYTHONPATH": os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]).rstrip(
                os.pathsep
            ),
        }
    )
    for key in list(env):
        if key.startswith("PULSAR_"):
            del env[key]
    return env


@pytest.fixture
def start_shell(shell_env: dict[str, str]) -> Iterator[Any]:
    """``start_shell(*args)``: a running shell (waits for the first prompt unless told not to)."""
    shells: list[Shell] = []

    def start(*args: str, wait: bool = True, env: dict[str, str] | None = None) -> Shell:
        child = pexpect.spawn(
            sys.executable,
            ["-m", "pulsar.apps.shell", *args],
            env=env or shell_env,
            encoding="utf-8",
            timeout=TIMEOUT,
            dimensions=(40, 200),
        )
        shell = Shell(child)
        shells.append(shell)
        if wait:
            shell.prompt()
        return shell

    yield start
    for shell in shells:
        if shell.child.isalive():
            shell.child.terminate(force=True)


@pytest.fixture
def running_app(tmp_path: Path, shell_env: dict[str, str]) -> Iterator[dict[str, Any]]:
    """A pulsar application with two workers, running in its own process."""
    pidfile = tmp_path / "app.pid"
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "scripts" / "app.py"), "--pidfile", str(pidfile)],
        stdout=subprocess.PIPE,
        env=shell_env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("READY "), f"the application did not start: {line!r}"
        _, address, *pids = line.split()
        yield {
            "proc": proc,
            "address": address,
            "pidfile": str(pidfile),
            "worker_pids": [int(p) for p in pids],
        }
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:  # pragma: no cover
                proc.kill()
                proc.wait()
