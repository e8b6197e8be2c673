"""Free TCP ports for tests that must know a port before they bind it."""

from __future__ import annotations

import socket

__all__ = ["unused_tcp_port"]


def unused_tcp_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago (the OS picked it for port 0).

    Another process may take it before the test binds it; prefer binding port 0 and reading the
    port back when the code under test allows it.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port
