"""Arbiter signal handling, the gunicorn way.

The handler installed for each signal only queues it; the loop then dispatches it to
``handle_<name>()``: INT/QUIT fast stop, TERM graceful stop, HUP reload and roll the workers,
TTIN/TTOU one worker more/less, USR1 a status line. ``arbiter.signal_hooks[name]`` overrides one.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._exceptions import ExitCode
from .options import MonitorOptions

if TYPE_CHECKING:  # pragma: no cover
    from ._monitor import Monitor
    from ._supervision import Supervisor

__all__ = ["SIGNALS", "SignalsMixin"]

logger = logging.getLogger("pulsar.arbiter")

SIGNALS = ("INT", "TERM", "QUIT", "HUP", "TTIN", "TTOU", "USR1", "USR2")


async def _roll_new_code(monitor: Monitor) -> None:
    """HUP: roll the workers once the application's code on disk imports (else keep them)."""
    check = getattr(monitor.application, "check_code", None)
    if check is not None:
        error = await check()
        if error:
            logger.error(
                "%s: the new code does not import, keeping the running workers:\n%s",
                monitor.name,
                error,
            )
            return
    await monitor.roll()


class SignalsMixin:
    """Signal handling of the :class:`~pulsar.Arbiter` (mixed into it)."""

    loop: asyncio.AbstractEventLoop
    monitors: dict[str, Monitor]
    supervisor: Supervisor
    signal_hooks: dict[str, Callable[[], Any]]
    _signal_queue: list[int]
    _signals_installed: list[int]
    _previous_handlers: dict[int, Any]
    _command_tasks: set[asyncio.Task[Any]]

    def stop(self, exit_code: int = 0, graceful: bool = True) -> None:  # pragma: no cover
        raise NotImplementedError

    def _install_signals(self) -> None:
        for name in SIGNALS:
            sig = getattr(signal, f"SIG{name}", None)
            if sig is None:
                continue
            lower = name.lower()
            if lower not in self.signal_hooks and not hasattr(self, f"handle_{lower}"):
                continue  # not trapped: a signal that does nothing keeps its default action
            try:
                self._previous_handlers[sig] = signal.getsignal(sig)
                self.loop.add_signal_handler(sig, self._queue_signal, sig)
                self._signals_installed.append(sig)
            except (RuntimeError, ValueError, NotImplementedError):  # pragma: no cover
                pass

    def _remove_signals(self) -> None:
        for sig in self._signals_installed:
            try:
                self.loop.remove_signal_handler(sig)
                previous = self._previous_handlers.get(sig)
                if previous is not None:
                    signal.signal(sig, previous)
            except (RuntimeError, ValueError, OSError):  # pragma: no cover
                pass
        self._signals_installed.clear()

    def _queue_signal(self, sig: int) -> None:
        self._signal_queue.append(sig)
        if len(self._signal_queue) == 1:
            self.loop.call_soon(self._dispatch_signals)

    def _dispatch_signals(self) -> None:
        while self._signal_queue:
            sig = self._signal_queue.pop(0)
            name = signal.Signals(sig).name[3:].lower()
            handler = self.signal_hooks.get(name) or getattr(self, f"handle_{name}", None)
            logger.info("arbiter: received SIG%s", name.upper())
            if handler is not None:
                try:
                    handler()
                except Exception:
                    logger.exception("arbiter: handling SIG%s failed", name.upper())

    def handle_int(self) -> None:
        """SIGINT: fast stop (a second one kills every actor)."""
        self.stop(int(ExitCode.INTERRUPTED), graceful=False)

    def handle_quit(self) -> None:
        """SIGQUIT: fast stop."""
        self.stop(int(ExitCode.INTERRUPTED), graceful=False)

    def handle_term(self) -> None:
        """SIGTERM: graceful stop within ``graceful_timeout``."""
        self.stop(int(ExitCode.OK), graceful=True)

    def handle_ttin(self) -> None:
        """SIGTTIN: one worker more in every monitor."""
        for monitor in self.monitors.values():
            monitor.num_workers = monitor.num_workers + 1
            logger.info("%s: workers -> %d", monitor.name, monitor.num_workers)

    def handle_ttou(self) -> None:
        """SIGTTOU: one worker less in every monitor (never below one)."""
        for monitor in self.monitors.values():
            if monitor.num_workers <= 1:
                logger.warning("%s: SIGTTOU ignored, keeping at least one worker", monitor.name)
                continue
            monitor.num_workers = monitor.num_workers - 1
            logger.info("%s: workers -> %d", monitor.name, monitor.num_workers)

    def handle_hup(self) -> None:
        """SIGHUP: reload the configuration and replace every worker one by one (each new worker
        runs before its old one stops, so serving capacity never drops)."""
        for monitor in list(self.monitors.values()):
            app = monitor.application
            if app is not None and hasattr(app, "reload_config"):
                try:
                    monitor.cfg = app.reload_config()
                    monitor.num_workers = monitor.cfg.view(MonitorOptions).workers or 1
                except Exception as exc:
                    logger.error(
                        "%s: configuration not reloaded, keeping the old one: %s", monitor.name, exc
                    )
            task = asyncio.ensure_future(_roll_new_code(monitor))
            self._command_tasks.add(task)
            task.add_done_callback(self._command_tasks.discard)

    def handle_usr1(self) -> None:
        """SIGUSR1: reopen the log files in every process (logrotate), log the arbiter's state."""
        from ._operations import reopen_log_files
        from ._supervision import PeerKind

        reopen_log_files()
        for handle in self.supervisor:
            if handle.peer is not PeerKind.CHILD or not handle.alive:
                continue  # guests have no log files; the dead are gone
            try:
                self.send(handle.aid, "reopen_logs")  # type: ignore[attr-defined]
            except Exception as exc:  # an actor starting or gone: it opens its files anew
                logger.debug("arbiter: reopen_logs not sent to %s: %s", handle.aid, exc)
        logger.info(
            "arbiter: log files reopened; %d actors, %d monitors",
            len(self.supervisor),
            len(self.monitors),
        )
