"""Operations: pid files, daemonizing, privileges, logging configuration and the reloader.

These are the gunicorn-class features of the arbiter, kept out of :mod:`pulsar._arbiter` so each one
is small and testable on its own.
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterable
from typing import Any

from ._commands import Request, command
from ._exceptions import ConfigError, PulsarError

__all__ = [
    "PidFile",
    "configure_logging",
    "daemonize",
    "drop_privileges",
    "SourceWatcher",
    "check_sources",
    "reopen_log_files",
    "reopen_logs",
]

logger = logging.getLogger("pulsar.arbiter")

LOG_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s"


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class PidFile:
    """The arbiter's pid file (and ``<path>.mailbox``, the path of its mailbox socket).

    A stale file (its process is gone) is replaced; a file naming a live process refuses to start
    with a clear message.
    """

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self.mailbox_path = self.path + ".mailbox"
        self.pid: int | None = None

    def read(self) -> int | None:
        """The pid in the file, or None when missing or unreadable."""
        try:
            with open(self.path) as f:
                return int(f.read().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def create(self, pid: int, mailbox: str | None = None) -> None:
        """Write ``pid`` (atomically). Raises PulsarError when a live process holds the file."""
        old = self.read()
        if old is not None and old != pid and _pid_alive(old):
            raise PulsarError(
                f"pidfile {self.path} is held by running process {old}: "
                "is the server already running?"
            )
        if old is not None and old != pid:
            logger.warning("replacing stale pidfile %s (process %s is gone)", self.path, old)
        self._write(self.path, f"{pid}\n")
        if mailbox:
            self._write(self.mailbox_path, f"{mailbox}\n")
        self.pid = pid

    def _write(self, path: str, text: str) -> None:
        directory = os.path.dirname(path) or "."
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".pulsar-pid-")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def unlink(self) -> None:
        """Remove the files, only if they still belong to this process."""
        if self.pid is None or self.read() != self.pid:
            return
        for path in (self.path, self.mailbox_path):
            try:
                os.unlink(path)
            except OSError:
                pass


def daemonize(umask: int | None = None) -> None:  # pragma: no cover - runs in a detached child
    """Detach from the terminal (double fork, new session, stdio to /dev/null)."""
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    os.umask(0o22 if umask is None else umask)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    if devnull > 2:
        os.close(devnull)


def drop_privileges(cfg: Any) -> None:
    """Switch this (worker) process to the configured ``group`` then ``user``."""
    gid = cfg.get("group")
    uid = cfg.get("user")
    if gid is not None and os.getgid() != gid:
        os.setgid(gid)
        try:
            os.setgroups([gid])
        except PermissionError:  # pragma: no cover
            pass
    if uid is not None and os.getuid() != uid:
        os.setuid(uid)


def _load_log_config(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    path = str(value)
    try:
        if path.endswith(".json"):
            with open(path) as f:
                data = json.load(f)
        else:
            namespace: dict[str, Any] = {"__file__": path}
            with open(path) as f:
                exec(compile(f.read(), path, "exec"), namespace)
            data = namespace.get("LOGGING")
    except (OSError, SyntaxError, ValueError) as exc:
        raise ConfigError(f"log_config: cannot read {path}: {exc}", "log_config") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"log_config: {path} does not define a LOGGING dict", "log_config")
    return data


#: the loggers of access lines (``access_logfile``); any ``pulsar.<app>.access`` logger counts
ACCESS_LOGGERS = ("pulsar.wsgi.access",)


def _access_loggers() -> list[logging.Logger]:
    names = set(ACCESS_LOGGERS) | {
        name
        for name in list(logging.root.manager.loggerDict)
        if name.startswith("pulsar.") and name.endswith(".access")
    }
    return [logging.getLogger(name) for name in sorted(names)]


def _log_handler(path: str, stream: Any) -> logging.Handler:
    if path == "-":
        return logging.StreamHandler(stream)
    try:
        return logging.FileHandler(path, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot open the log file {path}: {exc}") from None


def configure_logging(cfg: Any, *, force: bool = False) -> None:
    """Apply ``log_config`` (a dictConfig) or a handler at ``log_level`` writing to
    ``error_logfile`` (``-``: stderr); access lines go to ``access_logfile`` when set
    (``-``: stdout)."""
    log_config = cfg.get("log_config")
    level = str(cfg.get("log_level")).upper()
    if log_config:
        try:
            config = dict(_load_log_config(log_config))
            # pulsar's loggers exist before the configuration is applied: keep them enabled
            config.setdefault("disable_existing_loggers", False)
            logging.config.dictConfig(config)
        except (ValueError, TypeError, AttributeError, ImportError) as exc:
            raise ConfigError(f"log_config: invalid logging configuration: {exc}", "log_config")
        return
    root = logging.getLogger()
    if force or not root.handlers:
        handler = _log_handler(str(cfg.get("error_logfile")), sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logging.basicConfig(level=level, handlers=[handler], force=force)
    logging.getLogger("pulsar").setLevel(level)
    access = cfg.get("access_logfile") if "access_logfile" in cfg else None
    for access_logger in _access_loggers():
        for old in [h for h in access_logger.handlers if getattr(h, "_pulsar_access", False)]:
            access_logger.removeHandler(old)
            old.close()
        if access:
            handler = _log_handler(str(access), sys.stdout)
            handler.setFormatter(logging.Formatter("%(message)s"))
            handler._pulsar_access = True  # type: ignore[attr-defined]
            access_logger.addHandler(handler)
            access_logger.propagate = False
        else:
            access_logger.propagate = True


def reopen_log_files() -> int:
    """Reopen every log file of this process (after logrotate moved them: SIGUSR1); returns
    how many."""
    handlers: dict[int, logging.FileHandler] = {}
    loggers = [logging.getLogger(), *logging.root.manager.loggerDict.values()]
    for lg in loggers:
        for handler in getattr(lg, "handlers", ()):
            if isinstance(handler, logging.FileHandler):
                handlers[id(handler)] = handler
    for handler in handlers.values():
        handler.acquire()
        try:
            if handler.stream is not None:
                handler.stream.flush()
                handler.stream.close()
            handler.stream = handler._open()
        except OSError as exc:  # pragma: no cover - the directory went away
            sys.stderr.write(f"pulsar: cannot reopen {handler.baseFilename}: {exc}\n")
        finally:
            handler.release()
    return len(handlers)


@command(ack=False)
def reopen_logs(request: Request) -> None:
    """Reopen this actor's log files (the arbiter's SIGUSR1 sends it to every actor)."""
    reopen_log_files()


_IMPORT_SCRIPT = """
import importlib, sys
names = sys.argv[1].split(",")
sys.path[:0] = [p for p in sys.argv[2:] if p not in sys.path]
for name in names:
    importlib.import_module(name)
"""


def _syntax_error(paths: Iterable[str]) -> str | None:
    for path in paths:
        try:
            with open(path, "rb") as f:
                compile(f.read(), path, "exec")
        except SyntaxError as exc:
            return "".join(traceback.format_exception_only(type(exc), exc)).rstrip()
        except (OSError, ValueError):
            continue
    return None


def _modules_of(paths: Iterable[str]) -> list[str]:
    """The names of the loaded modules (``__main__`` excepted) read from ``paths``."""
    real = {os.path.realpath(p) for p in paths}
    return sorted(
        name
        for name, module in list(sys.modules.items())
        if name != "__main__" and os.path.realpath(getattr(module, "__file__", None) or "") in real
    )


class _ImportCheck:
    """``import`` of some modules in a new interpreter, polled (never blocks the caller)."""

    def __init__(self, names: list[str], timeout: float) -> None:
        self.names = names
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        self.out = tempfile.TemporaryFile()  # noqa: SIM115 - closed by result() or cancel()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _IMPORT_SCRIPT, ",".join(names), os.getcwd(), *sys.path],
            stdout=self.out,
            stderr=subprocess.STDOUT,
        )

    def result(self) -> tuple[bool, str | None]:
        """``(done, error)``: the error output, None when the modules imported."""
        code = self.proc.poll()
        if code is None:
            if time.monotonic() < self.deadline:
                return False, None
            self.cancel()
            return True, f"importing {', '.join(self.names)} took more than {self.timeout:g}s"
        try:
            if code == 0:
                return True, None
            self.out.seek(0)
            return True, self.out.read().decode(errors="replace").rstrip() or f"exit code {code}"
        finally:
            self.out.close()

    def cancel(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.out.close()


def check_sources(paths: Iterable[str], timeout: float = 60.0) -> str | None:
    """None when every file in ``paths`` compiles and the modules loaded from them import in
    a new interpreter (``__main__`` is only compiled); else the error, as Python prints it."""
    paths = list(paths)
    error = _syntax_error(paths)
    if error is not None:
        return error
    names = _modules_of(paths)
    if not names:
        return None
    check = _ImportCheck(names, timeout)
    while True:
        done, error = check.result()
        if done:
            return error
        time.sleep(0.02)


class SourceWatcher:
    """Detects changes of Python source files (the ``reload`` setting): polls mtimes."""

    def __init__(self, extra: Iterable[str] = (), *, timeout: float = 60.0) -> None:
        self.extra = list(extra)
        self._mtimes: dict[str, float] = {}
        self._pending: list[str] = []  # changed, not yet loadable
        self._check: _ImportCheck | None = None
        self.timeout = timeout
        self.changed()  # baseline

    def files(self) -> list[str]:
        """Source files of the loaded modules that are not part of the Python installation."""
        excluded = tuple(
            {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
        )
        out = set(self.extra)
        for module in list(sys.modules.values()):
            path = getattr(module, "__file__", None)
            if not path or not path.endswith(".py"):
                continue
            real = os.path.realpath(path)
            if real.startswith(excluded) or "site-packages" in real:
                continue
            out.add(real)
        return sorted(out)

    def changed(self) -> list[str]:
        """The files changed, once they compile and their modules import (call it every second
        or so: the import check runs in a new interpreter and is polled, never waited for).

        A change that does not load (a syntax error, a module raising at import) is logged as
        one block and reported as no change: the running workers keep serving, and the next
        save is checked again.
        """
        changed = []
        for path in self.files():
            try:
                mtime = os.stat(path).st_mtime
            except OSError:
                continue
            old = self._mtimes.get(path)
            self._mtimes[path] = mtime
            if old is not None and mtime != old:
                changed.append(path)
        if changed:
            self._pending = sorted(set(self._pending) | set(changed))
            if self._check is not None:  # saved again while checking: check the new sources
                self._check.cancel()
                self._check = None
            error = _syntax_error(self._pending)
            if error is not None:
                self._failed(changed, error)
                return []
            names = _modules_of(self._pending)
            if names:
                self._check = _ImportCheck(names, self.timeout)
            else:
                pending, self._pending = self._pending, []
                return pending
        if self._check is None:
            return []
        done, error = self._check.result()
        if not done:
            return []
        self._check = None
        if error is not None:
            self._failed(self._pending, error)
            return []
        pending, self._pending = self._pending, []
        return pending

    def _failed(self, paths: list[str], error: str) -> None:
        logger.error(
            "reload: %s does not load, keeping the running workers (fix it and save):\n%s",
            ", ".join(os.path.basename(p) for p in paths[:3]),
            error,
        )

    def close(self) -> None:
        """Stop a check in progress."""
        if self._check is not None:
            self._check.cancel()
            self._check = None
