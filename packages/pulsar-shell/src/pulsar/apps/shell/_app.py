"""``PulsarShell``: the shell as a pulsar :class:`~pulsar.Application`.

How it works
------------
The shell always runs inside the arbiter (``workers=0``): its ``worker_start`` hook runs on the
arbiter's loop once the arbiter runs, builds the namespace, imports ``--imports`` and starts
either the interactive console (:mod:`._console`; the arbiter's SIGINT is rerouted to it) or the
script (:mod:`._script`). Leaving the console or the end of the script stops the arbiter with the
exit status; ``worker_stopping`` closes the console, saves the history and restores the terminal.

With ``--attach`` no arbiter starts: the same console (or script) runs on a plain event loop of
the selected kind and talks to the running arbiter through a :class:`~._remote.Guest` connection.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import pulsar
from pulsar import ActorState, Application, ConfigError, ExitCode, get_arbiter
from pulsar.options import ActorOptions

from . import _settings
from ._console import AsyncConsole, format_exception
from ._remote import AttachError, Guest, find_mailbox, read_secret
from ._script import run_script

__all__ = ["PulsarShell", "import_modules", "loop_name", "main", "split_script_argv"]

#: the names every shell starts with, in the order the banner lists them
SCOPE_NAMES = ("pulsar", "arbiter", "spawn", "send", "get_actor", "asyncio")


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: the implementation of ``loop``."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def import_modules(names: Sequence[str], scope: dict[str, Any]) -> list[str]:
    """``import name`` for each of ``names`` into ``scope``; returns the names bound.

    A module that fails to import is reported on stderr (with its traceback's last line) and
    skipped: the shell still starts.
    """
    bound: list[str] = []
    for name in names:
        try:
            importlib.import_module(name)
        except BaseException as exc:
            if not isinstance(exc, Exception | SystemExit):
                raise
            last = format_exception(exc).strip().splitlines()[-1]
            print(f"pulsar-shell: cannot import {name}: {last}", file=sys.stderr)
            continue
        top = name.partition(".")[0]
        scope[top] = sys.modules[top]
        if top not in bound:
            bound.append(top)
    return bound


def split_script_argv(
    parser: argparse.ArgumentParser, argv: Sequence[str]
) -> tuple[list[str], list[str] | None]:
    """Split ``argv`` after the script name: ``(shell arguments + script, script arguments)``.

    The script is the first argument that is neither an option nor an option's value (or the
    one after ``--``); everything after it, options included, goes to the script. ``None`` when
    there is no script.
    """
    argv = list(argv)
    actions = parser._option_string_actions
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            return argv[: i + 2], argv[i + 2 :] if i + 1 < len(argv) else None
        if token.startswith("-") and token != "-":
            action = actions.get(token)
            if action is not None and action.nargs != 0:
                i += 1  # its value
            i += 1
            continue
        return argv[: i + 1], argv[i + 1 :]
    return argv, None


class PulsarShell(Application):
    """An asynchronous Python console (or script runner) on a live pulsar arbiter.

    ``PulsarShell().start()`` parses the command line (``pulsar-shell [options] [script [args]]``),
    starts an arbiter and opens the console on its loop; ``--attach`` connects to a running
    application instead. In a :class:`~pulsar.MultiApp` the console runs in the arbiter next to
    the other applications. Keyword arguments are settings (``imports=["json"]``,
    ``history_file=...``); ``script``/``script_args`` run a script instead of the console.
    """

    name = "shell"
    cfg_apps = ("shell",)
    description = "An asynchronous Python console on a live pulsar arbiter."
    defaults = {"workers": 0, "log_level": "warning"}

    def __init__(
        self,
        callable: Any = None,
        *,
        script: str | None = None,
        script_args: Sequence[str] = (),
        **params: Any,
    ) -> None:
        super().__init__(callable, **params)
        self.script = script
        self.script_args = list(script_args)
        self.console: AsyncConsole | None = None
        self._script_task: asyncio.Task[int] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["console"] = None
        state["_script_task"] = None
        return state

    # -- command line -----------------------------------------------------------------------------
    def add_arguments(self, parser: Any) -> None:
        """``[script [args ...]]``: run an asynchronous script instead of the console."""
        parser.add_argument(
            "script", nargs="?", help="a Python script whose top level may await (run, then exit)"
        )
        parser.add_argument(
            "script_args", nargs=argparse.REMAINDER, metavar="args", help="the script's arguments"
        )

    def load_config(
        self, argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
    ) -> None:
        """Load the configuration; the arguments after the script belong to the script."""
        argv = list(sys.argv[1:] if argv is None else argv)
        head, rest = split_script_argv(self.cfg.parser(), argv)
        super().load_config(head, environ)
        if self.script and rest is not None:
            self.script_args = rest

    def apply_arguments(self, args: Any) -> None:
        """Keep the script and its arguments from the command line."""
        script = getattr(args, "script", None)
        if script:
            self.script = script
            self.script_args = list(getattr(args, "script_args", None) or ())

    # -- running ----------------------------------------------------------------------------------
    def start(
        self, argv: Sequence[str] | None = None, *, exit: bool = True, load_config: bool = True
    ) -> Any:
        """Run the shell; see :meth:`pulsar.Application.start`.

        With the ``attach`` setting, no arbiter starts: the shell attaches to a running one and
        returns (or exits with) its own status.
        """
        running = get_arbiter()
        if running is not None and running.state < ActorState.STOPPING and running.loop:
            return super().start(argv, exit=exit, load_config=load_config)
        if load_config:
            try:
                self.load_config(argv)
            except ConfigError as exc:
                print(f"error: {exc}", file=sys.stderr)
                code = int(ExitCode.CONFIG)
                if exit:
                    sys.exit(code)
                return code
        if not self.cfg.get("attach"):
            return super().start(argv, exit=exit, load_config=False)
        code = self.run_attached()
        if exit:
            sys.exit(code)
        return code

    def add_to(self, arbiter: pulsar.Arbiter) -> Any:
        """The shell runs in the arbiter whatever ``workers`` says."""
        if self.cfg.get("workers"):
            self.cfg.set("workers", 0)
        return super().add_to(arbiter)

    # -- hooks (in the arbiter) -------------------------------------------------------------------
    def worker_start(self, worker: Any) -> None:
        """Open the console (or start the script) on the arbiter's loop."""
        scope: dict[str, Any] = {
            "pulsar": pulsar,
            "arbiter": worker,
            "spawn": pulsar.spawn,
            "send": pulsar.send,
            "get_actor": pulsar.get_actor,
            "asyncio": asyncio,
        }
        imported = import_modules(self.cfg.get("imports"), scope)
        loop = worker.loop
        if self.script:
            self._script_task = loop.create_task(self._run_script(worker, scope))
            return
        where = f"arbiter pid {os.getpid()}, mailbox {worker.address}"
        self.console = self._console(loop, scope, imported, where, worker.stop)
        hooks = getattr(worker, "signal_hooks", None)
        if hooks is not None:
            hooks["int"] = self.console.interrupt
        self.console.start()

    async def worker_stopping(self, worker: Any) -> None:
        """Close the console (history saved, terminal restored) or cancel the script."""
        hooks = getattr(worker, "signal_hooks", None)
        console = self.console
        if hooks is not None and console is not None and hooks.get("int") == console.interrupt:
            hooks.pop("int", None)
        if self.console is not None:
            await self.console.close()
        task = self._script_task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run_script(self, worker: Any, scope: dict[str, Any]) -> int:
        assert self.script is not None
        code = await run_script(self.script, self.script_args, scope)
        worker.stop(code)
        return code

    def _console(
        self,
        loop: asyncio.AbstractEventLoop,
        scope: dict[str, Any],
        imported: Sequence[str],
        where: str,
        on_exit: Any,
    ) -> AsyncConsole:
        return AsyncConsole(
            loop,
            scope,
            banner=self.banner(loop, where, imported),
            history_file=self.cfg.get("history_file") or _settings.default_history_file(),
            history_length=int(self.cfg.get("history_length")),
            on_exit=on_exit,
        )

    def banner(self, loop: asyncio.AbstractEventLoop, where: str, imported: Sequence[str]) -> str:
        """The text shown before the first prompt."""
        from . import __version__

        names = [*SCOPE_NAMES, *(n for n in imported if n not in SCOPE_NAMES)]
        return "\n".join(
            [
                f"pulsar-shell {__version__} (pulsar {pulsar.__version__}, Python "
                f"{sys.version.split()[0]}, loop: {loop_name(loop)})",
                where,
                f"In scope: {', '.join(names)}",
                "Top-level await runs on the live loop. Ctrl-C cancels a statement; "
                "Ctrl-D or exit() leaves.",
            ]
        )

    # -- attached ---------------------------------------------------------------------------------
    def run_attached(self) -> int:
        """Attach to the application named by the ``attach`` setting; returns the exit status.

        1 when attaching fails (the reason on stderr), 5 (``ExitCode.ARBITER_GONE``) when the
        application exits while the shell is attached.
        """
        target = str(self.cfg.get("attach"))
        try:
            address = find_mailbox(target)
            secret = read_secret(address)
        except AttachError as exc:
            print(f"pulsar-shell: {exc}", file=sys.stderr)
            return 1
        loop = pulsar.new_event_loop(self.cfg.view(ActorOptions).io)
        asyncio.set_event_loop(loop)
        try:
            return loop.run_until_complete(self._attached(address, secret))
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    async def _attached(self, address: str, secret: bytes) -> int:
        loop = asyncio.get_running_loop()
        guest = Guest(address, secret, self.cfg)
        try:
            await guest.connect(timeout=float(self.cfg.view(ActorOptions).spawn_timeout))
        except AttachError as exc:
            print(f"pulsar-shell: {exc}", file=sys.stderr)
            return 1
        done: asyncio.Future[int] = loop.create_future()

        def finish(code: int) -> None:
            if not done.done():
                done.set_result(code)

        def lost(_: Any) -> None:
            if not done.done():
                print(
                    f"\npulsar-shell: the attached application ({address}) has exited; leaving",
                    file=sys.stderr,
                    flush=True,
                )
                finish(int(ExitCode.ARBITER_GONE))

        remote = guest.proxy_of("arbiter")

        async def spawn(**params: Any) -> Any:
            """Spawn an actor in the attached application (see :func:`pulsar.spawn`)."""
            return await remote.spawn(**params)

        scope: dict[str, Any] = {
            "pulsar": pulsar,
            "arbiter": remote,
            "spawn": spawn,
            "send": guest.send,
            "get_actor": lambda: guest,
            "asyncio": asyncio,
        }
        imported = import_modules(self.cfg.get("imports"), scope)
        assert guest.lost is not None
        guest.lost.add_done_callback(lost)
        interrupt: Any
        if self.script:
            task = loop.create_task(run_script(self.script, self.script_args, scope))
            task.add_done_callback(lambda t: finish(1 if t.cancelled() else t.result()))
            interrupt = task.cancel
        else:
            where = f"attached to {address} as guest {guest.aid}"
            self.console = self._console(loop, scope, imported, where, finish)
            interrupt = self.console.interrupt
            self.console.start()
        installed = _install_signals(loop, interrupt, finish)
        try:
            return await done
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            if self.console is not None:
                await self.console.close()
            if self.script and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            guest.close()
            await asyncio.sleep(0)


def _install_signals(loop: asyncio.AbstractEventLoop, interrupt: Any, finish: Any) -> list[int]:
    """SIGINT → ``interrupt()``; SIGTERM/SIGHUP → leave. Returns the signals installed."""
    installed: list[int] = []
    handlers = {signal.SIGINT: (interrupt,), signal.SIGTERM: (finish, 0)}
    if hasattr(signal, "SIGHUP"):
        handlers[signal.SIGHUP] = (finish, 0)
    for sig, (fn, *args) in handlers.items():
        try:
            loop.add_signal_handler(sig, fn, *args)
        except (RuntimeError, ValueError, NotImplementedError):  # pragma: no cover
            continue
        installed.append(sig)
    return installed


def main(argv: Sequence[str] | None = None) -> Any:
    """The ``pulsar-shell`` console script. The current directory's modules are importable
    (``--imports jobs`` next to ``jobs.py``), as with ``python -m``."""
    cwd = os.getcwd()
    if "" not in sys.path and cwd not in sys.path:
        sys.path.insert(0, cwd)
    return PulsarShell().start(argv)
