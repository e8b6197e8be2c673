"""The core settings of pulsar, each declared once (see :mod:`pulsar._config`).

Declaring a :class:`~pulsar.Setting` subclass registers it; the order of the classes here is the
order of ``--help`` and of ``docs/settings.md`` (regenerate it with
``hatch run python tools/gen_settings_doc.py`` after changing anything in this module).
Applications declare theirs in their own packages with ``app = "<name>"``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pulsar._config import (
    LOG_LEVELS,
    Config,
    Setting,
    declare_app,
    validate_address_or_flag,
    validate_bind,
    validate_bool,
    validate_callable,
    validate_choice,
    validate_dict_or_path,
    validate_group,
    validate_log_level,
    validate_non_negative_int,
    validate_non_negative_number,
    validate_path_or_none,
    validate_positive_int,
    validate_positive_number,
    validate_string,
    validate_string_or_none,
    validate_umask,
    validate_user,
)

__all__ = [
    "CONFIG",
    "HOOKS",
    "LOGGING",
    "MECHANICS",
    "MONITORING",
    "SERVER_APP",
    "SOCKET",
    "WORKERS",
    "default_hook",
    "default_info_hook",
]

CONFIG = "Config"
WORKERS = "Worker Processes"
SOCKET = "Server Socket"
MECHANICS = "Server Mechanics"
LOGGING = "Logging"
MONITORING = "Monitoring"
HOOKS = "Server Hooks"
#: the ``app`` of the settings only servers have (bind, TLS, keep-alive, max_requests, access
#: log): a ``SocketServer`` (WSGI, RPC...) has ``"socket"`` in its ``cfg_apps``; a task queue
#: or the shell does not, so their ``--help`` does not list them and they refuse them
SERVER_APP = "socket"
declare_app(SERVER_APP)


# --- Config ------------------------------------------------------------------------------------


class ConfigFile(Setting):
    name = "config"
    section = CONFIG
    flags = ["-c", "--config"]
    meta = "FILE"
    validator = validate_path_or_none
    is_global = True
    desc = "Python config file; its lower-case module-level names set settings."
    doc = """
        The file is executed as Python. Each module-level lower-case name that is a setting
        sets it (`workers = 4`, `bind = ["0.0.0.0:8000"]`, `def worker_start(worker): ...`);
        for a MultiApp application prefixed `rpc`, use `rpc_workers`. Modules, functions,
        classes, upper-case and `_private` names are ignored; any other name is an error, so a
        typo does not go unnoticed. The config file overrides values given in code and is
        overridden by environment variables and the command line.
        """


# --- Worker Processes --------------------------------------------------------------------------


class Workers(Setting):
    name = "workers"
    section = WORKERS
    flags = ["-w", "--workers"]
    meta = "INT"
    default = 1
    validator = validate_non_negative_int
    desc = "Number of worker actors of the application; 0 runs it inside the arbiter."
    doc = """
        Each worker is a process (or a thread, see `concurrency`) with its own event loop.
        A good start for CPU-light network servers is one or two per core. Change it at run
        time with the TTIN/TTOU signals.
        """


class Concurrency(Setting):
    name = "concurrency"
    section = WORKERS
    flags = ["--concurrency"]
    default = "process"
    choices = ("process", "thread")
    desc = "How workers run: 'process' (one OS process each) or 'thread' (threads of the arbiter)."


class StartMethod(Setting):
    name = "start_method"
    section = WORKERS
    flags = ["--start-method"]
    default = "auto"
    choices = ("auto", "fork", "forkserver", "spawn")
    desc = "multiprocessing start method of worker processes; 'auto' is the platform's default."


class ThreadWorkers(Setting):
    name = "thread_workers"
    section = WORKERS
    flags = ["--thread-workers"]
    meta = "INT"
    default = 4
    validator = validate_positive_int
    desc = "Threads in each actor's pool for blocking work (applications may change the default)."


class Preload(Setting):
    name = "preload"
    section = WORKERS
    flags = ["--preload"]
    default = False
    validator = validate_bool
    desc = "Import the application (MODULE:CALLABLE) once in the arbiter, before the workers fork."
    doc = """
        Without it (the default, as gunicorn) the arbiter only checks once at start that the
        application imports, and every worker imports it again after it starts: `kill -HUP`
        and `--reload` then serve the code as it is on disk now. With `--preload` the workers
        inherit the arbiter's import (faster start, shared memory), so new code needs a full
        restart.
        """


class Timeout(Setting):
    name = "timeout"
    section = WORKERS
    flags = ["-t", "--timeout"]
    meta = "SECONDS"
    default = 30
    validator = validate_non_negative_number
    desc = "A worker silent (no heartbeat) for longer than this is killed and replaced; 0 disables."


class Heartbeat(Setting):
    name = "heartbeat"
    section = WORKERS
    flags = ["--heartbeat"]
    meta = "SECONDS"
    default = 5
    validator = validate_positive_number
    desc = "Seconds between the notify messages a worker sends to its monitor; below timeout."

    def check_config(self, cfg: Config) -> None:
        """The heartbeat must come more often than the timeout (unless timeouts are disabled)."""
        timeout = cfg.get("timeout")
        if timeout and self.value >= timeout:
            raise ValueError(f"{self.value} must be less than timeout ({timeout})")


class GracefulTimeout(Setting):
    name = "graceful_timeout"
    section = WORKERS
    flags = ["--graceful-timeout"]
    meta = "SECONDS"
    default = 30
    validator = validate_non_negative_number
    desc = "On a graceful stop (TERM), seconds workers get to finish their work before a kill."


class MaxRestarts(Setting):
    name = "max_restarts"
    section = WORKERS
    flags = ["--max-restarts"]
    meta = "INT"
    default = 5
    validator = validate_non_negative_int
    desc = "Start failures tolerated within restart_window before the application fails."
    doc = """
        Workers that die before they are ready (their start did not finish) are respawned with
        exponential back-off. When more than `max_restarts` of them fail within
        `restart_window` seconds the application is marked failed instead of spinning in a
        crash loop. A worker that was ready (up and serving) and then dies is replaced and
        does not count.
        """


class RestartWindow(Setting):
    name = "restart_window"
    section = WORKERS
    flags = ["--restart-window"]
    meta = "SECONDS"
    default = 60
    validator = validate_positive_number
    desc = "The window, in seconds, over which max_restarts start failures are counted."


class MaxRequests(Setting):
    name = "max_requests"
    app = SERVER_APP
    section = WORKERS
    flags = ["--max-requests"]
    meta = "INT"
    default = 0
    validator = validate_non_negative_int
    desc = "Replace a worker after it has handled this many requests (0: never); caps leaks."
    doc = """
        The replacement starts before the old worker stops, so capacity never drops.
        """


class MaxRequestsJitter(Setting):
    name = "max_requests_jitter"
    app = SERVER_APP
    section = WORKERS
    flags = ["--max-requests-jitter"]
    meta = "INT"
    default = 0
    validator = validate_non_negative_int
    desc = "Add a random 0..N to max_requests per worker so that workers do not recycle together."


class SpawnTimeout(Setting):
    name = "spawn_timeout"
    section = WORKERS
    flags = ["--spawn-timeout"]
    meta = "SECONDS"
    default = 10
    validator = validate_positive_number
    desc = "A new actor that has not completed its mailbox handshake by then fails to spawn."


# --- Server Socket -----------------------------------------------------------------------------


class Bind(Setting):
    name = "bind"
    app = SERVER_APP
    section = SOCKET
    flags = ["-b", "--bind"]
    meta = "ADDRESS"
    action = "append"
    default = ["127.0.0.1:8060"]
    validator = validate_bind
    desc = "Address to listen on: HOST:PORT, :PORT, PORT, [IPV6]:PORT or unix:PATH; repeatable."
    doc = """
        Repeat the flag or separate addresses with commas to listen on several. `:PORT` and a
        bare `PORT` listen on every IPv4 interface (`0.0.0.0`), `[::]:PORT` on every IPv6 one.
        Port 0 lets the OS choose a free port. Values are normalised (`:8000` becomes
        `0.0.0.0:8000`); `pulsar.parse_address()` turns them into `Address` objects.
        """


class Backlog(Setting):
    name = "backlog"
    app = SERVER_APP
    section = SOCKET
    flags = ["--backlog"]
    meta = "INT"
    default = 2048
    validator = validate_positive_int
    desc = "Maximum number of pending connections in each listening socket's queue."


class ReusePort(Setting):
    name = "reuse_port"
    app = SERVER_APP
    section = SOCKET
    flags = ["--reuse-port"]
    default = False
    validator = validate_bool
    desc = "Set SO_REUSEPORT: each worker binds its own socket and the kernel spreads connections."


class KeepAlive(Setting):
    name = "keep_alive"
    app = SERVER_APP
    section = SOCKET
    flags = ["--keep-alive"]
    meta = "SECONDS"
    default = 15
    validator = validate_non_negative_number
    desc = "Seconds an idle keep-alive connection stays open; 0 disables keep-alive."


class CertFile(Setting):
    name = "cert_file"
    app = SERVER_APP
    section = SOCKET
    flags = ["--cert-file"]
    meta = "FILE"
    validator = validate_path_or_none
    desc = "TLS certificate chain (PEM); setting it serves TLS."


class KeyFile(Setting):
    name = "key_file"
    app = SERVER_APP
    section = SOCKET
    flags = ["--key-file"]
    meta = "FILE"
    validator = validate_path_or_none
    desc = "TLS private key (PEM), when it is not in cert_file."

    def check_config(self, cfg: Config) -> None:
        """A key without a certificate is a mistake."""
        if self.value and not cfg.get("cert_file"):
            raise ValueError("set without cert_file")


class CaCerts(Setting):
    name = "ca_certs"
    app = SERVER_APP
    section = SOCKET
    flags = ["--ca-certs"]
    meta = "FILE"
    validator = validate_path_or_none
    desc = "CA certificates (PEM) to verify client certificates with; setting it requires them."


# --- Server Mechanics --------------------------------------------------------------------------


class Io(Setting):
    name = "io"
    section = MECHANICS
    flags = ["--io"]
    default = "auto"
    choices = ("auto", "asyncio", "uvloop")
    validator = validate_choice(choices, ignore_case=True)
    is_global = True
    desc = "Event loop: 'auto' (uvloop when installed, else asyncio), 'asyncio' or 'uvloop'."


class Pidfile(Setting):
    name = "pidfile"
    section = MECHANICS
    flags = ["-p", "--pidfile"]
    meta = "FILE"
    validator = validate_path_or_none
    is_global = True
    desc = "Write the arbiter's process id to this file (refused if a live process holds it)."


class Daemon(Setting):
    name = "daemon"
    section = MECHANICS
    flags = ["-D", "--daemon"]
    default = False
    validator = validate_bool
    is_global = True
    desc = "Detach from the terminal and run in the background (POSIX)."


class User(Setting):
    name = "user"
    section = MECHANICS
    flags = ["-u", "--user"]
    meta = "USER"
    validator = validate_user
    is_global = True
    desc = "Switch worker processes to this user (name or numeric uid; stored as the uid)."


class Group(Setting):
    name = "group"
    section = MECHANICS
    flags = ["-g", "--group"]
    meta = "GROUP"
    validator = validate_group
    is_global = True
    desc = "Switch worker processes to this group (name or numeric gid; stored as the gid)."


class Umask(Setting):
    name = "umask"
    section = MECHANICS
    flags = ["-m", "--umask"]
    meta = "OCTAL"
    validator = validate_umask
    is_global = True
    desc = "File mode creation mask of the server processes (octal, e.g. 022); unset: inherited."


class Reload(Setting):
    name = "reload"
    section = MECHANICS
    flags = ["--reload"]
    default = False
    validator = validate_bool
    is_global = True
    desc = "Restart the workers when Python source files change (for development)."


class ProcessName(Setting):
    name = "process_name"
    section = MECHANICS
    flags = ["-n", "--process-name"]
    meta = "NAME"
    validator = validate_string_or_none
    desc = "Prefix of process titles in ps/top (default titles: pulsar-<app>-<role>)."
    doc = """
        Process titles need the optional `setproctitle` package.
        """


class Debug(Setting):
    name = "debug"
    section = MECHANICS
    flags = ["--debug"]
    default = False
    validator = validate_bool
    is_global = True
    desc = "Debug mode: asyncio debug checks and detailed error reports (slower)."


class MaxFrameSize(Setting):
    name = "max_frame_size"
    section = MECHANICS
    flags = ["--max-frame-size"]
    meta = "BYTES"
    default = 16 * 1024 * 1024
    default_doc = "`16777216` (16 MiB)"
    validator = validate_positive_int
    is_global = True
    desc = "Largest mailbox message between actors, in bytes; a bigger frame closes the link."


# --- Logging -----------------------------------------------------------------------------------


class LogLevel(Setting):
    name = "log_level"
    section = LOGGING
    flags = ["--log-level"]
    default = "info"
    choices = LOG_LEVELS
    validator = validate_log_level
    is_global = True
    desc = "Logging level: debug, info, warning, error or critical (any case)."


class LogConfig(Setting):
    name = "log_config"
    section = LOGGING
    flags = ["--log-config"]
    meta = "FILE"
    validator = validate_dict_or_path
    is_global = True
    desc = "logging.config.dictConfig dict (code, config file) or path of a JSON/Python file."
    doc = """
        A `.py` file must define a `LOGGING` dict. When set, it replaces pulsar's default
        logging configuration; `log_level` still applies to the `pulsar` loggers.
        """


class ErrorLogfile(Setting):
    name = "error_logfile"
    section = LOGGING
    flags = ["--error-logfile", "--log-file"]
    meta = "FILE"
    default = "-"
    validator = validate_string
    is_global = True
    desc = "File of the server's log (every process appends to it); '-': stderr."
    doc = """
        Use a file with `--daemon`, whose stderr goes nowhere. Send SIGUSR1 to the arbiter
        after rotating it (`postrotate kill -USR1 $(cat pidfile)` in logrotate): every process
        reopens its log files.
        """


class AccessLogfile(Setting):
    name = "access_logfile"
    app = SERVER_APP
    section = LOGGING
    flags = ["--access-logfile"]
    meta = "FILE"
    validator = validate_string_or_none
    is_global = True
    desc = "File of the access log lines; '-': stdout; unset: they go to the error log."
    doc = """
        Reopened by SIGUSR1 like the error log. `--no-access-log` turns the lines off.
        """


class AccessLog(Setting):
    name = "access_log"
    app = SERVER_APP
    section = LOGGING
    flags = ["--access-log"]
    default = True
    validator = validate_bool
    desc = "Log one line per request or connection served by this application."


# --- Monitoring --------------------------------------------------------------------------------
# Served by companion applications of another package (pulsar-dashboard), found through the
# ``pulsar.companions`` entry points when the application starts: see pulsar._companions.


class Dashboard(Setting):
    name = "dashboard"
    section = MONITORING
    flags = ["--dashboard"]
    meta = "ADDRESS"
    nargs = "?"
    const = True
    default_doc = "off (`--dashboard` alone, or `True`: `127.0.0.1:8070`)"
    validator = validate_address_or_flag("127.0.0.1:8070")
    is_global = True
    desc = "Serve the live dashboard of this application at this address (needs pulsar-dashboard)."
    doc = """
        One dashboard per arbiter, beside the application's own monitors, showing it (the
        actor tree, servers, tasks, `/metrics`): `pulsar-wsgi app:app --dashboard` serves it
        on 127.0.0.1:8070, `--dashboard 127.0.0.1:9000` elsewhere; in code `dashboard=True`
        or `dashboard="127.0.0.1:9000"`. Needs `pip install pulsar-dashboard` (otherwise the
        start fails with exit code 2). An address that is not loopback needs a token:
        `PULSAR_DASHBOARD_TOKEN` in the environment (see `dashboard_token`).
        """


class Metrics(Setting):
    name = "metrics"
    section = MONITORING
    flags = ["--metrics"]
    meta = "ADDRESS"
    nargs = "?"
    const = True
    default_doc = "off (`--metrics` alone, or `True`: `127.0.0.1:9090`)"
    validator = validate_address_or_flag("127.0.0.1:9090")
    is_global = True
    desc = "Serve Prometheus /metrics of this application at this address (needs pulsar-dashboard)."
    doc = """
        The dashboard's `/metrics` without its pages (any other path is a 404), for
        Prometheus to scrape: `--metrics 127.0.0.1:9090`. It can run with `--dashboard` or
        without it. The same token rule as the dashboard's applies to a non-loopback address.
        """


# --- Server Hooks ------------------------------------------------------------------------------


def default_hook(actor: Any) -> None:
    """The default of one-argument hooks: does nothing."""


def default_info_hook(worker: Any, info: dict[str, Any]) -> None:
    """The default of ``worker_info``: does nothing."""


class _Hook(Setting):
    """Hooks are set in code or in the config file (no flag, no environment variable)."""

    section = HOOKS
    default: ClassVar[Any] = default_hook
    default_doc = "no-op"
    validator = validate_callable(1)


class ArbiterStart(_Hook):
    name = "arbiter_start"
    is_global = True
    desc = "Called as arbiter_start(arbiter) once the arbiter is running."


class MonitorStart(_Hook):
    name = "monitor_start"
    desc = "Called as monitor_start(monitor) when the application's monitor has started."


class MonitorStopping(_Hook):
    name = "monitor_stopping"
    desc = "Called as monitor_stopping(monitor) when the monitor begins to stop its workers."


class WorkerStart(_Hook):
    name = "worker_start"
    desc = "Called as worker_start(worker) in each worker once it runs (after fork/spawn)."


class WorkerStopping(_Hook):
    name = "worker_stopping"
    desc = "Called as worker_stopping(worker) in a worker that is about to stop."


class WorkerInfo(_Hook):
    name = "worker_info"
    default = default_info_hook
    validator = validate_callable(2)
    desc = "Called as worker_info(worker, info) before a worker reports; it may add keys to info."
