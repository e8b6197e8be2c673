"""``--attach``: a guest connection to the mailbox of a running arbiter.

How it works
------------
A running arbiter listens on a unix socket in a private (0700) directory that also holds the file
``secret`` (0600) with its per-arbiter HMAC secret. :func:`find_mailbox` turns what the user gave
(the application's pid file, whose ``<pidfile>.mailbox`` holds the socket path, or the socket
itself) into the socket path; :func:`read_secret` reads the secret next to it. :class:`Guest`
is :func:`pulsar.connect`'s :class:`pulsar.Client`: it proves it knows the secret (mutual HMAC
challenge, nothing is unpickled before), says HELLO as a *guest* and then sends requests like any
actor: the arbiter lists it among its actors and forgets it when the connection closes.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from pulsar import Client, ConnectError, PulsarError

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
    try:
        return Client.read_secret(address)
    except ConnectError as exc:
        raise AttachError(str(exc)) from None


class Guest(Client):
    """This shell, seen by a remote arbiter: the public guest client :class:`pulsar.Client`
    (what :func:`pulsar.connect` returns) with the shell's configuration and errors.

    ``await guest.send(target, action, *args, **kwargs)`` works like :func:`pulsar.send`;
    ``guest.lost`` resolves when the connection closes (the application exited).
    """

    def __init__(self, address: str, secret: bytes, cfg: Any, *, name: str = "pulsar-shell"):
        super().__init__(address, secret, cfg, name=name)

    async def connect(self, timeout: float = 10.0) -> None:
        """Connect, authenticate and say hello; raises :class:`AttachError` on failure."""
        try:
            await super().connect(timeout)
        except ConnectError as exc:
            raise AttachError(str(exc)) from None

    def proxy_of(self, target: Any) -> RemoteActor:  # type: ignore[override]
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
