"""Cross-process wake-ups of the SQLite backend: one unix datagram socket per waiting backend
object, in a directory of its own per database (``<tmp>/pulsar-tasks-<hash of its path>``);
every committed change sends one byte to each socket there, and a socket whose process is
gone (refused) is removed by the first sender that finds it. See :mod:`._sqlite`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import socket
import tempfile
from collections.abc import Callable

__all__ = ["_Wake"]


def _poke(sender: socket.socket, path: str) -> None:
    """Send one wake-up byte to ``path``; a socket whose process is gone (refused) is removed."""
    try:
        sender.sendto(b"w", path)
    except ConnectionRefusedError:
        with contextlib.suppress(OSError):
            os.unlink(path)
    except OSError:  # full (wake-ups already pending) or gone meanwhile
        pass


class _Wake:
    """Cross-process wake-ups for one database file (see the module docstring)."""

    def __init__(self, path: str) -> None:
        key = hashlib.sha1(os.path.realpath(path).encode()).hexdigest()[:16]
        self.dir = os.path.join(tempfile.gettempdir(), f"pulsar-tasks-{key}")
        self.pid = os.getpid()
        self.sock: socket.socket | None = None  # ours, bound, read on the loop
        self.name: str | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.sender: socket.socket | None = None
        self.peers: list[str] = []
        self.peers_stamp = -1

    @staticmethod
    def supported(path: str) -> bool:
        return path != ":memory:" and hasattr(socket, "AF_UNIX")

    def _own(self) -> None:
        """After a fork, forget the parent's sockets (they are not this process's)."""
        if self.pid != os.getpid():
            self.pid = os.getpid()
            self.reset()

    def _bind(self, sock: socket.socket, name: str) -> None:
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        try:
            sock.bind(name)
        except FileNotFoundError:  # the directory's last user removed it meanwhile
            os.makedirs(self.dir, mode=0o700, exist_ok=True)
            sock.bind(name)

    def listen(self, loop: asyncio.AbstractEventLoop, wake: Callable[[], None]) -> None:
        """Bind this process's socket (once) and call ``wake`` when a datagram arrives."""
        self._own()
        if self.sock is not None:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        name = os.path.join(self.dir, f"{os.getpid()}-{secrets.token_hex(4)}")
        try:
            self._bind(sock, name)
        except OSError:  # no wake-ups here (polling still works)
            sock.close()
            return
        sock.setblocking(False)

        def readable() -> None:
            with contextlib.suppress(OSError):
                while sock.recv(64):
                    pass
            wake()

        loop.add_reader(sock.fileno(), readable)
        self.sock, self.name, self.loop = sock, name, loop

    def reset(self) -> None:
        self.sock = self.name = self.loop = self.sender = None
        self.peers, self.peers_stamp = [], -1

    def send(self) -> None:
        """Wake every other waiter of this database."""
        self._own()
        try:
            stamp = os.stat(self.dir).st_mtime_ns
        except OSError:
            return
        if stamp != self.peers_stamp:  # someone came or went: list the sockets again
            try:
                names = os.listdir(self.dir)
            except OSError:
                return
            peers = [os.path.join(self.dir, n) for n in names]
            self.peers = [peer for peer in peers if peer != self.name]
            self.peers_stamp = stamp
        if not self.peers:
            return
        if self.sender is None:
            self.sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.sender.setblocking(False)
        for peer in self.peers:
            _poke(self.sender, peer)

    @staticmethod
    def sweep(directory: str) -> None:
        """Remove the sockets of dead processes from ``directory``, and the directory if that
        leaves it empty (what a sender does as it goes; for tools and tests)."""
        try:
            names = os.listdir(directory)
        except OSError:
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
            probe.setblocking(False)
            for name in names:
                _poke(probe, os.path.join(directory, name))
        with contextlib.suppress(OSError):
            os.rmdir(directory)

    def close(self) -> None:
        if self.pid == os.getpid():
            if self.sock is not None:
                if self.loop is not None and not self.loop.is_closed():
                    with contextlib.suppress(Exception):
                        self.loop.remove_reader(self.sock.fileno())
                self.sock.close()
            if self.name is not None:
                with contextlib.suppress(OSError):
                    os.unlink(self.name)
                with contextlib.suppress(OSError):  # the last one leaves nothing behind
                    os.rmdir(self.dir)
            if self.sender is not None:
                self.sender.close()
        self.reset()
