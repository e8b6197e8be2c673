"""The Arbiter: the root actor of a pulsar process tree.

How it works
------------
The arbiter runs the main event loop, listens on the mailbox (a unix socket in a private 0700
directory; TCP on 127.0.0.1 where unix sockets are missing), starts every child actor and is the
I/O half of supervision. The decisions are taken elsewhere, each in one module:

* where a message goes: :class:`~pulsar._routing.MessageRouter` (sans-IO; it owns the one table
  of requests in flight, so when a child dies every open request to it is answered with
  :class:`~pulsar.ActorStopped`); :meth:`Arbiter.route` feeds it and executes its decisions;
* what state each child is in: :class:`~pulsar._supervision.Supervisor` (one record per child, a
  ``ChildState`` table); :meth:`Supervisor.reaped` is the single place an exit lands, called
  only once the process is gone (a process child is watched through its sentinel fd, or a pidfd
  when its forkserver died; a thread child through its thread's end);
* what a pool needs: each :class:`~pulsar._monitor.Monitor` returns decisions that
  :meth:`Arbiter.execute_pool` carries out (spawn, stop, recycle, respawn after a back-off,
  give up).

The arbiter itself: a supervision tick checks heartbeats (a child silent for longer than
``timeout`` gets its stacks dumped with SIGUSR1, then SIGTERM, then SIGKILL) and asks every
monitor for decisions; signals follow the gunicorn pattern: the handler only queues the signal,
the loop dispatches it to ``handle_<name>()``: INT/QUIT fast stop (a second one SIGKILLs every
actor), TERM graceful stop within ``graceful_timeout``, HUP reload and roll workers, TTIN/TTOU one
worker more/less (in :mod:`pulsar._signals`). It never exits before every child is reaped.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from . import _mailbox as mb
from ._actor import (
    ActorBase,
    ActorProxy,
    ActorSpec,
    ActorState,
    ExitInfo,
    get_actor,
    new_aid,
    set_actor,
)
from ._commands import CommandRole, command_modules
from ._concurrency import (
    register_fork_fd,
    resolve_start_method,
    start_process,
    start_thread,
    unregister_fork_fd,
)
from ._exceptions import (
    ConfigError,
    ExitCode,
    PulsarError,
    SpawnError,
)
from ._monitor import (
    GiveUp,
    Monitor,
    MonitorState,
    PoolDecision,
    RecycleWorker,
    RespawnAfter,
    SpawnWorkers,
    StopWorker,
)
from ._operations import PidFile, SourceWatcher, configure_logging, daemonize
from ._routing import Decision, Deliver, Forward, MessageRouter
from ._signals import SignalsMixin
from ._supervision import ActorHandle, PeerKind, Supervisor
from ._system import process_title, set_process_title
from .options import ActorOptions

__all__ = ["Arbiter", "ExitCode", "arbiter", "get_arbiter"]

logger = logging.getLogger("pulsar.arbiter")


SUPERVISE_INTERVAL = 0.25

_arbiter: Arbiter | None = None


def get_arbiter() -> Arbiter | None:
    """The arbiter of this process, or None."""
    return _arbiter


def arbiter(*, start: Callable[..., Any] | None = None, cfg: Any = None, **params: Any) -> Any:
    """The Arbiter singleton of this process tree (created on first call).

    ``start``: ``fn(arbiter)``, sync or async, run once the arbiter runs. Other keyword params are
    settings (``arbiter(workers=2, io='uvloop')``). Inside a child actor this returns an
    :class:`ActorProxy` of the arbiter (send it commands).
    """
    global _arbiter
    actor = get_actor()
    if actor is not None and not actor.is_arbiter:
        return ActorProxy(actor.arbiter_aid, "arbiter")
    if _arbiter is None or _arbiter.state == ActorState.CLOSED:
        _arbiter = Arbiter(cfg=cfg, start=start, **params)
    else:
        if cfg is not None:
            _arbiter.cfg = cfg
        for name, value in params.items():
            _arbiter.cfg.set(name, value)
        if start is not None:
            _arbiter.start_callbacks.append(start)
    return _arbiter


def _make_config(cfg: Any, params: dict[str, Any]) -> Any:
    from ._config import Config

    if cfg is None:
        return Config(**params)
    cfg = cfg.copy()
    for name, value in params.items():
        cfg.set(name, value)
    return cfg


class Arbiter(SignalsMixin, ActorBase):
    """The root actor: owns the mailbox server, the monitors and every child actor."""

    kind = "arbiter"
    roles = frozenset({CommandRole.ANY, CommandRole.ARBITER})
    #: the mailbox transport: ``"auto"`` (a unix socket where the platform has them, else TCP
    #: on 127.0.0.1, as on Windows) or ``"tcp"`` (forced: how the tests run the Windows path on
    #: Linux). With TCP there is no secret file (a guest passes ``secret``) and no direct links.
    mailbox_transport = "auto"

    def __init__(
        self, *, cfg: Any = None, start: Callable[..., Any] | None = None, **params: Any
    ) -> None:
        super().__init__(
            aid="arbiter", name="arbiter", cfg=_make_config(cfg, params), concurrency="arbiter"
        )
        self.start_callbacks: list[Callable[..., Any]] = [start] if start is not None else []
        self.secret = mb.new_secret()
        self.address: Any = None
        self.socket_dir: str | None = None
        self.monitors: dict[str, Monitor] = {}
        #: one record per child, their states and exits (:mod:`pulsar._supervision`)
        self.supervisor = Supervisor()
        self.supervisor.on_reaped.append(self._child_reaped)
        #: actors living in this process (the arbiter, its monitors), by aid
        self._local: dict[str, ActorBase] = {self.aid: self}
        #: where envelopes go and the one table of requests in flight (:mod:`pulsar._routing`)
        self.router = MessageRouter()
        self.router.add_local(self.aid)
        self._watchers: dict[str, set[str]] = {}
        self._server: asyncio.AbstractServer | None = None
        self._protocols: set[mb.MailboxProtocol] = set()
        self._fds: set[int] = set()
        self._stop_future: asyncio.Future[None] | None = None
        self._stopping_task: asyncio.Task[None] | None = None
        self._graceful = True
        self._killing = False
        self._signal_queue: list[int] = []
        self._signals_installed: list[int] = []
        self._previous_handlers: dict[int, Any] = {}
        self._supervisor: asyncio.TimerHandle | None = None
        #: a pending back-off respawn per monitor name
        self._pool_timers: dict[str, asyncio.TimerHandle] = {}
        self.signal_hooks: dict[str, Callable[[], Any]] = {}
        self.stop_callbacks: list[Callable[..., Any]] = []
        self._starting: asyncio.Future[None] | None = None
        self.pidfile: PidFile | None = None
        self._watcher: SourceWatcher | None = None
        self._watch_timer: asyncio.TimerHandle | None = None
        self._reexec = False

    @property
    def is_arbiter(self) -> bool:
        return True

    @property
    def handles(self) -> dict[str, ActorHandle]:
        """The live children by aid (the supervisor's records)."""
        return self.supervisor.children

    @property
    def exited(self) -> dict[str, ExitInfo]:
        """The exit records of recent children by aid."""
        return self.supervisor.exits

    # ============================================================================================
    # running
    # ============================================================================================
    def start(self, *, install_signals: bool | None = None) -> int:
        """Run the actor system until :meth:`stop` or a stop signal; returns the exit code."""
        from ._loop import new_event_loop

        if self.state != ActorState.INITIAL:
            raise PulsarError("this arbiter was already started")
        if self.cfg.get("daemon"):
            daemonize(self.cfg.get("umask"))
        elif self.cfg.get("umask") is not None:
            os.umask(self.cfg.get("umask"))
        loop = new_event_loop(self.cfg.view(ActorOptions).io)
        asyncio.set_event_loop(loop)
        try:
            code = loop.run_until_complete(self.run(install_signals=install_signals))
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                asyncio.set_event_loop(None)
                loop.close()
        if self._reexec:  # the reloader: start again from scratch with the changed sources
            logger.info("arbiter: re-executing %s", " ".join(sys.orig_argv))
            sys.stdout.flush()
            sys.stderr.flush()
            os.execv(sys.executable, sys.orig_argv)
        return code

    async def run(self, *, install_signals: bool | None = None) -> int:
        """Start, wait until stopped, shut down; returns the exit code (on the running loop)."""
        try:
            await self.startup(install_signals=install_signals)
        except Exception as exc:
            logger.error("arbiter failed to start: %s", exc)
            self.exit_code = int(ExitCode.BOOT_ERROR)  # what "arbiter stopped" logs
            await self._shutdown(graceful=False)
            return self.exit_code
        await self.wait_stopped()
        return self.exit_code

    async def startup(self, *, install_signals: bool | None = None) -> None:
        """Start the mailbox server, the signal handling, the monitors and the start callbacks."""
        global _arbiter
        if self.state != ActorState.INITIAL:
            raise PulsarError("this arbiter was already started")
        _arbiter = self
        self.loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.state = ActorState.STARTING
        self.started_at = time.monotonic()
        self._stop_future = self.loop.create_future()
        set_actor(self)
        configure_logging(self.cfg)
        set_process_title(self.title("arbiter"))
        await self._start_mailbox()
        if self.cfg.get("pidfile"):
            self.pidfile = PidFile(self.cfg.get("pidfile"))
            self.pidfile.create(os.getpid(), mailbox=str(self.address))
        if self.cfg.get("reload"):
            self._watcher = SourceWatcher([os.path.abspath(sys.argv[0])] if sys.argv[0] else [])
            self._watch_timer = self.loop.call_later(1.0, self._watch_sources)
        if install_signals is None:
            install_signals = threading.current_thread() is threading.main_thread()
        if install_signals:
            self._install_signals()
        self.state = ActorState.RUNNING
        self._supervisor = self.loop.call_later(SUPERVISE_INTERVAL, self._supervise)
        for monitor in list(self.monitors.values()):
            if monitor.monitor_state is MonitorState.INITIAL:
                await monitor.start()
        hook = self.cfg.get("arbiter_start")
        callbacks = ([hook] if hook is not None else []) + self.start_callbacks
        self._starting = asyncio.ensure_future(self._run_start_callbacks(callbacks))

    async def _run_start_callbacks(self, callbacks: list[Callable[..., Any]]) -> None:
        # a task, so a long-running start callback never delays a stop
        for fn in callbacks:
            try:
                result = fn(self)
                if inspect.isawaitable(result):
                    await result
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("arbiter start callback %r failed", fn)
                self.stop(int(ExitCode.ERROR))
                break

    async def wait_stopped(self) -> int:
        """Wait until the arbiter has stopped and shut down; returns the exit code."""
        assert self._stop_future is not None
        await asyncio.shield(self._stop_future)
        if self._stopping_task is None:
            self._stopping_task = asyncio.ensure_future(self._shutdown(self._graceful))
        await asyncio.shield(self._stopping_task)
        return self.exit_code

    def stop(self, exit_code: int = 0, graceful: bool = True) -> None:
        """Ask the arbiter to stop (thread-safe). A second, non-graceful call escalates."""
        if self.loop is None:
            self.state = ActorState.CLOSED
            return
        if not self._on_loop_thread():
            self.loop.call_soon_threadsafe(self.stop, exit_code, graceful)
            return
        if self.state >= ActorState.STOPPING:
            # a fast stop (INT/QUIT) asked while already stopping, whatever the first stop was
            # (a second Ctrl-C): kill every actor at once
            if not graceful and not self._killing:
                self._killing = True
                self._graceful = False
                logger.warning("arbiter: fast stop requested, killing actors")
                for handle in list(self.handles.values()):
                    handle.signal(signal.SIGKILL)
            return
        self.exit_code = exit_code
        self._graceful = graceful
        self.state = ActorState.STOPPING
        if self._stop_future is not None and not self._stop_future.done():
            self._stop_future.set_result(None)
        if self._stopping_task is None:
            self._stopping_task = asyncio.ensure_future(self._shutdown(graceful))

    async def shutdown(self, graceful: bool = True) -> int:
        """Stop and wait for the shutdown to finish; returns the exit code."""
        self.stop(self.exit_code, graceful=graceful)
        return await self.wait_stopped()

    async def _shutdown(self, graceful: bool) -> None:
        logger.info("arbiter stopping (%s)", "graceful" if graceful else "fast")
        self.state = ActorState.STOPPING
        if self._supervisor is not None:
            self._supervisor.cancel()
        for timer in self._pool_timers.values():
            timer.cancel()
        self._pool_timers.clear()
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
        if self._watch_timer is not None:
            self._watch_timer.cancel()
        if self._watcher is not None:
            self._watcher.close()  # an import check in progress ends with the arbiter
        for fn in reversed(self.stop_callbacks):
            try:
                result = fn(self)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("arbiter stop callback %r failed", fn)
        try:
            await asyncio.gather(*(m.close(graceful) for m in list(self.monitors.values())))
            await self.stop_actors(list(self.handles.values()), graceful=graceful)
        except Exception:
            logger.exception("arbiter: error while stopping actors")
        if self._server is not None:
            self._server.close()
        for proto in list(self._protocols):
            proto.close()
        if self._command_tasks:
            for task in list(self._command_tasks):
                if task is not asyncio.current_task():
                    task.cancel()
        for fd in self._fds:  # closed now: forked children must not close these numbers
            unregister_fork_fd(fd)
        self._fds.clear()
        if self.socket_dir:
            shutil.rmtree(self.socket_dir, ignore_errors=True)
        self._remove_signals()
        if self.pidfile is not None:
            self.pidfile.unlink()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self.state = ActorState.CLOSED
        if get_actor() is self:
            set_actor(None)
        if self._stop_future is not None and not self._stop_future.done():
            self._stop_future.set_result(None)
        logger.info("arbiter stopped (exit code %s)", self.exit_code)

    def title(self, role: str) -> str:
        """The process title for ``role`` (``pulsar-<app>-<role>``)."""
        app = next(iter(self.monitors), None)
        return process_title(app, role, self.cfg.get("process_name"))

    # ============================================================================================
    # mailbox server and routing
    # ============================================================================================
    async def _start_mailbox(self) -> None:
        loop = self.loop

        def factory() -> mb.MailboxProtocol:
            conn = mb.Connection(
                mb.Role.SERVER, self.secret, max_frame_size=int(self.cfg.get("max_frame_size"))
            )
            proto = mb.MailboxProtocol(
                conn,
                on_message=self._on_frame,
                on_open=self._on_open,
                on_close=self._on_conn_lost,
                handshake_timeout=float(self.cfg.view(ActorOptions).spawn_timeout),
            )
            self._protocols.add(proto)
            return proto

        unix = hasattr(socket, "AF_UNIX") and self.mailbox_transport != "tcp"
        if unix:
            try:
                self.socket_dir = mb.make_socket_dir()
            except OSError as exc:  # no directory short enough for a unix socket
                logger.warning("%s: mailbox on TCP 127.0.0.1: %s", self, exc)
                unix = False
        if unix and self.socket_dir:
            path = os.path.join(self.socket_dir, "arbiter.sock")
            self._server = await loop.create_unix_server(factory, path, backlog=1024)
            os.chmod(path, 0o600)
            self.address = path
            secret_path = os.path.join(self.socket_dir, "secret")
            fd = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(self.secret)
        else:  # Windows, or forced
            self._server = await loop.create_server(factory, "127.0.0.1", 0)
            self.address = self._server.sockets[0].getsockname()[:2]  # type: ignore[attr-defined]
        for sock in getattr(self._server, "sockets", None) or ():
            self._register_fd(sock.fileno())

    def _register_fd(self, fd: int) -> None:
        self._fds.add(fd)
        register_fork_fd(fd)

    def _on_open(self, proto: mb.MailboxProtocol) -> None:
        sock = proto.transport.get_extra_info("socket") if proto.transport else None
        if sock is not None:
            proto.fd = sock.fileno()  # type: ignore[attr-defined]
            self._register_fd(proto.fd)  # type: ignore[attr-defined]

    def _on_frame(self, proto: mb.MailboxProtocol, frame: mb.Frame) -> None:
        env = frame.envelope
        if env.kind == mb.HELLO:
            self._on_hello(proto, env)
            return
        if proto.aid is None:
            proto.abort(PulsarError("message before hello"))
            return
        if env.sender != proto.aid:
            proto.abort(PulsarError(f"sender {env.sender!r} does not match connection"))
            return
        if env.target == self.aid and env.kind == mb.REQUEST:
            # a command for the arbiter itself: what the router would decide (Deliver, at once;
            # nothing to track), without building the decision
            self.handle_envelope(env)
            return
        self.route(env, frame.payload)

    def _on_hello(self, proto: mb.MailboxProtocol, env: mb.Envelope) -> None:
        handle = self.handles.get(env.sender)
        try:
            hello = mb.loads(env.body)
        except Exception:
            proto.abort(PulsarError("undecodable hello"))
            return
        if handle is None and isinstance(hello, dict) and hello.get("guest"):
            handle = self._add_guest(env.sender, hello)
        if handle is None or handle.proto is not None:
            proto.abort(PulsarError(f"unknown actor {env.sender!r} said hello"))
            return
        proto.aid = handle.aid
        handle.proto = proto
        self.supervisor.connected(handle)
        handle.last_notify = time.monotonic()
        if isinstance(hello, dict):
            handle.pid = hello.get("pid", handle.pid)
        for timer in handle.timers:
            timer.cancel()
        handle.timers.clear()
        self._execute(self.router.connected(handle.aid))
        if not handle.spawned.done():
            handle.spawned.set_result(ActorProxy(handle.aid, handle.name))

    def _on_conn_lost(self, proto: mb.MailboxProtocol, exc: BaseException | None) -> None:
        self._protocols.discard(proto)
        fd = getattr(proto, "fd", None)
        if fd is not None:
            self._fds.discard(fd)
            unregister_fork_fd(fd)
        if proto.aid is None:
            return
        handle = self.handles.get(proto.aid)
        if handle is not None and handle.peer is PeerKind.GUEST:
            self._on_actor_exit(handle, 0)
            return
        if handle is not None and handle.proto is proto:
            handle.proto = None
            self.router.disconnected(handle.aid)
            # the exit (with its reason) normally follows at once and answers open requests;
            # if the actor lingers without a connection, answer them anyway
            handle.timers.append(
                self.loop.call_later(
                    1.0, self._fail_inflight, handle.aid, "lost its mailbox connection"
                )
            )

    def _add_guest(self, aid: str, hello: dict[str, Any]) -> ActorHandle | None:
        """A guest: an outside client that knows the secret (``pulsar-shell --attach``).

        Guests send and receive messages like actors but are not supervised, have no heartbeat
        timeout and leave when their connection closes.
        """
        if not aid or aid in self.handles or aid in self._local:
            return None
        spec = ActorSpec(
            aid=aid,
            name=str(hello.get("name") or f"guest-{aid[:6]}"),
            kind="guest",
            concurrency="guest",
            cfg=self.cfg,
            address=None,
            secret=b"",
        )
        handle = ActorHandle(spec, peer=PeerKind.GUEST)
        handle.pid = hello.get("pid")
        self.supervisor.add(handle)
        self.router.add_peer(aid)
        logger.info("guest %s (pid %s) attached", handle.name, handle.pid)
        return handle

    def route(self, env: mb.Envelope, payload: bytes | None = None) -> None:
        """Deliver an envelope: to a local actor (arbiter, monitors) or a child's connection."""
        self._execute(self.router.route(env, payload))

    def _execute(self, decisions: list[Decision]) -> None:
        """Carry out the router's decisions (the I/O half of routing)."""
        for decision in decisions:
            if type(decision) is Forward:
                target = decision.target
                handle = self.handles.get(target)
                proto = handle.proto if handle is not None else None
                if proto is None:  # pragma: no cover - the router thought it connected
                    self.router.disconnected(target)
                    self._execute(self.router.route(decision.envelope, decision.payload))
                    continue
                try:
                    if decision.payload is not None:
                        proto.forward(decision.payload)
                    else:
                        proto.write_envelope(decision.envelope)
                except ConnectionError:
                    self._fail_inflight(target, "lost its mailbox connection")
            elif type(decision) is Deliver:
                local = self._local[decision.target]
                if decision.deferred:
                    self.loop.call_soon(local.handle_envelope, decision.envelope)
                else:
                    local.handle_envelope(decision.envelope)
            else:
                env = decision.envelope
                logger.warning("dropped %r for unknown actor %s", env.command, env.target)

    def _post(self, envelope: mb.Envelope) -> None:
        self.route(envelope)

    def _reply(self, request: mb.Envelope, ok: bool, body: bytes) -> None:
        # Fast path of the arbiter's own replies (the actor -> arbiter round trip): to a
        # connected child the router would decide exactly this Forward (a reply from a local
        # actor changes no request in flight), so write it without building the decision.
        to = request.sender
        handle = self.supervisor.children.get(to)
        proto = handle.proto if handle is not None else None
        # handle.proto is set with router.connected() (HELLO) and cleared with
        # router.disconnected(): a proto means the router would forward
        if proto is None or proto.closed:
            super()._reply(request, ok, body)
            return
        try:
            proto.write_envelope((mb.REPLY, request.id, self.aid, to, request.command, ok, body))
        except ConnectionError:
            self._fail_inflight(to, "lost its mailbox connection")

    def _fail_inflight(self, aid: str, why: str) -> None:
        self._execute(self.router.fail_inflight(aid, why))

    # ============================================================================================
    # spawning and stopping actors
    # ============================================================================================
    async def spawn(self, **params: Any) -> ActorProxy:
        """Spawn an actor and wait for its handshake; returns its :class:`ActorProxy`."""
        handle = self.spawn_handle(**params)
        return await asyncio.shield(handle.spawned)  # type: ignore[no-any-return]

    def spawn_handle(
        self,
        *,
        name: str | None = None,
        concurrency: str | None = None,
        start: Callable[..., Any] | None = None,
        kind: str = "actor",
        monitor: Monitor | None = None,
        cfg: Any = None,
        app: str | None = None,
        aid: str | None = None,
        **params: Any,
    ) -> ActorHandle:
        """Start a child actor now; its handle's ``spawned`` future resolves on handshake."""
        if self.state >= ActorState.STOPPING:
            raise SpawnError("the arbiter is stopping")
        if self.address is None:
            raise SpawnError("the arbiter is not running")
        cfg, extra = self._settings_and_params(cfg, params)
        concurrency = concurrency or cfg.view(ActorOptions).concurrency
        if concurrency not in ("process", "thread"):
            raise ConfigError(
                f"concurrency: invalid value {concurrency!r} (expected process or thread)",
                "concurrency",
            )
        aid = aid or new_aid()
        name = name or f"actor-{aid[:6]}"
        role = "worker" if kind == "worker" else "actor"
        app_name = app or (None if kind == "worker" else name)
        spec = ActorSpec(
            aid=aid,
            name=name,
            kind=kind,
            concurrency=concurrency,
            cfg=cfg,
            address=self.address,
            secret=self.secret,
            arbiter_aid=self.aid,
            monitor_aid=monitor.aid if monitor is not None else None,
            start=start,
            params=extra,
            app=app,
            title=process_title(app_name, role, cfg.get("process_name")),
            command_modules=command_modules(),
        )
        handle = ActorHandle(spec, monitor)
        self.supervisor.add(handle)
        self.router.add_peer(aid)
        try:
            if concurrency == "thread":
                start_thread(handle, self._on_actor_exit)
            else:
                method = resolve_start_method(cfg.get("start_method"))
                start_process(handle, method, self._on_actor_exit)
        except Exception as exc:
            self.supervisor.discard(handle)
            self.router.exited(aid, "could not start")
            raise SpawnError(f"cannot start actor {name!r}: {exc}") from exc
        timeout = float(cfg.view(ActorOptions).spawn_timeout)
        handle.timers.append(self.loop.call_later(timeout, self._spawn_timed_out, handle, timeout))
        return handle

    def _settings_and_params(self, cfg: Any, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """A copy of ``cfg`` (default: the arbiter's) with the settings found in ``params`` set,
        and the params that are not settings."""
        cfg = (cfg if cfg is not None else self.cfg).copy()
        extra: dict[str, Any] = {}
        for key, value in params.items():
            if key in cfg.settings:
                cfg.set(key, value)
            else:
                extra[key] = value
        return cfg, extra

    def _spawn_timed_out(self, handle: ActorHandle, timeout: float) -> None:
        if handle.spawned.done() or not handle.alive:
            return
        handle.spawned.set_exception(
            SpawnError(f"actor {handle.name} ({handle.aid}) did not handshake within {timeout:g}s")
        )
        if handle.monitor is None:  # a worker that cannot start is a start failure of its pool
            self.supervisor.stopping(handle)
        handle.timed_out = True
        if not handle.signal(signal.SIGKILL) and handle.concurrency == "thread":
            logger.error("thread actor %s never handshook; abandoning its thread", handle.name)

    def _on_actor_exit(self, handle: ActorHandle, code: int | None) -> None:
        """A child is gone (its process reaped, its thread ended, a guest left)."""
        self.supervisor.reaped(handle, code)

    def _child_reaped(self, handle: ActorHandle, info: ExitInfo) -> None:
        """The arbiter's part once the supervisor closed a child's record: answer what waited
        for it, tell its linked actors and its monitor."""
        reason = info.reason
        if handle.proto is not None:
            handle.proto.close()
            handle.proto = None
        self._execute(self.router.exited(handle.aid, reason))
        if not handle.spawned.done():
            handle.spawned.set_exception(
                SpawnError(f"actor {handle.name} exited before its handshake: {reason}")
            )
            handle.spawned.exception()
        if not handle.exited.done():
            handle.exited.set_result(info)
        for watcher in self._watchers.pop(handle.aid, ()):  # links
            local = self._local.get(watcher)
            if local is not None:
                local.on_linked_exit(info)
            elif watcher in self.handles:
                try:
                    self.send(watcher, "actor_exited", info)
                except Exception:  # pragma: no cover
                    pass
        monitor = handle.monitor
        if monitor is not None:  # where a monitor learns one of its workers was reaped
            # the application's worker_exit hook first (a task queue frees the dead worker's
            # leases), before any replacement is spawned
            monitor.worker_exit_hook(handle.aid, info.exit_code)
            if self.state == ActorState.RUNNING:
                self.execute_pool(monitor, monitor.worker_exited(handle, info))
            else:  # the whole application stops (a group TERM reaches the workers too)
                monitor.forget(handle)

    def stop_actor(self, handle: ActorHandle, graceful: bool = True) -> None:
        """Ask one child to stop: SIGTERM (graceful) or SIGQUIT for processes, ``stop`` for
        threads; SIGKILL after ``graceful_timeout`` (or 2 s for a fast stop)."""
        if not handle.alive:
            return
        self.supervisor.stopping(handle)
        if handle.peer is PeerKind.GUEST:
            if handle.proto is not None:
                handle.proto.close()
            else:
                self._on_actor_exit(handle, 0)
            return
        if handle.process is not None:
            handle.signal(signal.SIGTERM if graceful else signal.SIGQUIT)
        elif handle.proto is not None:
            try:
                _ignore_reply(self.send(handle.aid, "stop"))
            except Exception:  # pragma: no cover
                pass
        grace = float(self.cfg.view(ActorOptions).graceful_timeout) if graceful else 2.0
        handle.timers.append(self.loop.call_later(max(grace, 0.1), self._force_kill, handle))

    def _force_kill(self, handle: ActorHandle) -> None:
        if not handle.alive:
            return
        if handle.signal(signal.SIGKILL):
            logger.warning(
                "actor %s (pid %s) did not stop in time: SIGKILL", handle.name, handle.pid
            )
        elif handle.thread is not None:
            logger.error("thread actor %s did not stop in time; abandoning it", handle.name)
            self._on_actor_exit(handle, None)

    async def stop_actors(self, handles: list[ActorHandle], graceful: bool = True) -> None:
        """Stop several children and wait until they all exited."""
        handles = [h for h in handles if h.alive]
        for handle in handles:
            self.stop_actor(handle, graceful)
        if handles:
            await asyncio.gather(*(asyncio.shield(h.exited) for h in handles))

    async def kill_actor(self, aid: str, graceful: bool = True) -> bool:
        """Stop actor ``aid`` and wait for its exit; False when it does not run."""
        handle = self.handles.get(aid)
        if handle is None:
            return False
        self.stop_actor(handle, graceful)
        await asyncio.shield(handle.exited)
        return True

    # ============================================================================================
    # monitors
    # ============================================================================================
    def add_monitor(
        self,
        name: str,
        *,
        start: Callable[..., Any] | None = None,
        cfg: Any = None,
        app: str | None = None,
        application: Any = None,
        **params: Any,
    ) -> Monitor:
        """Add a :class:`Monitor` keeping ``workers`` actors running ``start(actor)``.

        Settings in ``params`` override the arbiter's configuration for this monitor only.
        """
        if name in self.monitors:
            raise PulsarError(f"a monitor named {name!r} already exists")
        cfg, extra = self._settings_and_params(cfg, params)
        monitor = Monitor(
            self,
            name,
            cfg,
            arbiter_aid=self.aid,
            worker_start=start,
            app=app,
            params=extra,
            application=application,
        )
        self.monitors[name] = monitor
        self._local[monitor.aid] = monitor
        self.router.add_local(monitor.aid)
        monitor.loop = self.loop
        if self.state == ActorState.RUNNING:
            # added to a running arbiter: ``await monitor.started`` tells whether it could start
            monitor.started = asyncio.ensure_future(monitor.start())
            monitor.started.add_done_callback(lambda f: self._monitor_started(monitor, f))
        return monitor

    def _monitor_started(self, monitor: Monitor, fut: asyncio.Future[None]) -> None:
        if fut.cancelled() or fut.exception() is None:
            return
        logger.error("%s: could not start: %s", monitor.name, fut.exception())
        self.monitors.pop(monitor.name, None)
        self._local.pop(monitor.aid, None)
        self.router.remove_local(monitor.aid)
        task = asyncio.ensure_future(monitor.close(graceful=False))
        self._command_tasks.add(task)
        task.add_done_callback(self._command_tasks.discard)

    def on_monitor_failed(self, monitor: Monitor) -> None:
        """A monitor gave up (crash loop): stop the arbiter with ``ExitCode.APP_FAILED``."""
        self.stop(int(ExitCode.APP_FAILED))

    def execute_pool(self, monitor: Monitor, decisions: list[PoolDecision]) -> None:
        """Carry out a monitor's decisions (the arbiter is the only one spawning and stopping)."""
        for decision in decisions:
            if type(decision) is SpawnWorkers:
                for _ in range(decision.n):
                    monitor.adopt(self.spawn_handle(monitor=monitor, **monitor.worker_params()))
            elif type(decision) is StopWorker:
                handle = monitor.workers.get(decision.aid)
                if handle is not None:
                    self.stop_actor(handle, graceful=decision.graceful)
            elif type(decision) is RecycleWorker:
                self._recycle(monitor, decision.aid)
            elif type(decision) is RespawnAfter:
                previous = self._pool_timers.pop(monitor.name, None)
                if previous is not None:
                    previous.cancel()
                timer = self.loop.call_later(decision.delay, self._respawn, monitor)
                self._pool_timers[monitor.name] = timer
            elif type(decision) is GiveUp:
                self.on_monitor_failed(monitor)

    def _respawn(self, monitor: Monitor) -> None:
        self._pool_timers.pop(monitor.name, None)
        if self.state == ActorState.RUNNING:
            self.execute_pool(monitor, monitor.respawn_due())

    def _recycle(self, monitor: Monitor, aid: str) -> None:
        """Start a new worker first; stop ``aid`` once the new one runs (capacity never drops);
        if the new one fails, ``aid`` serves on."""
        old = monitor.workers.get(aid)
        if old is None or not self.supervisor.retire(old):  # it no longer counts in the pool
            return
        try:
            new = self.spawn_handle(monitor=monitor, **monitor.worker_params())
        except SpawnError as exc:
            logger.error("%s: cannot replace worker %s: %s", monitor.name, aid, exc)
            self.supervisor.keep(old)
            return
        monitor.adopt(new)

        def replaced(fut: asyncio.Future[Any]) -> None:
            if fut.cancelled() or fut.exception() is not None:
                self.supervisor.keep(old)  # keep serving with the old one
                return
            self.stop_actor(old, graceful=True)

        new.spawned.add_done_callback(replaced)

    # ============================================================================================
    # links, heartbeats, supervision
    # ============================================================================================
    def add_link(self, caller: str, aid: str) -> ExitInfo | None:
        """Register ``caller`` to be told when ``aid`` exits (None) or return its exit record."""
        if aid in self.handles:
            self._watchers.setdefault(aid, set()).add(caller)
            return None
        info = self.exited.get(aid)
        return info or ExitInfo(aid, aid, None, "noproc")

    def link(self, target: Any) -> asyncio.Future[ExitInfo]:
        aid = self.resolve_target(target)
        fut: asyncio.Future[ExitInfo] = self.loop.create_future()
        self._links.setdefault(aid, []).append(fut)
        info = self.add_link(self.aid, aid)
        if info is not None:
            self.on_linked_exit(info)
        return fut

    def on_notify(self, caller: str, info: dict[str, Any]) -> None:
        handle = self.handles.get(caller)
        if handle is not None:
            handle.last_notify = time.monotonic()
            handle.info = info
            if info.get("ready"):
                self.supervisor.ready(handle)

    def _supervise(self) -> None:
        if self.state != ActorState.RUNNING:
            return
        now = time.monotonic()
        try:
            for handle in list(self.handles.values()):
                if handle.peer is PeerKind.GUEST:
                    continue
                timeout = float(handle.spec.cfg.view(ActorOptions).timeout)
                if (
                    timeout
                    and handle.running
                    and not handle.timed_out
                    and not handle.stop_requested
                    and now - handle.last_notify > timeout
                ):
                    self._timeout_actor(handle, now - handle.last_notify)
            for monitor in list(self.monitors.values()):
                self.execute_pool(monitor, monitor.decide())
        finally:
            self._supervisor = self.loop.call_later(SUPERVISE_INTERVAL, self._supervise)

    def _timeout_actor(self, handle: ActorHandle, silent: float) -> None:
        handle.timed_out = True
        logger.error(
            "actor %s (%s, pid %s) silent for %.1fs (timeout): dumping its stacks, then stopping",
            handle.name,
            handle.aid,
            handle.pid,
            silent,
        )
        if handle.process is not None:
            handle.signal(signal.SIGUSR1)
            handle.timers.append(self.loop.call_later(0.3, handle.signal, signal.SIGTERM))
            grace = min(max(float(self.cfg.view(ActorOptions).graceful_timeout), 1.0), 10.0)
            handle.timers.append(self.loop.call_later(0.3 + grace, self._force_kill, handle))
        else:
            _log_thread_stacks(handle)
            try:
                _ignore_reply(self.send(handle.aid, "stop"))
            except Exception:  # pragma: no cover
                pass
            handle.timers.append(self.loop.call_later(2.0, self._force_kill, handle))

    def _watch_sources(self) -> None:
        assert self._watcher is not None
        changed = self._watcher.changed()
        if changed:
            logger.warning("arbiter: %s changed, reloading", ", ".join(changed[:3]))
            self._reexec = True
            self.stop(int(ExitCode.OK), graceful=True)
            return
        self._watch_timer = self.loop.call_later(1.0, self._watch_sources)

    # ============================================================================================
    # info
    # ============================================================================================
    async def handles_info(self, handles: list[ActorHandle], timeout: float = 2.0) -> list[Any]:
        """Ask several children for their info concurrently (their last heartbeat on timeout)."""

        async def one(handle: ActorHandle) -> dict[str, Any]:
            summary = handle.summary()
            if not handle.running or handle.peer is PeerKind.GUEST:
                return summary
            try:
                return await asyncio.wait_for(self.send(handle.aid, "info"), timeout)  # type: ignore[no-any-return]
            except Exception as exc:
                summary["info_error"] = str(exc) or type(exc).__name__
                return summary

        return list(await asyncio.gather(*(one(h) for h in handles)))

    async def get_info(self) -> dict[str, Any]:
        """The whole tree: the arbiter, each monitor with its workers, the other actors."""
        info = self.info_dict()
        info["address"] = str(self.address)
        monitors = list(self.monitors.values())
        infos = await asyncio.gather(*(m.get_info() for m in monitors))
        info["monitors"] = {m.name: i for m, i in zip(monitors, infos, strict=True)}
        free = [h for h in self.handles.values() if h.monitor is None]
        info["actors"] = await self.handles_info(free)
        return info


def _log_thread_stacks(handle: ActorHandle) -> None:
    import traceback

    thread = handle.thread
    frames = sys._current_frames()
    lines = [f"thread actor {handle.name} ({handle.aid}) stacks:"]
    if thread is not None and thread.ident in frames:
        lines.extend(traceback.format_stack(frames[thread.ident]))
    logger.error("".join(lines))


def _ignore_reply(fut: Any) -> None:
    """Retrieve a reply nobody waits for (a stop sent to an actor that may exit first)."""
    if isinstance(fut, asyncio.Future):
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())


def _forget_arbiter_in_child() -> None:
    # a forked child is not the arbiter: pulsar.arbiter()/get_arbiter() must not return a copy
    global _arbiter
    _arbiter = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_arbiter_in_child)
