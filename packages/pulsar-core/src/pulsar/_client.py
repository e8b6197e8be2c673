"""``pulsar.connect(address)``: an authenticated guest client of a running arbiter.

How it works
------------
A running arbiter listens on its mailbox: a unix socket in a private (0700) directory that also
holds the file ``secret`` (0600) with the per-arbiter HMAC secret (TCP on 127.0.0.1 where unix
sockets are missing; then pass ``secret``). :func:`connect` opens a connection with the sans-IO
:class:`~pulsar._mailbox.Connection`, proves it knows the secret (the mutual HMAC challenge;
nothing is unpickled before it), says HELLO as a *guest* and checks it was accepted. The returned
:class:`Client` then sends requests like any actor (``await client.send('arbiter', 'info')``);
the arbiter lists it among its actors (kind ``guest``) and forgets it when the connection closes.
Used by ``pulsar-shell --attach``, the dashboard and the tests.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from typing import Any

from . import _mailbox as mb
from ._actor import ActorBase, ActorProxy, ActorState
from ._concurrency import register_fork_fd, unregister_fork_fd
from ._exceptions import MailboxError, PulsarError

__all__ = ["Client", "ConnectError", "connect", "read_secret"]

DEFAULT_MAX_FRAME = 64 * 1024 * 1024


class ConnectError(MailboxError):
    """The client cannot connect to an arbiter (nothing listens, refused, wrong secret...)."""


def read_secret(address: str) -> bytes:
    """The per-arbiter secret: the file ``secret`` in the directory of the socket ``address``.

    Raises:
        ConnectError: the file is missing, unreadable or empty.
    """
    path = os.path.join(os.path.dirname(os.path.abspath(address)), "secret")
    try:
        with open(path, "rb") as f:
            secret = f.read(4096)
    except PermissionError:
        raise ConnectError(
            f"cannot read the mailbox secret {path}: permission denied (connect as the user "
            "who started the application)"
        ) from None
    except OSError as exc:
        raise ConnectError(
            f"cannot read the mailbox secret {path}: {exc.strerror or exc}"
        ) from None
    if not secret:
        raise ConnectError(f"the mailbox secret {path} is empty")
    return secret


class _GuestConfig:
    """The few settings a guest reads (it has no configuration of its own)."""

    def __init__(self, max_frame_size: int) -> None:
        self._values = {"max_frame_size": max_frame_size, "thread_workers": 1}

    def get(self, name: str, default: Any = None) -> Any:
        return self._values.get(name, default)


class Client(ActorBase):
    """A guest of a running arbiter, talking through one authenticated connection.

    ``await client.send(target, action, *args, **kwargs)`` works like :func:`pulsar.send`
    (targets: an aid, an :class:`ActorProxy` or ``'arbiter'``); ``client.lost`` resolves when the
    connection closes (the application exited). ``async with await pulsar.connect(...)`` closes
    it at the end.
    """

    kind = "guest"
    #: ``Client.read_secret(address)``: the secret next to the mailbox socket ``address``
    read_secret = staticmethod(read_secret)

    def __init__(
        self,
        address: Any,
        secret: bytes,
        cfg: Any = None,
        *,
        name: str = "guest",
        max_frame_size: int | None = None,
    ) -> None:
        if cfg is None:
            cfg = _GuestConfig(int(max_frame_size or DEFAULT_MAX_FRAME))
        super().__init__(aid=f"guest-{uuid.uuid4().hex[:10]}", name=name, cfg=cfg)
        self.concurrency = "guest"
        self.address = address
        self._secret = secret
        self.mailbox: mb.MailboxProtocol | None = None
        self.lost: asyncio.Future[None] | None = None
        self._fd: int | None = None

    async def connect(self, timeout: float = 10.0) -> None:
        """Connect, authenticate and say hello; raises :class:`ConnectError` on failure."""
        loop = asyncio.get_running_loop()
        self.loop = loop
        self._loop_thread = threading.get_ident()
        self.started_at = loop.time()
        self.lost = loop.create_future()
        conn = mb.Connection(
            mb.Role.CLIENT,
            self._secret,
            max_frame_size=int(self.cfg.get("max_frame_size") or DEFAULT_MAX_FRAME),
        )

        def factory() -> mb.MailboxProtocol:
            return mb.MailboxProtocol(
                conn, on_message=self._on_frame, on_close=self._on_lost, handshake_timeout=timeout
            )

        where = self.address
        try:
            if isinstance(where, str):
                opening = loop.create_unix_connection(factory, where)
            else:
                opening = loop.create_connection(factory, *where)
            _, proto = await asyncio.wait_for(opening, timeout)
        except (FileNotFoundError, ConnectionRefusedError):
            raise ConnectError(f"no application listens on {where} (it has exited?)") from None
        except PermissionError:
            raise ConnectError(f"cannot connect to {where}: permission denied") from None
        except (OSError, TimeoutError) as exc:
            raise ConnectError(f"cannot connect to {where}: {exc}") from None
        self.mailbox = proto
        sock = proto.transport.get_extra_info("socket") if proto.transport else None
        if sock is not None:  # a child forked from this process must not keep it open
            self._fd = sock.fileno()
            register_fork_fd(self._fd)
        try:
            await asyncio.wait_for(asyncio.shield(proto.opened), timeout)
        except TimeoutError:
            proto.close()
            raise ConnectError(f"the arbiter at {where} did not complete the handshake") from None
        except Exception as exc:
            proto.close()
            raise ConnectError(
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
            raise ConnectError(f"the arbiter at {where} did not accept this guest: {exc}") from None

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
        if self._fd is not None:
            unregister_fork_fd(self._fd)
            self._fd = None
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

    async def aclose(self) -> None:
        """Close and wait until the connection is closed."""
        self.close()
        if self.lost is not None:
            await asyncio.shield(self.lost)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def proxy_of(self, target: Any) -> ActorProxy:
        """An :class:`ActorProxy` of ``target`` (pass it to ``client.send``)."""
        aid = self.resolve_target(target)
        return ActorProxy(aid, "arbiter" if aid == self.arbiter_aid else aid)


async def connect(
    address: Any,
    *,
    secret: bytes | None = None,
    name: str = "guest",
    timeout: float = 10.0,
    max_frame_size: int | None = None,
) -> Client:
    """Connect to the arbiter listening at ``address`` as an authenticated guest.

    ``address``: the mailbox socket path (``arbiter.address``; the secret is read from the file
    ``secret`` next to it unless given) or a ``(host, port)`` TCP address (``secret`` required).

    Raises:
        ConnectError: nothing listens there, the secret is wrong or unreadable, or the arbiter
            did not accept the guest.
    """
    if secret is None:
        if not isinstance(address, str):
            raise ConnectError("connect: a TCP mailbox address needs the secret")
        secret = read_secret(address)
    if not isinstance(address, str):
        address = tuple(address)
        if len(address) != 2:
            raise PulsarError(f"connect: invalid address {address!r}")
    client = Client(address, secret, name=name, max_frame_size=max_frame_size)
    await client.connect(timeout)
    return client
