"""The message router: where every envelope between actors goes, and the requests in flight.

How it works
------------
:class:`MessageRouter` is sans-IO (no socket, no loop, no timer), like the mailbox framing under
it: the arbiter feeds it envelopes and events about peers, and executes the decisions it returns.

Inputs:

* :meth:`~MessageRouter.route` an envelope (with the raw frame, forwarded unchanged so the
  arbiter never unpickles user payloads);
* :meth:`~MessageRouter.add_local` / :meth:`~MessageRouter.add_peer` who exists: local actors
  living in the arbiter's process (the arbiter, its monitors) and peers at the end of a mailbox
  connection (children and guests);
* :meth:`~MessageRouter.connected`, :meth:`~MessageRouter.disconnected`,
  :meth:`~MessageRouter.fail_inflight` and :meth:`~MessageRouter.exited` as peers come and go.

Decisions out: :class:`Forward` (write this frame to that peer's connection), :class:`Deliver`
(hand this envelope to that local actor, ``deferred`` when the sender is local too so a local
request never runs inside its sender's call) and :class:`Dropped` (log it: a fire-and-forget
message for nobody).

The router owns **the one table of requests in flight**: a request that needs a reply is
remembered from the moment it is forwarded to a peer until the reply passes back. When the peer
exits (or its connection is lost for good) every such request is answered with
:class:`~pulsar.ActorStopped`, so nothing waits forever; a request for an actor that is gone is
answered with ``ActorStopped`` (or :class:`~pulsar.ActorNotFound` if it never existed). Requests
for a peer that has not said HELLO yet wait in its backlog, in order.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import NamedTuple

from . import _mailbox as mb
from ._exceptions import ActorNotFound, ActorStopped

__all__ = ["Decision", "Deliver", "Dropped", "Forward", "MessageRouter"]

#: how many departed peers the router remembers (to answer ``ActorStopped``, not ``NotFound``)
MAX_GONE = 1000


class Forward(NamedTuple):
    """Write ``envelope`` (its raw ``payload`` frame when known) to peer ``target``."""

    target: str
    envelope: mb.Envelope
    payload: bytes | None = None


class Deliver(NamedTuple):
    """Hand ``envelope`` to the local actor ``target``; ``deferred``: on the next loop turn."""

    target: str
    envelope: mb.Envelope
    deferred: bool = False


class Dropped(NamedTuple):
    """A fire-and-forget request for an actor that does not exist (log it)."""

    envelope: mb.Envelope
    reason: str


#: decisions are named tuples: immutable values, and cheap to build on the hot path
Decision = Forward | Deliver | Dropped


@dataclass(slots=True)
class _Peer:
    connected: bool = False
    backlog: list[tuple[mb.Envelope, bytes | None]] = field(default_factory=list)
    #: (sender, message id) -> command of every request forwarded to it and not answered yet
    inflight: dict[tuple[str, int], str] = field(default_factory=dict)


class MessageRouter:
    """Routing decisions for the arbiter's star topology (see the module docstring)."""

    def __init__(self) -> None:
        self._local: set[str] = set()
        self._peers: dict[str, _Peer] = {}
        self._gone: OrderedDict[str, str] = OrderedDict()

    # -- who exists ------------------------------------------------------------------------------
    def add_local(self, aid: str) -> None:
        self._local.add(aid)

    def remove_local(self, aid: str) -> None:
        self._local.discard(aid)

    def is_local(self, aid: str) -> bool:
        return aid in self._local

    def add_peer(self, aid: str) -> None:
        """A peer that will connect (a child being spawned, a guest saying hello)."""
        self._peers.setdefault(aid, _Peer())
        self._gone.pop(aid, None)

    def is_connected(self, aid: str) -> bool:
        peer = self._peers.get(aid)
        return peer is not None and peer.connected

    def inflight(self, aid: str | None = None) -> int:
        """The number of requests in flight to ``aid`` (to every peer when None)."""
        if aid is not None:
            peer = self._peers.get(aid)
            return len(peer.inflight) if peer is not None else 0
        return sum(len(p.inflight) for p in self._peers.values())

    # -- peers come and go -----------------------------------------------------------------------
    def connected(self, aid: str) -> list[Decision]:
        """``aid`` said HELLO: what waited in its backlog goes now, in order."""
        peer = self._peers.get(aid)
        if peer is None:
            return []
        peer.connected = True
        backlog, peer.backlog = peer.backlog, []
        out: list[Decision] = []
        for env, payload in backlog:
            out.extend(self.route(env, payload))
        return out

    def disconnected(self, aid: str) -> None:
        """Its connection closed (its exit normally follows): new messages wait for it."""
        peer = self._peers.get(aid)
        if peer is not None:
            peer.connected = False

    def fail_inflight(self, aid: str, why: str) -> list[Decision]:
        """Answer every request in flight to ``aid`` with :class:`~pulsar.ActorStopped`."""
        peer = self._peers.get(aid)
        if peer is None or not peer.inflight:
            return []
        inflight, peer.inflight = peer.inflight, {}
        out: list[Decision] = []
        for (sender, mid), command in inflight.items():
            err = ActorStopped(f"actor {aid} {why} before replying to {command!r}")
            out.extend(self._answer(mid, aid, sender, command, err))
        return out

    def exited(self, aid: str, reason: str) -> list[Decision]:
        """``aid`` is gone: answer its requests in flight and in its backlog, forget it."""
        out = self.fail_inflight(aid, f"exited ({reason})")
        peer = self._peers.pop(aid, None)
        self._gone[aid] = reason
        while len(self._gone) > MAX_GONE:
            self._gone.popitem(last=False)
        if peer is not None:
            for env, _ in peer.backlog:
                if env.kind == mb.REQUEST and env.flag:
                    err = ActorStopped(f"actor {aid} exited ({reason})")
                    out.extend(self._answer(env.id, aid, env.sender, env.command, err))
        return out

    # -- messages --------------------------------------------------------------------------------
    def route(self, env: mb.Envelope, payload: bytes | None = None) -> list[Decision]:
        """Where ``env`` goes (``payload``: its raw frame, forwarded unchanged)."""
        target = env.target
        if env.kind == mb.REPLY:
            sender = self._peers.get(env.sender)
            if sender is not None and sender.inflight:
                sender.inflight.pop((target, env.id), None)
        if target in self._local:
            return [Deliver(target, env, env.sender in self._local)]
        peer = self._peers.get(target)
        if peer is None:
            if env.kind == mb.REQUEST and env.flag:
                reason = self._gone.get(target)
                err: Exception = (
                    ActorStopped(f"actor {target} exited ({reason}); cannot run {env.command!r}")
                    if reason is not None
                    else ActorNotFound(f"no actor with aid {target!r}")
                )
                return self._answer(env.id, target, env.sender, env.command, err)
            if env.kind == mb.REQUEST:
                return [Dropped(env, f"no actor {target}")]
            return []
        if not peer.connected:
            peer.backlog.append((env, payload))
            return []
        if env.kind == mb.REQUEST and env.flag:
            peer.inflight[(env.sender, env.id)] = env.command
        return [Forward(target, env, payload)]

    def _answer(
        self, mid: int, source: str, to: str, command: str, err: Exception
    ) -> list[Decision]:
        reply = mb.Envelope(mb.REPLY, mid, source, to, command, False, mb.dumps(err))
        return self.route(reply)
