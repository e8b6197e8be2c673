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

The ``dashboard`` and ``metrics`` settings add companion applications of another package to
the same arbiter, once per arbiter (:mod:`pulsar._companions`, found through entry points).

The application object travels to its workers (pickled with the ``spawn``/``forkserver`` start
methods), so its ``callable`` must then be importable by name.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import os
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ._actor import ActorBase
from ._arbiter import Arbiter, ExitCode, arbiter, get_arbiter
from ._companions import add_companions, find_companions
from ._config import Config
from ._exceptions import ConfigError
from ._monitor import Monitor
from .options import MonitorOptions

__all__ = ["Application", "ImportSpec", "MultiApp", "cwd_importable", "run_hooks"]

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


def _is_user_module(name: str, module: Any) -> bool:
    """A module of the user's own code: a ``.py`` file outside the Python installation and
    pulsar itself (those never change under a running server)."""
    if name == "__main__" or name == "pulsar" or name.startswith("pulsar."):
        return False
    path = getattr(module, "__file__", None)
    if not path or not path.endswith(".py"):
        return False
    real = os.path.realpath(path)
    if "site-packages" in real or "dist-packages" in real:
        return False
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    return not any(real.startswith(p + os.sep) for p in prefixes)


_CHECK_SCRIPT = """
import importlib, sys
sys.path[:0] = [p for p in sys.argv[2:] if p not in sys.path]
importlib.import_module(sys.argv[1])
"""


class ImportSpec:
    """An application named ``module:attribute`` (``module`` alone: ``module:<default>``),
    imported by the workers after they start, so a HUP serves the code on disk now.

    ``load()`` (the arbiter's check at start) imports it and remembers the user's modules that
    came with it; ``load(fresh=True)`` (a worker) forgets those modules first, so they are read
    from disk again. Pickles as its text.

    Raises (``load``): ImportError, AttributeError, ValueError, or whatever the module raises.
    """

    def __init__(self, spec: str, default: str = "application") -> None:
        module, _, attr = spec.partition(":")
        if not module or not all(part.isidentifier() for part in module.split(".")):
            raise ValueError(f"expected MODULE:CALLABLE, got {spec!r}")
        self.spec = spec
        self.module = module
        self.attr = attr or default
        #: the user's modules imported together with the application (forgotten by a fresh load)
        self.modules: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"ImportSpec({self.spec!r})"

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def load(self, *, fresh: bool = False) -> Any:
        """Import the module (the current directory importable, as with ``python -m``) and
        return the attribute."""
        cwd = os.getcwd()
        if cwd not in sys.path and "" not in sys.path:
            sys.path.insert(0, cwd)
        if fresh:
            for name in {self.module, *self.modules}:
                sys.modules.pop(name, None)
            importlib.invalidate_caches()
        before = set(sys.modules)
        module = importlib.import_module(self.module)
        if not fresh:
            self.modules = tuple(
                sorted(
                    {self.module}
                    | {
                        n
                        for n in set(sys.modules) - before
                        if _is_user_module(n, sys.modules.get(n))
                    }
                )
            )
        obj: Any = module
        for part in self.attr.split("."):
            obj = getattr(obj, part)
        return obj

    def _check_command(self) -> list[str]:
        return [sys.executable, "-c", _CHECK_SCRIPT, self.module, os.getcwd(), *sys.path]

    def check(self, timeout: float = 60.0) -> str | None:
        """Import the module in a new interpreter (this process keeps its modules): None when
        it imports, else the error output (the user's traceback)."""
        with tempfile.TemporaryFile() as out:
            try:
                proc = subprocess.run(
                    self._check_command(),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                return f"importing {self.module} took more than {timeout:g}s"
            return _check_result(proc.returncode, out)

    async def check_async(self, timeout: float = 60.0) -> str | None:
        """:meth:`check` without blocking the running loop (polls the child: no thread, no
        child watcher)."""
        loop = asyncio.get_running_loop()
        with tempfile.TemporaryFile() as out:
            proc = subprocess.Popen(self._check_command(), stdout=out, stderr=subprocess.STDOUT)
            deadline = loop.time() + timeout
            try:
                while proc.poll() is None:
                    if loop.time() > deadline:
                        return f"importing {self.module} took more than {timeout:g}s"
                    await asyncio.sleep(0.02)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            return _check_result(proc.returncode, out)


def _check_result(returncode: int, out: Any) -> str | None:
    if returncode == 0:
        return None
    out.seek(0)
    return out.read().decode(errors="replace").rstrip() or f"exit code {returncode}"


def _framework_file(filename: str) -> bool:
    """A file of importlib or of pulsar (frames a user's traceback leaves out)."""
    if filename.startswith("<frozen importlib") or "importlib" + os.sep in filename:
        return True
    import pulsar

    real = os.path.realpath(filename)
    return any(real.startswith(os.path.realpath(d) + os.sep) for d in pulsar.__path__)


def _user_traceback(exc: BaseException) -> str:
    """The traceback of an exception raised while importing the user's code, without the
    frames of importlib and pulsar."""
    tb = exc.__traceback__
    while tb is not None and _framework_file(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb)).rstrip()


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
    #: the attribute an :class:`ImportSpec` without ``:attribute`` names
    import_default = "application"
    #: ``module:attribute`` the workers import after they start (None: the callable given in
    #: code is used as it is); set by a ``callable`` given as a string or by a launcher
    import_spec: ImportSpec | None = None

    def __init__(
        self,
        callable: Any = None,
        *,
        name: str | None = None,
        cfg: Config | None = None,
        prefix: str | None = None,
        **params: Any,
    ) -> None:
        if isinstance(callable, str):
            self.import_spec = ImportSpec(callable, self.import_default)
            callable = None
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
        if self.imports_in_worker:  # the worker imports it afresh: never pickle the old one
            state.update(self.unloaded_state())
        return state

    # -- the application's code -------------------------------------------------------------------
    @property
    def imports_in_worker(self) -> bool:
        """True when the workers import :attr:`import_spec` after they start (no ``preload``)."""
        return self.import_spec is not None and not self.cfg.get("preload")

    def unloaded_state(self) -> dict[str, Any]:
        """The attributes holding the imported application, emptied (for pickling it to a
        worker that imports it again); override with :meth:`set_application`."""
        return {"callable": None}

    @property
    def app_object(self) -> Any:
        """The application object served (the callable; a WSGI server's WSGI callable)."""
        return self.callable

    @property
    def has_application(self) -> bool:
        """True once the application object is there (given in code or imported)."""
        return self.app_object is not None

    def set_application(self, obj: Any) -> None:
        """Use ``obj``, the object :attr:`import_spec` names (override to wrap it)."""
        self.callable = obj

    def load_application(self) -> None:
        """Import :attr:`import_spec` (in the arbiter: the check at start) and use it.

        Raises:
            ConfigError: one line (``application: cannot load 'mod:app' (...)``); when the
                user's module itself raised, its traceback is printed to stderr first.
        """
        spec = self.import_spec
        if spec is None:
            return
        try:
            obj = spec.load()
        except (ImportError, AttributeError, ValueError) as exc:
            missing = isinstance(exc, ModuleNotFoundError) and _names_module(exc, spec.module)
            if not missing and _raised_in_user_code(exc):
                print(_user_traceback(exc), file=sys.stderr)
            raise ConfigError(f"application: cannot load {spec.spec!r} ({exc})") from None
        except Exception as exc:
            print(_user_traceback(exc), file=sys.stderr)
            raise ConfigError(
                f"application: cannot load {spec.spec!r}: importing {spec.module} raised "
                f"{type(exc).__name__}: {exc} (traceback above)"
            ) from None
        if not callable(obj):
            raise ConfigError(f"application: {spec.spec!r} is not callable")
        self.set_application(obj)

    async def check_code(self) -> str | None:
        """SIGHUP: None when the application's code on disk imports (in a new interpreter),
        else the error; the arbiter then keeps its running workers."""
        if self.import_spec is None:
            module = getattr(self.app_object, "__module__", None)
            if module == "__main__":
                logger.info(
                    "%s: the application was given as an object of the script: the new workers "
                    "run the code the arbiter started with (name it MODULE:CALLABLE to serve "
                    "new code on HUP)",
                    self.name,
                )
            return None
        if not self.imports_in_worker:
            return None
        return await self.import_spec.check_async()

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
            monitor = self.add_to(running)
            add_companions(
                running, find_companions([self], running=running.extra.get("companions"))
            )
            return monitor
        cwd_importable()
        try:
            if load_config:
                self.load_config(argv)
            if self.import_spec is not None and not self.has_application:
                self.load_application()
            companions = find_companions([self])
        except ConfigError as exc:
            return _fail(exc, exit)
        except KeyboardInterrupt:
            return _interrupted(exit)
        arb = arbiter(cfg=self.cfg.prefixed(None))
        self.add_to(arb)
        add_companions(arb, companions)
        code = arb.start()
        if exit:
            sys.exit(code)
        return code

    def add_to(self, arbiter: Arbiter) -> Monitor | None:
        """Add this application to ``arbiter`` (a monitor, or in the arbiter for ``workers=0``)."""
        if self.cfg.view(MonitorOptions).workers == 0:
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
        if self.import_spec is not None and (not self.has_application or self.imports_in_worker):
            if actor.is_arbiter:
                if not self.has_application:
                    self.load_application()
            else:  # the code on disk now (a HUP serves new code); the user's traceback if not
                self.set_application(self.import_spec.load(fresh=True))
        actor.extra["application"] = self
        actor.info_hooks.append(self.worker_info)
        if hasattr(actor, "add_stop_callback"):
            actor.add_stop_callback(self._stop_in)
        await _await_hooks([self.cfg.get("worker_start"), self.worker_start], actor)
        if not actor.is_arbiter:
            logger.info("%s: worker %s started (pid %d)", self.name, actor.aid, os.getpid())

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
        cwd_importable()
        try:
            apps = self.apps()
            if load_config:
                self.load_config(argv)
            for app in apps:
                if app.import_spec is not None and not app.has_application:
                    app.load_application()
            running = get_arbiter()
            if running is None or running.state >= 3 or running.loop is None:
                running = None
            companions = find_companions(
                apps, running=None if running is None else running.extra.get("companions", {})
            )
        except ConfigError as exc:
            return _fail(exc, exit)
        except KeyboardInterrupt:
            return _interrupted(exit)
        if running is not None:
            added = [app.add_to(running) for app in apps]
            add_companions(running, companions)
            return added
        arb = arbiter(cfg=apps[0].cfg.prefixed(None))
        for app in apps:
            app.add_to(arb)
        add_companions(arb, companions)
        code = arb.start()
        if exit:
            sys.exit(code)
        return code


def cwd_importable() -> None:
    """Make the modules of the current directory importable, as ``python -m`` does (a console
    script's ``sys.path`` starts with its own ``bin`` directory instead)."""
    cwd = os.getcwd()
    if "" not in sys.path and cwd not in sys.path:
        sys.path.insert(0, cwd)


def _prog() -> str:
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "pulsar"


def _names_module(exc: ModuleNotFoundError, module: str) -> bool:
    """True when ``exc`` says ``module`` (or one of its parent packages) does not exist."""
    name = exc.name or ""
    return module == name or module.startswith(name + ".")


def _raised_in_user_code(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if not _framework_file(tb.tb_frame.f_code.co_filename):
            return True
        tb = tb.tb_next
    return False


def _interrupted(exit: bool) -> int:
    print("interrupted (Ctrl-C) while loading the application", file=sys.stderr)
    if exit:
        sys.exit(int(ExitCode.INTERRUPTED))
    return int(ExitCode.INTERRUPTED)


def _fail(exc: ConfigError, exit: bool) -> int:
    print(f"error: {exc}", file=sys.stderr)
    if exit:
        sys.exit(int(ExitCode.CONFIG))
    return int(ExitCode.CONFIG)
