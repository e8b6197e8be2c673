"""A TCP echo server: every byte a client sends comes back.

    python examples/echo/echo.py --bind 127.0.0.1:8060 --workers 2
    python examples/echo/echo.py --bind 127.0.0.1:0 --concurrency thread   # port 0: any free port
    python examples/echo/echo.py --help                                    # every setting

It is a :class:`pulsar.apps.socket.SocketServer`, so every setting works on the command line
(``--reuse-port``, ``--keep-alive``, ``--cert-file``, ``--max-requests``,
``--graceful-timeout``...).
Once the sockets are bound it prints ``LISTENING <address> ...`` (the real port when you asked for
port 0). Try it with ``python examples/echo/client.py 127.0.0.1:8060``.
"""

from __future__ import annotations

import asyncio

from pulsar.apps.socket import SocketServer


class EchoProtocol(asyncio.Protocol):
    """Write back whatever arrives."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class EchoServer(SocketServer):
    """TCP echo server."""

    def listening(self, addresses: list[str]) -> None:
        super().listening(addresses)
        print("LISTENING " + " ".join(addresses), flush=True)


def server(**params: object) -> EchoServer:
    """The echo server application (settings as keyword arguments)."""
    params.setdefault("bind", "127.0.0.1:8060")
    return EchoServer(callable=EchoProtocol, name="echo", **params)


if __name__ == "__main__":
    server().start()
