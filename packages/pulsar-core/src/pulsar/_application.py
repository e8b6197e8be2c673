"""Applications: a configuration tied to a Monitor and its workers.

How it works
------------
An :class:`Application` holds a :class:`~pulsar.Config` and a ``callable``. ``start()`` reads the
configuration file, the ``PULSAR_*`` environment and the command line (a bad value stops here with
one line naming the setting and exit code 2, before any process exists), creates the arbiter if
none runs, and adds a :class:`~pulsar.Monitor` that keeps ``workers`` worker actors running the
application. In the arbiter process the monitor calls the application's ``monitor_start`` /
``monitor_stopping`` hooks (a socket server binds there); in each worker the application's
``worker_start`` / ``worker_stopping`` / ``worker_info`` hooks run, followed by the settings of the
same names. With ``workers=0`` the application runs inside the arbiter itself.

A :class:`MultiApp` runs several applications in one arbiter, each with its own prefix
(``--rpc-workers 2 --wsgi-workers 4``).

The application object travels to its workers (pickled with the ``spawn``/``forkserver`` start
methods), so its ``callable`` must then be importable by name.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ._actor import ActorBase
from ._arbiter import Arbiter, ExitCode, arbiter, get_arbiter
from ._config import Config
from ._exceptions import ConfigError
from ._monitor import Monitor

__all__ = ["Application", "MultiApp", "run_hooks"]

logger = logging.getLogger("pulsar.application")


def run_hooks(hooks: Iterable[Callable[..., Any] | None], *args: Any) -> Any:
    """Call each hook; returns an awaitable when one of them returns one."""
    pending = []
    for hook in hooks:
        if hook is None:
            continue
        result = hook(*args)
        if inspect.isawaitable(result):
            pending.append(result)
    if pending:

        async def wait() -> None:
            for p in pending:
                await p

        return wait()
    return None


async def _await_hooks(hooks: Iterable[Callable[..., Any] | None], *args: Any) -> None:
    result = run_hooks(hooks, *args)
    if result is not None:
        await result


async def _worker_start(actor: ActorBase) -> None:
    """Start callable of every application worker (module level, so it pickles)."""
    app: Application = actor.params["application"]
    await app._start_in(actor)


class Application:
    """Base class of pulsar applications (socket servers, WSGI, task queues...).

    ``Application(callable=..., name=..., **settings).start()`` runs it. Subclasses override the
    hooks; every hook may be sync or ``async``.
    """

    #: default name (the lower-cased class name when None)
    name: str | None = None
    #: the setting apps (``Setting.app``) this application uses besides the core settings
    cfg_apps: tuple[str, ...] = ()
    #: shown by ``--help``
    description: str | None = None
    #: settings this application changes the default of, e.g. ``{"workers": 2}``
    defaults: Mapping[str, Any] = {}

    def __init__(
        self,
        callable: Any = None,
        *,
        name: str | None = None,
        cfg: Config | None = None,
        prefix: str | None = None,
        **params: Any,
    ) -> None:
        self.callable = callable
        self.name = name or self.name or type(self).__name__.lower()
        self._init: dict[str, Any] = {"prefix": prefix, "params": dict(params), "cfg": cfg}
        self._argv: list[str] | None = None
        if cfg is None:
            cfg = Config(
                apps=self.cfg_apps,
                prefix=prefix,
                description=self.description or (type(self).__doc__ or "").strip().split("\n")[0],
                **{**dict(self.defaults), **params},
            )
        elif params:
            cfg = cfg.copy()
            cfg.update(params)
        self.cfg = cfg
        self.monitor: Monitor | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["monitor"] = None  # arbiter-side only
        return state

    # -- hooks (override) -------------------------------------------------------------------------
    def monitor_start(self, monitor: Monitor) -> Any:
        """Arbiter process: the monitor starts, before its workers (bind sockets here)."""

    def monitor_stopping(self, monitor: Monitor) -> Any:
        """Arbiter process: the monitor begins to stop its workers."""

    def worker_start(self, worker: ActorBase) -> Any:
        """Worker: the worker runs (serve here)."""

    def worker_exit(self, monitor: Monitor, aid: str, exit_code: int | None) -> Any:
        """Arbiter process: worker ``aid`` of ``monitor`` exited (``exit_code`` None when
        unknown), whatever the reason (a crash, SIGKILL, a requested stop), as soon as the
        monitor learns it and before any replacement is spawned. Release what the worker held
        here (a task queue frees its leases). A returned awaitable is run as a task; errors
        are logged, never raised into the monitor."""

    def worker_stopping(self, worker: ActorBase) -> Any:
        """Worker: the worker stops (finish in-flight work here, within ``graceful_timeout``)."""

    def worker_info(self, worker: ActorBase, info: dict[str, Any]) -> None:
        """Worker: add application figures to the worker's ``info``."""

    # -- configuration ----------------------------------------------------------------------------
    def add_arguments(self, parser: Any) -> None:
        """Add application-specific command-line arguments (e.g. a positional ``module:app``)."""

    def apply_arguments(self, args: Any) -> None:
        """Use the parsed application-specific arguments."""

    def load_config(
        self, argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
    ) -> None:
        """Apply the config file, ``PULSAR_*`` environment variables and the command line."""
        from . import __version__

        self._argv = list(sys.argv[1:] if argv is None else argv)
        parser = self.cfg.parser(prog=_prog(), version=__version__)
        self.add_arguments(parser)
        result = self.cfg.load(
            self._argv, os.environ if environ is None else environ, parser=parser
        )
        self.apply_arguments(result.args)

    def reload_config(self) -> Config:
        """A fresh configuration: constructor params, then the config file, the environment and
        the command line read again (SIGHUP). Raises ConfigError and keeps nothing on failure."""
        init = self._init
        if init["cfg"] is not None:
            cfg = init["cfg"].copy()
            cfg.update(init["params"])
        else:
            cfg = Config(
                apps=self.cfg_apps,
                prefix=init["prefix"],
                **{**dict(self.defaults), **init["params"]},
            )
        if self._argv is not None:
            Config.load_many([cfg], self._argv, os.environ, known_only=True)
        self.cfg = cfg
        return cfg

    # -- running ----------------------------------------------------------------------------------
    def start(
        self, argv: Sequence[str] | None = None, *, exit: bool = True, load_config: bool = True
    ) -> Any:
        """Run the application.

        With no running arbiter: load the configuration (``argv`` defaults to ``sys.argv[1:]``),
        create the arbiter, run until stopped and exit with its code (or return it when
        ``exit=False``). A bad configuration prints one ``error:`` line and exits with 2.
        Inside a running arbiter: add this application's monitor and return it.
        """
        running = get_arbiter()
        if running is not None and running.state < 3 and running.loop is not None:
            return self.add_to(running)
        try:
            if load_config:
                self.load_config(argv)
        except ConfigError as exc:
            return _fail(exc, exit)
        arb = arbiter(cfg=self.cfg.prefixed(None))
        self.add_to(arb)
        code = arb.start()
        if exit:
            sys.exit(code)
        return code

    def add_to(self, arbiter: Arbiter) -> Monitor | None:
        """Add this application to ``arbiter`` (a monitor, or in the arbiter for ``workers=0``)."""
        if int(self.cfg.get("workers") or 0) == 0:
            arbiter.stop_callbacks.append(self._stop_in)
            if arbiter.state >= 1 and arbiter.loop is not None:  # already started: start now
                task = asyncio.ensure_future(self._start_in(arbiter))
                arbiter.extra.setdefault("applications", set()).add(task)
                task.add_done_callback(arbiter.extra["applications"].discard)
            else:
                # before the user's start callbacks: they may rely on the application running
                arbiter.start_callbacks.insert(0, self._start_in)
            return None
        self.monitor = arbiter.add_monitor(
            str(self.name),
            start=_worker_start,
            cfg=self.cfg,
            app=self.name,
            application=self,
        )
        return self.monitor

    async def _start_in(self, actor: ActorBase) -> None:
        """Run the worker hooks in ``actor`` (a worker, or the arbiter with ``workers=0``)."""
        actor.extra["application"] = self
        actor.info_hooks.append(self.worker_info)
        if hasattr(actor, "add_stop_callback"):
            actor.add_stop_callback(self._stop_in)
        await _await_hooks([self.cfg.get("worker_start"), self.worker_start], actor)

    async def _stop_in(self, actor: ActorBase) -> None:
        await _await_hooks([self.worker_stopping, self.cfg.get("worker_stopping")], actor)


class MultiApp:
    """Several applications in one arbiter, each configured with its own prefix.

    Subclass and implement :meth:`build`, yielding ``self.new_app(AppClass, prefix, ...)``::

        class Site(MultiApp):
            def build(self):
                yield self.new_app(WSGIServer, "wsgi", callable=app)
                yield self.new_app(TaskQueue, "tasks")

    Keyword params of the MultiApp apply to every application that has the setting.
    """

    name = "multi"
    description: str | None = None

    def __init__(self, name: str | None = None, **params: Any) -> None:
        self.name = name or self.name
        self.params = params
        self._apps: list[Application] | None = None

    def build(self) -> Iterable[Application]:  # pragma: no cover - abstract
        """Yield the applications (override)."""
        raise NotImplementedError

    def new_app(self, app_class: type[Application], prefix: str, **params: Any) -> Application:
        """An application of ``app_class`` named and prefixed ``prefix``."""
        app = app_class(name=prefix, prefix=prefix, **params)
        for key, value in self.params.items():
            if key in app.cfg.settings and key not in params:
                app.cfg.set(key, value)
        return app

    def apps(self) -> list[Application]:
        """The built applications (built once)."""
        if self._apps is None:
            self._apps = list(self.build())
            names = [a.name for a in self._apps]
            if len(set(names)) != len(names):
                raise ConfigError(f"MultiApp {self.name}: application names must differ: {names}")
        return self._apps

    def load_config(
        self, argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
    ) -> None:
        from . import __version__

        configs = [app.cfg for app in self.apps()]
        Config.load_many(
            configs,
            sys.argv[1:] if argv is None else argv,
            os.environ if environ is None else environ,
            prog=_prog(),
            version=__version__,
        )

    def start(
        self, argv: Sequence[str] | None = None, *, exit: bool = True, load_config: bool = True
    ) -> Any:
        """Run every application in one arbiter (see :meth:`Application.start`)."""
        try:
            apps = self.apps()
            if load_config:
                self.load_config(argv)
        except ConfigError as exc:
            return _fail(exc, exit)
        running = get_arbiter()
        if running is not None and running.state < 3 and running.loop is not None:
            return [app.add_to(running) for app in apps]
        arb = arbiter(cfg=apps[0].cfg.prefixed(None))
        for app in apps:
            app.add_to(arb)
        code = arb.start()
        if exit:
            sys.exit(code)
        return code


def _prog() -> str:
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "pulsar"


def _fail(exc: ConfigError, exit: bool) -> int:
    print(f"error: {exc}", file=sys.stderr)
    if exit:
        sys.exit(int(ExitCode.CONFIG))
    return int(ExitCode.CONFIG)
