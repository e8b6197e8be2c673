"""Actors: state, proxies, messaging and the worker side of an actor's life.

How it works
------------
An actor is an object with an ``aid``, a ``name``, its own event loop (one per process or thread),
a thread pool for blocking calls and a configuration. :class:`ActorBase` holds what every actor
shares: request/reply correlation, running commands, counters and ``info``.

* :class:`Actor` is a worker-side actor (a process or a thread). It connects to the arbiter's
  mailbox, proves it knows the secret, says ``HELLO`` with its aid, sends ``notify`` heartbeats and
  runs commands until stopped.
* The :class:`~pulsar._arbiter.Arbiter` (and the Monitors that live in its process) derive from
  :class:`ActorBase` too, and route messages between connections.

``send`` pickles the arguments in the caller (an unpicklable argument raises
:class:`~pulsar.SerializationError` at once), the reply carries the result or the raised exception.
A request waits until the reply arrives; when the target dies first, the arbiter answers for it
with :class:`~pulsar.ActorStopped`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import enum
import faulthandler
import importlib
import inspect
import itertools
import logging
import os
import pickle
import signal
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from . import _mailbox as mb
from ._commands import CommandRole, Request, get_command, role_error
from ._commands import _registry as _command_registry
from ._exceptions import (
    ActorNotFound,
    CommandNotFound,
    MailboxError,
    PulsarError,
    RemoteError,
    SerializationError,
)
from ._links import LINK_BARRIER, LINK_PROBE, LinkManager
from ._loop import loop_name
from ._system import system_info
from .options import ActorOptions

__all__ = [
    "ActorState",
    "ActorProxy",
    "ActorSpec",
    "ExitInfo",
    "ActorBase",
    "Actor",
    "get_actor",
    "set_actor",
    "send",
    "send_threadsafe",
    "spawn",
    "link",
    "new_aid",
    "run_actor",
]

logger = logging.getLogger("pulsar")

_local = threading.local()


def get_actor() -> ActorBase | None:
    """The actor running in this thread (its loop thread or its thread pool), or None."""
    return getattr(_local, "actor", None)


def set_actor(actor: ActorBase | None) -> None:
    """Bind ``actor`` to the current thread."""
    _local.actor = actor


def new_aid() -> str:
    """A new unique actor id."""
    return uuid.uuid4().hex[:12]


class ActorState(enum.IntEnum):
    """An actor's life cycle. States only move forward:
    INITIAL → STARTING → RUNNING → STOPPING → CLOSED (STARTING may go straight to STOPPING)."""

    INITIAL = 0
    STARTING = 1
    RUNNING = 2
    STOPPING = 3
    CLOSED = 4


class ActorProxy:
    """A picklable handle on an actor: its ``aid`` and ``name``.

    Pass it (or its aid) to :func:`send`. ``await proxy.send('ping')`` is a shortcut.
    """

    __slots__ = ("aid", "name")

    def __init__(self, aid: str, name: str | None = None) -> None:
        self.aid = aid
        self.name = name or aid

    def __repr__(self) -> str:
        return f"ActorProxy({self.name!r}, aid={self.aid!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ActorProxy):
            return self.aid == other.aid
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.aid)

    def __reduce__(self) -> Any:
        return (ActorProxy, (self.aid, self.name))

    def send(self, action: str, /, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        """Send ``action`` to this actor from the current actor."""
        return send(self, action, *args, **kwargs)


@dataclass(frozen=True, slots=True)
class ExitInfo:
    """Why an actor exited (what a linked actor receives)."""

    aid: str
    name: str
    exit_code: int | None
    reason: str

    @property
    def normal(self) -> bool:
        return self.exit_code == 0


@dataclass
class ActorSpec:
    """Everything a new actor needs to start; pickled to a child process."""

    aid: str
    name: str
    kind: str
    concurrency: str
    cfg: Any
    address: Any
    secret: bytes
    arbiter_aid: str = "arbiter"
    monitor_aid: str | None = None
    start: Callable[..., Any] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    app: str | None = None
    title: str | None = None
    #: modules registering commands in the arbiter, imported by the child (spawn/forkserver)
    command_modules: tuple[str, ...] = ()


_EMPTY_ARGS: tuple[tuple[Any, ...], dict[str, Any]] = ((), {})


def _pickle_exception(exc: BaseException, where: str) -> bytes:
    """Pickle ``exc`` for a reply, keeping the remote traceback as a note."""
    tb = "".join(traceback.format_exception(exc))
    try:
        exc.add_note(f"[raised in actor {where}; remote traceback follows]\n{tb.rstrip()}")
        return mb.dumps(exc)
    except Exception:
        return mb.dumps(RemoteError(type(exc).__name__, str(exc), tb))


class ActorBase:
    """What every actor shares: identity, state, config, messaging and commands."""

    kind = "actor"
    #: the roles whose commands this actor runs (see :mod:`pulsar._commands`)
    roles: frozenset[CommandRole] = frozenset({CommandRole.ANY})

    def __init__(
        self,
        *,
        aid: str,
        name: str,
        cfg: Any,
        concurrency: str = "process",
        monitor_aid: str | None = None,
        arbiter_aid: str = "arbiter",
        params: dict[str, Any] | None = None,
    ) -> None:
        self.aid = aid
        self.name = name
        self.cfg = cfg
        self.concurrency = concurrency
        self.monitor_aid = monitor_aid
        self.arbiter_aid = arbiter_aid
        self.params: dict[str, Any] = dict(params or {})
        self.state = ActorState.INITIAL
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self.started_at: float | None = None
        self.exit_code = 0
        self.counters = {"received": 0, "sent": 0, "processed": 0, "errors": 0}
        self.extra: dict[str, Any] = {}
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._links: dict[str, list[asyncio.Future[ExitInfo]]] = {}
        self._command_tasks: set[asyncio.Task[Any]] = set()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._loop_thread: int | None = None
        #: ``fn(actor, info)`` callables that add to the ``info`` dictionary
        self.info_hooks: list[Callable[[Any, dict[str, Any]], None]] = []

    # -- identity --------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, aid={self.aid!r})"

    @property
    def proxy(self) -> ActorProxy:
        """A picklable handle on this actor."""
        return ActorProxy(self.aid, self.name)

    @property
    def is_arbiter(self) -> bool:
        return False

    @property
    def pid(self) -> int:
        return os.getpid()

    def is_running(self) -> bool:
        return self.state == ActorState.RUNNING

    def uptime(self) -> float:
        return 0.0 if self.started_at is None else time.monotonic() - self.started_at

    # -- blocking work ---------------------------------------------------------------------------
    def bind_thread(self) -> None:
        """Bind this actor to the calling thread: :func:`pulsar.get_actor` returns it there (the
        initializer of a thread pool of its own, as the threads of :attr:`executor` have)."""
        set_actor(self)

    @property
    def executor(self) -> concurrent.futures.ThreadPoolExecutor:
        """The actor's thread pool for blocking calls (``thread_workers`` threads)."""
        if self._executor is None:
            n = max(1, self.cfg.view(ActorOptions).thread_workers)
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=n,
                thread_name_prefix=f"{self.name}-pool",
                initializer=set_actor,
                initargs=(self,),
            )
        return self._executor

    def run_in_executor(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Run a blocking ``fn(*args)`` in the actor's thread pool."""
        return self.loop.run_in_executor(self.executor, fn, *args)

    # -- messaging -------------------------------------------------------------------------------
    def resolve_target(self, target: Any) -> str:
        """The aid of ``target``: an aid, an ActorProxy, ``'arbiter'`` or ``'monitor'``."""
        if type(target) is str:  # the common case first: no isinstance() of a union
            if target == "arbiter":
                return self.arbiter_aid
            if target == "monitor":
                if self.monitor_aid is None:
                    raise ActorNotFound(f"actor {self.name!r} has no monitor")
                return self.monitor_aid
            if target:
                return target
            raise ActorNotFound(f"invalid target {target!r}")
        if isinstance(target, ActorProxy | ActorBase):
            return target.aid
        if isinstance(target, str) and target:  # a str subclass
            return self.resolve_target(str(target))
        raise ActorNotFound(f"invalid target {target!r}")

    def send(self, target: Any, action: str, /, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        """Send command ``action`` to ``target``; returns an awaitable of the reply, always
        bound to the caller's running loop.

        ``target`` and ``action`` are positional-only, so every keyword goes to the command
        (``send(actor, 'config', action='get')``). Fire-and-forget commands (registered with
        ``ack=False``) resolve to None at once. From a thread running another event loop the
        reply is an asyncio future of that loop; from a thread without a loop (a thread pool)
        this raises :class:`~pulsar.PulsarError`: use :meth:`send_threadsafe` there.
        """
        if self.loop is None or self.state >= _CLOSED:
            raise MailboxError(f"{self} is not running")
        if self._loop_thread not in (None, threading.get_ident()):
            try:
                caller = asyncio.get_running_loop()
            except RuntimeError:
                raise PulsarError(
                    f"send({action!r}) called from a thread without a running event loop: use "
                    "pulsar.send_threadsafe(), which returns a concurrent.futures.Future"
                ) from None
            return asyncio.wrap_future(
                self.send_threadsafe(target, action, *args, **kwargs), loop=caller
            )
        # _send() inlined: this is the hot path of every message
        cmd = _commands_get(action)
        aid = (
            target
            if type(target) is str and target and target not in _NAMED_TARGETS
            else self.resolve_target(target)
        )
        return self._request(aid, action, args, kwargs, cmd.ack if cmd is not None else True)

    def send_threadsafe(
        self, target: Any, action: str, /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[Any]:
        """Send from any thread; returns a :class:`concurrent.futures.Future` of the reply (for
        threads without an event loop: ``send_threadsafe(...).result(timeout)``). Never block on
        it in the actor's own loop thread."""
        loop = self.loop
        if loop is None or loop.is_closed() or self.state >= ActorState.CLOSED:
            raise MailboxError(f"{self} is not running")
        return asyncio.run_coroutine_threadsafe(_await(self, target, action, args, kwargs), loop)

    def _send(
        self, target: Any, action: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> asyncio.Future[Any]:
        cmd = get_command(action)
        ack = cmd.ack if cmd is not None else True
        target_aid = self.resolve_target(target)
        return self._request(target_aid, action, args, kwargs, ack)

    def _on_loop_thread(self) -> bool:
        return self._loop_thread in (None, threading.get_ident())

    def _request(
        self, target: str, action: str, args: tuple[Any, ...], kwargs: dict[str, Any], ack: bool
    ) -> asyncio.Future[Any]:
        try:
            body = mb.dumps((args, kwargs)) if (args or kwargs) else _EMPTY_BODY
        except Exception as exc:
            raise SerializationError(
                f"cannot send {action!r} to {target}: arguments cannot be pickled ({exc})"
            ) from exc
        mid = next(self._ids)
        fut = self.loop.create_future()
        if ack:
            self._pending[mid] = fut
        self.counters["sent"] += 1
        try:
            self._post(
                _new_envelope(mb.Envelope, (_REQUEST, mid, self.aid, target, action, ack, body))
            )
        except BaseException:
            self._pending.pop(mid, None)
            raise
        if not ack:
            fut.set_result(None)
        return fut

    def _post(self, envelope: mb.Envelope) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _reply(self, request: mb.Envelope, ok: bool, body: bytes) -> None:
        self._post(
            _new_envelope(
                mb.Envelope,
                (_REPLY, request.id, self.aid, request.sender, request.command, ok, body),
            )
        )

    def handle_envelope(self, env: mb.Envelope) -> None:
        """Process a request or a reply addressed to this actor."""
        if env.kind == _REPLY:
            fut = self._pending.pop(env.id, None)
            if fut is None or fut.done():
                return
            try:
                value = mb.loads(env.body)
            except Exception as exc:
                fut.set_exception(
                    SerializationError(f"reply to {env.command!r} cannot be unpickled: {exc!r}")
                )
                return
            if env.flag:
                fut.set_result(value)
            else:
                fut.set_exception(value)
            return
        self.counters["received"] += 1
        cmd = _commands_get(env.command)
        if cmd is None:
            if env.flag:
                self._reply(
                    env,
                    False,
                    mb.dumps(
                        CommandNotFound(f"unknown command {env.command!r} in actor {self.name}")
                    ),
                )
            else:
                logger.error("%s: unknown command %r (fire-and-forget)", self, env.command)
            return
        if cmd.role is not _ANY_ROLE and cmd.role not in self.roles:  # (Enum hashes in Python)
            if env.flag:
                self._reply(env, False, mb.dumps(role_error(cmd, self.name)))
            else:
                logger.error("%s: %s", self, role_error(cmd, self.name))
            return
        try:
            if env.body == _EMPTY_BODY:
                args, kwargs = (), {}
            else:
                args, kwargs = mb.loads(env.body)
        except Exception as exc:
            if env.flag:
                err = SerializationError(
                    f"arguments of {env.command!r} cannot be unpickled in {self.name}: {exc!r}"
                )
                self._reply(env, False, mb.dumps(err))
            return
        request = Request(self, env.sender, env.command)
        try:
            result = cmd.fn(request, *args, **kwargs)
        except BaseException as exc:
            self._command_done(env, None, exc)
            if not isinstance(exc, Exception):
                raise
            return
        if type(result) in _NOT_AWAITABLE and not cmd.is_async:
            # a sync command's plain result (_command_done's success path, inlined)
            if env.flag and self.state < _CLOSED:
                self.counters["processed"] += 1
                try:
                    body = _pickle_dumps(result, mb._PICKLE_PROTOCOL)  # mb.dumps(), inlined
                except Exception:  # unpicklable contents: the general path reports it
                    self.counters["processed"] -= 1
                    self._command_done(env, result, None)
                    return
                try:
                    self._reply(env, True, body)
                except (ConnectionError, MailboxError) as cerr:
                    logger.debug("%s: could not reply to %s: %s", self, env.sender, cerr)
            else:
                self._command_done(env, result, None)
            return
        if cmd.is_async or inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._command_tasks.add(task)
            task.add_done_callback(lambda t: self._command_task_done(env, t))
        else:
            self._command_done(env, result, None)

    def _command_task_done(self, env: mb.Envelope, task: asyncio.Task[Any]) -> None:
        self._command_tasks.discard(task)
        if task.cancelled():
            self._command_done(
                env, None, asyncio.CancelledError(f"command {env.command} cancelled")
            )
        else:
            exc = task.exception()
            self._command_done(env, None if exc else task.result(), exc)

    def _command_done(self, env: mb.Envelope, result: Any, exc: BaseException | None) -> None:
        self.counters["processed"] += 1
        if exc is not None:
            self.counters["errors"] += 1
            if not env.flag:
                logger.error(
                    "%s: fire-and-forget command %r raised", self, env.command, exc_info=exc
                )
        if not env.flag or self.state >= _CLOSED:
            return
        if exc is None:
            try:
                body = mb.dumps(result)
                ok = True
            except Exception as perr:
                ok = False
                body = mb.dumps(
                    SerializationError(
                        f"result of command {env.command!r} in {self.name} cannot be pickled: "
                        f"{perr}"
                    )
                )
        else:
            ok = False
            body = _pickle_exception(exc, self.name)
        try:
            self._reply(env, ok, body)
        except (ConnectionError, MailboxError) as cerr:
            logger.debug("%s: could not reply to %s: %s", self, env.sender, cerr)

    # -- links -----------------------------------------------------------------------------------
    def link(self, target: Any) -> asyncio.Future[ExitInfo]:
        """A future resolved with an :class:`ExitInfo` when ``target`` exits (Erlang's monitor).

        If the target is unknown or already gone, it resolves at once with reason ``'noproc'``.
        """
        aid = self.resolve_target(target)
        fut: asyncio.Future[ExitInfo] = self.loop.create_future()
        self._links.setdefault(aid, []).append(fut)
        reply = self.send("arbiter", "link", aid)

        def registered(r: asyncio.Future[Any]) -> None:
            if r.cancelled():
                return
            if r.exception() is not None:
                if not fut.done():
                    fut.set_exception(r.exception())  # type: ignore[arg-type]
                return
            if r.result() is not None:
                self.on_linked_exit(r.result())

        asyncio.ensure_future(reply).add_done_callback(registered)
        return fut

    def on_linked_exit(self, exit_info: ExitInfo) -> None:
        """Called when a linked actor exited."""
        for fut in self._links.pop(exit_info.aid, []):
            if not fut.done():
                fut.set_result(exit_info)

    # -- commands that need the arbiter ----------------------------------------------------------
    async def spawn(self, **params: Any) -> ActorProxy:
        """Spawn a new actor through the arbiter."""
        return await self.send("arbiter", "spawn", **params)  # type: ignore[no-any-return]

    async def kill_actor(self, aid: str, graceful: bool = True) -> bool:
        return await self.send("arbiter", "kill_actor", aid, graceful=graceful)  # type: ignore[no-any-return]

    # -- info ------------------------------------------------------------------------------------
    def info_dict(self) -> dict[str, Any]:
        """This actor's own info (no children)."""
        info: dict[str, Any] = {
            "aid": self.aid,
            "name": self.name,
            "kind": self.kind,
            "state": self.state.name,
            "pid": self.pid,
            "concurrency": self.concurrency,
            "uptime": round(self.uptime(), 3),
            "counters": dict(self.counters),
            "pending_requests": len(self._pending),
            "running_commands": len(self._command_tasks),
        }
        if self.loop is not None:
            info["loop"] = loop_name(self.loop)
        system = system_info()
        if system is not None:
            info["system"] = system
        hooks = list(self.info_hooks)
        if self.kind == "worker" and self.cfg.get("worker_info") is not None:
            hooks.append(self.cfg.get("worker_info"))
        for hook in hooks:
            try:
                hook(self, info)
            except Exception:
                logger.exception("%s: info hook %r failed", self, hook)
        return info

    async def get_info(self) -> dict[str, Any]:
        """The info returned by the ``info`` command."""
        return self.info_dict()

    def stop(self, exit_code: int = 0) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


_EMPTY_BODY = mb.dumps(_EMPTY_ARGS)
_NONE = mb.dumps(None)
# hot-path constants (module globals are cheaper than enum and module attribute lookups)
_CLOSED = ActorState.CLOSED
_ANY_ROLE = CommandRole.ANY
#: targets resolve_target() translates (any other non-empty str is an aid)
_NAMED_TARGETS = frozenset({"arbiter", "monitor"})
_pickle_dumps = pickle.dumps
_REQUEST = mb.REQUEST
_REPLY = mb.REPLY
#: building a named tuple with tuple.__new__ skips its Python-level __new__
_new_envelope = tuple.__new__
#: the command registry's own ``get`` (what get_command() calls)
_commands_get = _command_registry.get
#: result types of a sync command that are surely not awaitable (skips inspect.isawaitable)
_NOT_AWAITABLE = frozenset(
    {str, bytes, int, float, bool, type(None), dict, list, tuple, set, frozenset}
)


async def _await(actor: ActorBase, target: Any, action: str, args: Any, kwargs: Any) -> Any:
    return await actor._send(target, action, args, kwargs)


def _current() -> ActorBase:
    actor = get_actor()
    if actor is None:
        raise PulsarError("no pulsar actor runs in this thread (start the arbiter first)")
    return actor


def send(target: Any, action: str, /, *args: Any, **kwargs: Any) -> Awaitable[Any]:
    """Send command ``action`` from the current actor to ``target`` (aid, ActorProxy,
    ``'arbiter'`` or ``'monitor'``); returns an awaitable of the reply bound to the caller's
    running loop. ``target`` and ``action`` are positional-only: every other argument, keywords
    included (``send(actor, 'config', action='get')``), goes to the command.

    Raises :class:`~pulsar.PulsarError` when no actor runs in this thread, or when this thread
    runs no event loop (use :func:`send_threadsafe`). The awaitable raises the command's
    exception, :class:`~pulsar.CommandNotFound`, :class:`~pulsar.ActorNotFound` (unknown
    target) or :class:`~pulsar.ActorStopped` (the target died before replying).
    """
    actor = getattr(_local, "actor", None)
    if actor is None:
        raise PulsarError("no pulsar actor runs in this thread (start the arbiter first)")
    return actor.send(target, action, *args, **kwargs)


def send_threadsafe(
    target: Any, action: str, /, *args: Any, **kwargs: Any
) -> concurrent.futures.Future[Any]:
    """:func:`send` for threads without an event loop (an actor's thread pool): returns a
    :class:`concurrent.futures.Future` of the reply."""
    return _current().send_threadsafe(target, action, *args, **kwargs)


async def spawn(**params: Any) -> ActorProxy:
    """Spawn a new actor and return its :class:`ActorProxy` once it has handshaken.

    Params: ``name``, ``concurrency`` (``process``/``thread``), ``start`` (a picklable callable
    ``start(actor)``, sync or async, run once the actor runs), any setting (``timeout=...``) and
    extra keyword parameters available as ``actor.params``.
    """
    return await _current().spawn(**params)


def link(target: Any) -> asyncio.Future[ExitInfo]:
    """A future resolved with the :class:`ExitInfo` of ``target`` when it exits."""
    return _current().link(target)


# ------------------------------------------------------------------------------------------------
# Worker-side actor
# ------------------------------------------------------------------------------------------------


class Actor(ActorBase):
    """An actor in its own process or thread, connected to the arbiter's mailbox."""

    def __init__(self, spec: ActorSpec) -> None:
        super().__init__(
            aid=spec.aid,
            name=spec.name,
            cfg=spec.cfg,
            concurrency=spec.concurrency,
            monitor_aid=spec.monitor_aid,
            arbiter_aid=spec.arbiter_aid,
            params=spec.params,
        )
        self.kind = spec.kind
        self.spec = spec
        self.app = spec.app
        self.mailbox: mb.MailboxProtocol | None = None
        self._stopping: asyncio.Future[None] | None = None
        self._stop_callbacks: list[Callable[..., Any]] = []
        self._heartbeat: asyncio.TimerHandle | None = None
        #: True once the ``start`` callable returned: the actor is up and serving (its monitor
        #: then counts a later death as a crash of a serving worker, not as a crash loop)
        self.ready = False
        #: direct links to other actors (None: everything goes through the arbiter)
        self.links: LinkManager | None = None

    def _post(self, envelope: mb.Envelope) -> None:
        links = self.links
        if links is not None:
            # LinkManager.never_linked(), inlined (this runs for every message)
            target = envelope.target
            if target not in links._no_link or target in links._out:
                links.post(envelope)
                return
        mailbox = self.mailbox  # _post_mailbox(), inlined
        if mailbox is None or mailbox.closed:
            raise MailboxError(f"{self}: the connection to the arbiter is closed")
        mailbox.write_envelope(envelope)

    def _post_mailbox(self, envelope: mb.Envelope) -> None:
        if self.mailbox is None or self.mailbox.closed:
            raise MailboxError(f"{self}: the connection to the arbiter is closed")
        self.mailbox.write_envelope(envelope)

    def _receive(self, env: mb.Envelope) -> None:
        """An envelope for this actor, from the mailbox or a direct link."""
        if env.kind == _REPLY and self.links is not None:
            self.links.replied(env)
        self.handle_envelope(env)

    def _fail_pending(self, mid: int, exc: BaseException) -> None:
        fut = self._pending.pop(mid, None)
        if fut is not None and not fut.done():
            fut.set_exception(exc)

    async def _listen_links(self) -> None:
        """Direct links (:mod:`pulsar._links`): process actors with a unix mailbox listen."""
        if self.concurrency != "process" or not isinstance(self.spec.address, str):
            return
        links = LinkManager(
            self.aid,
            self.spec.secret,
            self.spec.address,
            deliver=self._receive,
            handle=self.handle_envelope,
            send_via_arbiter=self._post_mailbox,
            fail=self._fail_pending,
            no_link=frozenset(a for a in (self.arbiter_aid, self.monitor_aid) if a),
            max_frame_size=self.cfg.get("max_frame_size"),
        )
        try:
            await links.listen()
        except OSError as exc:  # pragma: no cover - e.g. a path too long for a unix socket
            logger.warning("%s: no direct links: %s", self, exc)
            return
        self.links = links

    def info_dict(self) -> dict[str, Any]:
        info = super().info_dict()
        if self.links is not None:
            info["links"] = self.links.info()
        return info

    def add_stop_callback(self, fn: Callable[..., Any]) -> None:
        """Run ``fn(actor)`` (sync or async) when the actor stops, before its mailbox closes."""
        self._stop_callbacks.append(fn)

    async def _connect(self) -> None:
        loop = self.loop
        address = self.spec.address
        conn = mb.Connection(
            mb.Role.CLIENT, self.spec.secret, max_frame_size=self.cfg.get("max_frame_size")
        )

        def factory() -> mb.MailboxProtocol:
            return mb.MailboxProtocol(
                conn,
                on_message=self._on_frame,
                on_close=self._on_mailbox_lost,
                handshake_timeout=float(self.cfg.view(ActorOptions).spawn_timeout),
            )

        if isinstance(address, str):
            _, proto = await loop.create_unix_connection(factory, address)
        else:
            _, proto = await loop.create_connection(factory, *address)
        self.mailbox = proto
        await proto.opened
        await self._listen_links()  # before HELLO: once spawned, others may link to it
        hello = {"pid": os.getpid(), "name": self.name, "kind": self.kind}
        proto.write_envelope(
            mb.Envelope(mb.HELLO, 0, self.aid, self.arbiter_aid, "hello", False, mb.dumps(hello))
        )

    def _on_frame(self, proto: mb.MailboxProtocol, frame: mb.Frame) -> None:
        env = frame.envelope
        if env.target != self.aid:
            logger.error("%s: message for %s delivered here, dropped", self, env.target)
            return
        if env.kind == _REPLY and env.command != LINK_PROBE:
            # the hot path (a reply through the arbiter): _receive() inlined
            links = self.links
            if links is not None:
                links.replied(env)
            self.handle_envelope(env)
            return
        if env.command == LINK_BARRIER and env.kind == mb.REQUEST:
            if self.links is not None:
                self.links.barrier(env.sender)
            return
        if env.command == LINK_PROBE:
            if env.kind == mb.REQUEST:  # answer: this actor runs
                self._post_mailbox(
                    mb.Envelope(mb.REPLY, 0, self.aid, env.sender, LINK_PROBE, True, _NONE)
                )
            elif self.links is not None:
                self.links.probe_answered(env)
            return
        self._receive(env)

    def _on_mailbox_lost(self, proto: mb.MailboxProtocol, exc: BaseException | None) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(MailboxError("the connection to the arbiter was lost"))
        self._pending.clear()
        if self.state < ActorState.STOPPING:
            logger.warning("%s: lost the connection to the arbiter, stopping", self)
            self.stop(EXIT_ARBITER_GONE)

    def _schedule_heartbeat(self) -> None:
        interval = float(self.cfg.view(ActorOptions).heartbeat)
        self._heartbeat = self.loop.call_later(interval, self._beat)

    def _beat(self) -> None:
        if self.state != ActorState.RUNNING:
            return
        try:
            self.send("arbiter", "notify", self._notify_info())
        except (MailboxError, ConnectionError):
            return
        self._schedule_heartbeat()

    def _notify_info(self) -> dict[str, Any]:
        return {
            "state": self.state.name,
            "counters": dict(self.counters),
            "pid": os.getpid(),
            "ready": self.ready,
        }

    async def main(self) -> int:
        """Run the actor until it stops; returns its exit code."""
        self.loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.state = ActorState.STARTING
        self.started_at = time.monotonic()
        self._stopping = self.loop.create_future()
        try:
            await self._connect()
        except Exception as exc:
            logger.error("%s: cannot connect to the arbiter: %s", self, exc)
            self.state = ActorState.CLOSED
            return EXIT_ARBITER_GONE
        if self.concurrency == "process":
            from ._operations import drop_privileges

            drop_privileges(self.cfg)  # after connecting: the mailbox belongs to the arbiter's user
        self.state = ActorState.RUNNING
        self.send("arbiter", "notify", self._notify_info())
        self._schedule_heartbeat()
        try:
            if self.spec.start is not None:
                result = self.spec.start(self)
                if inspect.isawaitable(result):
                    await result
        except Exception:
            logger.exception("%s: start callable failed", self)
            self.stop(EXIT_ERROR)
        else:
            if self.state == ActorState.RUNNING:
                self.ready = True
                try:
                    self.send("arbiter", "notify", self._notify_info())
                except (MailboxError, ConnectionError):
                    pass
        await self._stopping
        await self._shutdown()
        return self.exit_code

    def stop(self, exit_code: int = 0) -> None:
        """Ask the actor to stop gracefully (idempotent)."""
        if self.state >= ActorState.STOPPING or self._stopping is None:
            return
        self.exit_code = exit_code
        self.state = ActorState.STOPPING
        if not self._stopping.done():
            self._stopping.set_result(None)

    def stop_threadsafe(self, exit_code: int = 0) -> None:
        """Stop from another thread or a signal."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.stop, exit_code)

    async def _shutdown(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        # 0: no limit here, the arbiter's kill after graceful_timeout is the only one
        grace = float(self.cfg.view(ActorOptions).graceful_timeout) or None
        for fn in reversed(self._stop_callbacks):
            try:
                result = fn(self)
                if inspect.isawaitable(result):
                    await asyncio.wait_for(result, grace)
            except Exception:
                logger.exception("%s: stop callback failed", self)
        if self._command_tasks:
            _, pending = await asyncio.wait(set(self._command_tasks), timeout=1.0)
            for task in pending:
                task.cancel()
        self.state = ActorState.CLOSED
        if self.links is not None:
            self.links.close()
        if self.mailbox is not None:
            self.mailbox.close()
        current = asyncio.current_task()
        others = [t for t in asyncio.all_tasks() if t is not current]
        for task in others:
            task.cancel()
        if others:
            await asyncio.wait(others, timeout=1.0)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)


# exit codes, also documented in pulsar._arbiter.ExitCode
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_ARBITER_GONE = 5


def _dump_tasks(signum: int, frame: Any) -> None:  # pragma: no cover - runs in a child
    actor = get_actor()
    loop = getattr(actor, "loop", None)
    lines = [f"pulsar: {actor} did not send a heartbeat in time; its asyncio tasks:"]
    if loop is not None:
        try:
            for task in list(asyncio.all_tasks(loop)):
                lines.append(f"  {task!r}")
                for f in task.get_stack(limit=20):
                    lines.extend(
                        "    " + line.rstrip() for line in traceback.format_stack(f, limit=1)
                    )
        except RuntimeError:
            pass
    logger.error("\n".join(lines))


#: the signals the arbiter may send a process actor, blocked from its fork (see
#: ``start_process``) until its loop runs: one arriving before that is delivered then, not lost
CHILD_SIGNALS = frozenset(
    getattr(signal, f"SIG{name}")
    for name in ("INT", "TERM", "QUIT", "HUP", "TTIN", "TTOU", "USR1", "USR2")
    if hasattr(signal, f"SIG{name}")
)


def _process_signals(actor: Actor) -> None:
    """Signal set-up of a process actor: the arbiter coordinates shutdown.

    The signals of :data:`CHILD_SIGNALS` arrive blocked (the parent forked with them blocked)
    and are unblocked by the loop's first callback: a TERM sent while the child boots then
    reaches a running loop. Without that, under uvloop (whose handlers are only read from
    its wake-up fd once it runs) a TERM landing between the handler's installation and the
    loop's start wrote its byte to the wake-up fd inherited from the parent, and was lost."""
    loop = actor.loop
    if hasattr(signal, "pthread_sigmask"):  # already, after a fork; a forkserver's child: now
        signal.pthread_sigmask(signal.SIG_BLOCK, CHILD_SIGNALS)
    with contextlib.suppress(ValueError, OSError):  # not the main thread: nothing inherited
        signal.set_wakeup_fd(-1)  # the parent's: a signal here must not wake the arbiter
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    loop.add_signal_handler(signal.SIGTERM, actor.stop, 0)
    loop.add_signal_handler(signal.SIGQUIT, _quick_exit, actor)
    for sig in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGCHLD):
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):  # pragma: no cover
            pass
    signal.signal(signal.SIGUSR1, _dump_tasks)
    faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True, chain=True)
    if hasattr(signal, "pthread_sigmask"):
        loop.call_soon(signal.pthread_sigmask, signal.SIG_UNBLOCK, CHILD_SIGNALS)


def _quick_exit(actor: Actor) -> None:
    actor.exit_code = 0
    actor.state = ActorState.STOPPING
    os._exit(0)


def run_actor(spec: ActorSpec, *, in_process: bool = True) -> int:
    """Create the loop of a new actor, run it to completion and return its exit code."""
    from ._loop import new_event_loop
    from ._system import set_process_title

    for module in spec.command_modules:  # already there after a fork; imported after a spawn
        if module not in sys.modules:
            try:
                importlib.import_module(module)
            except Exception as exc:
                logger.debug("%s: cannot import command module %s: %s", spec.name, module, exc)
    loop = new_event_loop(spec.cfg.view(ActorOptions).io)
    asyncio.set_event_loop(loop)
    actor = Actor(spec)
    actor.loop = loop
    set_actor(actor)
    try:
        if in_process:
            if spec.title:
                set_process_title(spec.title)
            _process_signals(actor)
            _setup_child_logging(spec.cfg)
        return loop.run_until_complete(actor.main())
    except BaseException:
        logger.exception("%s crashed", actor)
        if in_process:  # the log may go nowhere in a child: leave a trace on stderr too
            traceback.print_exc()
        return EXIT_ERROR
    finally:
        set_actor(None)
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
            if in_process:  # a late signal must not write to the closed loop's wake-up fd
                try:
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                except (ValueError, OSError):  # pragma: no cover
                    pass


def _setup_child_logging(cfg: Any) -> None:
    """Children of a spawn/forkserver start have no logging set up: mirror the arbiter's."""
    from ._operations import configure_logging

    if not logging.getLogger().handlers or cfg.get("log_config"):
        configure_logging(cfg)
