"""Supervision: one record per child actor, its state machine, and the one place exits land.

How it works
------------
The arbiter keeps a :class:`Supervisor`; it holds one :class:`ActorHandle` per child (process,
thread or guest connection). A child's life is a :class:`ChildState`, and every change goes
through :meth:`Supervisor.transition`, checked against :data:`TRANSITIONS` (an illegal move raises
:class:`IllegalTransition`, so a bug shows where it happens instead of as a wrong count later)::

    STARTING ──hello──▶ RUNNING ──start returned──▶ READY
       │                  │  ▲                        │ ▲
       │                  ▼  │ replacement failed     ▼ │
       │                RETIRING ◀───── recycle ───────┘
       ▼                  ▼
    STOPPING ◀──── stop asked (from any live state)
       ▼
    EXITED   ◀──── reaped (from any live state)

* ``STARTING``: the process or thread runs, no handshake yet;
* ``RUNNING``: connected (HELLO), its ``start`` callable has not returned yet;
* ``READY``: its ``start`` returned: up and serving (a later death is a crash, not a start
  failure: see :mod:`pulsar._monitor`);
* ``RETIRING``: being replaced (``max_requests``, HUP): it serves until its replacement runs; it
  no longer counts in its pool; back to RUNNING/READY if the replacement fails;
* ``STOPPING``: asked to stop; waits to be reaped;
* ``EXITED``: reaped. :meth:`Supervisor.reaped` is the single place where an exit is recorded,
  logged and counted, and only once the process is gone (see :mod:`pulsar._concurrency`).

Kinds of peer are a :class:`PeerKind`: a ``CHILD`` (spawned and supervised) or a ``GUEST`` (an
outside client that knows the secret, ``pulsar.connect``: not supervised, no heartbeat).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

from ._actor import ActorSpec, ExitInfo
from ._exceptions import PulsarError

__all__ = [
    "ActorHandle",
    "ChildState",
    "IllegalTransition",
    "PeerKind",
    "Supervisor",
    "TRANSITIONS",
    "exit_reason",
]

logger = logging.getLogger("pulsar.arbiter")

#: exit records kept for ``ActorStopped`` messages and late ``link`` calls
MAX_EXITS = 1000


class PeerKind(enum.Enum):
    """What is at the other end of a mailbox connection."""

    CHILD = "child"  # an actor the arbiter spawned and supervises
    GUEST = "guest"  # an outside client (pulsar.connect, pulsar-shell --attach)


class ChildState(enum.Enum):
    """The life of a child actor as its supervisor sees it (see the module docstring)."""

    STARTING = "starting"
    RUNNING = "running"
    READY = "ready"
    RETIRING = "retiring"
    STOPPING = "stopping"
    EXITED = "exited"


_S = ChildState

#: the legal transitions, the whole state machine in one table
TRANSITIONS: dict[ChildState, frozenset[ChildState]] = {
    _S.STARTING: frozenset({_S.RUNNING, _S.STOPPING, _S.EXITED}),
    _S.RUNNING: frozenset({_S.READY, _S.RETIRING, _S.STOPPING, _S.EXITED}),
    _S.READY: frozenset({_S.RETIRING, _S.STOPPING, _S.EXITED}),
    _S.RETIRING: frozenset({_S.RUNNING, _S.READY, _S.STOPPING, _S.EXITED}),
    _S.STOPPING: frozenset({_S.EXITED}),
    _S.EXITED: frozenset(),
}


class IllegalTransition(PulsarError):
    """A child was moved along a transition :data:`TRANSITIONS` does not allow (a bug)."""


def exit_reason(code: int | None, *, timed_out: bool = False) -> str:
    """The human reason of an exit code (``normal``, ``exit code 3``, ``killed by SIGKILL``)."""
    if code is None:
        reason = "exit code unknown"
    elif code < 0:
        try:
            reason = f"killed by {signal.Signals(-code).name}"
        except ValueError:
            reason = f"killed by signal {-code}"
    elif code == 0:
        reason = "normal"
    else:
        reason = f"exit code {code}"
    return f"timeout ({reason})" if timed_out else reason


class ActorHandle:
    """The supervisor's record of one child actor."""

    def __init__(
        self, spec: ActorSpec, monitor: Any = None, *, peer: PeerKind = PeerKind.CHILD
    ) -> None:
        self.spec = spec
        self.aid = spec.aid
        self.name = spec.name
        self.kind = spec.kind
        self.peer = peer
        self.concurrency = spec.concurrency
        self.monitor = monitor
        self.state = ChildState.STARTING
        self.process: Any = None
        self.thread: Any = None
        self.thread_actor: Any = None
        self.proto: Any = None
        self.spawned_at = time.monotonic()
        self.last_notify = self.spawned_at
        #: when it became READY (None: its start never returned)
        self.ready_at: float | None = None
        self.info: dict[str, Any] = {}
        self.pid: int | None = None
        #: killed by the supervision loop for not answering (its exit reason says ``timeout``)
        self.timed_out = False
        self.exit_info: ExitInfo | None = None
        self.timers: list[asyncio.TimerHandle] = []
        #: once EXITED: whether it was stopping on purpose when it went
        self.exit_requested = False
        self._retired_from: ChildState | None = None
        loop = asyncio.get_running_loop()
        self.spawned: asyncio.Future[Any] = loop.create_future()
        self.exited: asyncio.Future[ExitInfo] = loop.create_future()

    def __repr__(self) -> str:
        return f"<ActorHandle {self.name} aid={self.aid} pid={self.pid} {self.state.value}>"

    @property
    def alive(self) -> bool:
        return self.state is not ChildState.EXITED

    @property
    def running(self) -> bool:
        """Alive and connected (it answers messages)."""
        return self.alive and self.proto is not None and self.spawned.done()

    @property
    def ready(self) -> bool:
        """Its ``start`` returned at some point: it was up and serving."""
        return self.ready_at is not None

    @property
    def stop_requested(self) -> bool:
        """It is on its way out on purpose (stopping or being replaced), or went so."""
        return self.state in (ChildState.RETIRING, ChildState.STOPPING) or self.exit_requested

    def signal(self, sig: int) -> bool:
        """Send ``sig`` to a process actor. False when not a process or already gone."""
        if self.process is None or self.pid is None or not self.alive:
            return False
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            return False
        return True

    def cancel_timers(self) -> None:
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()

    def summary(self) -> dict[str, Any]:
        """What the arbiter knows without asking the actor."""
        return {
            "aid": self.aid,
            "name": self.name,
            "kind": self.kind,
            "pid": self.pid,
            "concurrency": self.concurrency,
            "state": "RUNNING" if self.running else ("CLOSED" if not self.alive else "STARTING"),
            "child_state": self.state.value,
            "last_notify": round(time.monotonic() - self.last_notify, 3),
        }


class Supervisor:
    """The records of every child of the arbiter and the transitions between their states.

    ``on_reaped`` listeners (``fn(handle, exit_info)``) are called by :meth:`reaped`, after the
    record is closed: the one place to learn that a child is gone.
    """

    def __init__(self) -> None:
        self.children: dict[str, ActorHandle] = {}
        self.exits: dict[str, ExitInfo] = {}
        self.on_reaped: list[Callable[[ActorHandle, ExitInfo], None]] = []

    def __iter__(self) -> Iterator[ActorHandle]:
        return iter(list(self.children.values()))

    def __len__(self) -> int:
        return len(self.children)

    def get(self, aid: str) -> ActorHandle | None:
        return self.children.get(aid)

    def add(self, handle: ActorHandle) -> None:
        if handle.aid in self.children:
            raise PulsarError(f"an actor with aid {handle.aid!r} is already supervised")
        self.children[handle.aid] = handle

    def discard(self, handle: ActorHandle) -> None:
        """Forget a child that never started (its process could not be created)."""
        self.children.pop(handle.aid, None)

    # -- transitions -----------------------------------------------------------------------------
    def transition(self, handle: ActorHandle, new: ChildState) -> None:
        """Move ``handle`` to ``new``; raises :class:`IllegalTransition` if the table forbids it."""
        if new not in TRANSITIONS[handle.state]:
            raise IllegalTransition(
                f"actor {handle.name} ({handle.aid}): {handle.state.value} -> {new.value} "
                "is not a legal transition"
            )
        handle.state = new

    def connected(self, handle: ActorHandle) -> None:
        """It said HELLO (a child asked to stop before that stays STOPPING)."""
        if handle.state is ChildState.STARTING:
            self.transition(handle, ChildState.RUNNING)

    def ready(self, handle: ActorHandle) -> None:
        """Its ``start`` returned: up and serving."""
        if handle.ready_at is None:
            handle.ready_at = time.monotonic()
        if handle.state is ChildState.RUNNING:
            self.transition(handle, ChildState.READY)
        elif handle.state is ChildState.RETIRING and handle._retired_from is ChildState.RUNNING:
            handle._retired_from = ChildState.READY

    def stopping(self, handle: ActorHandle) -> None:
        """It is asked to stop (idempotent)."""
        if handle.state is not ChildState.STOPPING and handle.alive:
            self.transition(handle, ChildState.STOPPING)

    def retire(self, handle: ActorHandle) -> bool:
        """Mark it for replacement; False when it is not running or ready."""
        if handle.state not in (ChildState.RUNNING, ChildState.READY):
            return False
        handle._retired_from = handle.state
        self.transition(handle, ChildState.RETIRING)
        return True

    def keep(self, handle: ActorHandle) -> None:
        """Its replacement failed: it serves on in the state it retired from."""
        if handle.state is ChildState.RETIRING:
            self.transition(handle, handle._retired_from or ChildState.RUNNING)
            handle._retired_from = None

    def reaped(self, handle: ActorHandle, code: int | None) -> ExitInfo | None:
        """The child's process (or thread) is gone: close its record, remember and log its exit,
        resolve ``handle.exited`` and call the ``on_reaped`` listeners. None if already done."""
        if not handle.alive:
            return None
        requested = handle.exit_requested = handle.stop_requested
        self.transition(handle, ChildState.EXITED)
        handle.cancel_timers()
        self.children.pop(handle.aid, None)
        reason = exit_reason(code, timed_out=handle.timed_out)
        info = ExitInfo(handle.aid, handle.name, code, reason)
        handle.exit_info = info
        self.exits[handle.aid] = info
        if len(self.exits) > MAX_EXITS:
            self.exits.pop(next(iter(self.exits)))
        log = logger.info if (requested or code == 0) else logger.warning
        log("actor %s (%s, pid %s) exited: %s", handle.name, handle.aid, handle.pid, info.reason)
        if not handle.exited.done():
            handle.exited.set_result(info)
        for listener in list(self.on_reaped):
            try:
                listener(handle, info)
            except Exception:
                logger.exception("on_reaped listener %r failed", listener)
        return info
