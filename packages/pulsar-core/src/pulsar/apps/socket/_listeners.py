"""Listening sockets: bound once in the arbiter, shared with (or re-bound by) every worker.

How it works
------------
:func:`bind_listeners` turns the ``bind`` setting into :class:`Listener` objects in the arbiter,
before any worker exists, so a busy port or an address that is not on this machine stops the start
with one clear :class:`BindError`. A listener owns a real socket:

* shared mode (the default): a listening socket created with ``IPPROTO_TCP`` (so the accepted
  sockets are TCP sockets to asyncio as well) and ``SO_REUSEADDR``; each worker serves on a
  ``dup()`` of it, so a worker closing its copy never affects the others (thread workers share
  the process, and asyncio closes the socket a server stops on);
* ``reuse_port``: the arbiter's socket is only *bound* (it reserves the port and turns port 0 into
  a real port) and never listens; each worker binds and listens on its own ``SO_REUSEPORT`` socket
  and the kernel spreads connections between them. For UDP the arbiter's socket is closed at once
  (a bound UDP socket would receive its share of datagrams with nobody reading them).

A listener travels to process workers inside the application: ``fork`` inherits the descriptor and
``spawn``/``forkserver`` pickle it with multiprocessing's ``ForkingPickler``, which passes the
descriptor to the child (``DupFd``) while it starts the process.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import stat
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pulsar import PulsarError, parse_address

if TYPE_CHECKING:  # pragma: no cover
    from pulsar._config import Address

__all__ = [
    "BindError",
    "Listener",
    "bind_listeners",
    "close_listeners",
    "format_sockname",
    "server_ssl_context",
]

_IP_FAMILIES = (socket.AF_INET, socket.AF_INET6)


class BindError(PulsarError):
    """A listening socket could not be created (busy port, address not on this machine, ...).

    The message is one line: ``cannot bind 127.0.0.1:8060: [Errno 98] Address already in use``.
    """


def format_sockname(family: int, sockname: Any) -> str:
    """The canonical form of a bound address (``127.0.0.1:8060``, ``[::1]:80``, ``unix:/p``)."""
    if family in _IP_FAMILIES:
        host, port = sockname[0], sockname[1]
        return f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
    return f"unix:{sockname}"


class Listener:
    """One bound address of a socket server and the socket bound to it.

    Attributes: ``address`` (the canonical address actually bound, port 0 resolved), ``kind``
    (``"tcp"`` or ``"udp"``), ``family``, ``sockaddr`` (what ``bind`` takes), ``reuse_port``,
    ``sock`` (None once closed, or for a UDP ``reuse_port`` listener) and, for unix sockets,
    ``path``.
    """

    def __init__(
        self,
        kind: str,
        family: int,
        sockaddr: Any,
        sock: socket.socket | None,
        *,
        reuse_port: bool = False,
        path: str | None = None,
    ) -> None:
        self.kind = kind
        self.family = family
        self.sockaddr = sockaddr
        self.sock = sock
        self.reuse_port = reuse_port and family in _IP_FAMILIES
        self.path = path
        #: (st_dev, st_ino) of the unix socket file we created: unlinked at close only if still ours
        self._inode: tuple[int, int] | None = None
        if path is not None:
            with contextlib.suppress(OSError):
                st = os.stat(path)
                self._inode = (st.st_dev, st.st_ino)
        self.address = format_sockname(family, path if path is not None else sockaddr)

    def __repr__(self) -> str:
        return f"Listener({self.kind} {self.address})"

    @property
    def is_unix(self) -> bool:
        """True for a unix socket."""
        return self.path is not None

    def worker_socket(self, backlog: int) -> socket.socket:
        """The socket one worker serves on: its own ``SO_REUSEPORT`` socket bound to the same
        address (``reuse_port``), else a duplicate of the shared socket."""
        if self.reuse_port:
            sock = _new_socket(self.kind, self.family, reuse_port=True)
            try:
                sock.bind(self.sockaddr)
                if self.kind == "tcp":
                    sock.listen(backlog)
            except OSError as exc:
                sock.close()
                raise BindError(f"cannot bind {self.address}: {exc}") from None
            return sock
        if self.sock is None:
            raise BindError(f"{self.address}: the listening socket is closed")
        return self.sock.dup()

    def close(self, *, unlink: bool = True) -> None:
        """Close the socket; remove the unix socket file (when it is still the one we made)."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if unlink and self.path is not None and self._inode is not None:
            with contextlib.suppress(OSError):
                st = os.stat(self.path)
                if (st.st_dev, st.st_ino) == self._inode:
                    os.unlink(self.path)
            self._inode = None


def close_listeners(listeners: Iterable[Listener], *, unlink: bool = True) -> None:
    """Close every listener (see :meth:`Listener.close`)."""
    for listener in listeners:
        listener.close(unlink=unlink)


def bind_listeners(
    binds: Iterable[str | Address],
    *,
    kind: str = "tcp",
    backlog: int = 2048,
    reuse_port: bool = False,
) -> list[Listener]:
    """Bind every address of ``binds`` (``bind`` setting values); all or nothing.

    ``kind`` is ``"tcp"`` or ``"udp"`` (no unix sockets for UDP). Raises :class:`BindError` with
    one line naming the address; the listeners bound before the failure are closed.
    """
    listeners: list[Listener] = []
    try:
        for value in binds:
            listeners.append(_bind_one(parse_address(value), kind, backlog, reuse_port))
    except BaseException:
        close_listeners(listeners)
        raise
    return listeners


def _new_socket(kind: str, family: int, *, reuse_port: bool) -> socket.socket:
    if kind == "tcp":
        proto = socket.IPPROTO_TCP if family in _IP_FAMILIES else 0
        sock = socket.socket(family, socket.SOCK_STREAM, proto)
    else:
        sock = socket.socket(family, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        if kind == "tcp" and family in _IP_FAMILIES:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            # [::]:port serves IPv6 only, so 0.0.0.0:port can be bound next to it
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if reuse_port:
            if not hasattr(socket, "SO_REUSEPORT"):  # pragma: no cover - Windows
                raise BindError("reuse_port: SO_REUSEPORT is not available on this platform")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    except BaseException:
        sock.close()
        raise
    return sock


def _bind_one(address: Address, kind: str, backlog: int, reuse_port: bool) -> Listener:
    if address.is_unix:
        if kind != "tcp":
            raise BindError(f"cannot bind {address}: unix sockets are for TCP servers only")
        return _bind_unix(str(address.path), backlog)
    family, sockaddr = _resolve(address, kind)
    try:
        sock = _new_socket(kind, family, reuse_port=reuse_port)
    except OSError as exc:
        raise BindError(f"cannot bind {address}: {exc}") from None
    try:
        sock.bind(sockaddr)
        if kind == "tcp" and not reuse_port:
            sock.listen(backlog)
        sockaddr = sock.getsockname()
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot bind {address}: {exc}") from None
    if kind == "udp" and reuse_port:
        sock.close()  # each worker binds its own; this one would swallow datagrams
        return Listener(kind, family, sockaddr, None, reuse_port=True)
    return Listener(kind, family, sockaddr, sock, reuse_port=reuse_port)


def _resolve(address: Address, kind: str) -> tuple[int, Any]:
    family = address.family
    host, port = address.host or "0.0.0.0", address.port or 0
    if family != socket.AF_UNSPEC:
        return family, (host, port)
    # a host name: bind its first address (as gunicorn does)
    try:
        infos = socket.getaddrinfo(
            host,
            port,
            socket.AF_UNSPEC,
            socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM,
            0,
            socket.AI_PASSIVE,
        )
    except OSError as exc:
        raise BindError(f"cannot bind {address}: cannot resolve {host!r} ({exc})") from None
    if not infos:  # pragma: no cover - getaddrinfo raises instead
        raise BindError(f"cannot bind {address}: cannot resolve {host!r}")
    info = infos[0]
    return info[0], info[4]


def _bind_unix(path: str, backlog: int) -> Listener:
    address = f"unix:{path}"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise BindError(f"cannot bind {address}: {exc}") from None
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise BindError(f"cannot bind {address}: the path exists and is not a socket")
        if _unix_in_use(path):
            raise BindError(f"cannot bind {address}: another server is listening on it")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a stale socket file left by a dead server
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot bind {address}: {exc}") from None
    return Listener("tcp", socket.AF_UNIX, path, sock, path=path)


def _unix_in_use(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except OSError:
        return False
    else:
        return True
    finally:
        probe.close()


def server_ssl_context(cfg: Any) -> ssl.SSLContext | None:
    """The TLS context of a server from ``cert_file``/``key_file``/``ca_certs`` (None: no TLS).

    Raises :class:`BindError` (one line) when a file cannot be loaded.
    """
    cert_file = cfg.get("cert_file")
    if not cert_file:
        return None
    try:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert_file, cfg.get("key_file") or None)
        ca_certs = cfg.get("ca_certs")
        if ca_certs:
            ctx.load_verify_locations(ca_certs)
            ctx.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise BindError(f"TLS: cannot load cert_file/key_file/ca_certs: {exc}") from None
    return ctx
