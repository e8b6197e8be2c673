"""``--attach``: a guest connection to the mailbox of a running arbiter.

How it works
------------
A running arbiter listens on a unix socket in a private (0700) directory that also holds the file
``secret`` (0600) with its per-arbiter HMAC secret. :func:`find_mailbox` turns what the user gave
(the application's pid file, whose ``<pidfile>.mailbox`` holds the socket path, or the socket
itself) into the socket path; :func:`read_secret` reads the secret next to it. :class:`Guest`
connects with pulsar's sans-IO mailbox connection, proves it knows the secret (mutual HMAC
challenge, nothing is unpickled before), says HELLO as a *guest* and then sends requests like any
actor: the arbiter lists it among its actors and forgets it when the connection closes.
"""

from __future__ import annotations

import asyncio
import os
import stat
import threading
import uuid
from typing import Any

from pulsar import ActorBase, ActorState, MailboxError, PulsarError
from pulsar import mailbox as mb  # the documented sans-IO client of the mailbox

__all__ = ["AttachError", "Guest", "RemoteActor", "find_mailbox", "read_secret"]


class AttachError(PulsarError):
    """The shell cannot attach to the application (no mailbox, no secret, refused...)."""


def find_mailbox(target: str) -> str:
    """The mailbox socket path of ``target``: a pid file (``<pidfile>.mailbox``) or a socket.

    Raises:
        AttachError: nothing usable at ``target``.
    """
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        raise AttachError(f"cannot attach to {target}: no such pid file or socket") from None
    except OSError as exc:
        raise AttachError(f"cannot attach to {target}: {exc.strerror or exc}") from None
    if stat.S_ISSOCK(mode):
        return target
    for candidate in (f"{target}.mailbox", target):
        try:
            with open(candidate, encoding="utf-8") as f:
                text = f.read(4096).strip()
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as exc:
            raise AttachError(f"cannot read {candidate}: {exc}") from None
        path = text.splitlines()[0].strip() if text else ""
        if path and _is_socket(path):
            return path
        if candidate != target:
            raise AttachError(
                f"{candidate} names {path or 'no socket'!s}, which is not a running "
                "application's mailbox (the application has exited?)"
            )
    raise AttachError(
        f"cannot attach to {target}: it is neither a mailbox socket nor a pid file with a "
        f"{os.path.basename(target)}.mailbox file next to it (start the application with "
        "--pidfile)"
    )


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def read_secret(address: str) -> bytes:
    """The per-arbiter secret: the file ``secret`` in the directory of the socket ``address``.

    Raises:
        AttachError: the file is missing, unreadable or empty.
    """
    path = os.path.join(os.path.dirname(os.path.abspath(address)), "secret")
    try:
        with open(path, "rb") as f:
            secret = f.read(4096)
    except PermissionError:
        raise AttachError(
            f"cannot read the mailbox secret {path}: permission denied (attach as the user "
            "who started the application)"
        ) from None
    except OSError as exc:
        raise AttachError(f"cannot read the mailbox secret {path}: {exc.strerror or exc}") from None
    if not secret:
        raise AttachError(f"the mailbox secret {path} is empty")
    return secret


class Guest(ActorBase):
    """This shell, seen by a remote arbiter: a guest actor talking through one connection.

    ``await guest.send(target, action, *args, **kwargs)`` works like :func:`pulsar.send`;
    ``guest.lost`` resolves when the connection closes (the application exited).
    """

    kind = "guest"

    def __init__(self, address: str, secret: bytes, cfg: Any, *, name: str = "pulsar-shell"):
        super().__init__(
            aid=f"shell-{uuid.uuid4().hex[:8]}", name=name, cfg=cfg, concurrency="guest"
        )
        self.address = address
        self._secret = secret
        self.mailbox: mb.MailboxProtocol | None = None
        self.lost: asyncio.Future[None] | None = None

    async def connect(self, timeout: float = 10.0) -> None:
        """Connect, authenticate and say hello; raises :class:`AttachError` on failure."""
        loop = asyncio.get_running_loop()
        self.loop = loop
        self._loop_thread = threading.get_ident()
        self.lost = loop.create_future()
        conn = mb.Connection(
            mb.Role.CLIENT, self._secret, max_frame_size=int(self.cfg.get("max_frame_size"))
        )

        def factory() -> mb.MailboxProtocol:
            return mb.MailboxProtocol(
                conn, on_message=self._on_frame, on_close=self._on_lost, handshake_timeout=timeout
            )

        where = self.address
        try:
            _, proto = await asyncio.wait_for(loop.create_unix_connection(factory, where), timeout)
        except (FileNotFoundError, ConnectionRefusedError):
            raise AttachError(f"no application listens on {where} (it has exited?)") from None
        except PermissionError:
            raise AttachError(f"cannot connect to {where}: permission denied") from None
        except (OSError, TimeoutError) as exc:
            raise AttachError(f"cannot connect to {where}: {exc}") from None
        self.mailbox = proto
        try:
            await asyncio.wait_for(asyncio.shield(proto.opened), timeout)
        except TimeoutError:
            proto.close()
            raise AttachError(f"the arbiter at {where} did not complete the handshake") from None
        except Exception as exc:
            proto.close()
            raise AttachError(
                f"the arbiter at {where} refused the connection: authentication failed "
                f"(wrong mailbox secret?) [{exc}]"
            ) from None
        self.state = ActorState.RUNNING
        hello = {"guest": True, "name": self.name, "pid": os.getpid()}
        proto.write_envelope(
            mb.Envelope(mb.HELLO, 0, self.aid, self.arbiter_aid, "hello", False, mb.dumps(hello))
        )
        try:  # the arbiter drops a guest it does not accept: make sure we are in
            await asyncio.wait_for(self.send(self.arbiter_aid, "ping"), timeout)
        except (MailboxError, ConnectionError, TimeoutError) as exc:
            self.close()
            raise AttachError(f"the arbiter at {where} did not accept this guest: {exc}") from None

    def _post(self, envelope: mb.Envelope) -> None:
        if self.mailbox is None or self.mailbox.closed:
            raise MailboxError(f"the connection to the arbiter at {self.address} is closed")
        self.mailbox.write_envelope(envelope)

    def _on_frame(self, proto: mb.MailboxProtocol, frame: mb.Frame) -> None:
        if frame.envelope.target == self.aid:
            self.handle_envelope(frame.envelope)

    def _on_lost(self, proto: mb.MailboxProtocol, exc: BaseException | None) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(MailboxError("the connection to the arbiter was lost"))
        self._pending.clear()
        self.state = ActorState.CLOSED
        if self.lost is not None and not self.lost.done():
            self.lost.set_result(None)

    def stop(self, exit_code: int = 0) -> None:
        """Leave: close the connection (the arbiter forgets this guest)."""
        self.exit_code = exit_code
        self.close()

    def close(self) -> None:
        """Close the connection to the arbiter."""
        if self.mailbox is not None:
            self.mailbox.close()

    def proxy_of(self, target: Any) -> RemoteActor:
        """A handle on a remote actor whose ``send`` goes through this connection."""
        aid = self.resolve_target(target)
        return RemoteActor(self, aid, "arbiter" if aid == self.arbiter_aid else aid)


class RemoteActor:
    """A remote actor seen from an attached shell (``arbiter`` in the shell's namespace)."""

    __slots__ = ("aid", "guest", "name")

    def __init__(self, guest: Guest, aid: str, name: str | None = None) -> None:
        self.guest = guest
        self.aid = aid
        self.name = name or aid

    def __repr__(self) -> str:
        return f"RemoteActor({self.name!r}, aid={self.aid!r}, address={self.guest.address!r})"

    @property
    def address(self) -> str:
        """The mailbox socket of the attached application."""
        return self.guest.address

    def send(self, action: str, *args: Any, **kwargs: Any) -> Any:
        """Send ``action`` to this actor; an awaitable of the reply."""
        return self.guest.send(self.aid, action, *args, **kwargs)

    async def info(self) -> Any:
        """``await arbiter.info()``: the ``info`` command."""
        return await self.send("info")

    async def spawn(self, **params: Any) -> Any:
        """Spawn an actor in the attached application (params as :func:`pulsar.spawn`)."""
        return await self.guest.send(self.guest.arbiter_aid, "spawn", **params)

    async def kill_actor(self, aid: Any, graceful: bool = True) -> Any:
        """Stop actor ``aid`` of the attached application."""
        target = getattr(aid, "aid", aid)
        return await self.guest.send(self.guest.arbiter_aid, "kill_actor", target, graceful)
