"""Direct links: actor-to-actor connections that skip the arbiter once two actors talk.

How it works
------------
Every process actor with a unix mailbox also listens on ``<mailbox dir>/<aid>.link`` (the
arbiter's private 0700 directory). When actor A sends a second message to actor B (they have
talked through the arbiter), A opens a connection to B's link socket, passes **the same mutual
HMAC handshake** as the mailbox (the per-arbiter secret; nothing is unpickled before it) and says
HELLO with its aid. The link is opened *after* that second message, never while it is in flight:
when its reply arrives (a request that needs one), else with the next message to B. So an actor
that sends once or twice to another pays nothing for links (opening one costs a handshake's round
trips in both processes, which would otherwise delay the very message that triggered it). Then:

* **ordering per sender→target pair**: A sends a ``link barrier`` to B *through the arbiter*,
  then sends every later message to B on the link. B holds what arrives on the link from A until
  the barrier arrives on the arbiter path; since each path is FIFO, everything A sent to B
  through the arbiter before has been handled by then. Each direction is its own link (B's
  replies to A use B's link to A once B has opened one, else the arbiter route).
* **fallback**: when a link drops (B stopped, or the connection failed), A forgets it and sends
  through the arbiter again, never retrying a link to B. Requests A sent on the link and not yet
  answered (the arbiter does not know them) are answered once A asked the arbiter about B (a
  probe): :class:`~pulsar.ActorStopped` when B is gone, else :class:`~pulsar.MailboxError` (B may
  have run them). Requests sent afterwards go through the arbiter, which answers
  ``ActorStopped`` for a dead B.
* only process actors listen (thread actors share the arbiter's process); the arbiter and the
  monitors are reached through the arbiter as before. A link's messages are counted in the
  actor's ``info['links']``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import _mailbox as mb
from ._exceptions import ActorStopped, MailboxError

__all__ = ["LINK_BARRIER", "LINK_PROBE", "LinkManager", "link_path"]

logger = logging.getLogger("pulsar.links")

#: the command name of the barrier sent through the arbiter before the first linked message
LINK_BARRIER = "__link_barrier__"
#: the command asking through the arbiter whether a link's target still runs
LINK_PROBE = "__link_probe__"
#: messages to one target, through the arbiter, after which a link is opened
LINK_AFTER = 2
_REQUEST = mb.REQUEST
_REPLY = mb.REPLY


def link_path(mailbox_address: Any, aid: str) -> str | None:
    """The link socket of actor ``aid`` (None without a unix mailbox)."""
    if not isinstance(mailbox_address, str):
        return None
    return os.path.join(os.path.dirname(mailbox_address), f"{aid}.link")


@dataclass(slots=True)
class _Outgoing:
    target: str
    proto: mb.MailboxProtocol | None = None
    ready: bool = False
    #: ids of requests sent on this link and not answered yet
    pending: set[int] = field(default_factory=set)
    sent: int = 0


@dataclass(slots=True)
class _Incoming:
    proto: mb.MailboxProtocol
    synced: bool = False
    held: list[mb.Envelope] = field(default_factory=list)


class LinkManager:
    """The links of one actor (owned by :class:`~pulsar._actor.Actor`).

    ``deliver(env)`` hands an envelope to the actor (it calls :meth:`replied` for a reply);
    ``handle(env)`` is what ``deliver`` calls after that (the actor's ``handle_envelope``, called
    directly on the hot path; ``deliver`` when not given); ``send_via_arbiter(env)`` writes to
    the mailbox; ``fail(mid, exc)`` answers one of the actor's pending requests with an error.
    """

    def __init__(
        self,
        aid: str,
        secret: bytes,
        mailbox_address: Any,
        *,
        deliver: Callable[[mb.Envelope], None],
        send_via_arbiter: Callable[[mb.Envelope], None],
        fail: Callable[[int, BaseException], None],
        no_link: frozenset[str] = frozenset(),
        max_frame_size: int | None = None,
        handle: Callable[[mb.Envelope], None] | None = None,
    ) -> None:
        self.aid = aid
        self._secret = secret
        self._address = mailbox_address
        self._deliver = deliver
        self._handle = handle or deliver
        self._via_arbiter = send_via_arbiter
        self._fail = fail
        self._no_link = set(no_link)
        self._max_frame = int(max_frame_size or mb.DEFAULT_MAX_FRAME_SIZE)
        self._talks: dict[str, int] = {}
        #: targets whose link opens next: when the reply to this request id arrives (-1: at the
        #: next message to them); see the module docstring
        self._due: dict[str, int] = {}
        self._out: dict[str, _Outgoing] = {}
        self._in: dict[str, _Incoming] = {}
        self._barriers: set[str] = set()
        self._server: asyncio.AbstractServer | None = None
        self._path: str | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._probes: dict[str, asyncio.Future[None]] = {}
        self.closed = False

    # -- listening ---------------------------------------------------------------------------------
    async def listen(self) -> None:
        """Listen on this actor's link socket (nothing without a unix mailbox)."""
        path = link_path(self._address, self.aid)
        if path is None:
            return
        loop = asyncio.get_running_loop()

        def factory() -> mb.MailboxProtocol:
            conn = mb.Connection(mb.Role.SERVER, self._secret, max_frame_size=self._max_frame)
            return mb.MailboxProtocol(
                conn, on_message=self._on_incoming_frame, on_close=self._on_incoming_closed
            )

        self._server = await loop.create_unix_server(factory, path)
        os.chmod(path, 0o600)
        self._path = path

    def _on_incoming_frame(self, proto: mb.MailboxProtocol, frame: mb.Frame) -> None:
        env = frame.envelope
        if proto.aid is None:
            if env.kind != mb.HELLO or env.target != self.aid or not env.sender:
                proto.abort(mb.ProtocolError("a link must start with HELLO"))
                return
            proto.aid = env.sender
            old = self._in.pop(env.sender, None)
            if old is not None:
                old.proto.close()
            synced = env.sender in self._barriers
            self._barriers.discard(env.sender)
            self._in[env.sender] = _Incoming(proto, synced)
            return
        if env.sender != proto.aid or env.target != self.aid:
            proto.abort(mb.ProtocolError(f"link from {proto.aid}: bad sender or target"))
            return
        incoming = self._in.get(proto.aid)
        if incoming is None or incoming.proto is not proto:
            return
        if not incoming.synced:
            incoming.held.append(env)
            return
        # the hot path: _deliver(env) (the actor's _receive()) inlined: replied(), then handle
        if env.kind == _REPLY:
            out = self._out.get(env.sender)
            if out is not None:
                out.pending.discard(env.id)
            elif self._due:
                self._reply_due(env)
        self._handle(env)

    def _on_incoming_closed(self, proto: mb.MailboxProtocol, exc: BaseException | None) -> None:
        if proto.aid is not None:
            incoming = self._in.get(proto.aid)
            if incoming is not None and incoming.proto is proto:
                del self._in[proto.aid]
                for env in incoming.held:  # the barrier never came: deliver in order anyway
                    self._deliver(env)

    def barrier(self, sender: str) -> None:
        """The barrier of ``sender`` arrived through the arbiter: what its link held goes now."""
        incoming = self._in.get(sender)
        if incoming is None:
            self._barriers.add(sender)  # its HELLO on the link is still on its way
            return
        incoming.synced = True
        held, incoming.held = incoming.held, []
        for env in held:
            self._deliver(env)

    # -- sending -----------------------------------------------------------------------------------
    def post(self, env: mb.Envelope) -> None:
        """Send ``env``: on the link to its target when there is one, else through the arbiter
        (opening a link once this actor has talked to that target often enough)."""
        target = env.target
        out = self._out.get(target)
        if out is not None and out.ready and out.proto is not None and not out.proto.closed:
            try:
                out.proto.write_envelope(env)
            except ConnectionError:
                self._lost(out)
            else:
                out.sent += 1
                if env.flag and env.kind == _REQUEST:
                    out.pending.add(env.id)
                return
        self._via_arbiter(env)
        if out is None and not self.closed and target not in self._no_link:
            if target in self._due:  # the previous message made it due: open it now
                del self._due[target]
                self._open(target)
                return
            talks = self._talks.get(target, 0) + 1
            self._talks[target] = talks
            if talks >= LINK_AFTER:
                # not while this message is in flight: once its reply is in, or with the next
                del self._talks[target]
                self._due[target] = env.id if env.kind == _REQUEST and env.flag else -1

    def never_linked(self, target: str) -> bool:
        """True when messages to ``target`` always go through the arbiter (no link is open or
        will be opened): the caller may write them to the mailbox itself."""
        return target in self._no_link and target not in self._out

    def forbid(self, target: str) -> None:
        """Never open a link to ``target`` (its messages keep going through the arbiter)."""
        self._no_link.add(target)
        self._due.pop(target, None)

    def replied(self, env: mb.Envelope) -> None:
        """A reply from ``env.sender`` arrived (by any path): it is no longer pending."""
        out = self._out.get(env.sender)
        if out is not None:
            out.pending.discard(env.id)
        elif self._due:
            self._reply_due(env)

    def _reply_due(self, env: mb.Envelope) -> None:
        """The reply that makes a link to its sender due arrived: open the link once it has
        been handled (the caller's ``handle`` resolves the request's future after this call, so
        the awaiting code runs before the connection's first step)."""
        sender = env.sender
        if self._due.get(sender) == env.id:
            del self._due[sender]
            # two loop hops: the reply's future is resolved after this call, so the code
            # awaiting it runs before the link is opened
            loop = asyncio.get_running_loop()
            loop.call_soon(loop.call_soon, self._open_due, sender)

    def _open_due(self, target: str) -> None:
        if not self.closed and target not in self._no_link and target not in self._out:
            self._open(target)

    def _open(self, target: str) -> None:
        self._talks.pop(target, None)
        path = link_path(self._address, target)
        if path is None:
            self._no_link.add(target)
            return
        # no stat() of the path here (a syscall on the message path): a target without a link
        # socket (arbiter, monitor, guest, thread actor) fails the connection, in the task, and
        # _lost() keeps it on the arbiter route
        out = self._out[target] = _Outgoing(target)
        task = asyncio.ensure_future(self._connect(out, path))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, out: _Outgoing, path: str) -> None:
        loop = asyncio.get_running_loop()
        conn = mb.Connection(mb.Role.CLIENT, self._secret, max_frame_size=self._max_frame)

        def factory() -> mb.MailboxProtocol:
            return mb.MailboxProtocol(
                conn,
                on_message=self._on_outgoing_frame,
                on_close=lambda p, e: self._lost(out),
            )

        try:
            _, proto = await loop.create_unix_connection(factory, path)
            out.proto = proto
            await asyncio.wait_for(asyncio.shield(proto.opened), 10)
            proto.aid = out.target
            proto.write_envelope(
                mb.Envelope(mb.HELLO, 0, self.aid, out.target, "hello", False, b"")
            )
            # through the arbiter, after everything sent that way so far (see the docstring)
            self._via_arbiter(
                mb.Envelope(mb.REQUEST, 0, self.aid, out.target, LINK_BARRIER, False, b"")
            )
        except Exception as exc:
            logger.debug("%s: no direct link to %s: %s", self.aid, out.target, exc)
            self._lost(out)
            return
        if self._out.get(out.target) is out and not proto.closed:
            out.ready = True

    def _on_outgoing_frame(self, proto: mb.MailboxProtocol, frame: mb.Frame) -> None:
        # the target never writes on a link it accepted; anything else is a protocol error
        proto.abort(mb.ProtocolError("unexpected message on an outgoing link"))

    def _lost(self, out: _Outgoing) -> None:
        if self._out.get(out.target) is not out:
            return
        del self._out[out.target]
        self._no_link.add(out.target)  # from now on through the arbiter (never relinked)
        if out.proto is not None:
            out.proto.close()
        pending, out.pending = out.pending, set()
        if pending:
            task = asyncio.ensure_future(self._fail_lost(out.target, sorted(pending)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _fail_lost(self, target: str, pending: list[int]) -> None:
        """Answer the requests that were in flight on a dropped link: ``ActorStopped`` when the
        target is gone (asked through the arbiter, which knows), else a ``MailboxError`` (it may
        or may not have run them)."""
        exc: BaseException
        try:
            probe = asyncio.get_running_loop().create_future()
            self._probes[target] = probe
            self._via_arbiter(mb.Envelope(mb.REQUEST, 0, self.aid, target, LINK_PROBE, True, b""))
            await asyncio.wait_for(probe, 10)
            exc = MailboxError(
                f"the direct link to actor {target} dropped before it replied (it may have run)"
            )
        except ActorStopped as stopped:
            exc = ActorStopped(f"{stopped} (a request on the direct link was not answered)")
        except Exception as other:
            exc = MailboxError(f"the direct link to actor {target} dropped: {other}")
        finally:
            self._probes.pop(target, None)
        for mid in pending:
            self._fail(mid, exc)

    def probe_answered(self, env: mb.Envelope) -> bool:
        """The arbiter's answer to a link probe (True when ``env`` was one)."""
        probe = self._probes.get(env.sender)
        if env.id != 0 or env.command != LINK_PROBE or probe is None or probe.done():
            return False
        if env.flag:
            probe.set_result(None)
        else:
            try:
                probe.set_exception(mb.loads(env.body))
            except Exception as exc:
                probe.set_exception(MailboxError(str(exc)))
        return True

    # -- info and shutdown -------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        return {
            "out": {t: o.sent for t, o in self._out.items() if o.ready},
            "in": sorted(self._in),
        }

    def close(self) -> None:
        """Stop listening and close every link."""
        self.closed = True
        if self._server is not None:
            self._server.close()
            self._server = None
        for out in list(self._out.values()):
            if out.proto is not None:
                out.proto.close()
        self._out.clear()
        for incoming in list(self._in.values()):
            incoming.proto.close()
        for task in list(self._tasks):
            task.cancel()
        if self._path is not None:
            try:
                os.unlink(self._path)
            except OSError:
                pass
            self._path = None
